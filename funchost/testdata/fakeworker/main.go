// Command fakeworker is a stand-in custom handler for the local host's own
// tests: it crashes on request, reports how it was started, echoes what the
// host forwards and answers invocation envelopes. Environment:
//
//	FAKEWORKER_EXIT_AT_START=N  exit with code N before listening
//	FAKEWORKER_FAIL_FIRST=N     answer the first N envelopes with 500
//	FAKEWORKER_LISTEN_FD=N      serve on the inherited listening socket N
//	                            instead of binding FUNCTIONS_CUSTOMHANDLER_PORT
//	FAKEWORKER_EXIT_ON_TERM=N   exit with code N on SIGTERM (default 0)
//	FAKEWORKER_ENVELOPE_DIR=D   write each Event Hubs envelope to D/<function>-<n>.json
//
// /api/... echoes the request, after ?sleep=DURATION if given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if code := os.Getenv("FAKEWORKER_EXIT_AT_START"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintln(os.Stderr, "fakeworker: crashing at start as asked")
		os.Exit(n)
	}
	fmt.Fprintln(os.Stderr, "fakeworker: warning: this is a test double")
	failFirst, _ := strconv.ParseInt(os.Getenv("FAKEWORKER_FAIL_FIRST"), 10, 64)
	var envelopes atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready")) })
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "FUNCTIONS_") || strings.HasPrefix(k, "FAKE_") {
				env[k] = v
			}
		}
		writeJSON(w, 200, map[string]any{"pid": os.Getpid(), "cwd": cwd, "args": os.Args[1:], "env": env})
	})
	mux.HandleFunc("POST /api/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintf(os.Stderr, "fakeworker: exiting with code %d as asked\n", code)
		writeJSON(w, 200, map[string]int{"code": code})
		w.(http.Flusher).Flush()
		os.Exit(code)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			fmt.Println("fakeworker: sleeping", d)
			time.Sleep(d)
		}
		body, _ := io.ReadAll(r.Body)
		writeJSON(w, 200, map[string]any{
			"method": r.Method, "path": r.URL.Path, "rawQuery": r.URL.RawQuery, "host": r.Host,
			"headers": r.Header, "body": string(body), "contentLength": r.ContentLength,
		})
	})
	mux.HandleFunc("POST /{function}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := envelopes.Add(1)
		var env struct {
			Data     map[string]json.RawMessage
			Metadata map[string]json.RawMessage
		}
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if _, ok := env.Data["req"]; ok {
			// An HTTP trigger: answer with the envelope as the body.
			fmt.Printf("fakeworker: http envelope for %s invocationId=%s\n", r.PathValue("function"), r.Header.Get("X-Azure-Functions-InvocationId"))
			writeJSON(w, 200, map[string]any{
				"Outputs":     map[string]any{"res": map[string]any{"statusCode": "201", "headers": map[string]any{"Content-Type": "application/json", "X-Fake": true}, "body": string(body)}},
				"Logs":        []string{"http envelope for " + r.PathValue("function")},
				"ReturnValue": nil,
			})
			return
		}
		retry := "none"
		if rc, ok := env.Metadata["RetryContext"]; ok {
			retry = string(rc)
		}
		var seqText string
		json.Unmarshal(env.Metadata["SequenceNumberArray"], &seqText)
		if seq, ok := env.Metadata["SequenceNumber"]; ok {
			seqText = string(seq) // cardinality one
		}
		var pc struct{ PartitionId string }
		json.Unmarshal(env.Metadata["PartitionContext"], &pc)
		if dir := os.Getenv("FAKEWORKER_ENVELOPE_DIR"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.json", r.PathValue("function"), n)), body, 0o644); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Printf("fakeworker: envelope %d for %s partition=%s sequenceNumbers=%s retryContext=%s\n", n, r.PathValue("function"), pc.PartitionId, seqText, retry)
		if n <= failFirst {
			http.Error(w, "failing as asked", 500)
			return
		}
		writeJSON(w, 200, map[string]any{"Outputs": map[string]any{}, "Logs": []string{"delivered sequenceNumbers=" + seqText}, "ReturnValue": nil})
	})

	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	ln, err := listen(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeworker:", err)
		os.Exit(1)
	}
	// SIGTERM is caught before the host can see the worker ready.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("fakeworker: listening on port", port)
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintln(os.Stderr, "fakeworker:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	srv.Shutdown(context.Background())
	code, _ := strconv.Atoi(os.Getenv("FAKEWORKER_EXIT_ON_TERM"))
	fmt.Printf("fakeworker: stopping with code %d\n", code)
	os.Exit(code)
}

// listen binds the port, or takes the listening socket the host passed.
func listen(port string) (net.Listener, error) {
	fd := os.Getenv("FAKEWORKER_LISTEN_FD")
	if fd == "" {
		return net.Listen("tcp", "127.0.0.1:"+port)
	}
	n, err := strconv.Atoi(fd)
	if err != nil {
		return nil, fmt.Errorf("FAKEWORKER_LISTEN_FD: %w", err)
	}
	f := os.NewFile(uintptr(n), "listener")
	if f == nil {
		return nil, errors.New("FAKEWORKER_LISTEN_FD: no such descriptor")
	}
	defer f.Close()
	return net.FileListener(f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
