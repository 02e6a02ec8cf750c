package llm

import (
	"errors"
	"io"
	"strings"
)

// Stream is an answer as it arrives. Next returns, in order: one DeltaStart; any number of
// DeltaText, DeltaToolCall and DeltaToolArgs; one DeltaDone; then io.EOF. Any other error
// ends the stream and is returned again by later calls. Close releases the upstream request
// at once, and may be called at any time, more than once.
type Stream interface {
	Next() (Delta, error)
	Close() error
}

// DeltaKind says what a Delta carries.
type DeltaKind uint8

const (
	// DeltaStart opens the answer: ID, Model, and the input tokens when the upstream says
	// them up front (Anthropic does, OpenAI does not).
	DeltaStart DeltaKind = iota + 1
	// DeltaText is a fragment of the answer's text, in Text.
	DeltaText
	// DeltaToolCall opens tool call number Index (0, 1, … in order of appearance) with
	// ToolCall.ID and ToolCall.Name; its arguments follow as DeltaToolArgs.
	DeltaToolCall
	// DeltaToolArgs is a fragment of the JSON arguments of tool call Index, in Text.
	DeltaToolArgs
	// DeltaDone closes the answer with StopReason, StopSequence and the whole Usage.
	DeltaDone
)

// String names the kind for logs and test failures.
func (k DeltaKind) String() string {
	switch k {
	case DeltaStart:
		return "start"
	case DeltaText:
		return "text"
	case DeltaToolCall:
		return "tool_call"
	case DeltaToolArgs:
		return "tool_args"
	case DeltaDone:
		return "done"
	}
	return "unknown"
}

// Delta is one step of a Stream. Which fields are set depends on Kind.
type Delta struct {
	Kind DeltaKind
	// ID and Model are set on DeltaStart.
	ID    string
	Model string
	// Text is the fragment of DeltaText and DeltaToolArgs.
	Text string
	// Index numbers the tool call of DeltaToolCall and DeltaToolArgs.
	Index int
	// ToolCall has the ID and Name of DeltaToolCall.
	ToolCall     ToolCall
	StopReason   StopReason
	StopSequence string
	Usage        Usage
}

// Collect reads a stream to its end into a Response, and closes it.
func Collect(s Stream) (*Response, error) {
	defer s.Close()
	resp := &Response{}
	var text strings.Builder
	var args []strings.Builder
	for {
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch d.Kind {
		case DeltaStart:
			resp.ID, resp.Model, resp.Usage = d.ID, d.Model, d.Usage
		case DeltaText:
			text.WriteString(d.Text)
		case DeltaToolCall:
			for len(resp.ToolCalls) <= d.Index {
				resp.ToolCalls = append(resp.ToolCalls, ToolCall{})
				args = append(args, strings.Builder{})
			}
			resp.ToolCalls[d.Index].ID, resp.ToolCalls[d.Index].Name = d.ToolCall.ID, d.ToolCall.Name
		case DeltaToolArgs:
			if d.Index < len(args) {
				args[d.Index].WriteString(d.Text)
			}
		case DeltaDone:
			resp.StopReason, resp.StopSequence, resp.Usage = d.StopReason, d.StopSequence, d.Usage
		}
	}
	resp.Content = text.String()
	for i := range resp.ToolCalls {
		resp.ToolCalls[i].Arguments = args[i].String()
	}
	return resp, nil
}

// StreamResponse plays a complete answer as a Stream: one text delta, one start and one
// arguments delta per tool call. It serves an upstream that answered a streaming request
// with plain JSON, and anything that has a whole answer to stream.
func StreamResponse(resp *Response) Stream {
	ds := make([]Delta, 0, 3+2*len(resp.ToolCalls))
	ds = append(ds, Delta{Kind: DeltaStart, ID: resp.ID, Model: resp.Model, Usage: Usage{InputTokens: resp.Usage.InputTokens}})
	if resp.Content != "" {
		ds = append(ds, Delta{Kind: DeltaText, Text: resp.Content})
	}
	for i, tc := range resp.ToolCalls {
		ds = append(ds, Delta{Kind: DeltaToolCall, Index: i, ToolCall: ToolCall{ID: tc.ID, Name: tc.Name}})
		if tc.Arguments != "" {
			ds = append(ds, Delta{Kind: DeltaToolArgs, Index: i, Text: tc.Arguments})
		}
	}
	ds = append(ds, Delta{Kind: DeltaDone, StopReason: resp.StopReason, StopSequence: resp.StopSequence, Usage: resp.Usage})
	return &sliceStream{deltas: ds}
}

type sliceStream struct {
	deltas []Delta
}

func (s *sliceStream) Next() (Delta, error) {
	if len(s.deltas) == 0 {
		return Delta{}, io.EOF
	}
	d := s.deltas[0]
	s.deltas = s.deltas[1:]
	return d, nil
}

func (s *sliceStream) Close() error {
	s.deltas = nil
	return nil
}
