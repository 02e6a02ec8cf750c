package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// AmaStudio's agent sessions: GET and POST /v1/agents/sessions and
// POST /v1/agents/sessions/{id}/messages, over the same engine and store as
// /api/v1/sessions, so a session made here is one there too. Bodies and answers are
// camelCase as AmaStudio's document writes them (agentId), with the canonical fields beside
// them; errors are AmaStudio's.

// amaSessionRequest is AmaStudio's body to create a session.
type amaSessionRequest struct {
	AgentID  string         `json:"agentId"`
	Name     string         `json:"name"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// amaSessionList is a page of the tenant's sessions, newest first.
type amaSessionList struct {
	Sessions []SessionOut `json:"sessions"`
	Total    int          `json:"total"`
	Limit    int          `json:"limit"`
	Offset   int          `json:"offset"`
}

// amaMessageRequest is AmaStudio's message: {"role":"user","content":"…"}.
type amaMessageRequest struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// amaAnswer is the agent's answer as AmaStudio's clients read it: a message in the
// document's shape (role "assistant", content), with the stored message's fields beside it
// (id, parts, status, finish_reason, model, tokens, cost), and the user message it answers.
type amaAnswer struct {
	MessageOut
	SessionIDCamel string     `json:"sessionId"`
	CreatedAtCamel time.Time  `json:"createdAt"`
	FinishCamel    string     `json:"finishReason"`
	SessionStatus  string     `json:"sessionStatus"`
	UserMessage    MessageOut `json:"userMessage"`
}

var amaSessionQuery = append([]param{
	{Name: "agentId", Description: "Only sessions of this agent"},
	{Name: "status", Description: "Only sessions of this status: active or closed"},
}, pageQuery...)

func (s *Server) amaSessionRoutes() []route {
	const tag = "AmaStudio agent sessions"
	return []route{
		{Method: http.MethodGet, Path: "/v1/agents/sessions", Tag: tag, Scope: store.ScopeRead, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "List the tenant's agent sessions, newest first (the sessions of /api/v1/sessions)", Query: amaSessionQuery,
			Response: amaSessionList{}, Handle: s.amaListSessions},
		{Method: http.MethodPost, Path: "/v1/agents/sessions", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectAmaStudio, Status: http.StatusCreated,
			Summary: "Create a session with an agent ({agentId, name})", Request: amaSessionRequest{}, Response: SessionOut{}, Handle: s.amaCreateSession},
		{Method: http.MethodPost, Path: "/v1/agents/sessions/{id}/messages", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "Send a user message ({role: user, content}); the agent's answer once it is stored. 409 while the last message is still being answered, 502 when the agent's model failed (both messages are stored)",
			Request: amaMessageRequest{}, Response: amaAnswer{}, Handle: s.amaSendMessage},
	}
}

func (s *Server) amaListSessions(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.SessionFilter{AgentID: q.Get("agentId"), Status: q.Get("status")}
	if f.Status != "" && f.Status != store.SessionActive && f.Status != store.SessionClosed {
		return errBadRequest("status", "must be one of active, closed")
	}
	items, total, err := s.sessions.List(r.Context(), p.TenantID, f, page)
	if err != nil {
		return err
	}
	out := amaSessionList{Sessions: make([]SessionOut, len(items)), Total: total, Limit: page.Limit, Offset: page.Offset}
	for i := range items {
		out.Sessions[i] = sessionOut(&items[i])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) amaCreateSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req amaSessionRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	id := strings.TrimSpace(req.AgentID)
	if id == "" {
		return errBadRequest("agentId", "is required: the agent that answers the session")
	}
	noAgent := &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "Agent " + id + " not found",
		Details: []store.FieldError{{Field: "agentId", Message: "no such agent"}}}
	if _, err := store.Get[store.Agent](r.Context(), s.store, p.TenantID, id); errors.Is(err, store.ErrNotFound) {
		return noAgent
	} else if err != nil {
		return err
	}
	sess := store.NewSession()
	sess.AgentID, sess.Label = &id, req.Name
	if req.Metadata != nil {
		sess.Meta = req.Metadata
	}
	err = s.sessions.Create(r.Context(), p.TenantID, sess, session.Creator{KeyID: p.KeyID, UserID: p.UserID})
	var ve *store.ValidationError
	switch {
	case errors.As(err, &ve):
		// The agent deleted since it was read, or a field out of bounds, named as AmaStudio
		// names it.
		for i := range ve.Fields {
			switch ve.Fields[i].Field {
			case "agent_id":
				return noAgent
			case "label":
				ve.Fields[i].Field = "name"
			}
		}
		return errBadRequest(ve.Fields[0].Field, ve.Fields[0].Message)
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusCreated, sessionOut(sess))
	return nil
}

func (s *Server) amaSendMessage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	// An unknown session (another tenant's among them) is a 404 whatever the body says.
	sess, err := s.session(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req amaMessageRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	switch {
	case req.Role != "" && req.Role != store.RoleUser:
		return errBadRequest("role", "must be user: the agent makes the other messages")
	case strings.TrimSpace(req.Content) == "":
		return errBadRequest("content", "is required: the message's text")
	}
	pending, err := s.beginAnswer(r.Context(), p.TenantID, sess, session.TextInput(req.Content))
	if err != nil {
		return sessionError(err)
	}
	turn, err := pending.Stream(r.Context(), nil)
	if err != nil {
		return nil // the client is gone; the answer is stored all the same
	}
	if turn.Answer.Status == store.MessageFailed {
		return &Error{Status: http.StatusBadGateway, Code: "upstream_error",
			Message: "Upstream provider error: the agent could not answer: " + turn.Answer.Error + " (the message and the failed answer " + turn.Answer.ID + " are stored)"}
	}
	status := sess.Status
	if turn.Closed {
		status = store.SessionClosed
	}
	a := turn.Answer
	writeJSON(w, http.StatusOK, amaAnswer{MessageOut: MessageOut{SessionMessage: a, Content: a.Text()},
		SessionIDCamel: a.SessionID, CreatedAtCamel: a.CreatedAt, FinishCamel: a.FinishReason, SessionStatus: status,
		UserMessage: MessageOut{SessionMessage: turn.User, Content: turn.User.Text()}})
	return nil
}
