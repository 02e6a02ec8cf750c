package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// Anthropic's Messages wire format.
type antRequest struct {
	Model         string         `json:"model"`
	MaxTokens     *int           `json:"max_tokens"`
	System        bodyJSON       `json:"system,omitempty"`
	Messages      []antMessage   `json:"messages"`
	Tools         []antTool      `json:"tools,omitempty"`
	ToolChoice    *antToolChoice `json:"tool_choice,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	StopSequences []string       `json:"stop_sequences,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	Metadata      *struct {
		UserID string `json:"user_id,omitempty"`
	} `json:"metadata,omitempty"`
}

type antMessage struct {
	Role    string   `json:"role"`
	Content bodyJSON `json:"content"`
}

type antBlock struct {
	Type string     `json:"type"`
	Text bodyString `json:"text,omitempty"`
	// image
	Source *struct {
		Type      string     `json:"type"`
		MediaType string     `json:"media_type,omitempty"`
		Data      bodyString `json:"data,omitempty"`
		URL       string     `json:"url,omitempty"`
	} `json:"source,omitempty"`
	// tool_use
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
	// tool_result
	ToolUseID string   `json:"tool_use_id,omitempty"`
	Content   bodyJSON `json:"content,omitempty"`
	IsError   bool     `json:"is_error,omitempty"`
}

type antTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type antToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// decodeAnthropic reads a Messages request into the neutral form. max_tokens is required
// when requireMaxTokens is set, as Anthropic requires it; left out, the provider's default
// applies (see maxTokensRequired).
func decodeAnthropic(body []byte, requireMaxTokens bool) (*llm.Request, *antRequest, error) {
	var in antRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, badJSON(err)
	}
	bad := func(field, format string, args ...any) error {
		return errBadRequest(field, fmt.Sprintf(format, args...))
	}
	switch {
	case in.Model == "":
		return nil, nil, bad("model", "is required")
	case in.MaxTokens == nil && requireMaxTokens:
		return nil, nil, bad("max_tokens", "is required")
	case in.MaxTokens != nil && *in.MaxTokens < 1:
		return nil, nil, bad("max_tokens", "must be at least 1")
	case len(in.Messages) == 0:
		return nil, nil, bad("messages", "must hold at least one message")
	}
	req := &llm.Request{Model: in.Model, Temperature: in.Temperature, TopP: in.TopP, Stop: in.StopSequences}
	if in.MaxTokens != nil {
		req.MaxTokens = *in.MaxTokens
	}
	if in.Metadata != nil {
		req.User = in.Metadata.UserID
	}
	if len(in.System) > 0 && string(in.System) != "null" {
		var text bodyString
		if err := json.Unmarshal(in.System, &text); err == nil {
			req.System = string(text)
		} else {
			var blocks []antBlock
			if err := json.Unmarshal(in.System, &blocks); err != nil {
				return nil, nil, bad("system", "must be a string or an array of text blocks")
			}
			var parts []string
			for _, b := range blocks {
				parts = append(parts, string(b.Text))
			}
			req.System = strings.Join(parts, "\n\n")
		}
	}
	for i, m := range in.Messages {
		field := fmt.Sprintf("messages[%d]", i)
		if m.Role != "user" && m.Role != "assistant" {
			return nil, nil, bad(field+".role", "must be user or assistant, not %q", m.Role)
		}
		blocks, err := antContent(m.Content, field+".content")
		if err != nil {
			return nil, nil, err
		}
		// One Anthropic message may carry text, tool calls and tool results; the neutral
		// form gives tool results messages of their own.
		msg := llm.Message{Role: llm.Role(m.Role)}
		for j, b := range blocks {
			bfield := fmt.Sprintf("%s.content[%d]", field, j)
			switch b.Type {
			case "text":
				msg.Content = append(msg.Content, llm.TextPart(string(b.Text)))
			case "image":
				if b.Source == nil {
					return nil, nil, bad(bfield+".source", "is required")
				}
				switch b.Source.Type {
				case "base64":
					msg.Content = append(msg.Content, llm.Part{Type: llm.PartImage, MediaType: b.Source.MediaType, Data: string(b.Source.Data)})
				case "url":
					msg.Content = append(msg.Content, llm.Part{Type: llm.PartImage, ImageURL: b.Source.URL})
				default:
					return nil, nil, bad(bfield+".source.type", "must be base64 or url")
				}
			case "tool_use":
				if m.Role != "assistant" || b.ID == "" || b.Name == "" {
					return nil, nil, bad(bfield, "a tool_use block belongs to an assistant message and needs an id and a name")
				}
				args := string(b.Input)
				if args == "" {
					args = "{}"
				}
				msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: b.ID, Name: b.Name, Arguments: args})
			case "tool_result":
				if b.ToolUseID == "" {
					return nil, nil, bad(bfield+".tool_use_id", "is required")
				}
				parts, err := antContent(b.Content, bfield+".content")
				if err != nil {
					return nil, nil, err
				}
				var content []llm.Part
				for _, p := range parts {
					switch p.Type {
					case "text":
						content = append(content, llm.TextPart(string(p.Text)))
					case "image":
						if p.Source != nil {
							content = append(content, llm.Part{Type: llm.PartImage, MediaType: p.Source.MediaType, Data: string(p.Source.Data), ImageURL: p.Source.URL})
						}
					}
				}
				req.Messages = append(req.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: b.ToolUseID, Content: content, IsError: b.IsError})
			case "thinking", "redacted_thinking":
				// Reasoning blocks of earlier turns are not sent on.
			default:
				return nil, nil, bad(bfield+".type", "must be text, image, tool_use or tool_result, not %q", b.Type)
			}
		}
		if len(msg.Content) > 0 || len(msg.ToolCalls) > 0 {
			req.Messages = append(req.Messages, msg)
		}
	}
	for i, t := range in.Tools {
		if t.Name == "" {
			return nil, nil, bad(fmt.Sprintf("tools[%d].name", i), "is required")
		}
		req.Tools = append(req.Tools, llm.Tool{Name: t.Name, Description: t.Description, Parameters: t.InputSchema})
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceAuto}
		case "any":
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceRequired}
		case "none":
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceNone}
		case "tool":
			if tc.Name == "" {
				return nil, nil, bad("tool_choice.name", "is required when type is tool")
			}
			req.ToolChoice = &llm.ToolChoice{Mode: llm.ToolChoiceTool, Name: tc.Name}
		default:
			return nil, nil, bad("tool_choice.type", "must be auto, any, tool or none")
		}
		if tc.DisableParallelToolUse {
			no := false
			req.ParallelToolCalls = &no
		}
	}
	return req, &in, nil
}

// antContent reads content that is a string or an array of blocks.
func antContent(raw bodyJSON, field string) ([]antBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var text bodyString
	if err := json.Unmarshal(raw, &text); err == nil {
		return []antBlock{{Type: "text", Text: text}}, nil
	}
	var blocks []antBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, errBadRequest(field, "must be a string or an array of content blocks")
	}
	return blocks, nil
}

// Answers in Anthropic's shapes.
type antMessageOut struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      []map[string]any `json:"content"`
	StopReason   *string          `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	Usage        antUsage         `json:"usage"`
}

type antUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// anthropicDialect is the gateway's Anthropic surface, POST /v1/messages.
var anthropicDialect = gatewayDialect{
	surface: "anthropic",
	decode: func(r *http.Request, body []byte) (*llm.Request, gatewayAsk, error) {
		req, in, err := decodeAnthropic(body, maxTokensRequired(r))
		if err != nil {
			return nil, gatewayAsk{}, err
		}
		return req, gatewayAsk{model: in.Model, stream: in.Stream}, nil
	},
	whole: func(w http.ResponseWriter, model string, resp *llm.Response) {
		content := []map[string]any{}
		if resp.Content != "" {
			content = append(content, map[string]any{"type": "text", "text": resp.Content})
		}
		for _, tc := range resp.ToolCalls {
			content = append(content, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Name, "input": toolInput(tc.Arguments)})
		}
		stop := resp.StopReason.Anthropic(resp.StopSequence)
		var seq *string
		if resp.StopSequence != "" {
			seq = &resp.StopSequence
		}
		writeJSON(w, http.StatusOK, antMessageOut{
			ID: newCompletionID("msg_"), Type: "message", Role: "assistant", Model: model, Content: content,
			StopReason: &stop, StopSequence: seq, Usage: antUsage{InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens},
		})
	},
	stream: func(s *Server, w http.ResponseWriter, r *http.Request, c *call, st llm.Stream, _ gatewayAsk) llm.Usage {
		return s.streamAnthropic(w, r, c, st)
	},
}

// toolInput is a tool call's arguments as a JSON object (Anthropic's input), {} when they
// are empty or not JSON.
func toolInput(args string) json.RawMessage {
	if strings.TrimSpace(args) == "" || !json.Valid([]byte(args)) {
		return json.RawMessage("{}")
	}
	return json.RawMessage(args)
}

// streamAnthropic writes the neutral stream as Anthropic's event sequence: message_start
// (once, first, with usage), a ping, content_block_start/delta/stop for each text or
// tool_use block (text_delta, input_json_delta), message_delta with the stop reason and
// the usage so far, message_stop. An upstream failure mid-stream ends it with an error event.
func (s *Server) streamAnthropic(w http.ResponseWriter, r *http.Request, c *call, st llm.Stream) llm.Usage {
	out := startEventStream(w)
	send := out.send
	var (
		usage   llm.Usage
		started bool
		block   = -1   // index of the open content block
		kind    string // its type
		toolIdx = map[int]int{}
	)
	start := func(d llm.Delta) bool {
		if started {
			return true
		}
		started = true
		usage.InputTokens = d.Usage.InputTokens
		c.firstByte = time.Since(c.started)
		ok := send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": newCompletionID("msg_"), "type": "message", "role": "assistant", "model": c.asked,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": usage.InputTokens, "output_tokens": 0},
		}})
		return ok && send("ping", map[string]any{"type": "ping"})
	}
	closeBlock := func() bool {
		if block < 0 || kind == "" {
			return true
		}
		k := kind
		kind = ""
		_ = k
		return send("content_block_stop", map[string]any{"type": "content_block_stop", "index": block})
	}
	open := func(typ string, cb map[string]any) bool {
		if !closeBlock() {
			return false
		}
		block++
		kind = typ
		return send("content_block_start", map[string]any{"type": "content_block_start", "index": block, "content_block": cb})
	}
	for {
		d, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if r.Context().Err() == nil {
				start(llm.Delta{})
				e := asError(upstreamError(err))
				send("error", map[string]any{"type": "error", "error": map[string]any{"type": streamErrorType(err), "message": e.Message}})
			}
			return usage
		}
		if !start(d) {
			return usage
		}
		switch d.Kind {
		case llm.DeltaText:
			if d.Text == "" {
				continue
			}
			if kind != "text" && !open("text", map[string]any{"type": "text", "text": ""}) {
				return usage
			}
			if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
				"delta": map[string]any{"type": "text_delta", "text": d.Text}}) {
				return usage
			}
		case llm.DeltaToolCall:
			if !open("tool_use", map[string]any{"type": "tool_use", "id": d.ToolCall.ID, "name": d.ToolCall.Name, "input": map[string]any{}}) {
				return usage
			}
			toolIdx[d.Index] = block
		case llm.DeltaToolArgs:
			bi, ok := toolIdx[d.Index]
			if !ok || bi != block || kind != "tool_use" || d.Text == "" {
				continue // arguments of a block already closed cannot be sent in this dialect
			}
			if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": d.Text}}) {
				return usage
			}
		case llm.DeltaDone:
			if d.Usage.InputTokens > 0 {
				usage.InputTokens = d.Usage.InputTokens
			}
			usage.OutputTokens = d.Usage.OutputTokens
			if !closeBlock() {
				return usage
			}
			stop := d.StopReason.Anthropic(d.StopSequence)
			var seq any
			if d.StopSequence != "" {
				seq = d.StopSequence
			}
			if !send("message_delta", map[string]any{"type": "message_delta",
				"delta": map[string]any{"stop_reason": stop, "stop_sequence": seq},
				"usage": map[string]any{"input_tokens": usage.InputTokens, "output_tokens": usage.OutputTokens}}) {
				return usage
			}
		}
	}
	if !started {
		start(llm.Delta{})
	}
	closeBlock()
	send("message_stop", map[string]any{"type": "message_stop"})
	return usage
}

// streamErrorType is the Anthropic error type of a failure mid-stream: the upstream's own
// when it said one Anthropic clients know (overloaded_error, rate_limit_error, …), else
// api_error.
func streamErrorType(err error) string {
	var ue *llm.UpstreamError
	if errors.As(err, &ue) {
		switch ue.Type {
		case "overloaded_error", "rate_limit_error", "invalid_request_error", "authentication_error",
			"permission_error", "not_found_error", "request_too_large", "billing_error", "timeout_error":
			return ue.Type
		}
	}
	return "api_error"
}
