package llm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// openAI speaks OpenAI's chat completions to any compatible server.
type openAI struct {
	t              *transport
	base           string
	maxTokensParam string
}

func newOpenAI(cfg ProviderConfig, o options) *openAI {
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	p := &openAI{t: o.transport(cfg, h), base: cfg.BaseURL, maxTokensParam: cfg.MaxTokensParam}
	if p.maxTokensParam == "" {
		p.maxTokensParam = "max_tokens"
		if u, err := url.Parse(cfg.BaseURL); err == nil && u.Host == "api.openai.com" {
			p.maxTokensParam = "max_completion_tokens"
		}
	}
	return p
}

func (p *openAI) Complete(ctx context.Context, req *Request) (*Response, error) {
	req, st := stashed(req)
	out, err := p.request(req, false)
	if err != nil {
		return nil, err
	}
	body := payload{wire: out, stash: st}
	var wire oaiResponse
	if err := p.t.fetch(ctx, http.MethodPost, p.base+"/chat/completions", body, &wire); err != nil {
		return nil, err
	}
	return wire.response(p.t.provider)
}

func (p *openAI) Stream(ctx context.Context, req *Request) (Stream, error) {
	req, st := stashed(req)
	out, err := p.request(req, true)
	if err != nil {
		return nil, err
	}
	body := payload{wire: out, stash: st}
	whole := func(b []byte) (*Response, error) {
		var wire oaiResponse
		if err := json.Unmarshal(b, &wire); err != nil {
			return nil, malformed(p.t.provider, "%v", err)
		}
		return wire.response(p.t.provider)
	}
	return p.t.stream(ctx, p.base+"/chat/completions", body, &oaiDecoder{provider: p.t.provider}, whole)
}

func (p *openAI) Models(ctx context.Context) ([]string, error) {
	var wire struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := p.t.fetch(ctx, http.MethodGet, p.base+"/models", nil, &wire); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(wire.Data))
	for _, m := range wire.Data {
		out = append(out, m.ID)
	}
	return out, nil
}

// The OpenAI wire format of a request.
type (
	oaiRequest struct {
		Model               string            `json:"model"`
		Messages            []oaiMessage      `json:"messages"`
		Tools               []oaiTool         `json:"tools,omitempty"`
		ToolChoice          any               `json:"tool_choice,omitempty"`
		ParallelToolCalls   *bool             `json:"parallel_tool_calls,omitempty"`
		MaxTokens           int               `json:"max_tokens,omitempty"`
		MaxCompletionTokens int               `json:"max_completion_tokens,omitempty"`
		Temperature         *float64          `json:"temperature,omitempty"`
		TopP                *float64          `json:"top_p,omitempty"`
		Stop                []string          `json:"stop,omitempty"`
		User                string            `json:"user,omitempty"`
		Stream              bool              `json:"stream,omitempty"`
		StreamOptions       *oaiStreamOptions `json:"stream_options,omitempty"`
	}
	oaiStreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	}
	oaiMessage struct {
		Role string `json:"role"`
		// Content is a string, a list of parts, or null (an assistant message that only
		// calls tools).
		Content    any           `json:"content"`
		ToolCalls  []oaiToolCall `json:"tool_calls,omitempty"`
		ToolCallID string        `json:"tool_call_id,omitempty"`
	}
	oaiTextPart struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	oaiImagePart struct {
		Type     string      `json:"type"`
		ImageURL oaiImageURL `json:"image_url"`
	}
	oaiImageURL struct {
		URL    string `json:"url"`
		Detail string `json:"detail,omitempty"`
	}
	oaiTool struct {
		Type     string      `json:"type"`
		Function oaiFunction `json:"function"`
	}
	oaiFunction struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	}
	oaiToolCall struct {
		ID       string  `json:"id"`
		Type     string  `json:"type"`
		Function oaiCall `json:"function"`
	}
	oaiCall struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	oaiNamedTool struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
)

func (p *openAI) request(req *Request, stream bool) (*oaiRequest, error) {
	w := &oaiRequest{
		Model:             req.Model,
		ParallelToolCalls: req.ParallelToolCalls,
		Temperature:       req.Temperature,
		TopP:              req.TopP,
		Stop:              req.Stop,
		User:              req.User,
		Stream:            stream,
	}
	if stream {
		w.StreamOptions = &oaiStreamOptions{IncludeUsage: true}
	}
	if p.maxTokensParam == "max_completion_tokens" {
		w.MaxCompletionTokens = req.MaxTokens
	} else {
		w.MaxTokens = req.MaxTokens
	}
	msgs, err := oaiMessages(req)
	if err != nil {
		return nil, err
	}
	w.Messages = msgs
	for _, t := range req.Tools {
		w.Tools = append(w.Tools, oaiTool{Type: "function", Function: oaiFunction(t)})
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case ToolChoiceAuto, ToolChoiceNone, ToolChoiceRequired:
			w.ToolChoice = string(tc.Mode)
		case ToolChoiceTool:
			if tc.Name == "" {
				return nil, fmt.Errorf("%w: tool_choice names no tool", ErrInvalidRequest)
			}
			named := oaiNamedTool{Type: "function"}
			named.Function.Name = tc.Name
			w.ToolChoice = named
		default:
			return nil, fmt.Errorf("%w: unknown tool_choice %q", ErrInvalidRequest, tc.Mode)
		}
	}
	return w, nil
}

// oaiMessages translates the conversation. Images in tool results, which OpenAI's tool
// messages cannot carry, follow the run of tool messages as a user message.
func oaiMessages(req *Request) ([]oaiMessage, error) {
	out := make([]oaiMessage, 0, len(req.Messages)+1)
	if req.System != "" {
		out = append(out, oaiMessage{Role: "system", Content: req.System})
	}
	var toolImages []any
	flushImages := func() {
		if len(toolImages) > 0 {
			out = append(out, oaiMessage{Role: "user", Content: toolImages})
			toolImages = nil
		}
	}
	for i, m := range req.Messages {
		if m.Role != RoleTool {
			flushImages()
		}
		switch m.Role {
		case RoleSystem:
			out = append(out, oaiMessage{Role: "system", Content: m.Text()})
		case RoleUser:
			out = append(out, oaiMessage{Role: "user", Content: oaiContent(m.Content)})
		case RoleAssistant:
			w := oaiMessage{Role: "assistant"}
			if text := m.Text(); text != "" || len(m.ToolCalls) == 0 {
				w.Content = text
			}
			for _, tc := range m.ToolCalls {
				args := tc.Arguments
				if args == "" {
					args = "{}"
				}
				w.ToolCalls = append(w.ToolCalls, oaiToolCall{ID: tc.ID, Type: "function", Function: oaiCall{Name: tc.Name, Arguments: args}})
			}
			out = append(out, w)
		case RoleTool:
			if m.ToolCallID == "" {
				return nil, fmt.Errorf("%w: messages[%d]: a tool result names no tool call", ErrInvalidRequest, i)
			}
			out = append(out, oaiMessage{Role: "tool", ToolCallID: m.ToolCallID, Content: m.Text()})
			for _, p := range m.Content {
				if p.Type == PartImage {
					toolImages = append(toolImages, oaiImagePart{Type: "image_url", ImageURL: oaiImageURL{URL: p.URL(), Detail: p.Detail}})
				}
			}
		default:
			return nil, fmt.Errorf("%w: messages[%d]: unknown role %q", ErrInvalidRequest, i, m.Role)
		}
	}
	flushImages()
	return out, nil
}

// oaiContent is a single text as a string, which every compatible server takes, and
// anything else as a list of parts.
func oaiContent(parts []Part) any {
	if len(parts) == 0 {
		return ""
	}
	if len(parts) == 1 && parts[0].Type == PartText {
		return parts[0].Text
	}
	out := make([]any, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case PartText:
			out = append(out, oaiTextPart{Type: "text", Text: p.Text})
		case PartImage:
			out = append(out, oaiImagePart{Type: "image_url", ImageURL: oaiImageURL{URL: p.URL(), Detail: p.Detail}})
		}
	}
	return out
}

// The OpenAI wire format of an answer.
type (
	oaiResponse struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Content   json.RawMessage `json:"content"`
				Refusal   string          `json:"refusal"`
				ToolCalls []oaiToolCall   `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *oaiUsage       `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	oaiUsage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	}
)

func (w *oaiResponse) response(provider string) (*Response, error) {
	if len(w.Error) > 0 && string(w.Error) != "null" {
		return nil, oaiEventError(provider, w.Error)
	}
	if len(w.Choices) == 0 {
		return nil, malformed(provider, "an answer without choices")
	}
	c := w.Choices[0]
	resp := &Response{ID: w.ID, Model: w.Model, StopReason: StopReasonFromOpenAI(c.FinishReason)}
	text, err := oaiText(c.Message.Content)
	if err != nil {
		return nil, malformed(provider, "message content: %v", err)
	}
	if text == "" {
		text = c.Message.Refusal
	}
	resp.Content = text
	for _, tc := range c.Message.ToolCalls {
		id := tc.ID
		if id == "" {
			id = newToolCallID()
		}
		resp.ToolCalls = append(resp.ToolCalls, ToolCall{ID: id, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	if len(resp.ToolCalls) > 0 && resp.StopReason == StopEnd {
		// Some compatible servers say "stop" after calling tools.
		resp.StopReason = StopToolCalls
	}
	if w.Usage != nil {
		resp.Usage = Usage{InputTokens: w.Usage.PromptTokens, OutputTokens: w.Usage.CompletionTokens}
	}
	return resp, nil
}

// oaiText reads message content: null, a string, or a list of text parts.
func oaiText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", err
	}
	var out string
	for _, p := range parts {
		if p.Type == "text" {
			out += p.Text
		}
	}
	return out, nil
}

// oaiEventError is the error object an OpenAI-compatible server sends inside a 200: as the
// body, or as a stream chunk.
func oaiEventError(provider string, raw json.RawMessage) *UpstreamError {
	e := &UpstreamError{Provider: provider}
	var detail struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Code    any    `json:"code"`
	}
	if json.Unmarshal(raw, &detail) == nil {
		e.Type, e.Message = detail.Type, detail.Message
		if code, ok := detail.Code.(string); ok && e.Type == "" {
			e.Type = code
		}
	} else {
		_ = json.Unmarshal(raw, &e.Message)
	}
	if e.Message == "" {
		e.Message = string(raw)
	}
	return e
}

// newToolCallID names a tool call the upstream left unnamed, so that its result can be
// matched to it.
func newToolCallID() string { return "call_" + rand.Text() }
