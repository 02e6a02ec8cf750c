package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// POST /api/v1/chat: Alumia's streaming chat. One user message is answered by the session's
// agent (the sessions engine, as on every surface) and the answer streams as the AI SDK's UI
// message stream (uistream.go).
//
// The body is {messages, sessionId, agentId, model, projectId}; useChat's default transport
// adds {id, trigger, messageId} and sends UIMessages ({id, role, parts}) where Alumia's
// document sends {role, content}: both are read. Only the last message is taken, and it must
// be the user's: with sessionId the history comes from storage, so a client that sends the
// whole conversation does not get its turns stored twice. Without sessionId a session of
// agentId is made, seeded with the earlier user and assistant messages the client sent, and
// its ID comes back in the x-session-id header and in the start chunk's message metadata.

// DefaultChatRateLimit is Alumia's chat requests a minute, per key or user and per client
// address.
const DefaultChatRateLimit = 60

// alumiaChatRequest is the body of POST /api/v1/chat. Fields it does not name are ignored:
// an AI SDK client may send what its page adds to the transport's body.
type alumiaChatRequest struct {
	Messages  []alumiaInMessage `json:"messages"`
	SessionID string            `json:"sessionId"`
	AgentID   string            `json:"agentId"`
	Model     string            `json:"model"`
	ProjectID string            `json:"projectId"`
	// ID is useChat's chat ID: taken as the session when it is one (ses_…) and sessionId is
	// not given. Trigger is submit-message (or absent); MessageID is useChat's.
	ID        string `json:"id"`
	Trigger   string `json:"trigger"`
	MessageID string `json:"messageId"`
}

// alumiaInMessage is a message as either client sends it: {role, content} with content a
// string or an array of parts, or a UIMessage {id, role, parts}.
type alumiaInMessage struct {
	ID      string          `json:"id"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Parts   []alumiaInPart  `json:"parts"`
}

// alumiaInPart is a part of a UIMessage, or of a content array: text, or a file by URL
// (data: URLs included). Other kinds of part (step-start, reasoning, tools, data-…) carry
// nothing a user's new message needs, and are skipped.
type alumiaInPart struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	URL       string `json:"url"`
	MediaType string `json:"mediaType"`
	Filename  string `json:"filename"`
	// Image is an image part of a content array ({type:"image", image:URL}).
	Image string `json:"image"`
}

// parts turns the message into stored parts; field names it in errors.
func (m *alumiaInMessage) parts(field string) ([]store.MessagePart, error) {
	var in []alumiaInPart
	switch {
	case m.Parts != nil:
		in = m.Parts
	case len(m.Content) > 0 && m.Content[0] == '"':
		var s string
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return nil, errValidation(field+".content", "must be a string or an array of parts")
		}
		in = []alumiaInPart{{Type: "text", Text: s}}
	case len(m.Content) > 0 && m.Content[0] == '[':
		if err := json.Unmarshal(m.Content, &in); err != nil {
			return nil, errValidation(field+".content", "must be a string or an array of parts {type, text}")
		}
	case len(m.Content) > 0 && string(m.Content) != "null":
		return nil, errValidation(field+".content", "must be a string or an array of parts")
	}
	var out []store.MessagePart
	for i, p := range in {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, store.MessagePart{Type: store.PartText, Text: p.Text})
			}
		case "file", "image":
			url := p.URL
			if url == "" {
				url = p.Image
			}
			if url == "" {
				return nil, errValidation(field+".parts["+strconv.Itoa(i)+"].url", "is required for a file")
			}
			mt := p.MediaType
			if mt == "" && p.Type == "image" {
				mt = "image/*"
			}
			out = append(out, store.MessagePart{Type: store.PartFile, URL: url, MediaType: mt, Filename: p.Filename})
		}
	}
	return out, nil
}

// textOf is the text parts joined.
func textOf(parts []store.MessagePart) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Type == store.PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (s *Server) alumiaChatRoutes() []route {
	return []route{{Method: http.MethodPost, Path: "/api/v1/chat", Tag: "Alumia", Scope: store.ScopeWrite, Dialect: dialectAlumia,
		Summary: "Answer a user message of a session as an AI SDK v6 UI message stream (text/event-stream; Alumia); " +
			"without sessionId a session of agentId is made, named in the x-session-id header",
		Request: alumiaChatRequest{}, Status: http.StatusOK, Raw: true, ContentType: "text/event-stream", Handle: s.alumiaChat}}
}

func (s *Server) alumiaChat(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if e := s.limitChat(r, p); e != nil {
		return e
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req alumiaChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return jsonError(err)
	}
	if req.Trigger != "" && req.Trigger != "submit-message" {
		return errValidation("trigger", "must be submit-message: regenerating an answer is not supported; send the user message again")
	}
	if len(req.Messages) == 0 {
		return errValidation("messages", "is required: the user's new message, last")
	}
	last := len(req.Messages) - 1
	lastField := "messages[" + strconv.Itoa(last) + "]"
	if req.Messages[last].Role != store.RoleUser {
		return errValidation(lastField+".role", "must be user: the last message is the one to answer")
	}
	userParts, err := req.Messages[last].parts(lastField)
	if err != nil {
		return err
	}
	if strings.TrimSpace(textOf(userParts)) == "" && !hasFile(userParts) {
		return errValidation(lastField+".content", "is empty: the message needs text or a file")
	}
	sessionID := req.SessionID
	if sessionID == "" && strings.HasPrefix(req.ID, "ses_") {
		sessionID = req.ID
	}

	ctx := r.Context()
	var (
		sess    *store.Session
		ag      *store.Agent
		earlier []*store.SessionMessage
	)
	in := session.Input{Parts: userParts}
	if id := req.Messages[last].ID; id != "" {
		in.Meta = map[string]any{"uiMessageId": id}
	}
	var pending *session.Pending
	if sessionID != "" {
		// The session is read as its answer begins (on PostgreSQL, by the statement that
		// claims its answer lease), and checked before anything is asked of the model.
		check := func(got *store.Session) error {
			if got.AgentID == nil {
				return errValidation("sessionId", "names a session whose agent no longer exists")
			}
			if req.AgentID != "" && req.AgentID != *got.AgentID {
				return errValidation("agentId", "is not the agent of session %s", got.ID)
			}
			// The agent is read here only when something must be checked against it: the
			// engine reads it anyway, and this read would be on the path to the first token.
			spent, err := s.balanceSpent(ctx, p.TenantID)
			if err != nil {
				return err
			}
			if req.Model == "" && !spent {
				return nil
			}
			ag, err := store.Get[store.Agent](ctx, s.store, p.TenantID, *got.AgentID)
			if err != nil {
				return notFoundAs(err, "Agent", "agentId")
			}
			if req.Model != "" && req.Model != ag.Model {
				return errValidation("model", "must be the agent's model (%s) or left out: an agent answers with its own model", ag.Model)
			}
			return s.checkBalance(ctx, p.TenantID, ag.Model)
		}
		if sess, pending, err = s.sessions.BeginByID(ctx, p.TenantID, sessionID, in, check); errors.Is(err, store.ErrNotFound) {
			return notFoundAs(err, "Session", "sessionId")
		} else if err != nil {
			return sessionSendError(err)
		}
	} else {
		if req.AgentID == "" {
			return errValidation("agentId", "is required without sessionId: the agent of the new session")
		}
		if ag, err = store.Get[store.Agent](ctx, s.store, p.TenantID, req.AgentID); err != nil {
			return notFoundAs(err, "Agent", "agentId")
		}
		if earlier, err = seedMessages(req.Messages[:last]); err != nil {
			return err
		}
	}
	if ag != nil {
		if req.Model != "" && req.Model != ag.Model {
			return errValidation("model", "must be the agent's model (%s) or left out: an agent answers with its own model", ag.Model)
		}
		if err := s.checkBalance(ctx, p.TenantID, ag.Model); err != nil {
			return err
		}
	}

	if sess == nil {
		sess = store.NewSession()
		sess.AgentID = &ag.ID
		sess.Label = chatLabel(textOf(userParts))
		if req.ProjectID != "" {
			sess.Meta["projectId"] = req.ProjectID
		}
		if err := s.sessions.Create(ctx, p.TenantID, sess, session.Creator{KeyID: p.KeyID, UserID: p.UserID}); err != nil {
			return err
		}
		if len(earlier) > 0 {
			if err := store.AppendSessionMessages(ctx, s.store, p.TenantID, sess.ID, earlier...); err != nil {
				s.dropSession(p.TenantID, sess.ID)
				return err
			}
		}
		if pending, err = s.sessions.Begin(ctx, sess, in); err != nil {
			s.dropSession(p.TenantID, sess.ID)
			return sessionSendError(err)
		}
	}

	w.Header().Set("X-Session-Id", sess.ID)
	ew := &uiEventWriter{u: newUIStream(w), sessionID: sess.ID}
	ew.u.batched = true
	_, err = pending.Stream(ctx, ew)
	if err != nil {
		// The client went away: the answer is made and stored all the same, and there is
		// no one left to tell.
		return nil
	}
	ew.u.Done()
	return nil
}

func hasFile(parts []store.MessagePart) bool {
	for _, p := range parts {
		if p.Type == store.PartFile {
			return true
		}
	}
	return false
}

// seedMessages are the user and assistant messages a client sent before its new one, for a
// session made by this request; system messages are the agent's business and are left out.
func seedMessages(msgs []alumiaInMessage) ([]*store.SessionMessage, error) {
	var out []*store.SessionMessage
	for i := range msgs {
		m := &msgs[i]
		field := "messages[" + strconv.Itoa(i) + "]"
		switch m.Role {
		case store.RoleUser, store.RoleAssistant:
		case store.RoleSystem:
			continue
		default:
			return nil, errValidation(field+".role", "must be user, assistant or system")
		}
		parts, err := m.parts(field)
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			continue
		}
		out = append(out, &store.SessionMessage{ID: store.NewMessageID(), Role: m.Role, Parts: parts, Status: store.MessageCompleted})
	}
	return out, nil
}

// chatLabel names a session made by a chat request after its first message.
func chatLabel(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > 80 {
		text = string(r[:79]) + "…"
	}
	if text == "" {
		text = "Chat"
	}
	return text
}

// dropSession removes a session this request made when its first message could not be
// taken, so that a refused request leaves nothing behind.
//
//nolint:contextcheck // cleaning up after a refused request must not end with it
func (s *Server) dropSession(tenantID, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.sessions.Delete(ctx, tenantID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("a session made for a refused chat request was not removed", "session_id", id, "err", err)
	}
}

// notFoundAs is a 404 that names what was not found, and the field that named it.
func notFoundAs(err error, what, field string) error {
	if errors.Is(err, store.ErrNotFound) {
		e := errNotFound(what)
		e.Details = []store.FieldError{{Field: field, Message: "names no " + strings.ToLower(what) + " of this organization"}}
		return e
	}
	return err
}

// sessionSendError is the answer to a message the sessions engine refused.
func sessionSendError(err error) error {
	switch {
	case errors.Is(err, session.ErrBusy):
		return &Error{Status: http.StatusConflict, Code: codeConflict,
			Message: "A message of this session is still being answered: wait for its answer, or cancel it, and send again",
			Details: []store.FieldError{{Field: "sessionId", Message: "is answering another message"}}}
	case errors.Is(err, session.ErrClosed):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: "The session is closed and takes no more messages",
			Details: []store.FieldError{{Field: "sessionId", Message: "is closed"}}}
	case errors.Is(err, session.ErrNoAgent):
		return errValidation("sessionId", "names a session whose agent no longer exists")
	case errors.Is(err, session.ErrEmpty):
		return errValidation("messages", "the last message is empty")
	case errors.Is(err, session.ErrShutdown):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, RetryAfter: 5, Message: "This node is stopping; send the message again"}
	}
	return err
}

// uiEventWriter writes the sessions engine's events as UI message stream chunks.
//
// The engine finishes a step when the model's completion ends, and only then reports the
// step's tool calls whole and runs them; the AI SDK's own streams close a step after its
// tools' outputs. So finish-step is held back until the next step starts or the answer
// ends, and a client sees each tool's input and output inside the step that called it.
type uiEventWriter struct {
	u          *uiStream
	sessionID  string
	stepToShut bool
}

var _ session.Flusher = (*uiEventWriter)(nil)

// Flush sends the chunks of the events given since the last Flush in one write: the engine
// hands over its events in batches.
func (ew *uiEventWriter) Flush() error { return ew.u.Flush() }

// Event writes one event; the error is the stream's (the client went away).
func (ew *uiEventWriter) Event(ev *session.Event) error {
	u := ew.u
	switch ev.Type {
	case session.EventStepStart, session.EventError, session.EventFinish:
		if ew.stepToShut {
			ew.stepToShut = false
			u.FinishStep()
		}
	}
	switch ev.Type {
	case session.EventStart:
		u.open()
		u.Start(ev.MessageID, map[string]any{"sessionId": ew.sessionID})
	case session.EventStepStart:
		u.StartStep()
	case session.EventStepFinish:
		ew.stepToShut = true
	case session.EventTextStart:
		u.TextStart(ev.PartID)
	case session.EventTextDelta:
		u.TextDelta(ev.PartID, ev.Text)
	case session.EventTextEnd:
		u.TextEnd(ev.PartID)
	case session.EventToolInputStart:
		u.ToolInputStart(ev.ToolCallID, ev.ToolName)
	case session.EventToolInputDelta:
		u.ToolInputDelta(ev.ToolCallID, ev.Arguments)
	case session.EventToolInputAvailable:
		u.ToolInputAvailable(ev.ToolCallID, ev.ToolName, string(ev.Input))
	case session.EventToolOutput:
		if ev.IsError {
			u.ToolOutputError(ev.ToolCallID, ev.Output)
		} else {
			u.ToolOutputAvailable(ev.ToolCallID, ev.Output)
		}
	case session.EventError:
		u.Error(ev.Error)
	case session.EventFinish:
		meta := alumiaFinishMeta{SessionID: ew.sessionID, Model: ev.Model, Usage: newUIUsage(ev.Usage), CostUSD: ev.CostUSD,
			SessionClosed: ev.FinishReason == session.FinishEndCall}
		if ev.Answer != nil {
			meta.Status = ev.Answer.Status
		}
		u.Finish(uiFinishReasonOf(ev.FinishReason), meta)
	}
	return u.Err()
}

// alumiaFinishMeta is the message metadata of the finish chunk: the protocol carries usage
// there.
type alumiaFinishMeta struct {
	SessionID     string   `json:"sessionId"`
	Model         string   `json:"model,omitempty"`
	Usage         *uiUsage `json:"usage"`
	CostUSD       float64  `json:"costUsd"`
	Status        string   `json:"status,omitempty"`
	SessionClosed bool     `json:"sessionClosed,omitempty"`
}

// uiFinishReasonOf is the AI SDK's finish reason of the engine's.
func uiFinishReasonOf(r string) string {
	switch r {
	case session.FinishStop, session.FinishEndCall:
		return "stop"
	case session.FinishLength:
		return "length"
	case session.FinishFilter:
		return "content-filter"
	case session.FinishError:
		return "error"
	case "tool_calls":
		return "tool-calls"
	}
	return "other"
}

// limitChat counts a chat request against the chat limit of its key or user and of its
// client address; past either, 429 with Retry-After.
func (s *Server) limitChat(r *http.Request, p *Principal) *Error {
	limit := s.cfg.ChatRateLimit
	buckets := [2]string{"chat:" + p.limiterKey(), "chat-ip:" + clientIP(r)}
	for _, b := range buckets {
		if over, reset := s.limiter.Exceeded(b, limit); over {
			return chatLimited(limit, reset)
		}
	}
	for _, b := range buckets {
		if ok, _, reset := s.limiter.Allow(b, limit); !ok {
			return chatLimited(limit, reset)
		}
	}
	return nil
}

func chatLimited(limit int, reset time.Time) *Error {
	retry := max(int(time.Until(reset).Seconds())+1, 1)
	return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimit, RetryAfter: retry,
		Message: fmt.Sprintf("The chat rate limit of %d requests a minute per key and per address is reached; retry after %d s", limit, retry)}
}

// The balance is checked before a model is asked for an answer that costs money: POST
// /api/v1/chat, the canonical sessions route and the model gateway all refuse, with 402, a
// tenant whose balance is spent when the model has a price. A tenant without a balance, and a
// free model, are never refused.

// refuseSpent is the 402 of a spent balance, when price makes model a paid one.
func (s *Server) refuseSpent(ctx context.Context, tenantID, model string, price *llm.Price) error {
	if price == nil || (price.InputPerMTok <= 0 && price.OutputPerMTok <= 0) {
		return nil
	}
	spent, err := s.balanceSpent(ctx, tenantID)
	if err != nil || !spent {
		return err
	}
	return &Error{Status: http.StatusPaymentRequired, Code: "payment_required",
		Message: "The organization's balance is spent and " + model + " is a paid model: top up the balance"}
}

// checkBalance is refuseSpent for a model by name, as the tenant's registry prices it.
func (s *Server) checkBalance(ctx context.Context, tenantID, model string) error {
	spent, err := s.balanceSpent(ctx, tenantID)
	if err != nil || !spent {
		return err
	}
	reg, err := s.registryFor(ctx, tenantID)
	if err != nil {
		return nil // the answer fails on its own, and is stored with why
	}
	rt, err := reg.Route(model)
	if err != nil {
		return nil
	}
	return s.refuseSpent(ctx, tenantID, model, rt.Price)
}

// checkAgentBalance is checkBalance for the model of an agent, read only when the balance
// is spent (so that it costs nothing on the way to the first token otherwise).
func (s *Server) checkAgentBalance(ctx context.Context, tenantID, agentID string) error {
	spent, err := s.balanceSpent(ctx, tenantID)
	if err != nil || !spent {
		return err
	}
	ag, err := store.Get[store.Agent](ctx, s.store, tenantID, agentID)
	if err != nil {
		return nil // the engine answers a missing agent as it does
	}
	return s.checkBalance(ctx, tenantID, ag.Model)
}

// balanceTTL bounds how long a tenant's balance is trusted without reading it again: a
// balance spent by answers on another node is seen within it (this node's changes of it,
// by an operator, at once). A balance may therefore run a little below zero, which it may
// anyway: the answer that spends it is whole.
const balanceTTL = 2 * time.Second

type balanceEntry struct {
	spent   bool
	fetched time.Time
}

// balanceSpent reports whether the tenant keeps a balance and it is spent (at or below 0).
func (s *Server) balanceSpent(ctx context.Context, tenantID string) (bool, error) {
	now := time.Now()
	if v, ok := s.balances.Load(tenantID); ok {
		if e := v.(balanceEntry); now.Sub(e.fetched) < balanceTTL {
			return e.spent, nil
		}
	}
	t, err := s.store.Tenant(ctx, tenantID)
	if err != nil {
		return false, err
	}
	spent := t.BalanceUSD != nil && *t.BalanceUSD <= 0
	s.balances.Store(tenantID, balanceEntry{spent: spent, fetched: now})
	return spent, nil
}
