package sip

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// StoreAgents is the Agents of a node: it loads the agent a call is routed to from st and
// hands the call to answer, the agents' runtime (which sip does not know). voice (nil: none)
// lends the agent's ears and voice to outbound calls' answering-machine detection.
func StoreAgents(st *store.Store, answer func(ctx context.Context, c *Call, ag *store.Agent), voice AgentVoice) Agents {
	return storeAgents{st: st, answer: answer, voice: voice}
}

type storeAgents struct {
	st     *store.Store
	answer func(ctx context.Context, c *Call, ag *store.Agent)
	voice  AgentVoice
}

// AgentHandler implements Agents.
func (a storeAgents) AgentHandler(ctx context.Context, tenantID, agentID string) (Handler, error) {
	ag, err := store.Get[store.Agent](ctx, a.st, tenantID, agentID)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return agentHandler{a: a, ag: ag}, nil
}

// AgentOf is the agent a handler answers with, or nil (a built-in destination).
func AgentOf(h Handler) *store.Agent {
	if a, ok := h.(agentHandler); ok {
		return a.ag
	}
	return nil
}

// agentHandler is an agent's handler of a call, which can also talk to an answering machine;
// the call reads its agent's settings (its recording) through AgentOf.
type agentHandler struct {
	a  storeAgents
	ag *store.Agent
}

func (h agentHandler) ServeCall(ctx context.Context, c *Call) { h.a.answer(ctx, c, h.ag) }

func (h agentHandler) transcribe(ctx context.Context, tenantID string, pcm []int16, rate int) (string, bool, error) {
	if h.a.voice == nil {
		return "", false, nil
	}
	return h.a.voice.TranscribeGreeting(ctx, tenantID, h.ag, pcm, rate)
}

func (h agentHandler) leaveMessage(ctx context.Context, s media.Stream, tenantID, text string) error {
	if h.a.voice == nil {
		return errNoVoice
	}
	return h.a.voice.LeaveMessage(ctx, s, tenantID, h.ag, text)
}
