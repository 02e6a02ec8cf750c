package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// The sessions of the canonical surface: text conversations with agents that the server
// keeps (see package session). One handler serves Agent Studio's clients and Alumia's: a
// create takes either's body, and every answer is a superset both read.

// Bounds of a page of a session's messages.
const (
	DefaultMessagePage = 200
	MaxMessagePage     = 500
)

// SessionRequest is what a client sends to create or change a session. Agent Studio's
// clients send agent_id and label (or name); Alumia's send agentId and label.
type SessionRequest struct {
	AgentID      *string        `json:"agent_id,omitempty"`
	AgentIDCamel *string        `json:"agentId,omitempty"`
	Label        *string        `json:"label,omitempty"`
	Name         *string        `json:"name,omitempty"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	// Status "closed" closes the session (PATCH only); a closed session cannot reopen.
	Status *string `json:"status,omitempty"`
}

// SessionOut is a session as every surface answers it: the canonical snake_case fields and
// the camelCase ones Alumia's client reads.
type SessionOut struct {
	*store.Session
	Name              string     `json:"name"`
	AgentIDCamel      *string    `json:"agentId"`
	MessageCountCamel int        `json:"messageCount"`
	CreatedAtCamel    time.Time  `json:"createdAt"`
	UpdatedAtCamel    time.Time  `json:"updatedAt"`
	ClosedAtCamel     *time.Time `json:"closedAt"`
}

func sessionOut(s *store.Session) SessionOut {
	return SessionOut{Session: s, Name: s.Label, AgentIDCamel: s.AgentID, MessageCountCamel: s.MessageCount,
		CreatedAtCamel: s.CreatedAt, UpdatedAtCamel: s.UpdatedAt, ClosedAtCamel: s.ClosedAt}
}

// MessageRequest is a user message sent to a session: content as text, or as parts (text
// and files), or parts.
type MessageRequest struct {
	// Role is "user" (the default); the agent makes the other roles.
	Role string `json:"role,omitempty"`
	// Content is the message's text, or an array of parts ({"type":"text","text"} or
	// {"type":"file","url","media_type","filename"}).
	Content  json.RawMessage     `json:"content,omitempty"`
	Parts    []store.MessagePart `json:"parts,omitempty"`
	Metadata map[string]any      `json:"metadata,omitempty"`
}

// MessageOut is a stored message in the canonical shape: the stored fields, and its text
// joined as content for clients that read only that.
type MessageOut struct {
	*store.SessionMessage
	Content string `json:"content"`
}

// MessagePageOut is a page of a session's history: the canonical list envelope (total is the
// session's message count), and the cursor of the next page.
type MessagePageOut struct {
	Items      []any   `json:"items"`
	Total      int     `json:"total"`
	Limit      int     `json:"limit"`
	Offset     int     `json:"offset"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
	// NextCursorCamel is next_cursor for Alumia's client.
	NextCursorCamel *string `json:"nextCursor"`
}

// MessageCount is the answer of ?countOnly=true.
type MessageCount struct {
	Count int `json:"count"`
	Total int `json:"total"`
}

// TurnOut is the JSON answer of a message sent: the stored user message and the stored
// answer (also as messages, the assistant messages the message added).
type TurnOut struct {
	SessionID     string `json:"session_id"`
	SessionStatus string `json:"session_status"`
	UserMessage   any    `json:"user_message"`
	Message       any    `json:"message"`
	Messages      []any  `json:"messages"`
}

// CancelOut answers a cancel.
type CancelOut struct {
	SessionID string `json:"session_id"`
	Canceled  bool   `json:"canceled"`
}

var sessionQuery = append([]param{
	{Name: "agent_id", Description: "Only sessions of this agent"},
	{Name: "status", Description: "Only sessions of this status: active or closed"},
}, pageQuery...)

var messageQuery = []param{
	{Name: "cursor", Description: "A message ID: the page starts after it (the last page's next_cursor)"},
	{Name: "pageSize", Description: "Messages per page, 1 to 500 (default 200); limit is the same", Integer: true},
	{Name: "limit", Description: "Same as pageSize", Integer: true},
	{Name: "offset", Description: "Messages to skip (after the cursor, if any); the cursor is cheaper on long sessions", Integer: true},
	{Name: "countOnly", Description: "true: answer {count} without the messages"},
}

func (s *Server) sessionRoutes() []route {
	const tag = "Sessions"
	item := "/api/v1/sessions/{id}"
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/sessions", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusCreated,
			Summary: "Create a session with an agent (agent_id or agentId; label or name; metadata)",
			Request: SessionRequest{}, Response: SessionOut{}, Handle: s.createSession},
		{Method: http.MethodGet, Path: "/api/v1/sessions", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List sessions, newest first", Query: sessionQuery, Response: List[SessionOut]{}, Handle: s.listSessions},
		{Method: http.MethodGet, Path: item, Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a session", Response: SessionOut{}, Handle: s.getSession},
		{Method: http.MethodPatch, Path: item, Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Change a session's label or metadata, or close it (status: closed)", Request: SessionRequest{}, Response: SessionOut{}, Handle: s.updateSession},
		{Method: http.MethodDelete, Path: item, Tag: tag, Scope: store.ScopeWrite, Status: http.StatusNoContent,
			Summary: "Delete a session and its messages (an answer being made is canceled)", Handle: s.deleteSession},
		{Method: http.MethodGet, Path: item + "/messages", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "A page of the session's messages, oldest first (cursor, pageSize ≤ 500, countOnly)", Query: messageQuery,
			Response: MessagePageOut{}, Handle: s.listSessionMessages},
		{Method: http.MethodPost, Path: item + "/messages", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Send a user message; the agent's answer comes back as JSON once stored, or as Server-Sent Events while it is made (Accept: text/event-stream). 409 while the last message is still being answered",
			Request: MessageRequest{}, Response: TurnOut{}, Handle: s.sendSessionMessage},
		{Method: http.MethodPost, Path: item + "/cancel", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary:  "Stop the answer being made (the model's request is closed; what was made is stored as canceled); 409 when none is",
			Response: CancelOut{}, Handle: s.cancelSession},
	}
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req SessionRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	if req.Status != nil {
		return errValidation("status", "cannot be set on create: a session starts active")
	}
	sess := store.NewSession()
	switch {
	case req.AgentID != nil && req.AgentIDCamel != nil && *req.AgentID != *req.AgentIDCamel:
		return errValidation("agent_id", "and agentId name different agents")
	case req.AgentID != nil:
		sess.AgentID = req.AgentID
	case req.AgentIDCamel != nil:
		sess.AgentID = req.AgentIDCamel
	}
	if sess.AgentID == nil || strings.TrimSpace(*sess.AgentID) == "" {
		return errValidation("agent_id", "is required: the agent that answers the session")
	}
	if err := applySessionFields(sess, &req); err != nil {
		return err
	}
	if err := s.sessions.Create(r.Context(), p.TenantID, sess, session.Creator{KeyID: p.KeyID, UserID: p.UserID}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sessionOut(sess))
	return nil
}

// applySessionFields sets what a create or PATCH may change.
func applySessionFields(sess *store.Session, req *SessionRequest) error {
	switch {
	case req.Label != nil && req.Name != nil && *req.Label != *req.Name:
		return errValidation("label", "and name differ: send one of them")
	case req.Label != nil:
		sess.Label = *req.Label
	case req.Name != nil:
		sess.Label = *req.Name
	}
	if req.Metadata != nil {
		sess.Meta = req.Metadata
	}
	return nil
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.SessionFilter{AgentID: q.Get("agent_id"), Status: q.Get("status")}
	if f.Status != "" && f.Status != store.SessionActive && f.Status != store.SessionClosed {
		return errValidation("status", "must be one of active, closed")
	}
	if f.AgentID != "" && !strings.HasPrefix(f.AgentID, "agt_") {
		return errValidation("agent_id", "is not an agent ID")
	}
	items, total, err := s.sessions.List(r.Context(), p.TenantID, f, page)
	if err != nil {
		return err
	}
	out := List[SessionOut]{Items: make([]SessionOut, len(items)), Total: total, Limit: page.Limit, Offset: page.Offset}
	for i := range items {
		out.Items[i] = sessionOut(&items[i])
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// session reads the session a path names; another tenant's is not found.
func (s *Server) session(ctx context.Context, p *Principal, id string) (*store.Session, error) {
	sess, err := s.sessions.Get(ctx, p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Session")
	}
	return sess, err
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, err := s.session(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionOut(sess))
	return nil
}

func (s *Server) updateSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req SessionRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	sess, err := s.session(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if (req.AgentID != nil && (sess.AgentID == nil || *req.AgentID != *sess.AgentID)) ||
		(req.AgentIDCamel != nil && (sess.AgentID == nil || *req.AgentIDCamel != *sess.AgentID)) {
		return errValidation("agent_id", "cannot change: a session keeps its agent")
	}
	if err := applySessionFields(sess, &req); err != nil {
		return err
	}
	if req.Status != nil {
		if *req.Status != store.SessionActive && *req.Status != store.SessionClosed {
			return errValidation("status", "must be one of active, closed")
		}
		sess.Status = *req.Status
	}
	if err := s.sessions.Update(r.Context(), p.TenantID, sess); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Session")
		}
		return err
	}
	writeJSON(w, http.StatusOK, sessionOut(sess))
	return nil
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := s.sessions.Delete(r.Context(), p.TenantID, r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Session")
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// messagePage reads cursor, pageSize (or limit) and offset, each refused by name.
func messagePage(r *http.Request) (session.MessagePage, error) {
	q := r.URL.Query()
	p := session.MessagePage{Limit: DefaultMessagePage, Cursor: q.Get("cursor")}
	for _, name := range []string{"limit", "pageSize"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxMessagePage {
			return p, errValidation(name, "must be an integer from 1 to %d", MaxMessagePage)
		}
		p.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return p, errValidation("offset", "must be a non-negative integer")
		}
		p.Offset = n
	}
	if p.Cursor != "" && !store.ValidMessageID(p.Cursor) {
		return p, errValidation("cursor", "is not a message ID (msg_…): pass the next_cursor of the last page")
	}
	return p, nil
}

func (s *Server) listSessionMessages(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := messagePage(r)
	if err != nil {
		return err
	}
	countOnly := false
	if v := r.URL.Query().Get("countOnly"); v != "" {
		if countOnly, err = strconv.ParseBool(v); err != nil {
			return errValidation("countOnly", "must be true or false")
		}
	}
	sess, err := s.session(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if countOnly {
		writeJSON(w, http.StatusOK, MessageCount{Count: sess.MessageCount, Total: sess.MessageCount})
		return nil
	}
	want := page.Limit
	page.Limit++ // one more says whether there is a next page
	msgs, err := s.sessions.Messages(r.Context(), p.TenantID, sess.ID, page)
	if err != nil {
		return err
	}
	sh := shapeOf(r)
	out := MessagePageOut{Items: []any{}, Total: sess.MessageCount, Limit: want, Offset: page.Offset}
	if len(msgs) > want {
		msgs, out.HasMore = msgs[:want], true
	}
	for i := range msgs {
		out.Items = append(out.Items, renderMessage(sh, &msgs[i]))
	}
	if out.HasMore {
		next := msgs[len(msgs)-1].ID
		out.NextCursor, out.NextCursorCamel = &next, &next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// messageShape is how a surface shows a session's messages.
type messageShape uint8

const (
	// shapeCanonical is MessageOut.
	shapeCanonical messageShape = iota
	// shapeUIMessage is the AI SDK's UIMessage, for Alumia's requests (alumia_messages.go).
	shapeUIMessage
)

// shapeOf decides the shape of the messages a request gets: the one place that tells
// surfaces apart for messages. An Alumia request (X-Alumia-Org, or an alm_ key) gets
// UIMessages.
func shapeOf(r *http.Request) messageShape {
	if isAlumia(r) {
		return shapeUIMessage
	}
	return shapeCanonical
}

// renderMessage is a stored message in a shape: the one place that decides a message's
// wire form.
func renderMessage(sh messageShape, m *store.SessionMessage) any {
	switch sh {
	case shapeUIMessage:
		return uiMessageOf(m)
	default:
		return MessageOut{SessionMessage: m, Content: m.Text()}
	}
}

// sessionInput reads a user message.
func sessionInput(body []byte) (session.Input, error) {
	var req MessageRequest
	if err := decodeInto(body, &req, false); err != nil {
		return session.Input{}, err
	}
	if req.Role != "" && req.Role != store.RoleUser {
		return session.Input{}, errValidation("role", "must be user: the agent makes the other messages")
	}
	in := session.Input{Parts: req.Parts, Meta: req.Metadata}
	if c := strings.TrimSpace(string(req.Content)); c != "" && c != "null" {
		if len(req.Parts) > 0 {
			return in, errValidation("content", "and parts cannot both be sent")
		}
		var text string
		if err := json.Unmarshal(req.Content, &text); err == nil {
			in.Parts = []store.MessagePart{{Type: store.PartText, Text: text}}
		} else if err := json.Unmarshal(req.Content, &in.Parts); err != nil {
			return in, errValidation("content", "must be a string or an array of parts")
		}
	}
	for i, p := range in.Parts {
		field := "parts[" + strconv.Itoa(i) + "]"
		switch p.Type {
		case store.PartText:
		case store.PartFile:
			if p.URL == "" {
				return in, errValidation(field+".url", "is required for a file")
			}
		default:
			return in, errValidation(field+".type", "must be text or file")
		}
	}
	if len(in.Parts) == 0 {
		return in, errValidation("content", "is required: the message's text")
	}
	return in, nil
}

// sessionError is the answer to what Begin refused.
// beginAnswer starts the answer to a new message of a session: the way every surface
// (canonical, WebSocket, AmaStudio, Alumia, Amplifier, Amarsia) has a session answered, so
// that none answers with a paid model once the tenant's balance is spent (402). The model
// is that of the version the input names (a deployment's), else the session's agent's.
func (s *Server) beginAnswer(ctx context.Context, tenantID string, sess *store.Session, in session.Input) (*session.Pending, error) {
	switch {
	case in.Version != nil && in.Version.Agent != nil:
		if err := s.checkBalance(ctx, tenantID, in.Version.Agent.Model); err != nil {
			return nil, err
		}
	case sess.AgentID != nil:
		if err := s.checkAgentBalance(ctx, tenantID, *sess.AgentID); err != nil {
			return nil, err
		}
	}
	return s.sessions.Begin(ctx, sess, in)
}

func sessionError(err error) error {
	switch {
	case errors.Is(err, session.ErrBusy):
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: "A message of this session is still being answered: wait for its answer, or cancel it (POST /api/v1/sessions/{id}/cancel), then send again"}
	case errors.Is(err, session.ErrClosed):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "The session is closed: it takes no more messages"}
	case errors.Is(err, session.ErrNoAgent):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "The session's agent was deleted: it cannot answer"}
	case errors.Is(err, session.ErrEmpty):
		return errValidation("content", "is empty: the message needs text or a file")
	case errors.Is(err, session.ErrShutdown):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: 5, Message: "This node is stopping; send the message again"}
	}
	return err
}

func (s *Server) sendSessionMessage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	id := r.PathValue("id")
	body, err := readBody(w, r)
	var in session.Input
	if err == nil {
		in, err = sessionInput(body)
	}
	if err != nil {
		// Another tenant's session is not found, whatever the body.
		if _, gerr := s.session(r.Context(), p, id); gerr != nil {
			return gerr
		}
		return err
	}
	// The session is read as the answer begins (on PostgreSQL, by the statement that claims
	// its answer lease), and checked before anything is asked of the model.
	sess, pending, err := s.sessions.BeginByID(r.Context(), p.TenantID, id, in, func(sess *store.Session) error { //nolint:contextcheck // the callback uses the request's context
		if sess.AgentID == nil {
			return nil
		}
		return s.checkAgentBalance(r.Context(), p.TenantID, *sess.AgentID)
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Session")
	}
	if err != nil {
		return sessionError(err)
	}
	sh := shapeOf(r)
	if wantsEventStream(r) {
		_, _ = pending.Stream(r.Context(), newSessionSSE(w, sh))
		return nil
	}
	turn, err := pending.Stream(r.Context(), nil)
	if err != nil {
		return nil // the client is gone; the answer is stored all the same
	}
	if turn.Answer.Status == store.MessageFailed {
		return &Error{Status: http.StatusBadGateway, Code: "upstream_error",
			Message: "The agent could not answer: " + turn.Answer.Error + " (the message and the failed answer " + turn.Answer.ID + " are stored)"}
	}
	status := sess.Status
	if turn.Closed {
		status = store.SessionClosed
	}
	answer := renderMessage(sh, turn.Answer)
	writeJSON(w, http.StatusOK, TurnOut{SessionID: sess.ID, SessionStatus: status, UserMessage: renderMessage(sh, turn.User),
		Message: answer, Messages: []any{answer}})
	return nil
}

var errClientGone = errors.New("api: the client went away")

// sessionSSE writes an answer's events as Server-Sent Events (event: <type>, data: the
// canonical event), the events that were ready together in one write.
type sessionSSE struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sh  messageShape
	buf bytes.Buffer
	enc *json.Encoder
}

func newSessionSSE(w http.ResponseWriter, sh messageShape) *sessionSSE {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sessionSSE{w: w, rc: http.NewResponseController(w), sh: sh}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	return s
}

func (s *sessionSSE) Event(ev *session.Event) error {
	s.buf.WriteString("event: ")
	s.buf.WriteString(string(ev.Type))
	s.buf.WriteString("\ndata: ")
	if err := s.enc.Encode(renderEvent(s.sh, ev)); err != nil { // Encode ends with a newline
		return err
	}
	s.buf.WriteByte('\n')
	return nil
}

func (s *sessionSSE) Flush() error {
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	if err != nil {
		return errClientGone
	}
	if err := s.rc.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// wantsEventStream reports whether the client asked for Server-Sent Events.
func wantsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// SessionEvent is one event of an answer as the canonical surface streams it (the SSE
// event's data; the SSE event name is its type).
type SessionEvent struct {
	Type       string          `json:"type"`
	SessionID  string          `json:"session_id"`
	MessageID  string          `json:"message_id"`
	PartID     string          `json:"part_id,omitempty"`
	Delta      string          `json:"delta,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
	ToolName   string          `json:"tool_name,omitempty"`
	Arguments  string          `json:"arguments,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Output     *string         `json:"output,omitempty"`
	IsError    bool            `json:"is_error,omitempty"`
	Step       int             `json:"step,omitempty"`
	// FinishReason, Usage, CostUSD and Model end a step or the answer.
	FinishReason string        `json:"finish_reason,omitempty"`
	Usage        *SessionUsage `json:"usage,omitempty"`
	CostUSD      *float64      `json:"cost_usd,omitempty"`
	Model        string        `json:"model,omitempty"`
	Error        string        `json:"error,omitempty"`
	UserMessage  any           `json:"user_message,omitempty"`
	Message      any           `json:"message,omitempty"`
}

// SessionUsage is an answer's tokens.
type SessionUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// renderEvent is an answer's event in the canonical shape, its messages in sh.
func renderEvent(sh messageShape, ev *session.Event) SessionEvent {
	out := SessionEvent{Type: string(ev.Type), SessionID: ev.SessionID, MessageID: ev.MessageID, PartID: ev.PartID,
		ToolCallID: ev.ToolCallID, ToolName: ev.ToolName, Input: ev.Input, IsError: ev.IsError, Step: ev.Step,
		FinishReason: ev.FinishReason, Error: ev.Error}
	switch ev.Type {
	case session.EventTextDelta:
		out.Delta = ev.Text
	case session.EventToolInputDelta:
		out.Delta = ev.Arguments
	case session.EventToolInputAvailable:
		out.Arguments = ev.Arguments
	case session.EventToolOutput:
		o := ev.Output
		out.Output = &o
	case session.EventStart:
		out.UserMessage = renderMessage(sh, ev.User)
	case session.EventFinish:
		cost := ev.CostUSD
		out.Usage, out.CostUSD, out.Model = &SessionUsage{InputTokens: ev.Usage.InputTokens, OutputTokens: ev.Usage.OutputTokens}, &cost, ev.Model
		out.Message = renderMessage(sh, ev.Answer)
	}
	return out
}

func (s *Server) cancelSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sess, err := s.session(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.sessions.Cancel(r.Context(), p.TenantID, sess.ID); err != nil {
		if errors.Is(err, session.ErrNotAnswering) {
			return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "No answer of this session is being made"}
		}
		return err
	}
	writeJSON(w, http.StatusOK, CancelOut{SessionID: sess.ID, Canceled: true})
	return nil
}

// sessionPublisher carries the engine's events to the hub.
type sessionPublisher struct{ s *Server }

func (sp sessionPublisher) PublishSession(ctx context.Context, tenantID string, topics []string, typ string, data any) {
	for _, t := range topics {
		sp.s.publish(ctx, tenantID, t, typ, data)
	}
}
