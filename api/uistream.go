package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// uiStream writes the AI SDK's UI message stream (protocol v1, as the `ai` package 6.0.200
// reads it): server-sent events whose data is one JSON chunk each, ended by data: [DONE].
// The chunk types below carry exactly the fields that package's uiMessageChunkSchema
// defines, and no others: its schemas are strict objects, and a client on that release
// rejects a chunk with one field too many (testdata/sdk/alumia.mjs reads every stream the
// tests make with that schema).
//
// A write that fails (the client went away) is remembered; the writes after it do nothing,
// so an answer being made goes on to be stored whatever became of its reader.
type uiStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	err error
	// finished and done are set once finish and [DONE] are out, so neither is sent twice.
	finished, done bool
	// batched leaves flushing to Flush: a writer of events that come in batches sends each
	// batch in one write, not one a chunk.
	batched bool
}

// uiStreamHeaders are the headers the AI SDK sends with a UI message stream
// (UI_MESSAGE_STREAM_HEADERS); useChat's transport reads the body whatever they are, other
// readers look for the protocol header.
var uiStreamHeaders = [][2]string{
	{"Content-Type", "text/event-stream"},
	{"Cache-Control", "no-cache"},
	{"X-Vercel-Ai-Ui-Message-Stream", "v1"},
	{"X-Accel-Buffering", "no"},
}

// newUIStream sets the stream's headers on w; the status is sent with the first chunk (or
// by open).
func newUIStream(w http.ResponseWriter) *uiStream {
	h := w.Header()
	for _, kv := range uiStreamHeaders {
		h.Set(kv[0], kv[1])
	}
	h.Del("Content-Length")
	return &uiStream{w: w, rc: http.NewResponseController(w)}
}

// The chunks, field for field as uiMessageChunkSchema has them. Optional fields are
// omitted when empty, as the AI SDK's own writer leaves them out.
type (
	uiChunkStart struct {
		Type            string `json:"type"`
		MessageID       string `json:"messageId,omitempty"`
		MessageMetadata any    `json:"messageMetadata,omitempty"`
	}
	uiChunkType struct {
		Type string `json:"type"`
	}
	uiChunkText struct {
		Type  string  `json:"type"`
		ID    string  `json:"id"`
		Delta *string `json:"delta,omitempty"`
	}
	uiChunkToolInputStart struct {
		Type       string `json:"type"`
		ToolCallID string `json:"toolCallId"`
		ToolName   string `json:"toolName"`
	}
	uiChunkToolInputDelta struct {
		Type           string `json:"type"`
		ToolCallID     string `json:"toolCallId"`
		InputTextDelta string `json:"inputTextDelta"`
	}
	uiChunkToolInputAvailable struct {
		Type       string          `json:"type"`
		ToolCallID string          `json:"toolCallId"`
		ToolName   string          `json:"toolName"`
		Input      json.RawMessage `json:"input"`
	}
	uiChunkToolOutputAvailable struct {
		Type       string          `json:"type"`
		ToolCallID string          `json:"toolCallId"`
		Output     json.RawMessage `json:"output"`
	}
	uiChunkToolOutputError struct {
		Type       string `json:"type"`
		ToolCallID string `json:"toolCallId"`
		ErrorText  string `json:"errorText"`
	}
	uiChunkFinish struct {
		Type            string `json:"type"`
		FinishReason    string `json:"finishReason,omitempty"`
		MessageMetadata any    `json:"messageMetadata,omitempty"`
	}
	uiChunkError struct {
		Type      string `json:"type"`
		ErrorText string `json:"errorText"`
	}
)

// uiFinishReason is the AI SDK's name of why an answer ended.
func uiFinishReason(r llm.StopReason) string {
	switch r {
	case llm.StopLength:
		return "length"
	case llm.StopToolCalls:
		return "tool-calls"
	case llm.StopContentFilter:
		return "content-filter"
	case llm.StopEnd, "":
		return "stop"
	}
	return "other"
}

// uiJSON is a tool's input or output as the chunk carries it: JSON as it is when it is
// JSON, otherwise the text as a JSON string (a tool may answer in plain words).
func uiJSON(s string) json.RawMessage {
	if s != "" && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// open writes the status and headers; unbatched, they are sent at once, before the first
// chunk is ready, so that a client sees that its request was taken (batched, they go with
// the first batch).
func (u *uiStream) open() {
	u.w.WriteHeader(http.StatusOK)
	if !u.batched {
		u.flush()
	}
}

// Flush sends what was written since the last flush (see batched).
func (u *uiStream) Flush() error {
	u.flush()
	return u.err
}

func (u *uiStream) flush() {
	if u.err != nil {
		return
	}
	if err := u.rc.Flush(); err != nil {
		u.err = err
	}
}

// chunk writes one event; write errors stop later writes (see uiStream).
func (u *uiStream) chunk(v any) {
	if u.err != nil {
		return
	}
	u.buf.Reset()
	u.buf.WriteString("data: ")
	enc := json.NewEncoder(&u.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		u.err = err
		return
	}
	// Encode ended the JSON with a newline; the blank line ends the event.
	u.buf.WriteByte('\n')
	if _, err := u.w.Write(u.buf.Bytes()); err != nil {
		u.err = err
		return
	}
	if !u.batched {
		u.flush()
	}
}

// Start opens the assistant message. metadata, when not nil, becomes the message's
// metadata (the session it belongs to).
func (u *uiStream) Start(messageID string, metadata any) {
	u.chunk(uiChunkStart{Type: "start", MessageID: messageID, MessageMetadata: metadata})
}

// StartStep and FinishStep bracket one request to the model; a tool round makes another.
func (u *uiStream) StartStep()  { u.chunk(uiChunkType{Type: "start-step"}) }
func (u *uiStream) FinishStep() { u.chunk(uiChunkType{Type: "finish-step"}) }

func (u *uiStream) TextStart(id string) { u.chunk(uiChunkText{Type: "text-start", ID: id}) }
func (u *uiStream) TextDelta(id, delta string) {
	u.chunk(uiChunkText{Type: "text-delta", ID: id, Delta: &delta})
}
func (u *uiStream) TextEnd(id string) { u.chunk(uiChunkText{Type: "text-end", ID: id}) }

func (u *uiStream) ToolInputStart(callID, name string) {
	u.chunk(uiChunkToolInputStart{Type: "tool-input-start", ToolCallID: callID, ToolName: name})
}
func (u *uiStream) ToolInputDelta(callID, delta string) {
	u.chunk(uiChunkToolInputDelta{Type: "tool-input-delta", ToolCallID: callID, InputTextDelta: delta})
}

// ToolInputAvailable gives the tool call's whole input (the model's arguments).
func (u *uiStream) ToolInputAvailable(callID, name, args string) {
	if args == "" {
		args = "{}"
	}
	u.chunk(uiChunkToolInputAvailable{Type: "tool-input-available", ToolCallID: callID, ToolName: name, Input: uiJSON(args)})
}

// ToolOutputAvailable gives what the tool answered, run by the server.
func (u *uiStream) ToolOutputAvailable(callID, output string) {
	u.chunk(uiChunkToolOutputAvailable{Type: "tool-output-available", ToolCallID: callID, Output: uiJSON(output)})
}

// ToolOutputError reports a tool that failed; the model is told, and goes on.
func (u *uiStream) ToolOutputError(callID, errText string) {
	u.chunk(uiChunkToolOutputError{Type: "tool-output-error", ToolCallID: callID, ErrorText: errText})
}

// Finish ends the message with why it ended and its final metadata (usage, cost).
func (u *uiStream) Finish(reason string, metadata any) {
	if u.finished {
		return
	}
	u.finished = true
	u.chunk(uiChunkFinish{Type: "finish", FinishReason: reason, MessageMetadata: metadata})
}

// Error reports a failure in the stream: useChat shows errorText and sets its error state.
func (u *uiStream) Error(text string) { u.chunk(uiChunkError{Type: "error", ErrorText: text}) }

// Done ends the stream.
func (u *uiStream) Done() {
	if u.done || u.err != nil {
		return
	}
	u.done = true
	if _, err := u.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		u.err = err
		return
	}
	u.flush()
}

// Err is the write error that stopped the stream, if any: the client is gone.
func (u *uiStream) Err() error { return u.err }

// uiUsage is the usage of an answer in the message metadata, named as the AI SDK names a
// LanguageModelUsage.
type uiUsage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
	TotalTokens  int `json:"totalTokens"`
}

func newUIUsage(u llm.Usage) *uiUsage {
	return &uiUsage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, TotalTokens: u.InputTokens + u.OutputTokens}
}
