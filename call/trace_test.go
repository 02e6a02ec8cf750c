package call_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/otlptest"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// startLife starts a call of reg as a transport does, for a test or a benchmark.
func startLife(tb testing.TB, reg *call.Registry, id string) (*lifeCall, *stepCarrier) {
	tb.Helper()
	c := &lifeCall{id: id}
	car := &stepCarrier{stream: newMemStream()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Now().UTC()
	agent := "agt_1"
	rec := store.Call{Direction: store.CallInbound, Status: store.CallRinging, StartedAt: &now, AgentID: &agent, SIPCallID: "abc@host"}
	rec.ID, rec.TenantID = id, "ten_1"
	c.Init(c, car, call.NewRecorder(rec, nil, nil, log, nil), log, reg)
	reg.Add(c)
	return c, car
}

// TestLifeTraced: a traced registry's call is one span from its start to its end, with its
// attributes and how it ended; what talks on the call runs in its span's context, so its
// own spans are the call's children; and the call's logger carries the trace id.
func TestLifeTraced(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	tr, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: rcv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Shutdown)
	reg := call.NewRegistry(nil)
	reg.Trace(tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, car := startLife(t, reg, "call_traced")
	c.Answered(ctx, "PCMU")
	var inCall trace.SpanContext
	c.Run(ctx, func(hctx context.Context) {
		_, turn := telemetry.Start(hctx, "turn")
		inCall = turn.SpanContext()
		turn.End()
		car.stream.written.Store(10)
		c.Hangup("")
	})
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Wait(t, 10*time.Second, "the call and its turn", func(s []otlptest.Span) bool { return len(s) >= 2 })
	var callSpan, turnSpan otlptest.Span
	for _, s := range spans {
		switch s.Name {
		case "call":
			callSpan = s
		case "turn":
			turnSpan = s
		}
	}
	if callSpan.Span == nil || turnSpan.ParentID() != callSpan.SpanID() || turnSpan.TraceID() != inCall.TraceID().String() {
		t.Fatalf("want the handler's span below the call's:\n%s", otlptest.Describe(spans))
	}
	for k, v := range map[string]string{"call.id": "call_traced", "call.direction": "inbound", "call.transport": "sip", "agent.id": "agt_1",
		"tenant.id": "ten_1", "sip.call_id": "abc@host", "call.end_reason": "agent-hangup", "call.status": "completed"} {
		if got := callSpan.Attr(k); got != v {
			t.Errorf("call span %s = %q, want %q", k, got, v)
		}
	}
	if len(callSpan.Events) != 1 || callSpan.Events[0].Name != "answered" {
		t.Errorf("call span events %v, want answered", callSpan.Events)
	}
	if callSpan.ParentID() != "" {
		t.Errorf("a call's span has a parent %s; a call starts its own trace", callSpan.ParentID())
	}
}

// TestLifeUntraced: a registry without tracing gives its calls no span, and the handler's
// context none either.
func TestLifeUntraced(t *testing.T) {
	t.Parallel()
	reg := call.NewRegistry(nil)
	reg.Trace(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := startLife(t, reg, "call_plain")
	c.Run(ctx, func(hctx context.Context) {
		if trace.SpanContextFromContext(hctx).IsValid() {
			t.Error("an untraced call's handler has a span")
		}
		c.Hangup("")
	})
}

// BenchmarkCallLifeTraced is a call's whole life on the node, without a network: started,
// answered, its handler making the spans of one turn (the turn, transcription, model, tool
// and speech, as the agents' runtime does), hung up and torn down; with tracing off, and on
// with the spans exported to an OTLP/HTTP receiver on loopback. The two alternate, six
// rounds of each in one run:
//
//	go test -run '^$' -bench BenchmarkCallLifeTraced -benchtime 20000x ./call/
func BenchmarkCallLifeTraced(b *testing.B) {
	rcv := otlptest.Start(b)
	tr, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: rcv.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown()
	regs := map[string]*call.Registry{"tracing=off": call.NewRegistry(nil), "tracing=on": call.NewRegistry(nil)}
	regs["tracing=on"].Trace(tr)
	ctx := context.Background()
	stages := []string{"stt", "model", "tool", "tts"}
	for range 6 {
		for _, mode := range []string{"tracing=off", "tracing=on"} {
			b.Run(mode, func(b *testing.B) {
				reg := regs[mode]
				b.ReportAllocs()
				for b.Loop() {
					c, _ := startLife(b, reg, "call_bench")
					c.Answered(ctx, "PCMU")
					c.Run(ctx, func(hctx context.Context) {
						tctx, turn := telemetry.Start(hctx, "turn")
						for _, s := range stages {
							_, span := telemetry.Start(tctx, s)
							span.End()
						}
						turn.End()
						c.Hangup("")
					})
				}
			})
		}
	}
}
