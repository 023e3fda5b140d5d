package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Each party of a scenario (the hub, the bare broker, each device fleet)
// runs in a process of its own, so that a process's memory is one party's
// alone and a fleet's CPU does not count as the hub's. A child is this
// binary again, with roleEnv naming its role and configEnv holding its
// configuration as JSON. It answers with one JSON line on stdout when it is
// ready, then reads commands from stdin, one a line, and answers each with
// one JSON line. EOF on stdin stops it.
const (
	roleEnv   = "PERF_ROLE"
	configEnv = "PERF_CONFIG"
)

// reply is the envelope of every answer a child writes.
type reply struct {
	Err string          `json:"err,omitempty"`
	Out json.RawMessage `json:"out,omitempty"`
}

// memory is a process's footprint once garbage collection has settled.
type memory struct {
	RSS        int64 `json:"rss"`   // VmRSS, bytes
	Anon       int64 `json:"anon"`  // RssAnon: heap, stacks, runtime; no mapped files
	Heap       int64 `json:"heap"`  // Go HeapInuse
	Stack      int64 `json:"stack"` // Go StackInuse
	Goroutines int   `json:"goroutines"`
}

func (m memory) minus(o memory) memory {
	return memory{m.RSS - o.RSS, m.Anon - o.Anon, m.Heap - o.Heap, m.Stack - o.Stack, m.Goroutines - o.Goroutines}
}

// settle collects garbage until the heap and idle goroutine stacks are as
// small as they get, returns the freed memory to the OS, and measures.
// Each collection halves an idle goroutine's stack at most once, hence
// several.
func settle() (memory, error) {
	for range 4 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st, err := readStatus(os.Getpid())
	if err != nil {
		return memory{}, err
	}
	return memory{RSS: st.rss, Anon: st.anon, Heap: int64(ms.HeapInuse), Stack: int64(ms.StackInuse), Goroutines: runtime.NumGoroutine()}, nil
}

// handler answers a role's own commands: name and argument, as sent.
type handler func(ctx context.Context, name, arg string) (any, error)

// role starts a child's work: it returns the first answer, the role's
// command handler (nil: none) and what to do when stdin closes (nil:
// nothing).
type role func(ctx context.Context) (first any, h handler, stop func(), err error)

// serveChild runs a role until stdin closes. Every role also
// answers "mem" (settle and measure), "heap PATH" and "goroutines PATH"
// (write a profile) and "cpu PATH" / "cpu" (start and stop a CPU profile).
func serveChild(ctx context.Context, start role) int {
	enc := json.NewEncoder(os.Stdout)
	answer := func(v any, err error) {
		var r reply
		if err != nil {
			r.Err = err.Error()
		} else if r.Out, err = json.Marshal(v); err != nil {
			r.Err = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, "perf child: write answer:", err)
			os.Exit(1)
		}
	}
	first, handle, stop, err := start(ctx)
	answer(first, err)
	if err != nil {
		return 1
	}
	if stop != nil {
		defer stop()
	}
	var cpuProfile *os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		name, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		switch name {
		case "mem":
			answer(settle())
		case "heap", "goroutines":
			answer(nil, writeProfile(name, arg))
		case "cpu":
			if cpuProfile != nil {
				pprof.StopCPUProfile()
				answer(nil, cpuProfile.Close())
				cpuProfile = nil
				continue
			}
			f, err := os.Create(arg)
			if err == nil {
				if err = pprof.StartCPUProfile(f); err == nil {
					cpuProfile = f
				}
			}
			answer(nil, err)
		default:
			if handle == nil {
				answer(nil, fmt.Errorf("unknown command %q", name))
				continue
			}
			answer(handle(ctx, name, arg))
		}
	}
	return 0
}

// startCPUProfile profiles this process until the returned func is called.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func writeProfile(name, path string) error {
	p := pprof.Lookup(map[string]string{"heap": "heap", "goroutines": "goroutine"}[name])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if name == "heap" {
		runtime.GC()
	}
	if err := p.WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// child is a running child process, seen from the harness.
type child struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader

	mu   sync.Mutex // one command at a time
	done chan struct{}
}

// startChild runs role with config, and env added to its environment, and
// decodes its first answer into first. The child's stderr is the
// harness's.
func startChild(ctx context.Context, role string, env []string, config, first any) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), env...), roleEnv+"="+role, configEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{name: role, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	if err := c.read(ctx, first); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	return c, nil
}

// call sends a command and decodes its answer into out (nil: ignore it).
func (c *child) call(ctx context.Context, command string, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, command+"\n"); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, command, err)
	}
	if err := c.read(ctx, out); err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, command, err)
	}
	return nil
}

// read decodes the child's next answer, giving up when ctx ends or the
// child exits.
func (c *child) read(ctx context.Context, out any) error {
	type line struct {
		b   []byte
		err error
	}
	got := make(chan line, 1)
	go func() {
		b, err := c.out.ReadBytes('\n')
		got <- line{b, err}
	}()
	var l line
	select {
	case l = <-got:
	case <-ctx.Done():
		c.kill()
		return ctx.Err()
	}
	if l.err != nil {
		return fmt.Errorf("no answer: %w", l.err)
	}
	var r reply
	if err := json.Unmarshal(l.b, &r); err != nil {
		return fmt.Errorf("answer %q: %w", l.b, err)
	}
	if r.Err != "" {
		return errors.New(r.Err)
	}
	if out == nil || len(r.Out) == 0 {
		return nil
	}
	return json.Unmarshal(r.Out, out)
}

func (c *child) memory(ctx context.Context) (memory, error) {
	var m memory
	err := c.call(ctx, "mem", &m)
	return m, err
}

// stop closes the child's stdin, which ends it, and kills it if it has not
// ended within a minute (10,000 connections take a while to close).
func (c *child) stop() {
	_ = c.in.Close()
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		fmt.Fprintf(os.Stderr, "perf: %s did not stop; killing it\n", c.name)
		c.kill()
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}
