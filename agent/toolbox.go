package agent

import (
	"context"
	"errors"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// Toolbox is an agent's tools for a brain that talks to its model itself, a speech-to-speech
// model whose function calls arrive over its own socket: the same tools the LLM brain
// offers (the agent's webhooks, knowledge search, end_call, transfer_call, send_dtmf), run
// the same way, each recorded on the conversation as the LLM brain records it.
type Toolbox struct{ b *LLMBrain }

// NewToolbox is the toolbox of cfg's agent. Knowledge in auto mode is offered as the
// knowledge_search tool: a model that is not asked turn by turn has no system prompt to
// put the chunks in. No filler phrase is said: the model speaks for itself while it waits.
func NewToolbox(cfg LLMBrainConfig) *Toolbox {
	if cfg.Agent != nil && cfg.Agent.Knowledge.WithDefaults().Mode == store.KnowledgeAuto {
		ag := *cfg.Agent
		ag.Knowledge.Mode = store.KnowledgeTool
		cfg.Agent = &ag
	}
	cfg.FillerDelay = -1
	return &Toolbox{b: newLLMBrain(cfg)}
}

// Tools are the tools to offer the model.
func (t *Toolbox) Tools() []llm.Tool { return t.b.tools }

// Run runs one function call of the model and returns its result for the model (an error
// of the tool is a result too: "Error: …"). ended says the call is over (end_call hung up,
// transfer_call handed the caller on); err is the conversation ending (ErrHangup, ctx).
func (t *Toolbox) Run(ctx context.Context, c Conversation, call llm.ToolCall) (result string, ended bool, err error) {
	msgs, err := t.b.runTools(ctx, c, []llm.ToolCall{call})
	switch {
	case errors.Is(err, errCallEnded):
		return "", true, nil
	case err != nil:
		return "", false, err
	case len(msgs) == 0:
		return "ok", false, nil
	}
	return msgs[0].Text(), false, nil
}
