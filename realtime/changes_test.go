package realtime_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/realtime"
)

// logBuffer is a slog destination tests read while the code under test writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The one publisher of committed changes (the API's and knowledge's) delivers the event,
// does nothing without a hub, and logs, without failing the change, an event it cannot send.
func TestChanges(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	realtime.Changes{}.Publish(ctx, "t1", "tenant", realtime.TypeCallTranscript, map[string]int{"n": 1})

	var logs logBuffer
	h := realtime.NewHub(realtime.Options{})
	changes := realtime.Changes{Hub: h, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	sub := subscribe(t, h, "t1", 0, "knowledge:kb1")
	changes.Publish(ctx, "t1", "knowledge:kb1", realtime.TypeCallTranscript, map[string]int{"n": 7})
	it, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if it.Event == nil || seq(t, it.Event) != 7 {
		t.Fatalf("got %+v, want the change's event", it)
	}
	changes.Publish(ctx, "t1", "knowledge:kb1", realtime.TypeCallTranscript, make(chan int))
	if got := logs.String(); !strings.Contains(got, "event not published in order") || !strings.Contains(got, "topic=knowledge:kb1") {
		t.Errorf("log %q: want the event that was not published, named", got)
	}
}

// The sweeper forgets topics nobody watches, on its own, until its context ends.
func TestHubRunSweeper(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := realtime.NewHub(realtime.Options{ReplayAge: time.Millisecond})
	publish(t, h, "t1", "call:c1", 1)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); h.RunSweeper(sweepCtx, 5*time.Millisecond) }()
	for h.Stats().Topics != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("topics %d: the sweeper did not forget an idle topic", h.Stats().Topics)
		case <-time.After(5 * time.Millisecond):
		}
	}
	stopSweep()
	<-swept
}

// A node waits for its relay to listen, but serves anyway (saying so) when it does not in
// time, and stops waiting when it is stopped.
func TestRelayWaitListening(t *testing.T) {
	defer goleak.VerifyNone(t)
	var logs logBuffer
	h := realtime.NewHub(realtime.Options{})
	// Never run: it never listens.
	relay := realtime.NewPostgresRelay("postgres://127.0.0.1:1/none", h, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := relay.WaitListening(context.Background(), 10*time.Millisecond); err != nil {
		t.Fatalf("wait past its time: %v, want nil (serve anyway)", err)
	}
	if !strings.Contains(logs.String(), "the event relay is not listening yet; serving anyway") {
		t.Errorf("log %q: want the relay not listening, said", logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := relay.WaitListening(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait of a stopped node: %v, want context.Canceled", err)
	}
}
