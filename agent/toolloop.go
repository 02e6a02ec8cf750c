package agent

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// ToolFunc runs one tool call and returns its result for the model.
type ToolFunc func(ctx context.Context, arguments string) (string, error)

// MaxToolRounds bounds how many times the model may call tools before it must answer.
const MaxToolRounds = 8

// WithTools streams a model's answer while running the tools it calls that are in tools:
// their calls are not passed on; their results go back to the model, which is asked again,
// until it answers without calling one of them (or calls a tool the caller handles itself,
// which is passed on as usual). The caller sees one answer: one start, the text of every
// round, and the final round's end, with the usage of all rounds summed.
func WithTools(ctx context.Context, p llm.Provider, req *llm.Request, tools map[string]ToolFunc) (llm.Stream, error) {
	first, err := p.Stream(ctx, req)
	if err != nil {
		return nil, err
	}
	r := *req
	r.Messages = append([]llm.Message(nil), req.Messages...)
	return &toolStream{ctx: ctx, p: p, req: &r, tools: tools, cur: first}, nil
}

type toolStream struct {
	ctx   context.Context
	p     llm.Provider
	req   *llm.Request
	tools map[string]ToolFunc
	cur   llm.Stream

	started bool
	rounds  int
	usage   llm.Usage
	// This round's state: the text said, the calls made (by the upstream's index), and how
	// the caller's indexes of passed-on calls map from them.
	text     strings.Builder
	calls    []llm.ToolCall
	own      []bool
	outIndex map[int]int
	nextOut  int
	pending  []llm.Delta
	done     bool
}

func (t *toolStream) Next() (llm.Delta, error) {
	for {
		if len(t.pending) > 0 {
			d := t.pending[0]
			t.pending = t.pending[1:]
			return d, nil
		}
		if t.done {
			return llm.Delta{}, io.EOF
		}
		d, err := t.cur.Next()
		if errors.Is(err, io.EOF) {
			t.done = true
			continue
		}
		if err != nil {
			return llm.Delta{}, err
		}
		switch d.Kind {
		case llm.DeltaStart:
			if t.started {
				continue // one start for the whole answer
			}
			t.started = true
			return d, nil
		case llm.DeltaText:
			t.text.WriteString(d.Text)
			return d, nil
		case llm.DeltaToolCall:
			for len(t.calls) <= d.Index {
				t.calls = append(t.calls, llm.ToolCall{})
				t.own = append(t.own, false)
			}
			t.calls[d.Index].ID, t.calls[d.Index].Name = d.ToolCall.ID, d.ToolCall.Name
			if _, mine := t.tools[d.ToolCall.Name]; mine {
				t.own[d.Index] = true
				continue
			}
			if t.outIndex == nil {
				t.outIndex = map[int]int{}
			}
			t.outIndex[d.Index] = t.nextOut
			d.Index = t.nextOut
			t.nextOut++
			return d, nil
		case llm.DeltaToolArgs:
			if d.Index < len(t.calls) {
				t.calls[d.Index].Arguments += d.Text
				if t.own[d.Index] {
					continue
				}
				d.Index = t.outIndex[d.Index]
			}
			return d, nil
		case llm.DeltaDone:
			// A round's end carries its whole usage.
			t.usage.InputTokens += d.Usage.InputTokens
			t.usage.OutputTokens += d.Usage.OutputTokens
			if t.runsTools() {
				if err := t.nextRound(); err != nil {
					return llm.Delta{}, err
				}
				continue
			}
			d.Usage = t.usage
			return d, nil
		default:
			return d, nil
		}
	}
}

// runsTools reports whether this round ended calling tools of ours and of ours only.
func (t *toolStream) runsTools() bool {
	if len(t.calls) == 0 || t.rounds >= MaxToolRounds {
		return false
	}
	for _, own := range t.own {
		if !own {
			return false
		}
	}
	return true
}

// nextRound runs the round's tool calls, adds them and their results to the conversation,
// and asks the model again.
func (t *toolStream) nextRound() error {
	_ = t.cur.Close()
	t.rounds++
	assistant := llm.Message{Role: llm.RoleAssistant, ToolCalls: t.calls}
	if t.text.Len() > 0 {
		assistant.Content = []llm.Part{llm.TextPart(t.text.String())}
	}
	t.req.Messages = append(t.req.Messages, assistant)
	for _, c := range t.calls {
		out, err := t.tools[c.Name](t.ctx, c.Arguments)
		msg := llm.Message{Role: llm.RoleTool, ToolCallID: c.ID}
		if err != nil {
			msg.Content, msg.IsError = []llm.Part{llm.TextPart("Error: " + err.Error())}, true
		} else {
			msg.Content = []llm.Part{llm.TextPart(out)}
		}
		t.req.Messages = append(t.req.Messages, msg)
	}
	t.text.Reset()
	t.calls, t.own, t.outIndex, t.nextOut = nil, nil, nil, 0
	next, err := t.p.Stream(t.ctx, t.req)
	if err != nil {
		return err
	}
	t.cur = next
	return nil
}

func (t *toolStream) Close() error { return t.cur.Close() }
