package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// Amplifier's sessions: a session made from a config is a store session with the config's
// agent (and the config's ID in its metadata), answered by the same engine and visible at
// /api/v1/sessions. The stream is Amplifier's SSE: data-only events typed in their JSON.

// AmplifierSessionRequest makes a session from a config.
type AmplifierSessionRequest struct {
	ConfigID *string `json:"config_id"`
}

// AmplifierSessionOut is a session as Amplifier answers it.
type AmplifierSessionOut struct {
	SessionID    string    `json:"session_id"`
	ConfigID     *string   `json:"config_id"`
	AgentID      *string   `json:"agent_id"`
	Status       string    `json:"status"`
	MessageCount int       `json:"message_count"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Message      string    `json:"message,omitempty"`
}

// AmplifierSessionList is a page of the tenant's sessions, newest first.
type AmplifierSessionList struct {
	Sessions []AmplifierSessionOut `json:"sessions"`
	Total    int                   `json:"total"`
}

// AmplifierMessageRequest is a message to a session: its text, and a context object kept
// with the message as its metadata.
type AmplifierMessageRequest struct {
	Message *string        `json:"message"`
	Context map[string]any `json:"context"`
}

// AmplifierReply is the answer to a message.
type AmplifierReply struct {
	SessionID string         `json:"session_id"`
	Response  string         `json:"response"`
	Metadata  map[string]any `json:"metadata"`
}

// AmplifierCancelOut answers a cancel: whether an answer was being made and was stopped.
type AmplifierCancelOut struct {
	Message   string `json:"message"`
	SessionID string `json:"session_id"`
	Cancelled bool   `json:"cancelled"`
}

func amplifierSessionOut(s *store.Session, msg string) AmplifierSessionOut {
	out := AmplifierSessionOut{SessionID: s.ID, AgentID: s.AgentID, Status: s.Status, MessageCount: s.MessageCount,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Message: msg}
	if id, ok := s.Meta[store.AmplifierConfigMeta].(string); ok {
		out.ConfigID = &id
	}
	return out
}

func (s *Server) amplifierSessionRoutes() []route {
	const tag = "Amplifier sessions"
	item := "/sessions/{id}"
	return []route{
		{Method: http.MethodPost, Path: "/sessions", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusCreated,
			Summary: "Create a session from a config ({config_id}); it is a session of /api/v1/sessions with the config's agent",
			Request: AmplifierSessionRequest{}, Response: AmplifierSessionOut{}, Handle: s.amplifierCreateSession},
		{Method: http.MethodGet, Path: "/sessions", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List the tenant's sessions, newest first, with their message counts (config_id is null for a session not made from a config)",
			Query:   amplifierPageQuery, Response: AmplifierSessionList{}, Handle: s.amplifierListSessions},
		{Method: http.MethodGet, Path: item, Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a session", Response: AmplifierSessionOut{}, Handle: s.amplifierGetSession},
		{Method: http.MethodDelete, Path: item, Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Delete a session and its messages (an answer being made is stopped first)", Response: AmplifierMessage{}, Handle: s.amplifierDeleteSession},
		{Method: http.MethodPost, Path: item + "/resume", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Resume a session: it takes messages again with its history (409 for a closed session)", Response: AmplifierSessionOut{}, Handle: s.amplifierResumeSession},
		{Method: http.MethodPost, Path: item + "/messages", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Send a message ({message, context}); the answer once it is stored. 409 while another is being answered, 502 when the model failed",
			Request: AmplifierMessageRequest{}, Response: AmplifierReply{}, Handle: s.amplifierSendMessage},
		{Method: http.MethodPost, Path: item + "/stream", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK, Raw: true, ContentType: "text/event-stream",
			Summary: "Send a message and stream the answer as Server-Sent Events: connected, provider:stream:delta ({data:{content}}), tool:pre and tool:post, then response (or error, or cancelled), then done",
			Request: AmplifierMessageRequest{}, Handle: s.amplifierStreamMessage},
		{Method: http.MethodPost, Path: item + "/cancel", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary:  "Stop the answer being made: the model's request is closed upstream, the stream ends, and what was said so far is stored as canceled",
			Response: AmplifierCancelOut{}, Handle: s.amplifierCancel},
	}
}

var errSessionNotFound = errDetail(http.StatusNotFound, "Session not found")

func (s *Server) amplifierSession(ctx context.Context, p *Principal, id string) (*store.Session, error) {
	sess, err := s.sessions.Get(ctx, p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errSessionNotFound
	}
	return sess, err
}

func (s *Server) amplifierCreateSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req AmplifierSessionRequest
	if err := decodeFastAPI(body, &req); err != nil {
		return err
	}
	if req.ConfigID == nil || strings.TrimSpace(*req.ConfigID) == "" {
		return errFields(store.FieldError{Field: "config_id", Message: "is required: the config the session runs"})
	}
	c, err := s.amplifierConfig(r.Context(), p, *req.ConfigID)
	if err != nil {
		return err
	}
	if c.AgentID == nil {
		return errDetail(http.StatusConflict, "The config's agent was deleted: PUT the config to make it again")
	}
	sess := store.NewSession()
	sess.AgentID, sess.Label = c.AgentID, c.Name
	sess.Meta[store.AmplifierConfigMeta] = c.ID
	if err := s.sessions.Create(r.Context(), p.TenantID, sess, sessionCreator(p)); err != nil {
		var ve *store.ValidationError
		if errors.As(err, &ve) && ve.Fields[0].Field == "agent_id" {
			return errDetail(http.StatusConflict, "The config's agent was deleted: PUT the config to make it again")
		}
		return err
	}
	writeJSON(w, http.StatusCreated, amplifierSessionOut(sess, "Session created successfully"))
	return nil
}

func (s *Server) amplifierListSessions(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := amplifierPage(r)
	if err != nil {
		return err
	}
	items, total, err := s.sessions.List(r.Context(), p.TenantID, store.SessionFilter{}, page)
	if err != nil {
		return err
	}
	out := AmplifierSessionList{Sessions: make([]AmplifierSessionOut, len(items)), Total: total}
	for i := range items {
		out.Sessions[i] = amplifierSessionOut(&items[i], "")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) amplifierGetSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, err := s.amplifierSession(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, amplifierSessionOut(sess, ""))
	return nil
}

func (s *Server) amplifierDeleteSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := s.sessions.Delete(r.Context(), p.TenantID, r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errSessionNotFound
		}
		return err
	}
	writeJSON(w, http.StatusOK, AmplifierMessage{Message: "Session deleted successfully"})
	return nil
}

func (s *Server) amplifierResumeSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, err := s.amplifierSession(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	switch {
	case sess.Status != store.SessionActive:
		return errDetail(http.StatusConflict, "The session is closed: it cannot be resumed; create a new session from its config")
	case sess.AgentID == nil:
		return errDetail(http.StatusConflict, "The session's agent was deleted: it cannot answer; create a new session")
	}
	writeJSON(w, http.StatusOK, amplifierSessionOut(sess, "Session resumed successfully"))
	return nil
}

// amplifierBegin reads a message and starts its answer; every refusal comes before anything
// is stored or streamed.
func (s *Server) amplifierBegin(w http.ResponseWriter, r *http.Request, p *Principal) (*store.Session, *session.Pending, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	// An unknown session (another tenant's among them) is a 404 whatever the body says.
	sess, err := s.amplifierSession(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return nil, nil, err
	}
	var req AmplifierMessageRequest
	if err := decodeFastAPI(body, &req); err != nil {
		return nil, nil, err
	}
	if req.Message == nil {
		return nil, nil, errFields(store.FieldError{Field: "message", Message: "is required: the message's text"})
	}
	if strings.TrimSpace(*req.Message) == "" {
		return nil, nil, errFields(store.FieldError{Field: "message", Message: "must not be empty"})
	}
	in := session.TextInput(*req.Message)
	if len(req.Context) > 0 {
		in.Meta = map[string]any{"context": req.Context}
	}
	pending, err := s.beginAnswer(r.Context(), p.TenantID, sess, in)
	if err != nil {
		return nil, nil, amplifierSessionError(err)
	}
	return sess, pending, nil
}

// amplifierSessionError is the answer to what Begin refused, in Amplifier's words.
func amplifierSessionError(err error) error {
	switch {
	case errors.Is(err, session.ErrBusy):
		return errDetail(http.StatusConflict, "A message of this session is still being answered: wait for it, or cancel it (POST /sessions/{id}/cancel)")
	case errors.Is(err, session.ErrClosed):
		return errDetail(http.StatusConflict, "The session is closed: it takes no more messages")
	case errors.Is(err, session.ErrNoAgent):
		return errDetail(http.StatusConflict, "The session's config or agent was deleted: it cannot answer")
	case errors.Is(err, session.ErrEmpty):
		return errFields(store.FieldError{Field: "message", Message: "must not be empty"})
	}
	return sessionError(err)
}

func (s *Server) amplifierSendMessage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, pending, err := s.amplifierBegin(w, r, p)
	if err != nil {
		return err
	}
	turn, err := pending.Stream(r.Context(), nil)
	if err != nil {
		return nil // the client is gone; the answer is stored all the same
	}
	a := turn.Answer
	if a.Status == store.MessageFailed {
		return errDetail(http.StatusBadGateway, "The model could not answer: "+a.Error+" (the message and the failed answer "+a.ID+" are stored)")
	}
	meta := map[string]any{"message_id": a.ID, "model": a.Model, "finish_reason": a.FinishReason, "status": a.Status,
		"input_tokens": a.InputTokens, "output_tokens": a.OutputTokens}
	if id, ok := sess.Meta[store.AmplifierConfigMeta].(string); ok {
		meta["config_id"] = id
	}
	writeJSON(w, http.StatusOK, AmplifierReply{SessionID: sess.ID, Response: a.Text(), Metadata: meta})
	return nil
}

func (s *Server) amplifierStreamMessage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, pending, err := s.amplifierBegin(w, r, p)
	if err != nil {
		return err
	}
	sse := newAmplifierSSE(w)
	sse.write(map[string]any{"type": "connected", "session_id": sess.ID})
	if sse.Flush() != nil {
		return nil
	}
	_, _ = pending.Stream(r.Context(), sse)
	return nil
}

func (s *Server) amplifierCancel(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, err := s.amplifierSession(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := AmplifierCancelOut{Message: "Cancellation requested", SessionID: sess.ID, Cancelled: true}
	if err := s.sessions.Cancel(r.Context(), p.TenantID, sess.ID); err != nil {
		if !errors.Is(err, session.ErrNotAnswering) {
			return err
		}
		// Nothing to stop (the answer may have ended a moment ago): not an error to a client
		// that cannot know.
		out.Message, out.Cancelled = "No operation in progress", false
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// amplifierSSE writes an answer as Amplifier streams it: "data: {json}" events with their
// type inside, those that were ready together in one write. The answer's error is told at
// its end, as error or, when a cancel stopped it, cancelled; done is always last.
type amplifierSSE struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
	enc *json.Encoder
	err string
}

func newAmplifierSSE(w http.ResponseWriter) *amplifierSSE {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	a := &amplifierSSE{w: w, rc: http.NewResponseController(w)}
	a.enc = json.NewEncoder(&a.buf)
	a.enc.SetEscapeHTML(false)
	return a
}

func (a *amplifierSSE) write(v any) {
	a.buf.WriteString("data: ")
	_ = a.enc.Encode(v) // maps of strings and raw JSON always encode; Encode ends the line
	a.buf.WriteByte('\n')
}

func (a *amplifierSSE) Event(ev *session.Event) error {
	switch ev.Type {
	case session.EventTextDelta:
		a.write(map[string]any{"type": "provider:stream:delta", "data": map[string]any{"content": ev.Text}})
	case session.EventToolInputAvailable:
		in := ev.Input
		if len(in) == 0 {
			in = json.RawMessage("{}")
		}
		a.write(map[string]any{"type": "tool:pre", "data": map[string]any{"tool_name": ev.ToolName, "tool_call_id": ev.ToolCallID, "tool_input": in}})
	case session.EventToolOutput:
		a.write(map[string]any{"type": "tool:post", "data": map[string]any{"tool_name": ev.ToolName, "tool_call_id": ev.ToolCallID,
			"result": ev.Output, "is_error": ev.IsError}})
	case session.EventError:
		a.err = ev.Error
	case session.EventFinish:
		switch {
		case ev.FinishReason == session.FinishCanceled:
			a.write(map[string]any{"type": "cancelled", "session_id": ev.SessionID, "content": answerText(ev.Answer)})
		case a.err != "" || ev.FinishReason == session.FinishError:
			a.write(map[string]any{"type": "error", "error": a.err, "session_id": ev.SessionID})
		default:
			a.write(map[string]any{"type": "response", "content": answerText(ev.Answer), "session_id": ev.SessionID,
				"message_id": ev.MessageID, "model": ev.Model, "finish_reason": ev.FinishReason})
		}
		a.write(map[string]any{"type": "done"})
	}
	return nil
}

func answerText(m *store.SessionMessage) string {
	if m == nil {
		return ""
	}
	return m.Text()
}

func (a *amplifierSSE) Flush() error {
	if a.buf.Len() == 0 {
		return nil
	}
	_, err := a.w.Write(a.buf.Bytes())
	a.buf.Reset()
	if err != nil {
		return errClientGone
	}
	if err := a.rc.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// sessionCreator is who makes a session for a principal.
func sessionCreator(p *Principal) session.Creator {
	return session.Creator{KeyID: p.KeyID, UserID: p.UserID}
}
