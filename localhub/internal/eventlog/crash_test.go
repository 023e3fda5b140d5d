package eventlog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashChildEnv makes the test binary a child that appends until killed.
const crashChildEnv = "EVENTLOG_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashOptions are the child's: small segments, so segments roll while it
// is killed.
func crashOptions(dir string) Options {
	return Options{Dir: dir, Partitions: 3, SegmentBytes: 32 << 10}
}

// crashChild appends from many goroutines, some single events and some
// batches, and prints "ack <partition> <sequence number> <body>" for each
// event once its append returned: what a device would have a PUBACK for.
func crashChild(dir string) {
	l, err := Open(crashOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	ack := func(evs []Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			fmt.Fprintf(out, "ack %d %d %s\n", e.Partition, e.SequenceNumber, e.Body)
		}
		out.Flush()
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				body := fmt.Sprintf("%s-%d-%d-%s", run, g, i, strings.Repeat("x", (g*131+i*17)%900))
				if g%4 == 0 {
					evs, err := l.AppendTo(i%l.PartitionCount(), Event{Body: []byte(body + "-a")}, Event{Body: []byte(body + "-b")})
					if err != nil {
						os.Exit(3)
					}
					ack(evs)
					continue
				}
				e, err := l.Append(Event{DeviceID: "device-" + strconv.Itoa(g*1000+i%7), Body: []byte(body)})
				if err != nil {
					os.Exit(3)
				}
				ack([]Event{e})
			}
		}()
	}
	select {}
}

// TestCrashKeepsAcknowledgedEvents kills a process that is appending with
// SIGKILL, twice, and reopens the log each time: every event whose append
// had returned is there with its sequence number, and numbering goes on
// without a gap.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	acked := map[[2]int64]string{} // partition, sequence number -> body
	for round := range 2 {
		n := crashRun(t, dir, acked)
		t.Logf("round %d: %d events acknowledged before the kill", round, n)

		l, err := Open(crashOptions(dir))
		require.NoError(t, err)
		for p := range l.PartitionCount() {
			info, err := l.Info(p)
			require.NoError(t, err)
			evs := readN(t, l, p, 0, int(info.LastSequenceNumber+1))
			for i, e := range evs {
				require.Equal(t, int64(i), e.SequenceNumber, "no gap")
			}
			for key, body := range acked {
				if key[0] == int64(p) {
					require.Less(t, key[1], int64(len(evs)), "acknowledged event %v lost", key)
					require.Equal(t, body, string(evs[key[1]].Body), "event %v", key)
				}
			}
		}
		require.NoError(t, l.Close())
	}
}

// crashRun starts a child appending to dir, kills it after it acknowledged
// at least 300 more events, and records the acknowledgements it printed.
func crashRun(t *testing.T, dir string, acked map[[2]int64]string) int {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 4, "line %q", sc.Text())
		p, _ := strconv.ParseInt(f[1], 10, 64)
		seq, _ := strconv.ParseInt(f[2], 10, 64)
		acked[[2]int64{p, seq}] = f[3]
		if n++; n == 300 {
			require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred code, no Close
		}
	}
	_ = cmd.Wait()
	require.GreaterOrEqual(t, n, 300, "the child stopped early")
	return n
}
