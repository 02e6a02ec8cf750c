package call_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
)

// stepCarrier is a transport that writes down each step of its call's teardown.
type stepCarrier struct {
	stream *memStream
	mu     sync.Mutex
	steps  []string
}

func (s *stepCarrier) note(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, step)
}

func (s *stepCarrier) Steps() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.steps)
}

func (s *stepCarrier) Stream() media.Stream { return s.stream }
func (s *stepCarrier) Stop(r call.Reason) {
	s.note("stop " + string(r))
	_ = s.stream.Close()
}
func (s *stepCarrier) Tell(_ context.Context, r call.Reason) { s.note("tell " + string(r)) }
func (s *stepCarrier) Release() []any                        { s.note("release"); return nil }
func (s *stepCarrier) Close(r call.Reason)                   { s.note("close " + string(r)) }

// lifeCall is the smallest call a transport could make of a Life.
type lifeCall struct {
	call.Life
	id string
}

func (c *lifeCall) ID() string                                    { return c.id }
func (c *lifeCall) TenantID() string                              { return "ten_1" }
func (c *lifeCall) Transfer(ctx context.Context, to string) error { return call.ErrNoTransfer }

// events is a Publisher that keeps the event types it is given, in order.
type events struct {
	mu    sync.Mutex
	types []string
}

func (e *events) Publish(_, _, typ string, _ any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.types = append(e.types, typ)
	return nil
}

func newLifeCall(t *testing.T, reg *call.Registry, ev call.Publisher) (*lifeCall, *stepCarrier) {
	t.Helper()
	c := &lifeCall{id: "call_1"}
	car := &stepCarrier{stream: newMemStream()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Now().UTC()
	rec := store.Call{Status: store.CallInProgress, StartedAt: &now, AnsweredAt: &now}
	rec.ID, rec.TenantID = c.id, "ten_1"
	c.Init(c, car, call.NewRecorder(rec, nil, ev, log, nil), log, reg)
	c.Hold(sync.OnceFunc(func() { car.note("slot") }))
	reg.Add(c)
	return c, car
}

// TestLifeTeardownOrder: whatever ends an answered call, its teardown is the one rule: the
// audio stops, the far end is told unless it hung up, the handler lets go, the media is
// released, the record is final (out of the registry, its place within the limits given
// back, call.ended out), the transport closes.
func TestLifeTeardownOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(c *lifeCall)
		steps []string
	}{
		{"api", func(c *lifeCall) { c.End(call.ReasonAPIHangup) },
			[]string{"stop api-hangup", "tell api-hangup", "release", "slot", "close api-hangup"}},
		{"far end", func(c *lifeCall) { c.FarEnded(call.ReasonCallerHangup) },
			[]string{"stop caller-hangup", "release", "slot", "close caller-hangup"}},
		{"first reason wins", func(c *lifeCall) {
			c.FarEnded(call.ReasonCallerHangup)
			c.End(call.ReasonAPIHangup)
		}, []string{"stop caller-hangup", "release", "slot", "close caller-hangup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := call.NewRegistry(nil)
			ev := &events{}
			c, car := newLifeCall(t, reg, ev)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			handlerSaw := make(chan []string, 1)
			ran := make(chan struct{})
			go func() {
				defer close(ran)
				c.Run(ctx, func(hctx context.Context) {
					<-car.stream.Done() // the handler returns once its stream ends
					handlerSaw <- car.Steps()
				})
			}()
			tc.end(c)
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("the call was never done")
			}
			<-ran
			if got := car.Steps(); !slices.Equal(got, tc.steps) {
				t.Errorf("teardown %v, want %v", got, tc.steps)
			}
			// The handler saw the stream stop (and the far end told) before the media was
			// released.
			if saw := <-handlerSaw; slices.Contains(saw, "release") {
				t.Errorf("the media was released before the handler let go: %v", saw)
			}
			if reg.Open() != 0 {
				t.Error("the ended call is still in the registry")
			}
			rec := c.Record()
			if rec.Status != store.CallCompleted || rec.EndedReason != string(tc.steps[0][len("stop "):]) {
				t.Errorf("record %s/%s", rec.Status, rec.EndedReason)
			}
			ev.mu.Lock()
			defer ev.mu.Unlock()
			if !slices.Equal(ev.types, []string{call.EventEnded}) {
				t.Errorf("events %v, want one call.ended", ev.types)
			}
		})
	}
}

// TestLifeHandlerEnds: a handler that returns hangs the call up (agent-hangup), one whose
// stream ended first ends it with the stream's reason, and one that panics ends it with
// error without taking anything else down.
func TestLifeHandlerEnds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(c *lifeCall, car *stepCarrier)
		want    call.Reason
	}{
		{"returns", func(*lifeCall, *stepCarrier) {}, call.ReasonAgentHangup},
		{"hangs up with its own reason", func(c *lifeCall, _ *stepCarrier) { c.Hangup("transferred") }, call.ReasonTransferred},
		{"panics", func(*lifeCall, *stepCarrier) { panic("boom") }, call.ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, car := newLifeCall(t, call.NewRegistry(nil), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.Run(ctx, func(context.Context) { tc.handler(c, car) })
			if got := c.Reason(); got != tc.want {
				t.Errorf("ended %q, want %q", got, tc.want)
			}
			if steps := car.Steps(); len(steps) < 2 || steps[1] != "tell "+string(tc.want) {
				t.Errorf("the far end was not told: %v", steps)
			}
		})
	}
}

// TestLifeShutdown: the node's life ending ends its calls with shutdown.
func TestLifeShutdown(t *testing.T) {
	c, car := newLifeCall(t, call.NewRegistry(nil), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(context.Context) { <-car.stream.Done() })
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the call outlived the node")
	}
	if c.Reason() != call.ReasonShutdown {
		t.Errorf("ended %q, want shutdown", c.Reason())
	}
}

// TestLifeCounted: a node's registry counts its calls for /metrics: live while they run,
// then by how they ended (a reason of a brain's own is "other", so labels stay bounded),
// with their setup time, talk time and media.
func TestLifeCounted(t *testing.T) {
	m := metrics.New()
	reg := call.NewRegistry(nil)
	reg.Measure(m.Calls())
	read := func(name string, labels map[string]string) float64 {
		t.Helper()
		families, err := m.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		next:
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
						continue next
					}
				}
				switch {
				case s.Gauge != nil:
					return s.Gauge.GetValue()
				case s.Counter != nil:
					return s.Counter.GetValue()
				case s.Histogram != nil:
					return float64(s.Histogram.GetSampleCount())
				}
			}
		}
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, reason := range []string{"", "voicemail-left"} {
		c, car := newLifeCall(t, reg, nil)
		if got := read("switchboard_calls_active", map[string]string{"direction": ""}); got != 1 {
			t.Fatalf("calls active %v while one lives", got)
		}
		c.Run(ctx, func(context.Context) {
			car.stream.written.Store(50)
			c.Hangup(reason)
		})
	}
	if got := read("switchboard_calls_active", nil); got != 0 {
		t.Errorf("calls active %v once both ended", got)
	}
	if got := read("switchboard_calls_total", map[string]string{"status": store.CallCompleted, "reason": string(call.ReasonAgentHangup)}); got != 1 {
		t.Errorf("calls ended by the agent %v, want 1", got)
	}
	if got := read("switchboard_calls_total", map[string]string{"reason": "other"}); got != 1 {
		t.Errorf("calls ended with a reason of a brain's own %v, want 1 counted as other", got)
	}
	if got := read("switchboard_call_duration_seconds", nil); got != 2 {
		t.Errorf("talk times observed %v, want 2", got)
	}
	if got := read("switchboard_call_media_packets_total", map[string]string{"kind": "sent"}); got != 100 {
		t.Errorf("packets sent %v, want 100", got)
	}
}
