package session

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// answer is one answer being made: the Conversation the brain talks through (its text goes
// into the answer's parts and out as events), the events not yet delivered, and how to stop
// it. The brain's goroutine writes it; the goroutine of Send reads the events.
type answer struct {
	sessionID string
	tenantID  string
	messageID string
	cancel    context.CancelFunc
	done      chan struct{} // closed once the answer is stored
	// lease is the answer's lease on the session's row ("" where there are none); released
	// says the stored turn released it. Both are the answer's goroutine's.
	lease    string
	released bool
	// leaseHeld says the lease was claimed.
	leaseHeld atomic.Bool

	mu      sync.Mutex
	queue   []*Event
	wake    chan struct{} // closed and replaced when events are queued
	parts   []store.MessagePart
	usage   llm.Usage
	step    int
	textID  int
	inText  bool
	stop    llm.StopReason
	ended   bool // the agent ended the session
	stepErr error
	// knowledge is every search of the agent's knowledge made for this answer.
	knowledge []agent.Retrieval

	canceled atomic.Bool // Cancel stopped it
	// stored says the turn is written: from then on the answer cannot be canceled, and a
	// client that reads the answer and cancels is told nothing is being answered.
	stored atomic.Bool
	result Turn // set before done is closed
}

func newAnswer(tenantID, sessionID string, cancel context.CancelFunc) *answer {
	return &answer{tenantID: tenantID, sessionID: sessionID, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{})}
}

var (
	_ agent.Conversation      = (*answer)(nil)
	_ agent.TurnObserver      = (*answer)(nil)
	_ agent.KnowledgeObserver = (*answer)(nil)
)

// emitLocked queues an event for delivery; a.mu is held.
func (a *answer) emitLocked(ev *Event) {
	ev.SessionID, ev.MessageID = a.sessionID, a.messageID
	a.queue = append(a.queue, ev)
	close(a.wake)
	a.wake = make(chan struct{})
}

func (a *answer) emit(ev *Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.emitLocked(ev)
}

// peek returns how many events are queued, and a channel closed when more come.
func (a *answer) peek() (int, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue), a.wake
}

// take returns the events queued since the last take, and a channel closed when more come.
func (a *answer) take() ([]*Event, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queue
	a.queue = nil
	return q, a.wake
}

// textLocked adds text to the answer: to its last text part when the text runs on, else to a
// new one with its own start event.
func (a *answer) textLocked(text string) {
	if !a.inText {
		if n := len(a.parts); n > 0 && a.parts[n-1].Type == store.PartText {
			// Texts said one after another (a workflow's nodes) read as lines.
			text = "\n" + text
		}
		a.textID++
		a.inText = true
		a.emitLocked(&Event{Type: EventTextStart, PartID: a.textPartID()})
		a.parts = append(a.parts, store.MessagePart{Type: store.PartText})
	}
	a.parts[len(a.parts)-1].Text += text
	a.emitLocked(&Event{Type: EventTextDelta, PartID: a.textPartID(), Text: text})
}

func (a *answer) textPartID() string { return "text-" + strconv.Itoa(a.textID) }

// endTextLocked closes the run of text, if one is open.
func (a *answer) endTextLocked() {
	if a.inText {
		a.inText = false
		a.emitLocked(&Event{Type: EventTextEnd, PartID: a.textPartID()})
	}
}

// The TurnObserver side: the LLM brain's steps, text and tool calls as they are made.

func (a *answer) StepStart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.step++
	a.emitLocked(&Event{Type: EventStepStart, Step: a.step})
}

func (a *answer) TextDelta(text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.textLocked(text)
}

func (a *answer) ToolInputStart(id, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endTextLocked()
	a.emitLocked(&Event{Type: EventToolInputStart, ToolCallID: id, ToolName: name})
}

func (a *answer) ToolInputDelta(id, delta string) {
	a.emit(&Event{Type: EventToolInputDelta, ToolCallID: id, Arguments: delta})
}

func (a *answer) ToolInputAvailable(call llm.ToolCall) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endTextLocked()
	a.parts = append(a.parts, store.MessagePart{Type: store.PartToolCall, ToolCallID: call.ID, ToolName: call.Name, Arguments: call.Arguments})
	a.emitLocked(&Event{Type: EventToolInputAvailable, ToolCallID: call.ID, ToolName: call.Name,
		Arguments: call.Arguments, Input: parsedInput(call.Arguments)})
}

// parsedInput is a tool call's arguments as JSON: the object the model wrote, or an empty
// object when what it wrote is not JSON.
func parsedInput(args string) json.RawMessage {
	if json.Valid([]byte(args)) && len(args) > 0 {
		return json.RawMessage(args)
	}
	return json.RawMessage(`{}`)
}

func (a *answer) StepFinish(reason llm.StopReason, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endTextLocked()
	a.stop, a.stepErr = reason, err
	a.emitLocked(&Event{Type: EventStepFinish, Step: a.step, FinishReason: string(reason)})
}

// The Conversation side.

func (a *answer) Say(ctx context.Context, text string) (agent.Spoken, error) {
	if err := ctx.Err(); err != nil {
		return agent.Spoken{}, err
	}
	if text == "" {
		return agent.Spoken{}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.textLocked(text)
	a.endTextLocked()
	return agent.Spoken{Text: text}, nil
}

// Speak reads the text the LLM brain streams; the text itself reached the answer through
// TextDelta, in order with the tool calls.
func (a *answer) Speak(ctx context.Context, text <-chan string) (agent.Spoken, error) {
	var b []byte
	for {
		select {
		case d, ok := <-text:
			if !ok {
				return agent.Spoken{Text: string(b)}, nil
			}
			b = append(b, d...)
		case <-ctx.Done():
			go func() {
				for range text {
				}
			}()
			return agent.Spoken{Text: string(b)}, ctx.Err()
		}
	}
}

// Listen is not called by the LLM brain's Answer; a text session has no next input within
// an answer.
func (a *answer) Listen(ctx context.Context, _ agent.ListenOptions) (agent.Input, error) {
	return agent.Input{}, agent.ErrHangup
}

// Record has nothing to record in text.
func (a *answer) Record(ctx context.Context, _ agent.RecordOptions) (agent.Recording, error) {
	return agent.Recording{}, ctx.Err()
}

// Hangup is the agent ending the conversation: the session is closed once the answer is
// stored.
func (a *answer) Hangup(string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ended = true
}

// Transfer has nowhere to go in text: the model is told so.
func (a *answer) Transfer(ctx context.Context, to string) error {
	return errNoTransfer
}

// SendDTMF has no keypad in text.
func (a *answer) SendDTMF(string) error { return errNoDTMF }

func (a *answer) ToolCall(rec agent.ToolRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out, isErr := rec.Result, rec.Error != ""
	if isErr {
		out = rec.Error
	}
	a.parts = append(a.parts, store.MessagePart{Type: store.PartToolResult, ToolCallID: rec.ID, ToolName: rec.Name, Result: out, IsError: isErr})
	a.emitLocked(&Event{Type: EventToolOutput, ToolCallID: rec.ID, ToolName: rec.Name, Output: out, IsError: isErr})
}

func (a *answer) Usage(u llm.Usage) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.usage.InputTokens += u.InputTokens
	a.usage.OutputTokens += u.OutputTokens
}

// Retrieved keeps a search of the agent's knowledge with the answer (its metadata).
func (a *answer) Retrieved(r agent.Retrieval) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.knowledge = append(a.knowledge, r)
}

// knowledgeMeta is the answer's searches as its stored metadata: what each found and how
// long it took, and their time in all (the part of the answer's latency they were), or nil
// when there were none.
func (a *answer) knowledgeMeta() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.knowledge) == 0 {
		return nil
	}
	total := 0.0
	for _, r := range a.knowledge {
		total += r.DurationMS
	}
	return map[string]any{"knowledge": append([]agent.Retrieval(nil), a.knowledge...), "knowledge_ms": total}
}

// Event is what the brain publishes on a call's topic; a session's events are its messages.
func (a *answer) Event(string, any) {}

// snapshot is the answer's parts and usage so far.
func (a *answer) snapshot() ([]store.MessagePart, llm.Usage, llm.StopReason, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endTextLocked()
	return append([]store.MessagePart(nil), a.parts...), a.usage, a.stop, a.ended
}
