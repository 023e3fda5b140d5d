// Command timerworker is a stand-in custom handler for the local host's
// timer tests: it prints every invocation envelope it gets on one stdout
// line, "timerworker: invocation <function> <envelope> |end", and answers
// it with an empty result. Environment:
//
//	TIMERWORKER_LISTEN_FD=N  serve on the inherited listening socket N
//	                         instead of binding FUNCTIONS_CUSTOMHANDLER_PORT
//	TIMERWORKER_SLEEP=D      take D (a Go duration) over each invocation
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	sleep, _ := time.ParseDuration(os.Getenv("TIMERWORKER_SLEEP"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready")) })
	mux.HandleFunc("POST /{function}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Printf("timerworker: invocation %s %s |end\n", r.PathValue("function"), compact.Bytes())
		select {
		case <-time.After(sleep):
		case <-r.Context().Done():
			fmt.Printf("timerworker: invocation %s cancelled\n", r.PathValue("function"))
			return
		}
		b := []byte(`{"Outputs":{},"Logs":["tick"],"ReturnValue":null}`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	ln, err := listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "timerworker:", err)
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		os.Exit(0)
	}()
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "timerworker:", err)
		os.Exit(1)
	}
}

func listen() (net.Listener, error) {
	fd := os.Getenv("TIMERWORKER_LISTEN_FD")
	if fd == "" {
		return net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	}
	n, err := strconv.Atoi(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(n), "listener")
	defer f.Close()
	return net.FileListener(f)
}
