package llmtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// openAI is the chat completions protocol.
type openAI struct{}

// created is the fixed creation time of the stand-in's answers.
const created = 1735689600

func (openAI) endpoint(method, path string) string {
	switch {
	case method == http.MethodPost && path == "/v1/chat/completions":
		return "complete"
	case method == http.MethodGet && path == "/v1/models":
		return "models"
	case method == http.MethodPost && path == "/v1/embeddings":
		return "embeddings"
	}
	return ""
}

func (openAI) authorize(h http.Header, key string) *apiError {
	if key == "" {
		return nil
	}
	got, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok || got != key {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "Incorrect API key provided: " + redact(got) + ". You can find your API key at https://platform.openai.com/account/api-keys."}
	}
	return nil
}

func redact(k string) string {
	if len(k) <= 8 {
		return k
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

func (openAI) validate(body []byte) (call, *apiError) {
	var req struct {
		Model         string          `json:"model"`
		Messages      json.RawMessage `json:"messages"`
		Stream        bool            `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error",
			message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"}
	}
	if req.Model == "" {
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "you must provide a model parameter"}
	}
	if len(req.Messages) == 0 || string(req.Messages) == "null" {
		return call{}, &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: "Missing required parameter: 'messages'."}
	}
	c := call{model: req.Model, stream: req.Stream}
	if req.StreamOptions != nil && req.Stream {
		c.includeUsage = req.StreamOptions.IncludeUsage
	}
	return c, nil
}

func (openAI) writeError(w http.ResponseWriter, e *apiError) {
	typ := e.typ
	if typ == "" {
		switch {
		case e.status == http.StatusTooManyRequests:
			typ = "rate_limit_exceeded"
		case e.status >= 500:
			typ = "server_error"
		default:
			typ = "invalid_request_error"
		}
	}
	body := map[string]any{"error": map[string]any{"message": e.message, "type": typ, "param": nil, "code": nil}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	w.Write(marshal(body))
}

// The wire shapes the stand-in writes, in OpenAI's field order.
type (
	oaiChunk struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           int64           `json:"created"`
		Model             string          `json:"model"`
		SystemFingerprint string          `json:"system_fingerprint"`
		Choices           []oaiChoice     `json:"choices"`
		Usage             json.RawMessage `json:"usage,omitempty"`
	}
	oaiChoice struct {
		Index        int            `json:"index"`
		Delta        map[string]any `json:"delta"`
		Logprobs     any            `json:"logprobs"`
		FinishReason *string        `json:"finish_reason"`
	}
)

func oaiFinish(rep Reply) string {
	if rep.RawStopReason != "" {
		return rep.RawStopReason
	}
	switch rep.StopReason {
	case llm.StopLength:
		return "length"
	case llm.StopToolCalls:
		return "tool_calls"
	case llm.StopContentFilter:
		return "content_filter"
	case "":
		if len(rep.ToolCalls) > 0 {
			return "tool_calls"
		}
	}
	return "stop"
}

func oaiUsage(u llm.Usage) map[string]any {
	return map[string]any{
		"prompt_tokens":             u.InputTokens,
		"completion_tokens":         u.OutputTokens,
		"total_tokens":              u.InputTokens + u.OutputTokens,
		"prompt_tokens_details":     map[string]any{"cached_tokens": 0, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

func oaiToolCallID(tc ToolCall, i int) string {
	if tc.ID != "" {
		return tc.ID
	}
	return "call_standin" + strconv.Itoa(i)
}

func (openAI) events(c call, rep Reply) ([][]byte, int) {
	id := "chatcmpl-standin" + strconv.Itoa(c.seq)
	var usageNull json.RawMessage
	if c.includeUsage {
		usageNull = json.RawMessage("null")
	}
	chunk := func(delta map[string]any, finish *string) []byte {
		return sse("", marshal(oaiChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model(c, rep),
			SystemFingerprint: "fp_standin", Choices: []oaiChoice{{Delta: delta, FinishReason: finish}}, Usage: usageNull}))
	}
	frames := [][]byte{chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil)}
	for _, t := range textChunks(rep) {
		frames = append(frames, chunk(map[string]any{"content": t}, nil))
	}
	for i, tc := range rep.ToolCalls {
		frames = append(frames, chunk(map[string]any{"tool_calls": []any{map[string]any{
			"index": i, "id": oaiToolCallID(tc, i), "type": "function",
			"function": map[string]any{"name": tc.Name, "arguments": ""}}}}, nil))
		for _, a := range argChunks(tc) {
			frames = append(frames, chunk(map[string]any{"tool_calls": []any{map[string]any{
				"index": i, "function": map[string]any{"arguments": a}}}}, nil))
		}
	}
	end := len(frames)
	finish := oaiFinish(rep)
	frames = append(frames, chunk(map[string]any{}, &finish))
	if c.includeUsage {
		frames = append(frames, sse("", marshal(oaiChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model(c, rep),
			SystemFingerprint: "fp_standin", Choices: []oaiChoice{}, Usage: marshal(oaiUsage(usage(rep)))})))
	}
	frames = append(frames, []byte("data: [DONE]\n\n"))
	return frames, end
}

func (openAI) streamError(e *apiError) []byte {
	typ := e.typ
	if typ == "" {
		typ = "server_error"
	}
	return sse("", marshal(map[string]any{"error": map[string]any{"message": e.message, "type": typ, "param": nil, "code": nil}}))
}

func (openAI) malformed() []byte {
	return []byte("data: {\"id\":\"chatcmpl-standin\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oops\n\n")
}

func (openAI) whole(c call, rep Reply) []byte {
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil, "annotations": []any{}}
	if rep.Text != "" || len(rep.ToolCalls) == 0 {
		msg["content"] = rep.Text
	}
	if len(rep.ToolCalls) > 0 {
		calls := make([]any, 0, len(rep.ToolCalls))
		for i, tc := range rep.ToolCalls {
			calls = append(calls, map[string]any{"id": oaiToolCallID(tc, i), "type": "function",
				"function": map[string]any{"name": tc.Name, "arguments": tc.Arguments}})
		}
		msg["tool_calls"] = calls
	}
	return marshal(map[string]any{
		"id":                 "chatcmpl-standin" + strconv.Itoa(c.seq),
		"object":             "chat.completion",
		"created":            created,
		"model":              model(c, rep),
		"choices":            []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": oaiFinish(rep)}},
		"usage":              oaiUsage(usage(rep)),
		"service_tier":       "default",
		"system_fingerprint": "fp_standin",
	})
}

func (openAI) models(ids []string) []byte {
	data := make([]any, 0, len(ids))
	for _, id := range ids {
		data = append(data, map[string]any{"id": id, "object": "model", "created": created, "owned_by": "standin"})
	}
	return marshal(map[string]any{"object": "list", "data": data})
}

// sse is one event frame: "event: name" when named, then "data: …" and a blank line.
func sse(name string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(name)+16)
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
