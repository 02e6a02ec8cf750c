package session

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
)

// DefaultFlowIdle is how long a workflow's run waits for a session's next message before it
// is let go (the session then starts its workflow again at its next message).
const DefaultFlowIdle = 15 * time.Minute

// flow is a workflow agent's run in one session: the workflow brain runs a whole
// conversation, as on a call, and keeps its place in the graph between messages, so it runs
// on from one message to the next, on the node that answers the session. Each message is an
// input for the graph; the answer is what the graph says until it waits for the next input
// (or ends, which closes the session). Its place is kept in memory: after a restart, or
// when it waited longer than DefaultFlowIdle, the session's next message starts the workflow
// from its beginning.
type flow struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the brain returned
	// ready is closed once the first message's answer is there to take what the graph says:
	// a graph that spoke before it (its greeting) would speak into nothing.
	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex
	cur     *answer       // the answer being made; nil between messages
	input   *string       // the message waiting for Listen
	waiting chan struct{} // closed when the brain waits for input with none queued
	changed chan struct{} // closed and replaced when input arrives
	ended   bool
}

//nolint:contextcheck // a workflow runs across the session's messages, each request only feeds it
func newFlow(brain agent.Brain, idle time.Duration, onEnd func()) *flow {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flow{cancel: cancel, done: make(chan struct{}), ready: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer onEnd()
		select {
		case <-f.ready:
		case <-ctx.Done():
			return
		}
		_ = brain.Run(ctx, &flowConversation{f: f, ctx: ctx, idle: idle})
	}()
	return f
}

// answer gives the flow a message and lets a write what the graph says until it waits for
// the next one; ended says the graph ended.
func (f *flow) answer(ctx context.Context, a *answer, text string) (ended bool, err error) {
	f.mu.Lock()
	f.cur, f.input = a, &text
	f.waiting = make(chan struct{})
	waiting := f.waiting
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.readyOnce.Do(func() { close(f.ready) })
	defer func() {
		f.mu.Lock()
		f.cur = nil
		f.mu.Unlock()
	}()
	select {
	case <-waiting:
		return false, nil
	case <-f.done:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// stop ends the flow's run and waits for it.
func (f *flow) stop() {
	f.cancel()
	<-f.done
}

// current is the answer the graph's words go to (nil: dropped, none is being made).
func (f *flow) current() *answer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// flowConversation is the Conversation a workflow brain talks through in a session.
type flowConversation struct {
	f    *flow
	ctx  context.Context
	idle time.Duration
}

var (
	_ agent.Conversation      = (*flowConversation)(nil)
	_ agent.TurnObserver      = (*flowConversation)(nil)
	_ agent.KnowledgeObserver = (*flowConversation)(nil)
)

// The TurnObserver side: a workflow's llm nodes stream their answers into the message's.

func (c *flowConversation) StepStart() {
	if a := c.f.current(); a != nil {
		a.StepStart()
	}
}

func (c *flowConversation) TextDelta(text string) {
	if a := c.f.current(); a != nil {
		a.TextDelta(text)
	}
}

func (c *flowConversation) ToolInputStart(id, name string) {
	if a := c.f.current(); a != nil {
		a.ToolInputStart(id, name)
	}
}

func (c *flowConversation) ToolInputDelta(id, delta string) {
	if a := c.f.current(); a != nil {
		a.ToolInputDelta(id, delta)
	}
}

func (c *flowConversation) ToolInputAvailable(call llm.ToolCall) {
	if a := c.f.current(); a != nil {
		a.ToolInputAvailable(call)
	}
}

func (c *flowConversation) StepFinish(reason llm.StopReason, err error) {
	if a := c.f.current(); a != nil {
		a.StepFinish(reason, err)
	}
}

func (c *flowConversation) Say(ctx context.Context, text string) (agent.Spoken, error) {
	if a := c.f.current(); a != nil {
		return a.Say(ctx, text)
	}
	return agent.Spoken{Text: text}, ctx.Err()
}

// Speak reads what a workflow's llm node streams; the text reached the answer through
// TextDelta as it was made.
func (c *flowConversation) Speak(ctx context.Context, text <-chan string) (agent.Spoken, error) {
	var b strings.Builder
	for {
		select {
		case d, ok := <-text:
			if !ok {
				return agent.Spoken{Text: b.String()}, nil
			}
			b.WriteString(d)
		case <-ctx.Done():
			go func() {
				for range text {
				}
			}()
			return agent.Spoken{Text: b.String()}, ctx.Err()
		}
	}
}

// Listen takes the session's message: keys (a message of digits, * and #) where the graph
// waits for keys, words otherwise. A text session has no silence: a wait's timeout is not
// kept, and the graph waits for the next message (up to the flow's idle limit).
func (c *flowConversation) Listen(ctx context.Context, opts agent.ListenOptions) (agent.Input, error) {
	f := c.f
	idle := time.NewTimer(c.idle)
	defer idle.Stop()
	for {
		f.mu.Lock()
		if f.input != nil {
			text := strings.TrimSpace(*f.input)
			f.input = nil
			f.mu.Unlock()
			speech, dtmf := opts.Speech, opts.DTMF
			if !speech && !dtmf {
				speech, dtmf = true, true
			}
			now := time.Now()
			if dtmf && text != "" && strings.Trim(text, "0123456789*#") == "" {
				return agent.Input{Kind: agent.InputDTMF, Digits: text, Start: now, End: now}, nil
			}
			if speech {
				return agent.Input{Kind: agent.InputSpeech, Text: text, Start: now, End: now}, nil
			}
			// Words where only keys are taken: the graph is told nothing came.
			return agent.Input{Kind: agent.InputTimeout, Start: now, End: now}, nil
		}
		if f.waiting != nil {
			close(f.waiting) // this message is answered
			f.waiting = nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-idle.C:
			return agent.Input{}, agent.ErrHangup
		case <-ctx.Done():
			return agent.Input{}, ctx.Err()
		}
	}
}

func (c *flowConversation) Record(ctx context.Context, _ agent.RecordOptions) (agent.Recording, error) {
	return agent.Recording{}, ctx.Err()
}

func (c *flowConversation) Hangup(reason string) {
	if a := c.f.current(); a != nil {
		a.Hangup(reason)
	}
	c.f.mu.Lock()
	c.f.ended = true
	c.f.mu.Unlock()
}

func (c *flowConversation) Transfer(context.Context, string) error { return errNoTransfer }
func (c *flowConversation) SendDTMF(string) error                  { return errNoDTMF }

func (c *flowConversation) ToolCall(rec agent.ToolRecord) {
	if a := c.f.current(); a != nil {
		a.ToolCall(rec)
	}
}

func (c *flowConversation) Retrieved(r agent.Retrieval) {
	if a := c.f.current(); a != nil {
		a.Retrieved(r)
	}
}

func (c *flowConversation) Usage(u llm.Usage) {
	if a := c.f.current(); a != nil {
		a.Usage(u)
	}
}

func (c *flowConversation) Event(string, any) {}

// flowBrain answers a session's messages with its workflow's run.
type flowBrain struct {
	e         *Engine
	sessionID string
	tenantID  string
	make      func() agent.Brain
}

// Answer gives the session's flow (started when there is none) the last user message.
func (b *flowBrain) Answer(ctx context.Context, c agent.Conversation, history []llm.Message) ([]llm.Message, bool, error) {
	a, _ := c.(*answer)
	text := ""
	if n := len(history); n > 0 && history[n-1].Role == llm.RoleUser {
		for _, p := range history[n-1].Content {
			if p.Type == llm.PartText {
				text += p.Text
			}
		}
	}
	f := b.e.flowFor(b.sessionID, b.make)
	ended, err := f.answer(ctx, a, text)
	if ended {
		b.e.dropFlow(b.sessionID, f)
	}
	return nil, ended, err
}

// flowFor returns the session's flow, starting one when it has none.
func (e *Engine) flowFor(sessionID string, mk func() agent.Brain) *flow {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := e.flows[sessionID]; f != nil {
		select {
		case <-f.done:
		default:
			return f
		}
	}
	var f *flow
	f = newFlow(mk(), e.cfg.FlowIdle, func() { e.dropFlow(sessionID, f) })
	e.flows[sessionID] = f
	return f
}

// dropFlow forgets the session's flow if it is f.
func (e *Engine) dropFlow(sessionID string, f *flow) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flows[sessionID] == f {
		delete(e.flows, sessionID)
	}
}

// stopFlow ends the session's flow, if it has one.
func (e *Engine) stopFlow(sessionID string) {
	e.mu.Lock()
	f := e.flows[sessionID]
	delete(e.flows, sessionID)
	e.mu.Unlock()
	if f != nil {
		f.stop()
	}
}
