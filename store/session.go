package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

const (
	prefixSession = "ses_"
	prefixMessage = "msg_"
)

// Statuses of a session: it takes messages while active; a closed session keeps its history
// but answers no more.
const (
	SessionActive = "active"
	SessionClosed = "closed"
)

// Roles of a session's messages.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
	RoleSystem    = "system"
)

// Statuses of a session's message. A user message is completed once stored; an assistant
// message is completed when its answer was whole, failed when the model failed (Error says
// why; the parts hold what was said before), canceled when a client stopped it.
const (
	MessageCompleted = "completed"
	MessageFailed    = "failed"
	MessageCanceled  = "canceled"
)

// Kinds of a message's parts.
const (
	PartText       = "text"
	PartToolCall   = "tool_call"
	PartToolResult = "tool_result"
	PartFile       = "file"
)

// Session is a conversation with an agent that the server keeps: its messages are stored as
// they are made, and every new user message is answered by the agent over the stored history.
type Session struct {
	bun.BaseModel `bun:"table:sessions"`
	Row

	// AgentID is the agent that answers; nil once the agent was deleted (the history stays).
	AgentID *string `bun:"agent_id" json:"agent_id"`
	// Label names the session for people ("name" on some surfaces).
	Label  string         `bun:"label,notnull" json:"label"`
	Status string         `bun:"status,notnull" json:"status"`
	Meta   map[string]any `bun:"metadata,type:json,notnull" json:"metadata"`
	// MessageCount, the tokens and the cost are kept up to date as messages are stored, so a
	// count needs no scan of the messages.
	MessageCount int     `bun:"message_count,notnull" json:"message_count"`
	InputTokens  int64   `bun:"input_tokens,notnull" json:"input_tokens"`
	OutputTokens int64   `bun:"output_tokens,notnull" json:"output_tokens"`
	CostUSD      float64 `bun:"cost_usd,notnull" json:"cost_usd"`
	// CreatedByKeyID and CreatedByUserID say who made the session: an API key, a user, or
	// both empty for the server itself.
	CreatedByKeyID  string     `bun:"created_by_key_id,notnull" json:"created_by_key_id,omitempty"`
	CreatedByUserID string     `bun:"created_by_user_id,notnull" json:"created_by_user_id,omitempty"`
	ClosedAt        *time.Time `bun:"closed_at" json:"closed_at"`
}

// NewSession returns an active session with empty metadata; a request body decoded over it
// sets what the client chose.
func NewSession() *Session {
	return &Session{Status: SessionActive, Meta: map[string]any{}}
}

func (*Session) idPrefix() string { return prefixSession }

// maxLabelLen bounds a session's label.
const maxLabelLen = 200

// Validate checks the session's own fields.
func (s *Session) Validate() error {
	var fe fieldErrors
	if len([]rune(s.Label)) > maxLabelLen {
		fe.add("label", "must be at most %d characters", maxLabelLen)
	}
	fe.oneOf("status", s.Status, SessionActive, SessionClosed)
	fe.metadata("metadata", s.Meta)
	return fe.err()
}

func (s *Session) references() []reference {
	if s.AgentID == nil || *s.AgentID == "" {
		return nil
	}
	return []reference{{field: "agent_id", table: "agents", id: *s.AgentID}}
}

// SessionMessage is one message of a session. Its ID is a ULID: IDs sort by creation time, so
// a message ID is a cursor into the session's history.
//
// An assistant message is the agent's whole answer to one user message, in order: text, the
// tools it called (PartToolCall) and their results (PartToolResult), and the text after
// them; a part after a tool result begins a new step of the answer.
type SessionMessage struct {
	bun.BaseModel `bun:"table:session_messages"`

	ID        string        `bun:"id,pk" json:"id"`
	SessionID string        `bun:"session_id,notnull" json:"session_id"`
	TenantID  string        `bun:"tenant_id,notnull" json:"-"`
	Role      string        `bun:"role,notnull" json:"role"`
	Parts     []MessagePart `bun:"parts,type:json,notnull" json:"parts"`
	Status    string        `bun:"status,notnull" json:"status"`
	// Error says why an answer failed or stopped.
	Error string `bun:"error,notnull" json:"error,omitempty"`
	// FinishReason is why the model stopped: "stop", "length", "tool_calls" (a tool ended
	// the turn), "end_call", "error", "canceled".
	FinishReason string         `bun:"finish_reason,notnull" json:"finish_reason,omitempty"`
	Model        string         `bun:"model,notnull" json:"model,omitempty"`
	InputTokens  int            `bun:"input_tokens,notnull" json:"input_tokens"`
	OutputTokens int            `bun:"output_tokens,notnull" json:"output_tokens"`
	CostUSD      float64        `bun:"cost_usd,notnull" json:"cost_usd"`
	Meta         map[string]any `bun:"metadata,type:json,notnull" json:"metadata"`
	CreatedAt    time.Time      `bun:"created_at,notnull" json:"created_at"`
}

// MessagePart is one piece of a message: text, a tool call with its arguments, a tool's
// result, or a reference to a file.
type MessagePart struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
	// ToolCallID ties a tool call to its result; ToolName names the tool.
	ToolCallID string `json:"tool_call_id,omitempty"`
	ToolName   string `json:"tool_name,omitempty"`
	// Arguments are the call's arguments as the model wrote them (normally a JSON object).
	Arguments string `json:"arguments,omitempty"`
	// Result is what the tool answered; IsError says it failed (Result says how).
	Result  string `json:"result,omitempty"`
	IsError bool   `json:"is_error,omitempty"`
	// URL, MediaType and Filename reference a file.
	URL       string `json:"url,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	Filename  string `json:"filename,omitempty"`
}

// Text is the message's text parts joined.
func (m *SessionMessage) Text() string {
	var b strings.Builder
	for _, p := range m.Parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// ValidMessageID reports whether s looks like a message ID (a cursor).
func ValidMessageID(s string) bool { return validID(prefixMessage, s) }

// NewMessageID returns a new message ID. IDs made later on this node sort after it.
func NewMessageID() string { return newID(prefixMessage) }

// SessionFilter narrows a list of sessions; zero fields do not filter.
type SessionFilter struct {
	AgentID string
	Status  string
}

// ListSessions reads a page of the tenant's sessions that pass the filter, newest first, and
// how many pass it in all.
func ListSessions(ctx context.Context, s *Store, tenantID string, f SessionFilter, page Page) ([]Session, int, error) {
	items := make([]Session, 0, page.Limit)
	q := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID)
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.AgentID != "" {
		q = q.Where("agent_id = ?", f.AgentID)
	}
	total, err := q.Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// AppendSessionMessages stores messages at the end of a session of the tenant, in one
// transaction with the session's count, tokens, cost and update time. A message without an
// ID gets one (NewMessageID); each gets the session's tenant and, when it has none, the
// store's time. A session that is not the tenant's is ErrNotFound, and nothing is written.
func AppendSessionMessages(ctx context.Context, s *Store, tenantID, sessionID string, msgs ...*SessionMessage) error {
	a := &SessionAppend{TenantID: tenantID, SessionID: sessionID, Messages: msgs}
	if err := AppendSessionBatch(ctx, s, []*SessionAppend{a}); err != nil {
		return err
	}
	return a.Err
}

// SessionAppend is messages to store at the end of one session, in a batch.
type SessionAppend struct {
	TenantID, SessionID string
	Messages            []*SessionMessage
	// Lease, when set, is the answer lease (ClaimSessionAnswer) the messages end: it is
	// released with them, in the same statement.
	Lease string
	// Err is set by AppendSessionBatch: ErrNotFound when the session is not the tenant's
	// (its messages were not written).
	Err error

	// Close closes the session with its messages, in the same transaction (a session of
	// one run: it takes no message after this one).
	Close bool

	// New, when set, is the session itself, not yet stored (NewSessionRow): it is inserted
	// with its messages, counted and (Close) closed, in the same transaction, so that a
	// session of one run costs no commit of its own. An agent it names that the tenant no
	// longer has is Err, a *ValidationError naming agent_id, and nothing of it is written.
	New *Session
}

// NewSessionRow gives sess, a session to be inserted with its first messages
// (SessionAppend.New), its ID, tenant and times, and checks its own fields.
func NewSessionRow(s *Store, tenantID string, sess *Session) error {
	now := s.now()
	sess.ID, sess.TenantID, sess.CreatedAt, sess.UpdatedAt = newID(prefixSession), tenantID, now, now
	if err := prepare(s, sess); err != nil {
		return err
	}
	return sess.Validate()
}

// AppendSessionBatch stores the messages of several sessions in one transaction, each
// session's count, tokens, cost and update time with them: many answers finishing at once
// cost one commit. An append whose session is gone gets ErrNotFound and the others are
// written; any other failure writes nothing and is returned.
func AppendSessionBatch(ctx context.Context, s *Store, batch []*SessionAppend) error {
	now := s.now()
	var all []*SessionMessage
	for _, a := range batch {
		a.Err = nil
		if !validID(prefixSession, a.SessionID) {
			a.Err = ErrNotFound
			continue
		}
		for _, m := range a.Messages {
			if m.ID == "" {
				m.ID = NewMessageID()
			}
			if m.CreatedAt.IsZero() {
				m.CreatedAt = now
			}
			// Fields already right are not written: a caller may be showing the message
			// while it is stored.
			if m.SessionID != a.SessionID {
				m.SessionID = a.SessionID
			}
			if m.TenantID != a.TenantID {
				m.TenantID = a.TenantID
			}
			if m.Parts == nil {
				m.Parts = []MessagePart{}
			}
			if m.Meta == nil {
				m.Meta = map[string]any{}
			}
			if m.Status == "" {
				m.Status = MessageCompleted
			}
		}
	}
	return s.inTx(ctx, func(tx bun.Tx) error {
		all = all[:0]
		var failures []SessionError
		appended := func(a *SessionAppend) error {
			all = append(all, a.Messages...)
			errs, err := sessionErrors(ctx, tx, a)
			failures = append(failures, errs...)
			return err
		}
		for _, a := range batch {
			if a.Err != nil || len(a.Messages) == 0 {
				continue
			}
			var in, out int64
			var cost float64
			for _, m := range a.Messages {
				in += int64(m.InputTokens)
				out += int64(m.OutputTokens)
				cost += m.CostUSD
			}
			if a.New != nil {
				// A session that did not exist before its first messages: one insert holds
				// it with their count and cost, rather than an insert and an update.
				if err := checkReferences(ctx, tx, a.TenantID, a.New); err != nil {
					var ve *ValidationError
					if !errors.As(err, &ve) {
						return err
					}
					a.Err = err
					continue
				}
				n := a.New
				n.MessageCount, n.InputTokens, n.OutputTokens, n.CostUSD, n.UpdatedAt = len(a.Messages), in, out, cost, now
				if a.Close {
					n.Status, n.ClosedAt = SessionClosed, &now
				}
				if _, err := tx.NewInsert().Model(n).Exec(ctx); err != nil {
					return err
				}
				if _, err := drawBalance(ctx, tx, a.TenantID, cost); err != nil {
					return err
				}
				if err := appended(a); err != nil {
					return err
				}
				continue
			}
			q := tx.NewUpdate().Model((*Session)(nil))
			if a.Lease != "" {
				q = q.Set("answer_until = CASE WHEN answer_id = ? THEN NULL ELSE answer_until END", a.Lease)
			}
			res, err := q.
				Set("message_count = message_count + ?", len(a.Messages)).
				Set("input_tokens = input_tokens + ?", in).
				Set("output_tokens = output_tokens + ?", out).
				Set("cost_usd = cost_usd + ?", cost).
				Set("updated_at = ?", now).
				Where("id = ?", a.SessionID).Where("tenant_id = ?", a.TenantID).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				a.Err = ErrNotFound
				continue
			}
			if a.Close {
				if _, err := tx.NewUpdate().Model((*Session)(nil)).Set("status = ?", SessionClosed).Set("closed_at = ?", now).
					Where("id = ?", a.SessionID).Where("closed_at IS NULL").Exec(ctx); err != nil {
					return err
				}
			}
			// What an answer cost comes off the tenant's balance with it (tenant.go).
			if _, err := drawBalance(ctx, tx, a.TenantID, cost); err != nil {
				return err
			}
			if err := appended(a); err != nil {
				return err
			}
		}
		if len(all) == 0 {
			return nil
		}
		if _, err := tx.NewInsert().Model(&all).Exec(ctx); err != nil {
			return err
		}
		if len(failures) > 0 {
			if _, err := tx.NewInsert().Model(&failures).Exec(ctx); err != nil {
				return err
			}
		}
		if usage := sessionUsage(now, all); len(usage) > 0 {
			_, err := tx.NewInsert().Model(&usage).Exec(ctx)
			return err
		}
		return nil
	})
}

// ListSessionMessages reads up to limit messages of a session of the tenant in the order
// they were made, starting after the message whose ID is after ("" for the first), then
// skipping offset. With a cursor the read is one range of the (session_id, id) index however
// long the session is; offset is for clients that page by offset and costs what it skips.
func ListSessionMessages(ctx context.Context, s *Store, tenantID, sessionID, after string, offset, limit int) ([]SessionMessage, error) {
	items := make([]SessionMessage, 0, limit)
	q := s.db.NewSelect().Model(&items).Where("session_id = ?", sessionID).Where("tenant_id = ?", tenantID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if offset > 0 {
		q = q.Offset(int64(offset))
	}
	if err := q.Order("id ASC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return items, nil
}

// SessionHistory reads the last limit messages of a session of the tenant, oldest first: the
// history an answer is made over. It reads backwards along the (session_id, id) index, so it
// costs the same in a session of ten messages or ten thousand.
func SessionHistory(ctx context.Context, s *Store, tenantID, sessionID string, limit int) ([]SessionMessage, error) {
	items := make([]SessionMessage, 0, limit)
	err := s.db.NewSelect().Model(&items).Where("session_id = ?", sessionID).Where("tenant_id = ?", tenantID).
		Order("id DESC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, classify(err)
	}
	slices.Reverse(items)
	return items, nil
}

// CloseSession marks an active session of the tenant closed and returns it; closed says
// whether this call closed it (false: it was closed already). A session that is not the
// tenant's is ErrNotFound.
func CloseSession(ctx context.Context, s *Store, tenantID, id string) (sess *Session, closed bool, err error) {
	if !validID(prefixSession, id) {
		return nil, false, ErrNotFound
	}
	now := s.now()
	res, err := s.db.NewUpdate().Model((*Session)(nil)).Set("status = ?", SessionClosed).Set("closed_at = ?", now).
		Set("updated_at = ?", now).Where("id = ?", id).Where("tenant_id = ?", tenantID).
		Where("status = ?", SessionActive).Exec(ctx)
	if err != nil {
		return nil, false, classify(err)
	}
	n, _ := res.RowsAffected()
	sess, err = Get[Session](ctx, s, tenantID, id)
	return sess, n > 0, err
}

// Answer leases: one node answers a session's message at a time, whichever node the message
// reached. A node claims the session's row (ClaimSessionAnswer) before it answers, renews the
// claim while it answers (RenewSessionAnswers), and releases it with the turn it stores
// (SessionAppend.Lease) or, when nothing is stored, ReleaseSessionAnswer. A node that dies
// holding a lease holds it no longer once it expires. Times are the database's on
// PostgreSQL, so nodes whose clocks disagree agree on expiry.

// leaseNow is the database's time in a lease's condition.
func (s *Store) leaseNow() (string, []any) {
	if s.dialect == Postgres {
		return "now()", nil
	}
	return "?", []any{s.now()}
}

// leaseUntil is the expiry of a lease taken now for ttl.
func (s *Store) leaseUntil(ttl time.Duration) (string, []any) {
	if s.dialect == Postgres {
		return "now() + ? * interval '1 millisecond'", []any{ttl.Milliseconds()}
	}
	return "?", []any{s.now().Add(ttl)}
}

// ClaimSessionAnswer takes the answer lease of a session of the tenant for node, naming the
// answer lease, for ttl; it reports false when another answer holds an unexpired lease. A
// session that is not the tenant's is ErrNotFound.
func ClaimSessionAnswer(ctx context.Context, s *Store, tenantID, sessionID, node, lease string, ttl time.Duration) (bool, error) {
	if !validID(prefixSession, sessionID) {
		return false, ErrNotFound
	}
	until, untilArgs := s.leaseUntil(ttl)
	now, nowArgs := s.leaseNow()
	q := s.db.NewUpdate().Model((*Session)(nil)).
		Set("answer_node = ?", node).Set("answer_id = ?", lease).Set("answer_canceled = ?", false).
		Set("answer_until = "+until, untilArgs...)
	if s.dialect == Postgres {
		// The claim is on the way to the answer's first token: its commit does not wait for
		// the WAL to reach the disk (a setting local to the statement's own transaction). A
		// lease lost with a crash of the database only frees the session early.
		q = q.TableExpr("(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit")
	}
	res, err := q.Where("session.id = ?", sessionID).Where("session.tenant_id = ?", tenantID).
		Where("(session.answer_until IS NULL OR session.answer_until < "+now+")", nowArgs...).Exec(ctx)
	if err != nil {
		return false, classify(err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	if _, err := Get[Session](ctx, s, tenantID, sessionID); err != nil {
		return false, err
	}
	return false, nil
}

// ClaimSessionAnswerRow is ClaimSessionAnswer and the read of the session in one statement
// (PostgreSQL's UPDATE … RETURNING): a message of a session costs one statement and one round
// trip fewer before its first token. It claims only an active session. When the claim is
// refused it reads the session as it is, so that the caller can say why (closed, or another
// answer holds it): ok is false and the session is returned. A session that is not the
// tenant's is ErrNotFound.
func ClaimSessionAnswerRow(ctx context.Context, s *Store, tenantID, sessionID, node, lease string, ttl time.Duration) (sess *Session, ok bool, err error) {
	if !validID(prefixSession, sessionID) {
		return nil, false, ErrNotFound
	}
	if s.dialect != Postgres {
		// SQLite has one node: there is nothing to fold, and no UPDATE … FROM to fold it in.
		if ok, err = ClaimSessionAnswer(ctx, s, tenantID, sessionID, node, lease, ttl); err != nil {
			return nil, false, err
		}
		sess, err = Get[Session](ctx, s, tenantID, sessionID)
		return sess, ok && err == nil && sess.Status == SessionActive, err
	}
	until, untilArgs := s.leaseUntil(ttl)
	now, nowArgs := s.leaseNow()
	sess = new(Session)
	// As in ClaimSessionAnswer, the claim's commit does not wait for the WAL to reach the disk.
	err = s.db.NewUpdate().Model(sess).
		Set("answer_node = ?", node).Set("answer_id = ?", lease).Set("answer_canceled = ?", false).
		Set("answer_until = "+until, untilArgs...).
		TableExpr("(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit").
		Where("session.id = ?", sessionID).Where("session.tenant_id = ?", tenantID).
		Where("session.status = ?", SessionActive).
		Where("(session.answer_until IS NULL OR session.answer_until < "+now+")", nowArgs...).
		Returning(s.sessionColumns()).Scan(ctx)
	if err == nil {
		return sess, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, classify(err)
	}
	sess, err = Get[Session](ctx, s, tenantID, sessionID)
	return sess, false, err
}

// sessionColumns is the RETURNING list of a session's mapped columns (the lease's own
// columns are not the model's).
func (s *Store) sessionColumns() string {
	s.sessionColsOnce.Do(func() {
		var b strings.Builder
		for i, f := range s.db.Table(reflect.TypeFor[Session]()).Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("session.")
			b.WriteString(string(f.SQLName))
		}
		s.sessionCols = b.String()
	})
	return s.sessionCols
}

// RenewSessionAnswers extends, by ttl from now, the leases held (by session ID) that are
// still held.
func RenewSessionAnswers(ctx context.Context, s *Store, leases map[string]string, ttl time.Duration) error {
	if len(leases) == 0 {
		return nil
	}
	ids, held := make([]string, 0, len(leases)), make([]string, 0, len(leases))
	for id, lease := range leases {
		ids, held = append(ids, id), append(held, lease)
	}
	until, untilArgs := s.leaseUntil(ttl)
	_, err := s.db.NewUpdate().Model((*Session)(nil)).Set("answer_until = "+until, untilArgs...).
		Where("id IN (?)", bun.List(ids)).Where("answer_id IN (?)", bun.List(held)).Where("answer_until IS NOT NULL").Exec(ctx)
	return classify(err)
}

// ReleaseSessionAnswer gives up a session's answer lease, if it is still lease.
func ReleaseSessionAnswer(ctx context.Context, s *Store, sessionID, lease string) error {
	_, err := s.db.NewUpdate().Model((*Session)(nil)).Set("answer_until = NULL").
		Where("id = ?", sessionID).Where("answer_id = ?", lease).Exec(ctx)
	return classify(err)
}

// CancelSessionAnswer asks the node answering a session of the tenant to stop, and returns
// the lease of the answer it asked; ok is false when no answer holds the session.
func CancelSessionAnswer(ctx context.Context, s *Store, tenantID, sessionID string) (lease string, ok bool, err error) {
	if !validID(prefixSession, sessionID) {
		return "", false, ErrNotFound
	}
	now, nowArgs := s.leaseNow()
	var leases []string
	err = s.db.NewUpdate().Model((*Session)(nil)).Set("answer_canceled = ?", true).
		Where("id = ?", sessionID).Where("tenant_id = ?", tenantID).
		Where("answer_until IS NOT NULL").Where("answer_until >= "+now, nowArgs...).
		Returning("answer_id").Scan(ctx, &leases)
	if err != nil {
		return "", false, classify(err)
	}
	if len(leases) == 0 {
		return "", false, nil
	}
	return leases[0], true, nil
}

// SessionAnswerHeld reports whether lease still holds a session.
func SessionAnswerHeld(ctx context.Context, s *Store, sessionID, lease string) (bool, error) {
	now, nowArgs := s.leaseNow()
	n, err := s.db.NewSelect().Model((*Session)(nil)).Where("id = ?", sessionID).Where("answer_id = ?", lease).
		Where("answer_until IS NOT NULL").Where("answer_until >= "+now, nowArgs...).Count(ctx)
	return n > 0, classify(err)
}

// AnswerLease is what the row of a session being answered says of its lease.
type AnswerLease struct {
	SessionID string `bun:"id"`
	Lease     string `bun:"answer_id"`
	Canceled  bool   `bun:"answer_canceled"`
	Status    string `bun:"status"`
}

// SessionAnswerLeases reads the leases of the sessions given, by session ID; a session that
// is gone is not in the map.
func SessionAnswerLeases(ctx context.Context, s *Store, sessionIDs []string) (map[string]AnswerLease, error) {
	var rows []AnswerLease
	if len(sessionIDs) == 0 {
		return map[string]AnswerLease{}, nil
	}
	err := s.db.NewSelect().Table("sessions").Column("id", "answer_id", "answer_canceled", "status").
		Where("id IN (?)", bun.List(sessionIDs)).Scan(ctx, &rows)
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[string]AnswerLease, len(rows))
	for _, r := range rows {
		out[r.SessionID] = r
	}
	return out, nil
}
