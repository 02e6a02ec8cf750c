package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// AgentChange is the data of an agent.updated event.
type AgentChange struct {
	AgentID string `json:"agent_id"`
	// Action is created, updated or deleted.
	Action string       `json:"action"`
	Agent  *store.Agent `json:"agent,omitempty"`
}

// publish sends the event of a change a client made. It waits (briefly) for the event's
// place in the cluster's order, so that the client's next change, on whichever node, comes
// after it on every stream.
func (s *Server) publish(ctx context.Context, tenantID, topic, typ string, data any) {
	realtime.Changes{Hub: s.cfg.Hub, Log: s.log}.Publish(ctx, tenantID, topic, typ, data)
}

func (s *Server) streamRoutes() []route {
	if s.cfg.Streams == nil {
		return nil
	}
	const tag = "Realtime"
	return []route{
		{Method: http.MethodGet, Path: "/api/v1/events", Tag: tag, Scope: store.ScopeRead, QueryToken: true, Raw: true, Status: http.StatusOK,
			Summary: "Server-Sent Events of the tenant's topics (?topics=tenant,call:{id},session:{id},agent:{id},knowledge:{id}; resume with Last-Event-ID; the key may come as ?token=)",
			Query: []param{
				{Name: "topics", Description: "Comma-separated topics (default: tenant)"},
				{Name: "since", Description: "Resume after this event ID (or send Last-Event-ID)", Integer: true},
				{Name: "token", Description: "API key or access token, for clients that cannot set headers"},
			},
			Handle: func(w http.ResponseWriter, r *http.Request, p *Principal) error {
				s.cfg.Streams.ServeSSE(w, r, p.viewer(r))
				return nil
			}},
		{Method: http.MethodGet, Path: "/api/v1/ws", Tag: tag, Scope: store.ScopeRead, QueryToken: true, Raw: true, Status: http.StatusSwitchingProtocols,
			Summary: "WebSocket of JSON messages: subscribe/unsubscribe/ping and commands in; event, ack, error and pong out (the key may come as ?token=)",
			Query:   []param{{Name: "token", Description: "API key or access token, for browsers"}},
			Handle: func(w http.ResponseWriter, r *http.Request, p *Principal) error {
				s.cfg.Streams.ServeWS(w, r, p.viewer(r))
				return nil
			}},
	}
}

// TopicChecker lets a tenant watch the things it has: an agent or call topic of another
// tenant, or of no agent or call, is not found.
func TopicChecker(st *store.Store) realtime.TopicChecker {
	return func(ctx context.Context, tenantID, kind, id string) error {
		var err error
		switch kind {
		case "agent":
			_, err = store.Get[store.Agent](ctx, st, tenantID, id)
		case "call":
			_, err = store.Get[store.Call](ctx, st, tenantID, id)
		case "knowledge":
			_, err = store.Get[store.KnowledgeBase](ctx, st, tenantID, id)
		case "session":
			// Session topics are namespaced by tenant in the hub, so another tenant's
			// session events can never reach this one; a session not (yet) made is quiet.
			return nil
		default:
			return realtime.ErrTopicNotFound
		}
		if errors.Is(err, store.ErrNotFound) {
			return realtime.ErrTopicNotFound
		}
		return err
	}
}
