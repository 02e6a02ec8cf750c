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
	return HandlerFunc(func(ctx context.Context, c *Call) { a.answer(ctx, c, ag) }), nil
}
