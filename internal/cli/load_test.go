package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sipgo "github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/sip"
)

// lockedBuffer is a stderr that sipgo's goroutines may write to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLoadCommand: load places its calls at a real SIP server on loopback and prints its
// report on the stdout it is given; calls that fail fail the command.
func TestLoadCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// sipgo's package logger, which load sets once, is set before any of sipgo's goroutines
	// run: they read it unguarded.
	sipgoLog.Do(func() { sipgo.SetDefaultLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) })
	pc, l, err := sip.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sip.New(sip.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, pc, l) }()
	defer func() {
		stopServe()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the SIP server did not stop")
		}
	}()
	addr := pc.LocalAddr().String()
	load := func(user string) (int, string, string) {
		var out bytes.Buffer
		var errOut lockedBuffer
		code := Run(ctx, Program{Commands: Commands()}, []string{"load", "--calls", "2", "--duration", "1s", "--json", "--log-level", "warn", "sip:" + user + "@" + addr},
			Process{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, StopSignals: func() {}})
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := load("echo")
	var rep struct{ Attempted, Answered, Failed int }
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || rep.Answered != 2 || rep.Failed != 0 {
		t.Fatalf("load to the echo: exit %d, %v, report %+v\nstdout %s\nstderr %s", code, err, rep, stdout, stderr)
	}
	code, _, stderr = load("nobody")
	if code != 1 || !strings.Contains(stderr, "switchboard: load: 2 of 2 calls failed") {
		t.Fatalf("load to nobody: exit %d, want 1 and the calls failed:\n%s", code, stderr)
	}
}
