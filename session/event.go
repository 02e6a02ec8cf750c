package session

import (
	"encoding/json"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// EventType says what an Event is. The set follows what the richest client protocol (the AI
// SDK's UI message stream) tells apart, so that every surface can render from it: OpenAI and
// Anthropic shapes take the subset they carry.
type EventType string

// The events of one answer, in the order they come: EventStart; then per step EventStepStart,
// its text (EventTextStart, EventTextDelta…, EventTextEnd) and tool calls
// (EventToolInputStart, EventToolInputDelta…, EventToolInputAvailable, EventToolOutput),
// EventStepFinish; then EventError when the answer failed, and EventFinish last, always.
const (
	// EventStart: the answer begins: User is the user message and MessageID the answer's ID
	// (both are stored together when the answer is done).
	EventStart EventType = "start"
	// EventStepStart and EventStepFinish bound one completion of the model.
	EventStepStart  EventType = "step-start"
	EventStepFinish EventType = "step-finish"
	// EventTextStart, EventTextDelta and EventTextEnd are one run of text (PartID names it).
	EventTextStart EventType = "text-start"
	EventTextDelta EventType = "text-delta"
	EventTextEnd   EventType = "text-end"
	// EventToolInputStart, EventToolInputDelta and EventToolInputAvailable are a tool call as
	// the model writes it: ToolCallID and ToolName, fragments of Arguments, then the whole
	// Arguments with Input, their parsed value.
	EventToolInputStart     EventType = "tool-input-start"
	EventToolInputDelta     EventType = "tool-input-delta"
	EventToolInputAvailable EventType = "tool-input-available"
	// EventToolOutput is what the tool answered (Output; IsError when it failed).
	EventToolOutput EventType = "tool-output"
	// EventError is the answer's failure (Error); EventFinish follows it.
	EventError EventType = "error"
	// EventFinish ends the answer: FinishReason, Usage, CostUSD, Model, and Answer, the
	// stored assistant message.
	EventFinish EventType = "finish"
)

// Finish reasons of an answer (Event.FinishReason, store.SessionMessage.FinishReason).
const (
	FinishStop     = "stop"   // the model answered
	FinishLength   = "length" // the model hit its token limit
	FinishFilter   = "content_filter"
	FinishEndCall  = "end_call" // the agent ended the session (end_call)
	FinishError    = "error"    // the model or the agent failed (Error says how)
	FinishCanceled = "canceled" // Cancel stopped it
)

// Event is one thing an answer made. Only the fields of its Type are set.
type Event struct {
	Type      EventType
	SessionID string
	// MessageID is the ID the answer is stored under.
	MessageID string
	// PartID names a run of text: "text-1", "text-2"… within the answer.
	PartID string
	// Text is the fragment of EventTextDelta.
	Text string
	// ToolCallID and ToolName name the tool call of the tool events; Arguments is the
	// fragment (EventToolInputDelta) or the whole (EventToolInputAvailable).
	ToolCallID string
	ToolName   string
	Arguments  string
	// Input is Arguments parsed (EventToolInputAvailable); an empty object when they are
	// not JSON.
	Input json.RawMessage
	// Output and IsError are the tool's answer (EventToolOutput).
	Output  string
	IsError bool
	// Step counts the steps from 1 (EventStepStart, EventStepFinish).
	Step         int
	FinishReason string
	Usage        llm.Usage
	CostUSD      float64
	Model        string
	// Error says what failed (EventError).
	Error string
	// User is the user message (EventStart); Answer the stored answer (EventFinish).
	User   *store.SessionMessage
	Answer *store.SessionMessage
}

// Sink receives an answer's events, one at a time, in order, from the goroutine that called
// Send (never after Send returned). An error stops the delivery: Send returns it, and the
// answer goes on and is stored.
type Sink interface {
	Event(ev *Event) error
}

// Flusher is a Sink that holds the events it is given until Flush: Stream calls Flush after
// each run of events that were ready together, so that a client gets them in one write.
type Flusher interface {
	Flush() error
}

// SinkFunc is a Sink of a function.
type SinkFunc func(ev *Event) error

// Event calls f.
func (f SinkFunc) Event(ev *Event) error { return f(ev) }
