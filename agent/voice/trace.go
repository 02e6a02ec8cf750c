package voice

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/telemetry"
)

// A traced call's conversation has a span per turn of the caller's: it begins when the
// caller stopped speaking (the moment the caller starts waiting, where the turn latency
// starts), holds the transcription that made the turn, and everything that answers it (the
// brain's retrieval, model and tools, each sentence's speech) until the conversation
// listens again. The transcription ran before anyone knew it would make a turn (it may
// have been one of several speculative ones), so its span is dated from its run, not lived.

// beginTurn starts the span of the caller's turn in, below the call's span (in the
// conversation's context: a brain may listen within the last turn's context), with the
// transcription that made it (pend: nil for keys). It does nothing for an untraced call.
func (c *conversation) beginTurn(in agent.Input, pend *pendingAnswer) {
	ctx := c.ctx
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return
	}
	tr := parent.TracerProvider().Tracer(telemetry.Scope)
	start := in.End
	if start.IsZero() {
		start = time.Now()
	}
	kind := "speech"
	if in.Kind == agent.InputDTMF {
		kind = "dtmf"
	}
	tctx, span := tr.Start(ctx, "turn", trace.WithTimestamp(start), trace.WithAttributes(attribute.String("turn.input", kind)))
	if pend != nil {
		span.SetAttributes(attribute.Float64("turn.end_of_speech_ms", pend.endOfSpeechMS))
		if !pend.sttDone.IsZero() {
			began := pend.sttDone.Add(-time.Duration(pend.sttMS * float64(time.Millisecond)))
			_, stt := tr.Start(tctx, "stt", trace.WithTimestamp(began),
				trace.WithAttributes(attribute.Float64("stt.ms", pend.sttMS), attribute.Int("stt.characters", len([]rune(in.Text)))))
			stt.End(trace.WithTimestamp(pend.sttDone))
		}
	}
	c.mu.Lock()
	c.turnSpan = span
	c.mu.Unlock()
}

// endTurn ends the span of the turn answered, if any.
func (c *conversation) endTurn() {
	c.mu.Lock()
	span := c.turnSpan
	c.turnSpan = nil
	c.mu.Unlock()
	if span != nil {
		span.End()
	}
}

// TurnContext implements agent.TurnTracer.
func (c *conversation) TurnContext(ctx context.Context) context.Context {
	c.mu.Lock()
	span := c.turnSpan
	c.mu.Unlock()
	if span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}

// traceAnswer puts the turn's latency, stage by stage, on its span: the same figures as the
// turn's metrics.
func (c *conversation) traceAnswer(m *TurnMetrics, firstFrame time.Time, interrupted bool) {
	c.mu.Lock()
	span := c.turnSpan
	c.mu.Unlock()
	if span == nil {
		return
	}
	if m != nil {
		span.AddEvent("first_audio", trace.WithTimestamp(firstFrame))
		span.SetAttributes(attribute.Float64("turn.voice_to_voice_ms", m.VoiceToVoiceMS), attribute.Float64("turn.stt_ms", m.STTMS),
			attribute.Float64("turn.model_first_token_ms", m.BrainFirstTokenMS), attribute.Float64("turn.retrieval_ms", m.KnowledgeMS),
			attribute.Float64("turn.tts_first_audio_ms", m.TTSFirstAudioMS))
	}
	if interrupted {
		span.SetAttributes(attribute.Bool("turn.interrupted", true))
	}
}
