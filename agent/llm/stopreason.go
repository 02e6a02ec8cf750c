package llm

// StopReason says why an answer ended, in neither dialect.
type StopReason string

const (
	// StopEnd is a natural end, or a stop sequence (Response.StopSequence says which).
	StopEnd StopReason = "stop"
	// StopLength is the max_tokens limit.
	StopLength StopReason = "length"
	// StopToolCalls is an answer that ends by calling tools.
	StopToolCalls StopReason = "tool_calls"
	// StopContentFilter is an answer the upstream withheld or refused.
	StopContentFilter StopReason = "content_filter"
)

// StopReasonFromOpenAI maps an OpenAI finish_reason; an unknown one is a natural end.
func StopReasonFromOpenAI(finishReason string) StopReason {
	switch finishReason {
	case "length":
		return StopLength
	case "tool_calls", "function_call":
		return StopToolCalls
	case "content_filter":
		return StopContentFilter
	}
	return StopEnd
}

// OpenAI is the finish_reason of the stop reason.
func (r StopReason) OpenAI() string {
	switch r {
	case StopLength, StopToolCalls, StopContentFilter:
		return string(r)
	}
	return "stop"
}

// StopReasonFromAnthropic maps an Anthropic stop_reason; an unknown one is a natural end.
func StopReasonFromAnthropic(stopReason string) StopReason {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return StopLength
	case "tool_use":
		return StopToolCalls
	case "refusal":
		return StopContentFilter
	}
	// end_turn, stop_sequence, pause_turn.
	return StopEnd
}

// Anthropic is the stop_reason of the stop reason; a natural end that a stop sequence
// caused is stop_sequence.
func (r StopReason) Anthropic(stopSequence string) string {
	switch r {
	case StopLength:
		return "max_tokens"
	case StopToolCalls:
		return "tool_use"
	case StopContentFilter:
		return "refusal"
	}
	if stopSequence != "" {
		return "stop_sequence"
	}
	return "end_turn"
}
