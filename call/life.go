package call

import (
	"context"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// Carrier is what a transport gives a call's lifecycle: the call's audio, and what only the
// transport knows how to do when the call ends.
type Carrier interface {
	// Stream is the call's audio; nil until there is some (a SIP call before its media).
	Stream() media.Stream
	// Stop ends the call's audio with reason: what talks on the call sees its stream end.
	Stop(reason Reason)
	// Tell tells the far end that the call is over and why (a SIP BYE with its Reason
	// header). It is called only when the far end did not end the call itself, and as
	// soon as the call ended; a transport that must deliver call.ended first (a browser's
	// data channel) does nothing here and tells in Close.
	Tell(ctx context.Context, reason Reason)
	// Release frees what the call's media held (sockets, a recording) once what talks on
	// the call let go of it, before the record is made final; it returns what the call's
	// "call ended" line says of its media beyond its quality (key, value pairs).
	Release() []any
	// Close is the transport's last step, after the record was made final and call.ended
	// published.
	Close(reason Reason)
}

// Life is the lifecycle every call has, whatever carries it: ringing, answered, ended once
// with the first reason given, and one teardown: the audio stops, the far end is told, what
// talks on the call gets HandlerGrace to return by itself (then is cancelled), the media is
// released, the record is made final, call.ended is published and the call leaves the
// node's registry. A transport embeds a Life in its call (Init), reports to it with End and
// FarEnded, and runs the answered call with Run.
type Life struct {
	// The record, written and published as the call goes.
	*Recorder

	self  Live
	line  Carrier
	log   *slog.Logger
	calls *Registry

	endOnce sync.Once
	// ending is endCtx's: Run's teardown starts on it without a goroutine waiting.
	ending  <-chan struct{}
	endCtx  context.Context
	endStop context.CancelFunc
	// reason and farEnd are written once, before ending is closed.
	reason Reason
	farEnd bool

	// slot is the call's place within the node's and its tenant's limits, given back as
	// it leaves the registry (Hold).
	slot func()

	doneOnce sync.Once
	done     chan struct{}
	// leftOnce: the call left the registry (and the node's count of live calls).
	leftOnce sync.Once

	// span is the call's trace, from its start to its end; nil when calls are not traced.
	span trace.Span
	// transport is what carries the call (transportOf).
	transport string
}

// transported is a Carrier that names its transport (sip, webrtc, mediastream) on the
// call's trace and metrics; one that does not is SIP's, or a web call's.
type transported interface{ Transport() string }

// transportOf is what carries a call, for its trace and metrics.
func transportOf(line Carrier, rec store.Call) string {
	if t, ok := line.(transported); ok {
		return t.Transport()
	}
	if rec.Direction == store.CallWeb {
		return "web"
	}
	return "sip"
}

// Init readies the lifecycle of self, a call the registry calls holds (nil: none), whose
// record rec writes and whose lines log writes.
func (l *Life) Init(self Live, line Carrier, rec *Recorder, log *slog.Logger, calls *Registry) {
	l.Recorder, l.self, l.line, l.log, l.calls = rec, self, line, log, calls
	l.endCtx, l.endStop = context.WithCancel(context.Background())
	l.ending = l.endCtx.Done()
	l.done = make(chan struct{})
	l.transport = transportOf(line, rec.Record())
	calls.metrics().Started(l.transport, rec.Record().Direction)
	if tr := calls.callTracer(); tr != nil {
		l.startSpan(tr, rec.Record())
	}
}

// startSpan starts the call's trace: a root span, as a call is not part of anything else
// (an API request that placed it ends long before it), which every turn of the call is
// under. The call's lines carry its trace id from here on.
func (l *Life) startSpan(tr trace.Tracer, rec store.Call) {
	attrs := []attribute.KeyValue{attribute.String("call.id", rec.ID), attribute.String("call.direction", rec.Direction),
		attribute.String("call.transport", l.transport), attribute.String("tenant.id", rec.TenantID)}
	if rec.AgentID != nil {
		attrs = append(attrs, attribute.String("agent.id", *rec.AgentID))
	}
	if rec.Destination != "" {
		attrs = append(attrs, attribute.String("call.destination", rec.Destination))
	}
	if rec.SIPCallID != "" {
		attrs = append(attrs, attribute.String("sip.call_id", rec.SIPCallID))
	}
	kind := trace.SpanKindServer
	if rec.Direction == store.CallOutbound {
		kind = trace.SpanKindClient
	}
	_, l.span = tr.Start(context.Background(), "call", trace.WithNewRoot(), trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	l.log = l.log.With(telemetry.LogAttrs(l.span)...)
}

// Logger is the call's logger: the one Init was given, with the call's trace id once the
// call is traced.
func (l *Life) Logger() *slog.Logger { return l.log }

// Traced is ctx with the call's span, so that what is started in it (the agent's turns, its
// requests to providers) is part of the call's trace; ctx itself when the call is not traced.
func (l *Life) Traced(ctx context.Context) context.Context {
	if l.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, l.span)
}

// Hold gives the call its place within the node's and its tenant's limits (what
// Registry.Acquire returned): it is given back as the call leaves the registry, before
// whoever waits for the call (Done, HangUp) is let go, so that a client told its call ended
// may call again at once. release must be safe to call more than once (sync.OnceFunc): the
// transport gives it back itself when the call never got this far.
func (l *Life) Hold(release func()) { l.slot = release }

// End ends the call with reason, the first reason given winning: Switchboard's side (the
// agent, the API, a shutdown) or the network (media that stopped) ended it, and the far end
// is told.
func (l *Life) End(reason Reason) { l.end(reason, false) }

// FarEnded ends the call because the far end hung up (a SIP BYE, a CANCEL): it is not told.
func (l *Life) FarEnded(reason Reason) { l.end(reason, true) }

func (l *Life) end(reason Reason, farEnd bool) {
	l.endOnce.Do(func() {
		l.reason, l.farEnd = reason, farEnd
		l.endStop()
	})
}

// Ending is closed once the call was ended (End, FarEnded), before its teardown.
func (l *Life) Ending() <-chan struct{} { return l.ending }

// Reason is why the call ended; "" while it lives.
func (l *Life) Reason() Reason {
	select {
	case <-l.ending:
		return l.reason
	default:
		return ""
	}
}

// Done is closed once the call ended, its record is final and it left the registry.
func (l *Life) Done() <-chan struct{} { return l.done }

// Hangup ends the call from Switchboard's side (the agent) with reason (agent-hangup when
// empty). The reason is a string, as the agent's line gives it: a brain may end a call with
// a reason of its own. An agent that hangs up on a stream the far end has already ended
// does so because it ended (its conversation may learn of it a moment after the stream
// did): then the stream's reason is why the call ended.
func (l *Life) Hangup(reason string) {
	r := Reason(reason)
	if r == "" {
		r = ReasonAgentHangup
	}
	if s := l.line.Stream(); s != nil {
		select {
		case <-s.Done():
			if sr := s.Reason(); sr != "" && sr != "closed" {
				r = FromStream(sr)
			}
		default:
		}
	}
	l.End(r)
}

// HangUp implements Live: the call ends with reason (the far end is told), and HangUp
// returns once its record is final or ctx ends.
func (l *Life) HangUp(ctx context.Context, reason Reason) {
	l.End(reason)
	select {
	case <-l.done:
	case <-ctx.Done():
	}
}

// Answered marks the call in progress: media flows. attrs go on its log line.
func (l *Life) Answered(ctx context.Context, codec string, attrs ...any) {
	now := time.Now().UTC()
	l.Update(ctx, func(r *store.Call) {
		r.Status = store.CallInProgress
		r.AnsweredAt = &now
		if codec != "" {
			r.Codec = codec
		}
	})
	rec := l.Record()
	l.log.Info("call answered", append([]any{"codec", codec}, attrs...)...)
	if l.span != nil {
		l.span.AddEvent("answered", trace.WithTimestamp(now), trace.WithAttributes(attribute.String("call.codec", codec)))
	}
	if rec.StartedAt != nil {
		l.calls.metrics().Answered(l.transport, rec.Direction, now.Sub(*rec.StartedAt))
	}
	l.Publish(EventAnswered, rec)
}

// Run carries an answered call: handler talks on it until it ends, whoever ends it (the
// handler hanging up or returning, the stream ending, End and FarEnded, base ending with
// ReasonShutdown), then the call is torn down by the one rule. It returns once the call is
// Done and handler has returned.
//
// The handler runs on Run's own goroutine, and what ends the call is watched by callbacks
// (context.AfterFunc, the stream's AfterDone where it has one) rather than a goroutine
// waiting for the whole call: a call ended from elsewhere is torn down on a goroutine that
// lives only for its teardown, while the handler is given its grace.
//
//nolint:contextcheck // a call outlives what started it; base (the node's life) ends it
func (l *Life) Run(base context.Context, handler func(ctx context.Context)) {
	stream := l.line.Stream()
	streamDone := stream.Done()
	streamEnded := func() { l.End(FromStream(stream.Reason())) }

	hctx, stopHandler := context.WithCancel(l.Traced(context.WithoutCancel(base)))
	defer stopHandler()
	handlerDone := make(chan struct{})
	teardown := sync.OnceFunc(func() { l.Teardown(base, handlerDone, stopHandler) })
	stopEnding := context.AfterFunc(l.endCtx, teardown)
	defer stopEnding()
	stopBase := context.AfterFunc(base, func() { l.End(ReasonShutdown) })
	defer stopBase()
	stopStream := media.AfterDone(stream, streamEnded)
	defer stopStream()

	func() {
		defer close(handlerDone)
		defer func() {
			if p := recover(); p != nil {
				l.log.Error("call handler panicked; ending the call", "panic", p, "stack", string(debug.Stack()))
				l.End(ReasonError)
			}
		}()
		handler(hctx)
		// A handler also returns because the stream ended: then that is why.
		select {
		case <-streamDone:
			streamEnded()
		default:
			l.End(ReasonAgentHangup)
		}
	}()
	teardown() // or waits for the one AfterFunc started
}

// Teardown ends a call that was answered, by the one rule: the audio stops, the far end is
// told (unless it ended the call), the handler (handlerDone, stopHandler; nil when none
// runs) gets HandlerGrace to return and is then cancelled, the media is released, the
// record is made final and the transport closed. The call must have ended.
//
//nolint:contextcheck // the teardown outlives what ended the call
func (l *Life) Teardown(ctx context.Context, handlerDone <-chan struct{}, stopHandler context.CancelFunc) {
	<-l.ending
	reason := l.reason
	l.line.Stop(reason)
	if !l.farEnd {
		l.line.Tell(ctx, reason)
	}
	if handlerDone != nil {
		AwaitHandler(handlerDone, stopHandler, l.log)
	}
	attrs := l.line.Release()
	var q *media.Quality
	if s := l.line.Stream(); s != nil {
		sq := s.Quality()
		q = &sq
	}
	l.Finish(ctx, reason, q, attrs...)
	l.line.Close(reason)
}

// Finish makes the record of a call that ended (answered or not) final with reason and its
// media's quality (nil: none), logs it with attrs, publishes call.ended and lets go of the
// call (Forget).
func (l *Life) Finish(ctx context.Context, reason Reason, quality *media.Quality, attrs ...any) {
	var q *store.CallQuality
	if quality != nil {
		sq := store.CallQuality(*quality)
		q = &sq
	}
	l.Ended(ctx, reason, q)
	// Out of the registry before call.ended is out: whoever sees it finds the call ended.
	l.leave()
	rec := l.Record()
	line := []any{"reason", reason, "status", rec.Status, "duration_seconds", rec.DurationSeconds}
	if quality != nil {
		line = append(line, "rx_packets", quality.PacketsReceived, "tx_packets", quality.PacketsSent,
			"lost_packets", quality.PacketsLost, "late_packets", quality.PacketsLate, "jitter_ms", quality.JitterMS)
	}
	l.log.Info("call ended", append(line, attrs...)...)
	l.Publish(EventEnded, rec)
	l.doneOnce.Do(func() { close(l.done) })
}

// Forget takes the call out of the registry and lets whoever waits for it go (Done). Finish
// does it last; a transport whose teardown failed part way does it on its own.
func (l *Life) Forget() {
	l.leave()
	l.doneOnce.Do(func() { close(l.done) })
}

// leave takes the call out of the registry, gives its place back and counts how it ended.
func (l *Life) leave() {
	l.leftOnce.Do(func() {
		l.calls.Remove(l.self)
		if l.slot != nil {
			l.slot()
		}
		if m := l.calls.metrics(); m != nil {
			e := endOf(l.Record())
			e.Transport = l.transport
			m.Ended(e)
		}
		l.endSpan()
	})
}

// endSpan ends the call's trace with how the call ended. A call that failed (its status
// failed, or an error ended it) is an error on the trace; one the far end or the agent hung
// up is not.
func (l *Life) endSpan() {
	if l.span == nil {
		return
	}
	rec := l.Record()
	l.span.SetAttributes(attribute.String("call.end_reason", rec.EndedReason), attribute.String("call.status", rec.Status),
		attribute.Float64("call.duration_seconds", rec.DurationSeconds))
	if q := rec.Quality; q.PacketsReceived+q.PacketsSent > 0 {
		l.span.SetAttributes(attribute.Int64("rtp.packets_received", q.PacketsReceived), attribute.Int64("rtp.packets_sent", q.PacketsSent),
			attribute.Int64("rtp.packets_lost", q.PacketsLost), attribute.Float64("rtp.jitter_ms", q.JitterMS))
	}
	if rec.Status == store.CallFailed || Reason(rec.EndedReason) == ReasonError {
		l.span.SetStatus(codes.Error, "the call ended "+rec.EndedReason)
	}
	l.span.End()
}

// endOf is what the call metrics count of an ended call's record. A reason Switchboard
// does not know (a brain's own) is counted as "other": the metrics' labels stay bounded.
func endOf(rec store.Call) metrics.CallEnd {
	reason := rec.EndedReason
	if !slices.Contains(Reasons, Reason(reason)) {
		reason = "other"
	}
	q := rec.Quality
	e := metrics.CallEnd{Direction: rec.Direction, Status: rec.Status, Reason: reason, Answered: rec.AnsweredAt != nil,
		Duration: time.Duration(rec.DurationSeconds * float64(time.Second)),
		HasMedia: q.PacketsReceived+q.PacketsSent > 0, PacketsReceived: q.PacketsReceived, PacketsSent: q.PacketsSent,
		PacketsLost: q.PacketsLost, PacketsLate: q.PacketsLate, JitterMS: q.JitterMS}
	return e
}
