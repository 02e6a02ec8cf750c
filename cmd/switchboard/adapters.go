package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-go/switchboard/agent/voice"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// The small adapters serve wires between the parts.

// sipAgents hands SIP calls routed to an agent to the agents' runtime.
type sipAgents struct {
	st *store.Store
	rt *voice.Runtime
}

// AgentHandler implements sip.Agents.
func (a sipAgents) AgentHandler(ctx context.Context, tenantID, agentID string) (sip.Handler, error) {
	ag, err := store.Get[store.Agent](ctx, a.st, tenantID, agentID)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agentID, err)
	}
	return sip.HandlerFunc(func(ctx context.Context, c *sip.Call) { a.rt.Answer(ctx, c, ag) }), nil
}

// knowledgeEvents publishes knowledge.document.ready and .failed on the hub, after the
// commits that made them; a slow hub costs a document at most two seconds.
type knowledgeEvents struct {
	hub *realtime.Hub
	log *slog.Logger
}

func (e knowledgeEvents) Publish(ctx context.Context, tenantID, topic, typ string, data any) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := e.hub.PublishCommitted(ctx, tenantID, topic, typ, data); err != nil {
		e.log.Warn("event not published in order", "topic", topic, "type", typ, "err", err)
	}
}
