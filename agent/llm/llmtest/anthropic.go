package llmtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// anthropic is the messages protocol.
type anthropic struct{}

func (anthropic) endpoint(method, path string) string {
	switch {
	case method == http.MethodPost && path == "/v1/messages":
		return "complete"
	case method == http.MethodGet && path == "/v1/models":
		return "models"
	}
	return ""
}

func (anthropic) authorize(h http.Header, key string) *apiError {
	// The key comes as x-api-key, or as a Bearer token, which is how the official client
	// (@anthropic-ai/sdk 1.x) sends the apiKey it is given.
	bearer, isBearer := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if key != "" && h.Get("X-Api-Key") != key && (!isBearer || bearer != key) {
		return &apiError{status: http.StatusUnauthorized, typ: "authentication_error", message: "invalid x-api-key"}
	}
	if h.Get("Anthropic-Version") == "" {
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "anthropic-version: header is required"}
	}
	return nil
}

func (anthropic) validate(body []byte) (call, *apiError) {
	var req struct {
		Model     string          `json:"model"`
		Messages  json.RawMessage `json:"messages"`
		MaxTokens *int            `json:"max_tokens"`
		Stream    bool            `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "There was an issue with your request body: " + err.Error()}
	}
	switch {
	case req.Model == "":
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "model: Field required"}
	case len(req.Messages) == 0 || string(req.Messages) == "null":
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "messages: Field required"}
	case req.MaxTokens == nil:
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "max_tokens: Field required"}
	}
	return call{model: req.Model, stream: req.Stream}, nil
}

func antErrorType(e *apiError) string {
	if e.typ != "" {
		return e.typ
	}
	switch e.status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if e.status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

func (anthropic) writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	w.Write(marshal(map[string]any{"type": "error", "error": map[string]any{"type": antErrorType(e), "message": e.message}}))
}

func antStop(rep Reply) (reason string, sequence any) {
	if rep.RawStopReason != "" {
		reason = rep.RawStopReason
	} else {
		switch rep.StopReason {
		case llm.StopLength:
			reason = "max_tokens"
		case llm.StopToolCalls:
			reason = "tool_use"
		case llm.StopContentFilter:
			reason = "refusal"
		case "":
			reason = "end_turn"
			if len(rep.ToolCalls) > 0 {
				reason = "tool_use"
			}
		default:
			reason = "end_turn"
		}
		if rep.StopSequence != "" && reason == "end_turn" {
			reason = "stop_sequence"
		}
	}
	if rep.StopSequence != "" {
		return reason, rep.StopSequence
	}
	return reason, nil
}

func antToolID(tc ToolCall, i int) string {
	if tc.ID != "" {
		return tc.ID
	}
	return "toolu_standin" + strconv.Itoa(i)
}

// antInput is a tool call's arguments as the object Anthropic shows.
func antInput(args string) json.RawMessage {
	if args != "" && json.Valid([]byte(args)) {
		return json.RawMessage(args)
	}
	return json.RawMessage(`{}`)
}

func antUsage(u llm.Usage, output int) map[string]any {
	return map[string]any{"input_tokens": u.InputTokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output}
}

func (anthropic) events(c call, rep Reply) ([][]byte, int) {
	u := usage(rep)
	ev := func(name string, v any) []byte { return sse(name, marshal(v)) }
	frames := [][]byte{ev("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_standin" + strconv.Itoa(c.seq), "type": "message", "role": "assistant", "model": model(c, rep),
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": antUsage(u, 1)}})}
	block := 0
	if chunks := textChunks(rep); len(chunks) > 0 {
		frames = append(frames,
			ev("content_block_start", map[string]any{"type": "content_block_start", "index": block, "content_block": map[string]any{"type": "text", "text": ""}}),
			[]byte("event: ping\ndata: {\"type\": \"ping\"}\n\n"))
		for _, t := range chunks {
			frames = append(frames, ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
				"delta": map[string]any{"type": "text_delta", "text": t}}))
		}
		frames = append(frames, ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": block}))
		block++
	}
	for i, tc := range rep.ToolCalls {
		frames = append(frames,
			ev("content_block_start", map[string]any{"type": "content_block_start", "index": block, "content_block": map[string]any{
				"type": "tool_use", "id": antToolID(tc, i), "name": tc.Name, "input": map[string]any{}}}),
			ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": ""}}))
		for _, a := range argChunks(tc) {
			frames = append(frames, ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": a}}))
		}
		frames = append(frames, ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": block}))
		block++
	}
	end := len(frames)
	reason, seq := antStop(rep)
	frames = append(frames,
		ev("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": reason, "stop_sequence": seq},
			"usage": map[string]any{"output_tokens": u.OutputTokens}}),
		ev("message_stop", map[string]any{"type": "message_stop"}))
	return frames, end
}

func (anthropic) streamError(e *apiError) []byte {
	typ := e.typ
	if typ == "" {
		typ = "overloaded_error"
	}
	return sse("error", marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": e.message}}))
}

func (anthropic) malformed() []byte {
	return []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"oops\n\n")
}

func (anthropic) whole(c call, rep Reply) []byte {
	content := []any{}
	if rep.Text != "" {
		content = append(content, map[string]any{"type": "text", "text": rep.Text})
	}
	for i, tc := range rep.ToolCalls {
		content = append(content, map[string]any{"type": "tool_use", "id": antToolID(tc, i), "name": tc.Name, "input": antInput(tc.Arguments)})
	}
	reason, seq := antStop(rep)
	u := usage(rep)
	return marshal(map[string]any{
		"id": "msg_standin" + strconv.Itoa(c.seq), "type": "message", "role": "assistant", "model": model(c, rep),
		"content": content, "stop_reason": reason, "stop_sequence": seq, "usage": antUsage(u, u.OutputTokens),
	})
}

func (anthropic) models(ids []string) []byte {
	data := make([]any, 0, len(ids))
	for _, id := range ids {
		data = append(data, map[string]any{"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"})
	}
	first, last := any(nil), any(nil)
	if len(ids) > 0 {
		first, last = ids[0], ids[len(ids)-1]
	}
	return marshal(map[string]any{"data": data, "has_more": false, "first_id": first, "last_id": last})
}
