package voice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
)

const (
	defaultEndpointing   = 600 * time.Millisecond
	defaultMinInterrupt  = 250 * time.Millisecond
	defaultIdleTimeout   = 30 * time.Second
	defaultIdleReminder  = "Are you still there?"
	idleGoodbye          = "I haven't heard from you, so I'll end the call now. Goodbye."
	maxDurationGoodbye   = "We've reached the time limit for this call. Goodbye."
	notUnderstood        = "Sorry, I didn't catch that."
	goodbyeTimeout       = 15 * time.Second
	tailDrain            = 200 * time.Millisecond // lets the last frames reach the far end before the BYE
	brainStopTimeout     = 5 * time.Second
	speculativeSilence   = 300 * time.Millisecond
	digitsExtra          = 700 * time.Millisecond
	backchannelMaxSpeech = 1200 * time.Millisecond
)

// conversation is one call's conversation: it implements agent.Conversation for the
// brain, over the ear (the caller's audio) and the line's stream (ours).
//
// Run's goroutine owns the call's life: it waits for the brain, the caller's hang-up, the
// context and the duration limit, and tears down. The brain's goroutine does the turns:
// every Conversation method runs there, speaking into the stream and waiting on the ear.
type conversation struct {
	line   Line
	stream media.Stream
	cfg    Config
	log    *slog.Logger
	rate   int
	ear    *ear
	// live is the transcript of a streaming transcriber; nil when the agent's is not one.
	live *liveText
	// earlyStart is how long a live interim transcript must stand, the caller paused, for
	// the brain to start on it (turn.early_start_ms); 0: never.
	earlyStart time.Duration

	endpointing, minInterrupt, idle time.Duration
	// specSilence is the pause at which the utterance so far is transcribed speculatively.
	specSilence time.Duration
	reminder    string

	ctx         context.Context
	brainCtx    context.Context
	cancelBrain context.CancelFunc

	// kick wakes the brain's goroutine after every frame heard and every key pressed.
	kick chan struct{}
	// keyed has a token once a key was pressed, for a speech-to-speech call, whose loop
	// does not wake on every frame.
	keyed chan struct{}
	// gone is closed when the stream ended (the caller hung up, or we did); ended when the
	// conversation is over for the brain; over when Run tears down.
	gone, ended, over           chan struct{}
	goneOnce, endOnce, overOnce sync.Once

	playing atomic.Bool
	// speechStops makes caller speech that lasted the minimum interruption stop playback at
	// once, with no transcript to judge it by (a speech-to-speech model's call, where no STT
	// runs); interrupt stops it at the next frame (the model heard the caller first).
	speechStops bool
	interrupt   atomic.Bool
	// lastWrite is when our last frame was written (UnixNano), for the hang-up's tail.
	lastWrite atomic.Int64
	startAt   time.Time
	wg        sync.WaitGroup

	mu         sync.Mutex
	goneReason call.Reason
	reason     call.Reason // ours: the brain's Hangup, idle-timeout, max-duration
	keys       []keyPress
	transcript []Turn
	report     Report
	spoke      bool // something was said already: the next Say is not the first message
	pending    *pendingAnswer
	// spec is the caller's turn the brain was given before it was over; nil when none.
	spec *speculation
	// turnSpan is the traced span of the caller's turn being answered (trace.go); nil when
	// the call is not traced or no turn is.
	turnSpan trace.Span
	// out is the frame written to the stream.
	out media.Frame
}

type keyPress struct {
	digit rune
	at    time.Time
}

// pendingAnswer carries the latency of a caller's turn to the agent's answer.
type pendingAnswer struct {
	lastVoiced    time.Time
	listenDone    time.Time
	endOfSpeechMS float64
	sttMS         float64
	// sttDone is when the transcription that made the turn finished.
	sttDone     time.Time
	knowledgeMS float64
}

func newConversation(ctx context.Context, line Line, cfg Config) *conversation {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stream := line.Stream()
	c := &conversation{
		line:         line,
		stream:       stream,
		cfg:          cfg,
		log:          log,
		rate:         stream.SampleRate(),
		endpointing:  ms(cfg.Turn.EndpointingMS, defaultEndpointing),
		minInterrupt: ms(cfg.Turn.MinInterruptionMS, defaultMinInterrupt),
		idle:         time.Duration(cfg.Limits.IdleTimeoutS) * time.Second,
		reminder:     cfg.IdleReminder,
		ctx:          ctx,
		kick:         make(chan struct{}, 1),
		keyed:        make(chan struct{}, 1),
		gone:         make(chan struct{}),
		ended:        make(chan struct{}),
		over:         make(chan struct{}),
		startAt:      time.Now(),
	}
	if cfg.Turn.MinInterruptionMS == 0 && cfg.Turn.EndpointingMS == 0 && !cfg.Turn.Interruptions {
		// A zero TurnSettings is "the defaults", and barge-in is on by default.
		c.cfg.Turn.Interruptions = true
	}
	if c.idle <= 0 {
		c.idle = defaultIdleTimeout
	}
	c.specSilence = min(speculativeSilence, c.endpointing)
	c.earlyStart = time.Duration(max(cfg.Turn.EarlyStartMS, 0)) * time.Millisecond
	if c.reminder == "" {
		c.reminder = defaultIdleReminder
	}
	c.out = media.Frame{Rate: c.rate, Samples: make([]int16, media.SamplesPerFrame(c.rate))}
	c.brainCtx, c.cancelBrain = context.WithCancel(ctx)
	return c
}

func ms(v int, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v) * time.Millisecond
}

func (c *conversation) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run is Run: the owner's loop and the teardown.
//
//nolint:contextcheck // the conversation carries the context Run was given
func (c *conversation) run(brain agent.Brain) Result {
	e, err := newEar(c.stream, c.playing.Load, c.wake)
	if err != nil {
		c.log.Error("conversation cannot hear the stream", "error", err)
		c.setReason(call.ReasonAgentError)
		c.line.Hangup(string(call.ReasonAgentError))
		return c.result()
	}
	e.minSpan = int(c.minInterrupt / media.FrameDuration)
	c.ear = e
	if c.live = c.openLive(c.ctx); c.live != nil {
		e.stt = c.live.stream
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.live.pump(c.wake); err != nil {
				c.log.Warn("the live transcriber failed", "error", err)
				c.publish(EventError, ErrorEvent{Stage: "stt", Error: err.Error()})
			}
		}()
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := e.run(); err != nil {
			c.log.Warn("reading the caller's audio failed", "error", err)
		}
		c.markGone("")
	}()
	go func() {
		defer c.wg.Done()
		c.pumpEvents()
	}()

	brainDone := make(chan error, 1)
	go func() { brainDone <- c.runBrain(brain) }()

	var limit <-chan time.Time
	if s := c.cfg.Limits.MaxDurationS; s > 0 {
		t := time.NewTimer(time.Duration(s) * time.Second)
		defer t.Stop()
		limit = t.C
	}

	var brainErr error
	brainReturned := false
	select {
	case brainErr = <-brainDone:
		brainReturned = true
	case <-c.gone:
	case <-c.ctx.Done():
		c.setReason(call.ReasonShutdown)
	case <-limit:
		c.setReason(call.ReasonMaxDuration)
	}
	c.end()
	c.cancelBrain()
	if !brainReturned {
		select {
		case brainErr = <-brainDone:
		case <-time.After(brainStopTimeout):
			c.log.Warn("brain still running after the call ended")
			brainErr = <-brainDone
		}
	}
	if brainErr != nil && !errors.Is(brainErr, agent.ErrHangup) && !errors.Is(brainErr, context.Canceled) {
		c.log.Warn("brain failed", "error", brainErr)
		c.publish(EventError, ErrorEvent{Stage: "brain", Error: brainErr.Error()})
		c.setReason(call.ReasonAgentError)
	}

	reason := c.finalReason()
	if !c.isGone() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), goodbyeTimeout)
		if reason == call.ReasonMaxDuration {
			_, _ = c.say(ctx, maxDurationGoodbye, sayOptions{ignoreEnd: true, noBargeIn: true, internal: true})
		}
		c.drainTail(ctx)
		cancel()
		c.line.Hangup(string(reason))
	}
	_ = c.stream.Close()
	if c.live != nil {
		_ = c.live.stream.Close()
		c.mu.Lock()
		c.report.STTSeconds += c.live.stream.Seconds()
		c.mu.Unlock()
	}
	c.endTurn()
	c.overOnce.Do(func() { close(c.over) })
	c.wg.Wait()
	return c.result()
}

func (c *conversation) runBrain(brain agent.Brain) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("voice: brain panicked: %v", r)
		}
	}()
	if ab, ok := brain.(audioBrain); ok {
		return ab.runAudio(c.brainCtx, c)
	}
	return brain.Run(c.brainCtx, c)
}

// audioBrain is a brain that hears and speaks the call's audio itself (a speech-to-speech
// model) over the conversation's ear and player, rather than through text.
type audioBrain interface {
	runAudio(ctx context.Context, c *conversation) error
}

// pumpEvents turns the stream's events into keys and the end of the call.
func (c *conversation) pumpEvents() {
	for ev := range c.stream.Events() {
		switch ev.Kind {
		case media.EventDTMF:
			c.mu.Lock()
			c.keys = append(c.keys, keyPress{digit: ev.Digit, at: time.Now()})
			c.mu.Unlock()
			select {
			case c.keyed <- struct{}{}:
			default:
			}
			c.wake()
		case media.EventHangup:
			c.markGone(ev.Reason)
		}
	}
	c.markGone("")
}

func (c *conversation) markGone(reason string) {
	c.mu.Lock()
	if c.goneReason == "" && reason != "" {
		c.goneReason = call.Reason(reason)
	}
	c.mu.Unlock()
	c.goneOnce.Do(func() { close(c.gone) })
	c.wake()
}

func (c *conversation) isGone() bool {
	select {
	case <-c.gone:
		return true
	default:
		return false
	}
}

// end makes every Conversation method return ErrHangup from now on.
func (c *conversation) end() {
	c.endOnce.Do(func() { close(c.ended) })
	c.wake()
}

func (c *conversation) setReason(r call.Reason) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = r
	}
	c.mu.Unlock()
}

func (c *conversation) finalReason() call.Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.reason != "":
		return c.reason
	case c.goneReason != "":
		return c.goneReason
	case c.isGone():
		return call.ReasonCallerHangup
	}
	return call.ReasonAgentHangup
}

// check returns why a method must not go on: ErrHangup once the call is over for the
// brain, ctx's error when ctx ended.
func (c *conversation) check(ctx context.Context) error {
	select {
	case <-c.gone:
		return agent.ErrHangup
	case <-c.ended:
		return agent.ErrHangup
	default:
	}
	return ctx.Err()
}

// waitKick waits for the next frame or key, at most d; it returns check's error.
func (c *conversation) waitKick(ctx context.Context, d time.Duration, ignoreEnd bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	ended := c.ended
	if ignoreEnd {
		ended = nil
	}
	select {
	case <-c.kick:
	case <-t.C:
	case <-c.gone:
		return agent.ErrHangup
	case <-ended:
		return agent.ErrHangup
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-stop:
	}
}

func (c *conversation) publish(typ string, data any) {
	if typ == EventError {
		// The voice loop's own errors are ErrorEvents; the brains' are maps with an
		// "error" (and a "stage" when it is not the brain's model).
		switch e := data.(type) {
		case ErrorEvent:
			c.noteError(e.Stage, e.Error)
		case map[string]any:
			msg, _ := e["error"].(string)
			stage, _ := e["stage"].(string)
			if stage == "" {
				stage = "brain"
			}
			c.noteError(stage, msg)
		}
	}
	c.line.Publish(typ, data)
}

// noteError keeps a failure of the call for its report (and the analytics error log).
func (c *conversation) noteError(stage, msg string) {
	c.mu.Lock()
	if len(c.report.Errors) < maxReportErrors {
		c.report.Errors = append(c.report.Errors, ReportError{Stage: stage, Message: msg, At: time.Now().UTC()})
	}
	c.mu.Unlock()
}

func (c *conversation) addTurn(t Turn) {
	c.mu.Lock()
	c.transcript = append(c.transcript, t)
	c.mu.Unlock()
}

// Hangup implements agent.Conversation.
func (c *conversation) Hangup(reason string) {
	if reason == "" {
		reason = string(call.ReasonAgentHangup)
	}
	c.setReason(call.Reason(reason))
	c.end()
	if !c.isGone() {
		c.drainTail(context.Background())
		c.line.Hangup(string(c.finalReason()))
	}
}

// drainTail waits until what we last wrote has had time to reach the far end: a BYE
// right after it would cut the end of a goodbye.
func (c *conversation) drainTail(ctx context.Context) {
	last := c.lastWrite.Load()
	if last == 0 {
		return
	}
	if d := tailDrain - time.Since(time.Unix(0, last)); d > 0 {
		sleep(ctx, c.gone, d)
	}
}

// Transfer implements agent.Conversation.
func (c *conversation) Transfer(ctx context.Context, to string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	if err := c.line.Transfer(ctx, to); err != nil {
		return err
	}
	c.setReason(call.ReasonTransferred)
	return nil
}

// SendDTMF implements agent.Conversation.
func (c *conversation) SendDTMF(digits string) error {
	if err := c.check(context.Background()); err != nil {
		return err
	}
	return c.line.SendDTMF(digits)
}

// ToolCall implements agent.Conversation.
func (c *conversation) ToolCall(call agent.ToolRecord) {
	now := time.Now()
	rec := call
	c.addTurn(Turn{Role: "tool", Text: call.Name, Start: now.Add(-call.Duration), End: now, Tool: &rec})
	c.mu.Lock()
	c.report.ToolCalls++
	if call.Error != "" {
		c.report.ToolFailures++
	}
	c.mu.Unlock()
	if call.Error != "" {
		c.noteError("tool", call.Name+": "+call.Error)
	}
	c.publish(EventToolCall, call)
}

// Retrieved implements agent.KnowledgeObserver: the search is in the transcript, and its
// time in the latency of the answer the caller is waiting for.
func (c *conversation) Retrieved(r agent.Retrieval) {
	now := time.Now()
	rec := r
	c.mu.Lock()
	if c.pending != nil {
		c.pending.knowledgeMS += r.DurationMS
	}
	c.transcript = append(c.transcript, Turn{Role: "knowledge", Text: r.Query, Start: now.Add(-r.Duration), End: now, Knowledge: &rec})
	c.mu.Unlock()
}

var _ agent.KnowledgeObserver = (*conversation)(nil)

// Usage implements agent.Conversation.
func (c *conversation) Usage(u llm.Usage) {
	c.mu.Lock()
	c.report.Usage.InputTokens += u.InputTokens
	c.report.Usage.OutputTokens += u.OutputTokens
	c.mu.Unlock()
}

// Event implements agent.Conversation.
func (c *conversation) Event(typ string, data any) { c.publish(typ, data) }

var _ agent.Conversation = (*conversation)(nil)
