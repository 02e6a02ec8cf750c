package llm

import (
	"encoding/json"
)

// The Anthropic wire format of a stream event.
type antEvent struct {
	Type         string        `json:"type"`
	Index        int           `json:"index"`
	Message      *antResponse  `json:"message"`
	ContentBlock *antRespBlock `json:"content_block"`
	Delta        *struct {
		Type         string  `json:"type"`
		Text         string  `json:"text"`
		PartialJSON  string  `json:"partial_json"`
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage *antUsage `json:"usage"`
	Error *antError `json:"error"`
}

// antDecoder turns Anthropic's events into deltas. Content blocks are numbered across
// text and tool use; tool calls are numbered among themselves. Blocks of kinds it does not
// carry (thinking, server tools) are skipped.
type antDecoder struct {
	provider string
	started  bool
	// blocks maps a content block index to its tool call, or -1 for text, -2 for skipped.
	blocks       map[int]int
	calls        int
	usage        Usage
	stopReason   string
	stopSequence string
}

const (
	antBlockText = -1
	antBlockSkip = -2
)

func (d *antDecoder) event(ev sseEvent, out []Delta) ([]Delta, bool, error) {
	var e antEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return out, false, malformed(d.provider, "event %q %.120q: %v", ev.Name, ev.Data, err)
	}
	if e.Type == "" {
		e.Type = ev.Name
	}
	switch e.Type {
	case "ping":
		return out, false, nil
	case "error":
		ue := &UpstreamError{Provider: d.provider, Type: "api_error", Message: "error event without a message"}
		if e.Error != nil {
			ue.Type, ue.Message = e.Error.Type, e.Error.Message
		}
		return out, false, ue
	case "message_start":
		if d.started || e.Message == nil {
			return out, false, malformed(d.provider, "a misplaced message_start")
		}
		d.started = true
		d.usage = Usage{InputTokens: e.Message.Usage.input(), OutputTokens: e.Message.Usage.OutputTokens}
		return append(out, Delta{Kind: DeltaStart, ID: e.Message.ID, Model: e.Message.Model,
			Usage: Usage{InputTokens: d.usage.InputTokens}}), false, nil
	}
	if !d.started {
		// A new kind of event may come first one day; content may not.
		switch e.Type {
		case "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop":
			return out, false, malformed(d.provider, "%s before message_start", e.Type)
		}
		return out, false, nil
	}
	switch e.Type {
	case "content_block_start":
		if e.ContentBlock == nil {
			return out, false, malformed(d.provider, "content_block_start without its block")
		}
		if _, seen := d.blocks[e.Index]; seen {
			return out, false, malformed(d.provider, "content block %d started twice", e.Index)
		}
		switch b := e.ContentBlock; b.Type {
		case "text":
			d.blocks[e.Index] = antBlockText
			if b.Text != "" {
				out = append(out, Delta{Kind: DeltaText, Text: b.Text})
			}
		case "tool_use":
			idx := d.calls
			d.calls++
			d.blocks[e.Index] = idx
			out = append(out, Delta{Kind: DeltaToolCall, Index: idx, ToolCall: ToolCall{ID: b.ID, Name: b.Name}})
			// The input comes as input_json_delta after an empty object; a proxy that sends
			// it whole at the start still gets it across.
			if in := string(b.Input); in != "" && in != "{}" && in != "null" {
				out = append(out, Delta{Kind: DeltaToolArgs, Index: idx, Text: in})
			}
		default:
			d.blocks[e.Index] = antBlockSkip
		}
	case "content_block_delta":
		kind, ok := d.blocks[e.Index]
		if !ok || e.Delta == nil {
			return out, false, malformed(d.provider, "a delta of content block %d, which did not start", e.Index)
		}
		switch {
		case e.Delta.Type == "text_delta" && kind == antBlockText:
			if e.Delta.Text != "" {
				out = append(out, Delta{Kind: DeltaText, Text: e.Delta.Text})
			}
		case e.Delta.Type == "input_json_delta" && kind >= 0:
			if e.Delta.PartialJSON != "" {
				out = append(out, Delta{Kind: DeltaToolArgs, Index: kind, Text: e.Delta.PartialJSON})
			}
		}
	case "content_block_stop":
		if _, ok := d.blocks[e.Index]; !ok {
			return out, false, malformed(d.provider, "content block %d stopped before it started", e.Index)
		}
	case "message_delta":
		if e.Delta != nil {
			if e.Delta.StopReason != "" {
				d.stopReason = e.Delta.StopReason
			}
			if e.Delta.StopSequence != nil {
				d.stopSequence = *e.Delta.StopSequence
			}
		}
		if u := e.Usage; u != nil {
			// Usage here is cumulative.
			d.usage.OutputTokens = u.OutputTokens
			if in := u.input(); in > 0 {
				d.usage.InputTokens = in
			}
		}
	case "message_stop":
		return append(out, Delta{Kind: DeltaDone, StopReason: StopReasonFromAnthropic(d.stopReason),
			StopSequence: d.stopSequence, Usage: d.usage}), true, nil
	}
	return out, false, nil
}

func (d *antDecoder) end(out []Delta) ([]Delta, error) {
	return out, malformed(d.provider, "the stream ended before message_stop")
}
