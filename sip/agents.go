package sip

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/store"
)

// StoreAgents is the Agents of a node: it loads the agent a call is routed to from st and
// hands the call to answer, the agents' runtime (which sip does not know).
func StoreAgents(st *store.Store, answer func(ctx context.Context, c *Call, ag *store.Agent)) Agents {
	return storeAgents{st: st, answer: answer}
}

type storeAgents struct {
	st     *store.Store
	answer func(ctx context.Context, c *Call, ag *store.Agent)
}

// AgentHandler implements Agents.
func (a storeAgents) AgentHandler(ctx context.Context, tenantID, agentID string) (Handler, error) {
	ag, err := store.Get[store.Agent](ctx, a.st, tenantID, agentID)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return agentHandler{ag: ag, answer: a.answer}, nil
}

// agentHandler answers a call with its agent, whose settings (its recording) the call
// reads through AgentOf.
type agentHandler struct {
	ag     *store.Agent
	answer func(ctx context.Context, c *Call, ag *store.Agent)
}

func (h agentHandler) ServeCall(ctx context.Context, c *Call) { h.answer(ctx, c, h.ag) }

// AgentOf is the agent a handler answers with, or nil (a built-in destination).
func AgentOf(h Handler) *store.Agent {
	if a, ok := h.(agentHandler); ok {
		return a.ag
	}
	return nil
}
