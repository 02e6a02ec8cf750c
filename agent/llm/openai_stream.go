package llm

import (
	"bytes"
	"encoding/json"
)

// The OpenAI wire format of a stream chunk.
type (
	oaiChunk struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Content   *string            `json:"content"`
				Refusal   *string            `json:"refusal"`
				ToolCalls []oaiToolCallDelta `json:"tool_calls"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *oaiUsage `json:"usage"`
		// XGroq carries Groq's usage, which it sends in the last chunk.
		XGroq *struct {
			Usage *oaiUsage `json:"usage"`
		} `json:"x_groq"`
		Error json.RawMessage `json:"error"`
	}
	oaiToolCallDelta struct {
		Index    *int   `json:"index"`
		ID       string `json:"id"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
)

var oaiDone = []byte("[DONE]")

// oaiDecoder turns chat.completion.chunk events into deltas. The answer ends at [DONE]
// (after the usage chunk) or, for servers that send no [DONE], at the end of the body
// once a finish_reason was seen.
type oaiDecoder struct {
	provider string
	started  bool
	finish   *string
	usage    Usage
	// calls maps the upstream's tool call index to ours, and remembers the call's ID so
	// that a server reusing an index for a new call is understood.
	calls []oaiCallState
	// open is the last opened call, for servers that send fragments without an index.
	open int
}

type oaiCallState struct {
	upstream int
	id       string
}

func (d *oaiDecoder) event(ev sseEvent, out []Delta) ([]Delta, bool, error) {
	data := bytes.TrimSpace(ev.Data)
	if bytes.Equal(data, oaiDone) {
		out = d.start(out, "", "")
		return d.done(out), true, nil
	}
	var c oaiChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return out, false, malformed(d.provider, "chunk %.120q: %v", data, err)
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return out, false, oaiEventError(d.provider, c.Error)
	}
	out = d.start(out, c.ID, c.Model)
	if c.Usage != nil {
		d.usage = Usage{InputTokens: c.Usage.PromptTokens, OutputTokens: c.Usage.CompletionTokens}
	}
	if c.XGroq != nil && c.XGroq.Usage != nil {
		d.usage = Usage{InputTokens: c.XGroq.Usage.PromptTokens, OutputTokens: c.XGroq.Usage.CompletionTokens}
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		if ch.Delta.Content != nil && *ch.Delta.Content != "" {
			out = append(out, Delta{Kind: DeltaText, Text: *ch.Delta.Content})
		}
		if ch.Delta.Refusal != nil && *ch.Delta.Refusal != "" {
			out = append(out, Delta{Kind: DeltaText, Text: *ch.Delta.Refusal})
		}
		for _, tc := range ch.Delta.ToolCalls {
			var err error
			if out, err = d.toolCall(tc, out); err != nil {
				return out, false, err
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			d.finish = ch.FinishReason
		}
	}
	return out, false, nil
}

func (d *oaiDecoder) toolCall(tc oaiToolCallDelta, out []Delta) ([]Delta, error) {
	idx := -1
	switch {
	case tc.Index != nil:
		for i := len(d.calls) - 1; i >= 0; i-- {
			if d.calls[i].upstream == *tc.Index {
				idx = i
				break
			}
		}
		if idx >= 0 && tc.ID != "" && tc.ID != d.calls[idx].id {
			idx = -1 // A new call at an index seen before.
		}
	case tc.ID == "" && len(d.calls) > 0:
		idx = d.open
	}
	if idx < 0 {
		if tc.Function.Name == "" {
			return out, malformed(d.provider, "tool call fragment before the call's name")
		}
		up := len(d.calls)
		if tc.Index != nil {
			up = *tc.Index
		}
		id := tc.ID
		if id == "" {
			id = newToolCallID()
		}
		idx = len(d.calls)
		d.calls = append(d.calls, oaiCallState{upstream: up, id: id})
		out = append(out, Delta{Kind: DeltaToolCall, Index: idx, ToolCall: ToolCall{ID: id, Name: tc.Function.Name}})
	}
	d.open = idx
	if tc.Function.Arguments != "" {
		out = append(out, Delta{Kind: DeltaToolArgs, Index: idx, Text: tc.Function.Arguments})
	}
	return out, nil
}

func (d *oaiDecoder) start(out []Delta, id, model string) []Delta {
	if d.started {
		return out
	}
	d.started = true
	return append(out, Delta{Kind: DeltaStart, ID: id, Model: model})
}

func (d *oaiDecoder) done(out []Delta) []Delta {
	reason := StopEnd
	if d.finish != nil {
		reason = StopReasonFromOpenAI(*d.finish)
	}
	if reason == StopEnd && len(d.calls) > 0 {
		// Some compatible servers say "stop" after calling tools.
		reason = StopToolCalls
	}
	return append(out, Delta{Kind: DeltaDone, StopReason: reason, Usage: d.usage})
}

func (d *oaiDecoder) end(out []Delta) ([]Delta, error) {
	if d.finish == nil {
		return out, malformed(d.provider, "the stream ended before its answer did")
	}
	return d.done(d.start(out, "", "")), nil
}
