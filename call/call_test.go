package call_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// memStream is a stream in memory: it hears a constant level at the real-time pace and
// counts what is written to it.
type memStream struct {
	written atomic.Int64
	// wrote is closed once written reaches wroteAt (waitWritten).
	wmu     sync.Mutex
	wroteAt int64
	wrote   chan struct{}
	once    sync.Once
	closed  chan struct{}
	events  chan media.Event
}

func newMemStream() *memStream {
	return &memStream{closed: make(chan struct{}), events: make(chan media.Event)}
}

func (m *memStream) SampleRate() int { return media.Rate16k }

func (m *memStream) ReadFrame(f *media.Frame) error {
	select {
	case <-m.closed:
		return media.ErrClosed
	case <-time.After(time.Millisecond):
	}
	for i := range f.Samples {
		f.Samples[i] = 1000
	}
	return nil
}

func (m *memStream) WriteFrame(f *media.Frame) error {
	select {
	case <-m.closed:
		return media.ErrClosed
	case <-time.After(time.Millisecond):
	}
	n := m.written.Add(1)
	m.wmu.Lock()
	if m.wrote != nil && n >= m.wroteAt {
		close(m.wrote)
		m.wrote = nil
	}
	m.wmu.Unlock()
	return nil
}

// waitWritten returns a channel closed once n frames were written.
func (m *memStream) waitWritten(n int64) <-chan struct{} {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	ch := make(chan struct{})
	if m.written.Load() >= n {
		close(ch)
		return ch
	}
	m.wroteAt, m.wrote = n, ch
	return ch
}

func (m *memStream) Events() <-chan media.Event { return m.events }

func (m *memStream) Done() <-chan struct{} { return m.closed }

func (m *memStream) Reason() string {
	select {
	case <-m.closed:
		return "closed"
	default:
		return ""
	}
}

func (m *memStream) Quality() media.Quality {
	return media.Quality{PacketsSent: m.written.Load()}
}

func (m *memStream) Close() error {
	m.once.Do(func() { close(m.closed); close(m.events) })
	return nil
}

// testNode is a node's calls on a store of their own; stop ends the node's life.
func testNode(t *testing.T) (n *call.Node, st *store.Store, tenant string, stop context.CancelFunc) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	def, err := st.EnsureTenant(ctx, store.DefaultTenantSlug)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := context.WithCancel(ctx)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n = call.NewNode(base, call.NodeConfig{Store: st, Node: "node-a", Log: log, Calls: call.NewRegistry(nil)})
	t.Cleanup(func() {
		stop()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Wait(wctx); err != nil {
			t.Errorf("calls still running: %v", err)
		}
	})
	return n, st, def.ID, stop
}

// TestCallLifecycle runs the seam every transport that hands over a stream shares: the record is written,
// the destination talks over the stream, the events come in order, and the record ends
// with the transport's reason.
func TestCallLifecycle(t *testing.T) {
	w, st, tenant, _ := testNode(t)
	ctx := context.Background()

	t.Run("echo, hung up by the caller", func(t *testing.T) {
		var mu sync.Mutex
		var events []string
		ms := newMemStream()
		hungUp := make(chan string, 1)
		c, err := w.Start(ctx, call.Spec{TenantID: tenant, Destination: "echo", From: "browser", Codec: "opus",
			Stream: ms, Hangup: func(r string) { hungUp <- r },
			OnEvent: func(typ string, _ any) { mu.Lock(); events = append(events, typ); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := store.Get[store.Call](ctx, st, tenant, c.ID())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Direction != store.CallWeb || rec.Status != store.CallInProgress || rec.Node != "node-a" || rec.Destination != "echo" || rec.AnsweredAt == nil {
			t.Fatalf("record at start: %+v", rec)
		}
		deadline := time.Now().Add(5 * time.Second)
		for ms.written.Load() < 5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if ms.written.Load() < 5 {
			t.Fatal("the echo wrote nothing back")
		}
		c.End(call.ReasonCallerHangup)
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the call did not end")
		}
		if r := <-hungUp; r != "caller-hangup" {
			t.Errorf("transport told %q", r)
		}
		rec, err = store.Get[store.Call](ctx, st, tenant, c.ID())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != store.CallCompleted || rec.EndedReason != "caller-hangup" || rec.DurationSeconds <= 0 || rec.EndedAt == nil {
			t.Errorf("record at end: status %s reason %s duration %v", rec.Status, rec.EndedReason, rec.DurationSeconds)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 3 || events[0] != "call.created" || events[1] != "call.answered" || events[2] != "call.ended" {
			t.Errorf("events %v", events)
		}
		if w.Get(tenant, c.ID()) != nil {
			t.Error("an ended call is still live")
		}
	})

	t.Run("never connected", func(t *testing.T) {
		ms := newMemStream()
		c, err := w.Start(ctx, call.Spec{TenantID: tenant, Destination: "tone", Stream: ms, Ready: make(chan struct{})})
		if err != nil {
			t.Fatal(err)
		}
		if r := c.Record(); r.Status != store.CallRinging {
			t.Errorf("status before media %s", r.Status)
		}
		c.End(call.ReasonICEFailed)
		<-c.Done()
		rec, _ := store.Get[store.Call](ctx, st, tenant, c.ID())
		if rec.Status != store.CallFailed || rec.EndedReason != string(call.ReasonICEFailed) || ms.written.Load() != 0 {
			t.Errorf("status %s reason %s written %d", rec.Status, rec.EndedReason, ms.written.Load())
		}
	})

	t.Run("bad targets", func(t *testing.T) {
		_, err := w.Start(ctx, call.Spec{TenantID: tenant, AgentID: "agt_01jzzzzzzzzzzzzzzzzzzzzzzz", Stream: newMemStream()})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown agent: %v", err)
		}
		var ve *store.ValidationError
		if _, err := w.Start(ctx, call.Spec{TenantID: tenant, Destination: "music", Stream: newMemStream()}); !errors.As(err, &ve) {
			t.Errorf("unknown destination: %v", err)
		}
		if _, err := w.Start(ctx, call.Spec{TenantID: tenant, Stream: newMemStream()}); !errors.As(err, &ve) {
			t.Errorf("no target: %v", err)
		}
	})
}

// TestCallShutdown ends live calls with reason shutdown when the node stops.
func TestCallShutdown(t *testing.T) {
	w, _, tenant, stop := testNode(t)
	c, err := w.Start(context.Background(), call.Spec{TenantID: tenant, Destination: "tone", Stream: newMemStream()})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived the node")
	}
	if r := c.Record(); r.EndedReason != "shutdown" || r.Status != store.CallCompleted {
		t.Errorf("status %s reason %s", r.Status, r.EndedReason)
	}
}

// TestRingingCallHungUp is the rule every transport shares: a call hung up through the API
// before it was answered ends canceled, its handler never started.
func TestRingingCallHungUp(t *testing.T) {
	w, st, tenant, _ := testNode(t)
	ctx := context.Background()
	ms := newMemStream()
	c, err := w.Start(ctx, call.Spec{TenantID: tenant, Destination: "tone", Stream: ms, Ready: make(chan struct{})})
	if err != nil {
		t.Fatal(err)
	}
	if w.Get(tenant, c.ID()) != c || w.Get("ten_other", c.ID()) != nil {
		t.Fatal("a live call is found by its tenant only")
	}
	c.End(call.ReasonAPIHangup)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end")
	}
	rec, err := store.Get[store.Call](ctx, st, tenant, c.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.CallCanceled || rec.EndedReason != string(call.ReasonAPIHangup) || rec.AnsweredAt != nil || ms.written.Load() != 0 {
		t.Errorf("status %s reason %s answered %v written %d", rec.Status, rec.EndedReason, rec.AnsweredAt, ms.written.Load())
	}
	if w.Get(tenant, c.ID()) != nil {
		t.Error("an ended call is still live")
	}
}

// TestStoppingNodeRefuses: once a node waits for its calls, it starts no more.
func TestStoppingNodeRefuses(t *testing.T) {
	w, _, tenant, stop := testNode(t)
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Start(ctx, call.Spec{TenantID: tenant, Destination: "echo", Stream: newMemStream()}); !errors.Is(err, call.ErrClosing) {
		t.Errorf("start on a stopping node: %v", err)
	}
}
