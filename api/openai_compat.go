package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// OpenAI's chat completions wire format, as much of it as a chat client sends. Fields this
// server does not act on (seed, logprobs, penalties, response_format, …) are accepted and
// ignored, as OpenAI-compatible servers do, so that clients that send them keep working.
type oaiRequest struct {
	Model               string          `json:"model"`
	Messages            []oaiMessage    `json:"messages"`
	Tools               []oaiTool       `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options,omitempty"`
	N    *int   `json:"n,omitempty"`
	User string `json:"user,omitempty"`
}

type oaiMessage struct {
	Role       string        `json:"role"`
	Content    bodyJSON      `json:"content,omitempty"`
	Name       string        `json:"name,omitempty"`
	ToolCalls  []oaiToolCall `json:"tool_calls,omitempty"`
	ToolCallID string        `json:"tool_call_id,omitempty"`
}

type oaiPart struct {
	Type     string     `json:"type"`
	Text     bodyString `json:"text,omitempty"`
	ImageURL *struct {
		URL    bodyString `json:"url"`
		Detail string     `json:"detail,omitempty"`
	} `json:"image_url,omitempty"`
}

type oaiTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

type oaiToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// decodeOpenAI reads a chat completions request into the neutral form, naming the field of
// anything it cannot take.
func decodeOpenAI(body []byte) (*llm.Request, *oaiRequest, error) {
	var in oaiRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, badJSON(err)
	}
	bad := func(field, format string, args ...any) error {
		return errBadRequest(field, fmt.Sprintf(format, args...))
	}
	if in.Model == "" {
		return nil, nil, bad("model", "is required")
	}
	if len(in.Messages) == 0 {
		return nil, nil, bad("messages", "must hold at least one message")
	}
	if in.N != nil && *in.N != 1 {
		return nil, nil, bad("n", "only 1 choice is supported")
	}
	req := &llm.Request{Model: in.Model, Temperature: in.Temperature, TopP: in.TopP, User: in.User, ParallelToolCalls: in.ParallelToolCalls}
	switch {
	case in.MaxCompletionTokens != nil:
		req.MaxTokens = *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		req.MaxTokens = *in.MaxTokens
	}
	if req.MaxTokens < 0 {
		return nil, nil, bad("max_tokens", "must not be negative")
	}
	if len(in.Stop) > 0 && string(in.Stop) != "null" {
		var one string
		if err := json.Unmarshal(in.Stop, &one); err == nil {
			req.Stop = []string{one}
		} else if err := json.Unmarshal(in.Stop, &req.Stop); err != nil {
			return nil, nil, bad("stop", "must be a string or an array of strings")
		}
	}
	var system []string
	for i, m := range in.Messages {
		field := fmt.Sprintf("messages[%d]", i)
		parts, err := oaiContent(m.Content, field+".content")
		if err != nil {
			return nil, nil, err
		}
		switch m.Role {
		case "system", "developer":
			system = append(system, llm.Message{Content: parts}.Text())
		case "user":
			req.Messages = append(req.Messages, llm.Message{Role: llm.RoleUser, Content: parts})
		case "assistant":
			msg := llm.Message{Role: llm.RoleAssistant, Content: parts}
			for j, tc := range m.ToolCalls {
				if tc.ID == "" || tc.Function.Name == "" {
					return nil, nil, bad(fmt.Sprintf("%s.tool_calls[%d]", field, j), "needs an id and a function name")
				}
				msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
			req.Messages = append(req.Messages, msg)
		case "tool":
			if m.ToolCallID == "" {
				return nil, nil, bad(field+".tool_call_id", "is required for a tool message")
			}
			req.Messages = append(req.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: m.ToolCallID, Content: parts})
		default:
			return nil, nil, bad(field+".role", "must be system, developer, user, assistant or tool, not %q", m.Role)
		}
	}
	req.System = strings.Join(system, "\n\n")
	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "function" {
			return nil, nil, bad(fmt.Sprintf("tools[%d].type", i), "must be function")
		}
		if t.Function.Name == "" {
			return nil, nil, bad(fmt.Sprintf("tools[%d].function.name", i), "is required")
		}
		req.Tools = append(req.Tools, llm.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	if len(in.ToolChoice) > 0 && string(in.ToolChoice) != "null" {
		var mode string
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(in.ToolChoice, &mode) == nil:
			switch mode {
			case "auto", "none", "required":
				req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceMode(mode)}
			default:
				return nil, nil, bad("tool_choice", "must be auto, none, required or a named function")
			}
		case json.Unmarshal(in.ToolChoice, &named) == nil && named.Function.Name != "":
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceTool, Name: named.Function.Name}
		default:
			return nil, nil, bad("tool_choice", "must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}")
		}
	}
	return req, &in, nil
}

// oaiContent reads a message's content: a string, an array of text and image_url parts,
// or null (an assistant message that only calls tools).
func oaiContent(raw bodyJSON, field string) ([]llm.Part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var text bodyString
	if err := json.Unmarshal(raw, &text); err == nil {
		return []llm.Part{llm.TextPart(string(text))}, nil
	}
	var parts []oaiPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, errBadRequest(field, "must be a string or an array of content parts")
	}
	out := make([]llm.Part, 0, len(parts))
	for i, p := range parts {
		switch p.Type {
		case "text":
			out = append(out, llm.TextPart(string(p.Text)))
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, errBadRequest(fmt.Sprintf("%s[%d].image_url.url", field, i), "is required")
			}
			part := llm.ImagePart(string(p.ImageURL.URL))
			part.Detail = p.ImageURL.Detail
			out = append(out, part)
		default:
			return nil, errBadRequest(fmt.Sprintf("%s[%d].type", field, i), "must be text or image_url")
		}
	}
	return out, nil
}

// badJSON is a body the gateway cannot decode: a 400, as the compatible platforms answer.
func badJSON(err error) *Error {
	e := *jsonError(err)
	e.Status = http.StatusBadRequest
	return &e
}

func errBadRequest(field, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: codeValidation, Message: field + " " + msg,
		Details: []store.FieldError{{Field: field, Message: msg}}}
}

// Answers in OpenAI's shapes.
type oaiCompletion struct {
	ID                string      `json:"id"`
	Object            string      `json:"object"`
	Created           int64       `json:"created"`
	Model             string      `json:"model"`
	Choices           []oaiChoice `json:"choices"`
	Usage             *oaiUsage   `json:"usage,omitempty"`
	SystemFingerprint *string     `json:"system_fingerprint"`
}

type oaiChoice struct {
	Index        int          `json:"index"`
	Message      *oaiOutMsg   `json:"message,omitempty"`
	Delta        *oaiOutDelta `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
	Logprobs     *struct{}    `json:"logprobs"`
}

type oaiOutMsg struct {
	Role      string        `json:"role"`
	Content   *string       `json:"content"`
	Refusal   *string       `json:"refusal"`
	ToolCalls []oaiToolCall `json:"tool_calls,omitempty"`
}

type oaiOutDelta struct {
	Role      string        `json:"role,omitempty"`
	Content   *string       `json:"content,omitempty"`
	ToolCalls []oaiToolCall `json:"tool_calls,omitempty"`
}

type oaiUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newCompletionID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// openAIDialect is the gateway's OpenAI surface, POST /v1/chat/completions.
var openAIDialect = gatewayDialect{
	surface: "openai",
	decode: func(_ *http.Request, body []byte) (*llm.Request, gatewayAsk, error) {
		req, in, err := decodeOpenAI(body)
		if err != nil {
			return nil, gatewayAsk{}, err
		}
		return req, gatewayAsk{model: in.Model, stream: in.Stream, includeUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage}, nil
	},
	whole: func(w http.ResponseWriter, model string, resp *llm.Response) {
		content := resp.Content
		msg := &oaiOutMsg{Role: "assistant", Content: &content}
		if content == "" && len(resp.ToolCalls) > 0 {
			msg.Content = nil
		}
		for _, tc := range resp.ToolCalls {
			out := oaiToolCall{ID: tc.ID, Type: "function"}
			out.Function.Name, out.Function.Arguments = tc.Name, tc.Arguments
			msg.ToolCalls = append(msg.ToolCalls, out)
		}
		finish := resp.StopReason.OpenAI()
		writeJSON(w, http.StatusOK, oaiCompletion{
			ID: newCompletionID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: model,
			Choices: []oaiChoice{{Index: 0, Message: msg, FinishReason: &finish}},
			Usage:   &oaiUsage{PromptTokens: resp.Usage.InputTokens, CompletionTokens: resp.Usage.OutputTokens, TotalTokens: resp.Usage.InputTokens + resp.Usage.OutputTokens},
		})
	},
	stream: func(s *Server, w http.ResponseWriter, r *http.Request, c *call, st llm.Stream, ask gatewayAsk) llm.Usage {
		return s.streamOpenAI(w, r, c, st, ask.includeUsage)
	},
}

// streamOpenAI writes the neutral stream as chat.completion.chunk events: the role first,
// content and tool-call deltas (with their index), the finish reason, the usage chunk when
// asked, then [DONE]. Every chunk is flushed as it comes. An upstream failure mid-stream
// ends the stream with an error event in OpenAI's shape.
func (s *Server) streamOpenAI(w http.ResponseWriter, r *http.Request, c *call, st llm.Stream, includeUsage bool) llm.Usage {
	id, created := newCompletionID("chatcmpl-"), time.Now().Unix()
	out := startEventStream(w)
	send := func(v any) bool { return out.send("", v) }
	chunk := func(delta *oaiOutDelta, finish *string) oaiCompletion {
		return oaiCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: c.asked,
			Choices: []oaiChoice{{Index: 0, Delta: delta, FinishReason: finish}}}
	}
	var usage llm.Usage
	empty := ""
	if !send(chunk(&oaiOutDelta{Role: "assistant", Content: &empty}, nil)) {
		return usage
	}
	c.firstByte = time.Since(c.started)
	for {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if r.Context().Err() == nil {
				e := asError(upstreamError(err))
				send(map[string]any{"error": map[string]any{"message": e.Message, "type": "api_error", "param": nil, "code": nil}})
			}
			return usage
		}
		switch d.Kind {
		case llm.DeltaStart:
			usage.InputTokens = d.Usage.InputTokens
		case llm.DeltaText:
			text := d.Text
			if !send(chunk(&oaiOutDelta{Content: &text}, nil)) {
				return usage
			}
		case llm.DeltaToolCall:
			tc := oaiToolCall{Index: &d.Index, ID: d.ToolCall.ID, Type: "function"}
			tc.Function.Name = d.ToolCall.Name
			if !send(chunk(&oaiOutDelta{ToolCalls: []oaiToolCall{tc}}, nil)) {
				return usage
			}
		case llm.DeltaToolArgs:
			tc := oaiToolCall{Index: &d.Index}
			tc.Function.Arguments = d.Text
			if !send(chunk(&oaiOutDelta{ToolCalls: []oaiToolCall{tc}}, nil)) {
				return usage
			}
		case llm.DeltaDone:
			if d.Usage.InputTokens > 0 {
				usage.InputTokens = d.Usage.InputTokens
			}
			usage.OutputTokens = d.Usage.OutputTokens
			finish := d.StopReason.OpenAI()
			if !send(chunk(&oaiOutDelta{}, &finish)) {
				return usage
			}
		}
	}
	if includeUsage {
		send(oaiCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: c.asked, Choices: []oaiChoice{},
			Usage: &oaiUsage{PromptTokens: usage.InputTokens, CompletionTokens: usage.OutputTokens, TotalTokens: usage.InputTokens + usage.OutputTokens}})
	}
	out.raw("data: [DONE]\n\n")
	return usage
}

// eventStream writes a text/event-stream answer, flushing every event as it is written.
type eventStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

func startEventStream(w http.ResponseWriter) *eventStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// send writes one event of JSON data (with an "event:" line when event is set) and reports
// whether the client is still there.
func (e *eventStream) send(event string, v any) bool {
	e.buf.Reset()
	if event != "" {
		e.buf.WriteString("event: " + event + "\n")
	}
	e.buf.WriteString("data: ")
	enc := json.NewEncoder(&e.buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	e.buf.WriteByte('\n')
	return e.raw(e.buf.String())
}

func (e *eventStream) raw(s string) bool {
	if _, err := io.WriteString(e.w, s); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}
