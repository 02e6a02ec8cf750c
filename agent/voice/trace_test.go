package voice

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/media"
)

// TestTurnsTraced: on a traced call each of the caller's turns is a span below the call's,
// from the caller's last voiced frame, holding its transcription and the speech that
// answered it, even when the brain listens within the last turn's context (as a workflow
// does); the greeting, said before any turn, is the call's. The stand-in transcriber is
// asked with the call's trace.
func TestTurnsTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, callSpan := tp.Tracer("test").Start(testCtx(t, 60*time.Second), "call")

	r := newRig(t, media.Rate8k)
	r.says("I would like to book a table for two")
	heard := make(chan agent.Input, 2)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		if _, err := c.Say(ctx, "Hello."); err != nil {
			return err
		}
		for range 2 {
			in, err := c.Listen(ctx, agent.ListenOptions{})
			if err != nil {
				return err
			}
			heard <- in
			ctx = agent.TurnContext(ctx, c) // the next Listen is within this turn's context
			if _, err := c.Say(ctx, "Right."); err != nil {
				return err
			}
		}
		c.Hangup("done")
		return nil
	})
	start := time.Now()
	wait := r.run(ctx, brain)
	for i := range 2 {
		if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
			t.Fatal("the agent did not stop speaking")
		}
		start = time.Now()
		r.caller.say(fixture(t, "hello"))
		select {
		case <-heard:
		case <-time.After(30 * time.Second):
			t.Fatalf("turn %d: no input", i+1)
		}
	}
	wait()
	callSpan.End()

	spans := rec.Ended()
	parentOf := map[string]string{}
	var turns []string
	for _, s := range spans {
		id := s.SpanContext().SpanID().String()
		parentOf[id] = s.Parent().SpanID().String()
		if s.Name() == "turn" {
			turns = append(turns, id)
			if s.Parent().SpanID() != callSpan.SpanContext().SpanID() {
				t.Errorf("a turn is below %s, not the call", s.Parent().SpanID())
			}
		}
	}
	if len(turns) != 2 {
		t.Fatalf("%d turn spans, want 2", len(turns))
	}
	for _, turn := range turns {
		var stt, tts int
		for _, s := range spans {
			if parentOf[s.SpanContext().SpanID().String()] != turn {
				continue
			}
			switch s.Name() {
			case "stt":
				stt++
			case "tts":
				tts++
			}
		}
		if stt != 1 || tts != 1 {
			t.Errorf("turn %s: %d stt and %d tts spans below it, want 1 and 1", turn, stt, tts)
		}
	}
	greeting := 0
	for _, s := range spans {
		if s.Name() == "tts" && s.Parent().SpanID() == callSpan.SpanContext().SpanID() {
			greeting++
		}
	}
	if greeting != 1 {
		t.Errorf("%d tts spans below the call, want the greeting's", greeting)
	}
	trace := callSpan.SpanContext().TraceID().String()
	for _, tr := range r.srv.Transcriptions() {
		if got := tr.Header.Get("Traceparent"); len(got) < 36 || got[3:35] != trace {
			t.Errorf("transcription %d: traceparent %q, want the call's trace %s", tr.Seq, got, trace)
		}
	}
}
