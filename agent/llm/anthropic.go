package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// anthropic speaks Anthropic's messages API.
type anthropic struct {
	t                *transport
	base             string
	defaultMaxTokens int
}

func newAnthropic(cfg ProviderConfig, o options) *anthropic {
	h := http.Header{}
	if cfg.APIKey != "" {
		h.Set("X-Api-Key", cfg.APIKey)
	}
	version := cfg.AnthropicVersion
	if version == "" {
		version = "2023-06-01"
	}
	h.Set("Anthropic-Version", version)
	p := &anthropic{t: o.transport(cfg, h), base: cfg.BaseURL, defaultMaxTokens: cfg.DefaultMaxTokens}
	if p.defaultMaxTokens == 0 {
		p.defaultMaxTokens = DefaultAnthropicMaxTokens
	}
	return p
}

func (p *anthropic) Complete(ctx context.Context, req *Request) (*Response, error) {
	req, st := stashed(req)
	out, err := p.request(req, false)
	if err != nil {
		return nil, err
	}
	body := payload{wire: out, stash: st}
	var wire antResponse
	if err := p.t.fetch(ctx, http.MethodPost, p.base+"/v1/messages", body, &wire); err != nil {
		return nil, err
	}
	return wire.response(p.t.provider)
}

func (p *anthropic) Stream(ctx context.Context, req *Request) (Stream, error) {
	req, st := stashed(req)
	out, err := p.request(req, true)
	if err != nil {
		return nil, err
	}
	body := payload{wire: out, stash: st}
	whole := func(b []byte) (*Response, error) {
		var wire antResponse
		if err := json.Unmarshal(b, &wire); err != nil {
			return nil, malformed(p.t.provider, "%v", err)
		}
		return wire.response(p.t.provider)
	}
	return p.t.stream(ctx, p.base+"/v1/messages", body, &antDecoder{provider: p.t.provider, blocks: map[int]int{}}, whole)
}

// maxModelPages bounds how far Models follows Anthropic's pagination.
const maxModelPages = 10

func (p *anthropic) Models(ctx context.Context) ([]string, error) {
	var out []string
	after := ""
	for range maxModelPages {
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after_id", after)
		}
		var wire struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			HasMore bool   `json:"has_more"`
			LastID  string `json:"last_id"`
		}
		if err := p.t.fetch(ctx, http.MethodGet, p.base+"/v1/models?"+q.Encode(), nil, &wire); err != nil {
			return nil, err
		}
		for _, m := range wire.Data {
			out = append(out, m.ID)
		}
		if !wire.HasMore || wire.LastID == "" {
			break
		}
		after = wire.LastID
	}
	return out, nil
}

// The Anthropic wire format of a request.
type (
	antRequest struct {
		Model         string         `json:"model"`
		MaxTokens     int            `json:"max_tokens"`
		System        string         `json:"system,omitempty"`
		Messages      []antMessage   `json:"messages"`
		Tools         []antTool      `json:"tools,omitempty"`
		ToolChoice    *antToolChoice `json:"tool_choice,omitempty"`
		Temperature   *float64       `json:"temperature,omitempty"`
		TopP          *float64       `json:"top_p,omitempty"`
		StopSequences []string       `json:"stop_sequences,omitempty"`
		Metadata      *antMetadata   `json:"metadata,omitempty"`
		Stream        bool           `json:"stream,omitempty"`
	}
	antMessage struct {
		Role    string `json:"role"`
		Content []any  `json:"content"`
	}
	antText struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	antImage struct {
		Type   string    `json:"type"`
		Source antSource `json:"source"`
	}
	antSource struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type,omitempty"`
		Data      string `json:"data,omitempty"`
		URL       string `json:"url,omitempty"`
	}
	antToolUse struct {
		Type  string          `json:"type"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	antToolResult struct {
		Type      string `json:"type"`
		ToolUseID string `json:"tool_use_id"`
		Content   []any  `json:"content,omitempty"`
		IsError   bool   `json:"is_error,omitempty"`
	}
	antTool struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema"`
	}
	antToolChoice struct {
		Type                   string `json:"type"`
		Name                   string `json:"name,omitempty"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
	}
	antMetadata struct {
		UserID string `json:"user_id"`
	}
)

var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

func (p *anthropic) request(req *Request, stream bool) (*antRequest, error) {
	w := &antRequest{
		Model:         req.Model,
		MaxTokens:     req.MaxTokens,
		TopP:          req.TopP,
		StopSequences: req.Stop,
		Stream:        stream,
	}
	if w.MaxTokens == 0 {
		w.MaxTokens = p.defaultMaxTokens
	}
	if t := req.Temperature; t != nil && *t > 1 {
		// OpenAI's temperatures go to 2, Anthropic's to 1: the most random is the most random.
		one := 1.0
		w.Temperature = &one
	} else {
		w.Temperature = t
	}
	if req.User != "" {
		w.Metadata = &antMetadata{UserID: req.User}
	}
	system, msgs, err := antMessages(req)
	if err != nil {
		return nil, err
	}
	w.System, w.Messages = system, msgs
	for _, t := range req.Tools {
		schema := t.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(schema) == "null" {
			schema = emptySchema
		}
		w.Tools = append(w.Tools, antTool{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	noParallel := req.ParallelToolCalls != nil && !*req.ParallelToolCalls
	if tc := req.ToolChoice; tc != nil {
		switch tc.Mode {
		case ToolChoiceAuto:
			w.ToolChoice = &antToolChoice{Type: "auto", DisableParallelToolUse: noParallel}
		case ToolChoiceRequired:
			w.ToolChoice = &antToolChoice{Type: "any", DisableParallelToolUse: noParallel}
		case ToolChoiceNone:
			w.ToolChoice = &antToolChoice{Type: "none"}
		case ToolChoiceTool:
			if tc.Name == "" {
				return nil, fmt.Errorf("%w: tool_choice names no tool", ErrInvalidRequest)
			}
			w.ToolChoice = &antToolChoice{Type: "tool", Name: tc.Name, DisableParallelToolUse: noParallel}
		default:
			return nil, fmt.Errorf("%w: unknown tool_choice %q", ErrInvalidRequest, tc.Mode)
		}
	} else if noParallel && len(req.Tools) > 0 {
		w.ToolChoice = &antToolChoice{Type: "auto", DisableParallelToolUse: true}
	}
	return w, nil
}

// antTurn gathers one message of Anthropic's conversation; tool results come first in a
// user message, as Anthropic requires.
type antTurn struct {
	role    string
	results []any
	blocks  []any
}

// antMessages translates the conversation: system messages join the system prompt, tool
// results become tool_result blocks of a user message, and consecutive messages of one
// role become one.
func antMessages(req *Request) (string, []antMessage, error) {
	var system []string
	if req.System != "" {
		system = append(system, req.System)
	}
	var turns []*antTurn
	turn := func(role string) *antTurn {
		if n := len(turns); n > 0 && turns[n-1].role == role {
			return turns[n-1]
		}
		t := &antTurn{role: role}
		turns = append(turns, t)
		return t
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			if text := m.Text(); text != "" {
				system = append(system, text)
			}
		case RoleUser:
			blocks, err := antBlocks(m.Content, i)
			if err != nil {
				return "", nil, err
			}
			t := turn("user")
			t.blocks = append(t.blocks, blocks...)
		case RoleAssistant:
			blocks, err := antBlocks(m.Content, i)
			if err != nil {
				return "", nil, err
			}
			for j, tc := range m.ToolCalls {
				if tc.ID == "" || tc.Name == "" {
					return "", nil, fmt.Errorf("%w: messages[%d].tool_calls[%d]: a tool call needs an id and a name", ErrInvalidRequest, i, j)
				}
				input, err := antInput(tc.Arguments)
				if err != nil {
					return "", nil, fmt.Errorf("%w: messages[%d].tool_calls[%d].arguments: %w", ErrInvalidRequest, i, j, err)
				}
				blocks = append(blocks, antToolUse{Type: "tool_use", ID: antID(tc.ID), Name: tc.Name, Input: input})
			}
			t := turn("assistant")
			t.blocks = append(t.blocks, blocks...)
		case RoleTool:
			if m.ToolCallID == "" {
				return "", nil, fmt.Errorf("%w: messages[%d]: a tool result names no tool call", ErrInvalidRequest, i)
			}
			content, err := antBlocks(m.Content, i)
			if err != nil {
				return "", nil, err
			}
			t := turn("user")
			t.results = append(t.results, antToolResult{Type: "tool_result", ToolUseID: antID(m.ToolCallID), Content: content, IsError: m.IsError})
		default:
			return "", nil, fmt.Errorf("%w: messages[%d]: unknown role %q", ErrInvalidRequest, i, m.Role)
		}
	}
	msgs := make([]antMessage, 0, len(turns))
	for _, t := range turns {
		content := append(t.results, t.blocks...)
		if len(content) == 0 {
			// Anthropic refuses empty messages; an empty assistant turn says nothing anyway.
			continue
		}
		msgs = append(msgs, antMessage{Role: t.role, Content: content})
	}
	return strings.Join(system, "\n\n"), msgs, nil
}

// antBlocks translates content; empty text, which Anthropic refuses, is left out.
func antBlocks(parts []Part, msg int) ([]any, error) {
	out := make([]any, 0, len(parts))
	for j, p := range parts {
		switch p.Type {
		case PartText:
			if p.Text != "" {
				out = append(out, antText{Type: "text", Text: p.Text})
			}
		case PartImage:
			src, err := antImageSource(p)
			if err != nil {
				return nil, fmt.Errorf("%w: messages[%d].content[%d]: %w", ErrInvalidRequest, msg, j, err)
			}
			out = append(out, antImage{Type: "image", Source: src})
		default:
			return nil, fmt.Errorf("%w: messages[%d].content[%d]: unknown part type %q", ErrInvalidRequest, msg, j, p.Type)
		}
	}
	return out, nil
}

func antImageSource(p Part) (antSource, error) {
	if p.Data == "" {
		if mt, data, ok := splitDataURL(p.ImageURL); ok {
			p.MediaType, p.Data = mt, data
		}
	}
	switch {
	case p.Data != "":
		if p.MediaType == "" {
			return antSource{}, fmt.Errorf("an inline image needs its media type")
		}
		return antSource{Type: "base64", MediaType: p.MediaType, Data: p.Data}, nil
	case strings.HasPrefix(p.ImageURL, "https://") || strings.HasPrefix(p.ImageURL, "http://"):
		return antSource{Type: "url", URL: p.ImageURL}, nil
	}
	return antSource{}, fmt.Errorf("an image needs an http(s) URL or base64 data")
}

// antInput is a tool call's arguments as the JSON object Anthropic wants.
func antInput(args string) (json.RawMessage, error) {
	b := bytes.TrimSpace([]byte(args))
	if len(b) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if !json.Valid(b) || b[0] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	return b, nil
}

// antID makes a tool call ID Anthropic accepts ([A-Za-z0-9_-]+); the same ID always
// becomes the same, so that calls and their results still match.
func antID(id string) string {
	ok := func(r rune) bool {
		return r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
	}
	if strings.IndexFunc(id, func(r rune) bool { return !ok(r) }) < 0 {
		return id
	}
	return strings.Map(func(r rune) rune {
		if ok(r) {
			return r
		}
		return '_'
	}, id)
}

// The Anthropic wire format of an answer.
type (
	antResponse struct {
		ID           string         `json:"id"`
		Type         string         `json:"type"`
		Model        string         `json:"model"`
		Content      []antRespBlock `json:"content"`
		StopReason   string         `json:"stop_reason"`
		StopSequence *string        `json:"stop_sequence"`
		Usage        antUsage       `json:"usage"`
		Error        *antError      `json:"error"`
	}
	antRespBlock struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	antUsage struct {
		InputTokens              int `json:"input_tokens"`
		OutputTokens             int `json:"output_tokens"`
		CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	}
	antError struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
)

// input is the whole prompt: Anthropic counts cached parts apart.
func (u antUsage) input() int {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

func (w *antResponse) response(provider string) (*Response, error) {
	if w.Error != nil {
		return nil, &UpstreamError{Provider: provider, Type: w.Error.Type, Message: w.Error.Message}
	}
	if w.Type != "message" {
		return nil, malformed(provider, "an answer of type %q", w.Type)
	}
	resp := &Response{ID: w.ID, Model: w.Model, StopReason: StopReasonFromAnthropic(w.StopReason),
		Usage: Usage{InputTokens: w.Usage.input(), OutputTokens: w.Usage.OutputTokens}}
	if w.StopSequence != nil {
		resp.StopSequence = *w.StopSequence
	}
	var text strings.Builder
	for _, b := range w.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := string(b.Input)
			if args == "" || args == "null" {
				args = "{}"
			}
			resp.ToolCalls = append(resp.ToolCalls, ToolCall{ID: b.ID, Name: b.Name, Arguments: args})
		}
	}
	resp.Content = text.String()
	return resp, nil
}
