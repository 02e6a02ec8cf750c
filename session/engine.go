package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// Event types published on the hub.
const (
	TypeCreated = "session.created"
	TypeMessage = "session.message"
	TypeClosed  = "session.closed"
)

// DefaultAnswerTimeout bounds one answer, tools included.
const DefaultAnswerTimeout = 5 * time.Minute

// Publisher carries a session's events to the hub: each on the topics given (session:{id}
// and agent:{id}; the hub's tenant topic sees them too).
type Publisher interface {
	PublishSession(ctx context.Context, tenantID string, topics []string, typ string, data any)
}

// Config is what the engine needs.
type Config struct {
	Store *store.Store
	// Models returns the registry a tenant's model names resolve in (the node's providers
	// with the tenant's own over them), as the gateway and calls use it.
	Models func(ctx context.Context, tenantID string) (*llm.Registry, error)
	// Webhooks runs the agents' webhook tools, as on calls.
	Webhooks *agent.Webhooks
	// Knowledge searches the agents' knowledge bases, as on calls; nil: none is used.
	Knowledge agent.KnowledgeSearcher
	// Publisher, when set, receives session.created, session.message and session.closed.
	Publisher Publisher
	// HistoryMessages and HistoryChars bound the history an answer is made over (zero:
	// DefaultHistoryMessages, DefaultHistoryChars); see window.
	HistoryMessages int
	HistoryChars    int
	// AnswerTimeout bounds one answer (zero: DefaultAnswerTimeout).
	AnswerTimeout time.Duration
	// FlowIdle is how long a workflow agent's run waits for a session's next message
	// (zero: DefaultFlowIdle).
	FlowIdle time.Duration
	Logger   *slog.Logger
	// Node names this node in the answer leases of sessions (zero: a name drawn at New).
	Node string
	// LeaseTTL is how long an answer lease holds without renewal, the longest a session
	// stays busy after its node died (zero: DefaultLeaseTTL); LeasePoll is how often the
	// node renews its leases and looks for cancels asked on other nodes (zero:
	// DefaultLeasePoll).
	LeaseTTL  time.Duration
	LeasePoll time.Duration
}

// DefaultLeaseTTL and DefaultLeasePoll: see Config.
const (
	DefaultLeaseTTL  = 30 * time.Second
	DefaultLeasePoll = 200 * time.Millisecond
)

// Engine keeps sessions and answers their messages.
//
// One message of a session is answered at a time, across every node sharing the database: a
// message sent while the last is still being answered, here or on another node, is ErrBusy.
// On PostgreSQL (the store several nodes share) the claim is a lease on the session's row,
// renewed while the answer runs and released with the stored turn; a dead node's lease
// expires after LeaseTTL. On SQLite one node owns the database and the claim is this
// node's alone, costing no write before the first token. An answer runs on a context of its own, not the
// request's: a client that goes away stops receiving the answer, but it is still made and
// stored, and the next page of history has it. Cancel (or closing or deleting the session)
// stops it, and the model's upstream request with it; what was made so far is stored as a
// canceled answer.
type Engine struct {
	cfg Config
	log *slog.Logger

	answers answerTable
	turns   *turnWriter
	history historyCache

	// life orders stopping against the answers begun: a claim holds it shared while it
	// joins wg, Shutdown holds it to stop.
	life     sync.RWMutex
	stopping bool
	wg       sync.WaitGroup

	mu    sync.Mutex
	flows map[string]*flow // workflow runs, by session ID
	// leasing says the loop that renews leases and watches for remote cancels runs.
	leasing bool

	// leases says answers claim the session's row (PostgreSQL).
	leases bool
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.HistoryMessages <= 0 {
		cfg.HistoryMessages = DefaultHistoryMessages
	}
	if cfg.HistoryChars <= 0 {
		cfg.HistoryChars = DefaultHistoryChars
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.FlowIdle <= 0 {
		cfg.FlowIdle = DefaultFlowIdle
	}
	if cfg.Webhooks == nil {
		cfg.Webhooks = agent.NewWebhooks(false)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeasePoll <= 0 {
		cfg.LeasePoll = DefaultLeasePoll
	}
	if cfg.Node == "" {
		cfg.Node = "node-" + strings.ToLower(store.NewMessageID()[len("msg_")+10:])
	}
	return &Engine{cfg: cfg, log: log, flows: map[string]*flow{}, turns: &turnWriter{st: cfg.Store},
		leases: cfg.Store != nil && cfg.Store.Dialect() == store.Postgres}
}

// Creator says who makes a session: an API key, a user, or neither (the server).
type Creator struct {
	KeyID, UserID string
}

// Create stores a new session of the tenant with sess's agent, label and metadata, and
// publishes session.created. An agent the tenant does not have is a *store.ValidationError
// naming agent_id.
func (e *Engine) Create(ctx context.Context, tenantID string, sess *store.Session, by Creator) error {
	if sess.AgentID == nil || strings.TrimSpace(*sess.AgentID) == "" {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "agent_id", Message: "is required"}}}
	}
	sess.Status = store.SessionActive
	sess.MessageCount, sess.InputTokens, sess.OutputTokens, sess.CostUSD, sess.ClosedAt = 0, 0, 0, 0, nil
	sess.CreatedByKeyID, sess.CreatedByUserID = by.KeyID, by.UserID
	if sess.Meta == nil {
		sess.Meta = map[string]any{}
	}
	if err := store.Create(ctx, e.cfg.Store, tenantID, sess); err != nil {
		return err
	}
	e.publish(ctx, sess, TypeCreated, sess)
	return nil
}

// BeginNew begins the answer to the first message of a session not yet stored, as Begin
// does, and stores the session with the turn, in the turn's one write (batched with
// others'): a session of one run (Amarsia's runner) costs no commit of its own, and a run
// whose turn is not stored leaves no empty session behind. session.created is published
// once it is stored, before the turn's messages. sess gets its ID at once; an agent the
// tenant does not have is a *store.ValidationError naming agent_id, here or, when the agent
// is deleted meanwhile, as the turn's failure.
func (e *Engine) BeginNew(ctx context.Context, tenantID string, sess *store.Session, by Creator, in Input) (*Pending, error) {
	if sess.AgentID == nil || strings.TrimSpace(*sess.AgentID) == "" {
		return nil, &store.ValidationError{Fields: []store.FieldError{{Field: "agent_id", Message: "is required"}}}
	}
	sess.Status = store.SessionActive
	sess.MessageCount, sess.InputTokens, sess.OutputTokens, sess.CostUSD, sess.ClosedAt = 0, 0, 0, 0, nil
	sess.CreatedByKeyID, sess.CreatedByUserID = by.KeyID, by.UserID
	if sess.Meta == nil {
		sess.Meta = map[string]any{}
	}
	if err := store.NewSessionRow(e.cfg.Store, tenantID, sess); err != nil {
		return nil, err
	}
	// The row stored is a copy: sess is the session as it was when the answer began, which
	// the answer's events and history are made from.
	row := *sess
	in.create = &row
	return e.Begin(ctx, sess, in)
}

// Get reads a session of the tenant; another tenant's is store.ErrNotFound.
func (e *Engine) Get(ctx context.Context, tenantID, id string) (*store.Session, error) {
	return store.Get[store.Session](ctx, e.cfg.Store, tenantID, id)
}

// List reads a page of the tenant's sessions, newest first, and how many pass the filter.
func (e *Engine) List(ctx context.Context, tenantID string, f store.SessionFilter, page store.Page) ([]store.Session, int, error) {
	return store.ListSessions(ctx, e.cfg.Store, tenantID, f, page)
}

// Answering reports whether a message of the session is being answered on this node.
func (e *Engine) Answering(sessionID string) bool {
	return e.answers.get(sessionID) != nil
}

// Update writes a session's label and metadata. A status of closed closes it (Close); a
// closed session cannot be opened again (a *store.ValidationError naming status).
func (e *Engine) Update(ctx context.Context, tenantID string, sess *store.Session) error {
	cur, err := e.Get(ctx, tenantID, sess.ID)
	if err != nil {
		return err
	}
	if cur.Status == store.SessionClosed && sess.Status == store.SessionActive {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "status", Message: "a closed session cannot be reopened"}}}
	}
	closing := cur.Status == store.SessionActive && sess.Status == store.SessionClosed
	// What the engine keeps is not the client's to write.
	sess.TenantID, sess.CreatedAt, sess.AgentID = cur.TenantID, cur.CreatedAt, cur.AgentID
	sess.MessageCount, sess.InputTokens, sess.OutputTokens, sess.CostUSD = cur.MessageCount, cur.InputTokens, cur.OutputTokens, cur.CostUSD
	sess.CreatedByKeyID, sess.CreatedByUserID, sess.ClosedAt = cur.CreatedByKeyID, cur.CreatedByUserID, cur.ClosedAt
	sess.Status = cur.Status
	if sess.Meta == nil {
		sess.Meta = map[string]any{}
	}
	if err := store.Update(ctx, e.cfg.Store, sess); err != nil {
		return err
	}
	if closing {
		closed, err := e.Close(ctx, tenantID, sess.ID)
		if err != nil {
			return err
		}
		*sess = *closed
	}
	return nil
}

// Close closes a session of the tenant: an answer being made is canceled, no message is
// taken from then on, and session.closed is published (once).
func (e *Engine) Close(ctx context.Context, tenantID, id string) (*store.Session, error) {
	e.cancelAnswer(tenantID, id, true)
	sess, closed, err := store.CloseSession(ctx, e.cfg.Store, tenantID, id)
	if err != nil {
		return nil, err
	}
	e.stopFlow(id)
	if closed {
		e.publish(ctx, sess, TypeClosed, sess)
	}
	return sess, nil
}

// Delete removes a session of the tenant and its messages; an answer being made is canceled
// first (and, the session being gone, not stored).
func (e *Engine) Delete(ctx context.Context, tenantID, id string) error {
	e.cancelAnswer(tenantID, id, true)
	if err := store.Delete[store.Session](ctx, e.cfg.Store, tenantID, id); err != nil {
		return err
	}
	e.stopFlow(id)
	e.history.drop(id)
	return nil
}

// MessagePage is a window of a session's history: the messages after Cursor (a message ID;
// empty for the first), skipping Offset, at most Limit.
type MessagePage struct {
	Cursor string
	Offset int
	Limit  int
}

// Messages reads a page of a session's messages, oldest first. The session must be the
// tenant's (store.ErrNotFound otherwise).
func (e *Engine) Messages(ctx context.Context, tenantID, sessionID string, p MessagePage) ([]store.SessionMessage, error) {
	return store.ListSessionMessages(ctx, e.cfg.Store, tenantID, sessionID, p.Cursor, p.Offset, p.Limit)
}

// Input is a user's message: its text and files.
type Input struct {
	Parts []store.MessagePart
	Meta  map[string]any
	// Version, when set, is the version of the session's agent that answers (a deployment's
	// snapshot) in place of the agent as it is stored now.
	Version *Version
	// Close closes the session with this turn, in the turn's own write: a session of one
	// run (Amarsia's runner), which takes no other message.
	Close bool

	// create is the session itself when it is stored with this turn (BeginNew).
	create *store.Session
}

// Version is an agent as it was published: the agent and the tools it could call then.
type Version struct {
	Agent *store.Agent
	Tools []*store.Tool
}

// TextInput is a user message of text alone.
func TextInput(text string) Input {
	return Input{Parts: []store.MessagePart{{Type: store.PartText, Text: text}}}
}

// Turn is a user message and its answer, both as stored.
type Turn struct {
	User   *store.SessionMessage
	Answer *store.SessionMessage
	// Closed says the agent ended the session with this answer.
	Closed bool
}

// Send answers a user message of sess with the session's agent, streaming the answer's
// events to sink (nil: none) as they are made, and returns both messages once the turn is
// stored. It is Begin and then Stream.
//
// The answer outlives ctx: when ctx ends (the client went away) Send returns ctx's error at
// once and the answer is still made and stored; when sink fails, Send returns its error and
// the same holds. Cancel stops an answer. A model failure is not an error of Send: the answer
// is stored as failed (Turn.Answer.Status, Error) so that the history stays whole, and the
// events carry it (EventError then EventFinish).
func (e *Engine) Send(ctx context.Context, sess *store.Session, in Input, sink Sink) (*Turn, error) {
	p, err := e.Begin(ctx, sess, in)
	if err != nil {
		return nil, err
	}
	return p.Stream(ctx, sink)
}

// Pending is an answer begun: the answer to its user message is being made; both are stored
// together when it is done.
type Pending struct {
	a    *answer
	user *store.SessionMessage
}

// User is the user message, as it will be stored (its ID is final).
func (p *Pending) User() *store.SessionMessage { return p.user }

// MessageID is the ID the answer will be stored under.
func (p *Pending) MessageID() string { return p.a.messageID }

// Begin starts answering a user message of sess on a context of its own; the message and its
// answer are stored together, in one transaction, once the answer is done (or failed, or was
// canceled). It fails with ErrClosed, ErrBusy, ErrNoAgent, ErrEmpty, ErrShutdown, or the
// store's errors, before anything is stored. The caller then calls Stream once (or never: the answer is
// made and stored all the same).
func (e *Engine) Begin(ctx context.Context, sess *store.Session, in Input) (*Pending, error) {
	return e.begin(ctx, sess, in, "")
}

// BeginByID reads a session of the tenant and begins answering in as Begin does, after check
// (nil: none) accepts the session. On PostgreSQL the read is the answer lease's claim
// (store.ClaimSessionAnswerRow): one statement, and one round trip before the first token,
// fewer than reading the session and then claiming it. It fails as Begin does, with
// store.ErrNotFound for a session that is not the tenant's, or with check's error.
func (e *Engine) BeginByID(ctx context.Context, tenantID, sessionID string, in Input, check func(*store.Session) error) (*store.Session, *Pending, error) {
	if !e.leases {
		sess, err := e.Get(ctx, tenantID, sessionID)
		if err != nil {
			return nil, nil, err
		}
		if check != nil {
			if err := check(sess); err != nil {
				return nil, nil, err
			}
		}
		p, err := e.begin(ctx, sess, in, "")
		return sess, p, err
	}
	lease := store.NewMessageID()
	sess, ok, err := store.ClaimSessionAnswerRow(ctx, e.cfg.Store, tenantID, sessionID, e.cfg.Node, lease, e.cfg.LeaseTTL)
	if err != nil {
		return nil, nil, err
	}
	// check's refusals come before the engine's, as they do where the session is read first.
	if check != nil {
		if err := check(sess); err != nil {
			if ok {
				e.releaseLease(ctx, sess.ID, lease)
			}
			return sess, nil, err
		}
	}
	switch {
	case !ok && sess.Status != store.SessionActive:
		return sess, nil, ErrClosed
	case !ok:
		return sess, nil, ErrBusy
	}
	p, err := e.begin(ctx, sess, in, lease)
	return sess, p, err
}

// releaseLease gives up an answer lease that nothing was stored with; when it cannot, the
// lease expires.
func (e *Engine) releaseLease(ctx context.Context, sessionID, lease string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := store.ReleaseSessionAnswer(ctx, e.cfg.Store, sessionID, lease); err != nil {
		e.log.Warn("session answer lease not released; it expires", "session_id", sessionID, "error", err)
	}
}

// begin is Begin; held, when set, is the answer lease already claimed for it (BeginByID),
// which it releases when it does not begin.
func (e *Engine) begin(ctx context.Context, sess *store.Session, in Input, held string) (*Pending, error) {
	refuse := func(err error) (*Pending, error) {
		if held != "" {
			e.releaseLease(ctx, sess.ID, held)
		}
		return nil, err
	}
	if !hasContent(in.Parts) {
		return refuse(ErrEmpty)
	}
	if sess.Status != store.SessionActive {
		return refuse(ErrClosed)
	}
	if sess.AgentID == nil {
		return refuse(ErrNoAgent)
	}
	answerCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.AnswerTimeout)
	a := newAnswer(sess.TenantID, sess.ID, cancel)
	if err := e.claim(a); err != nil {
		cancel()
		return refuse(err)
	}
	release := func() {
		if a.lease != "" && !a.released {
			// Nothing was stored with the lease (SessionAppend.Lease): give it up here.
			e.releaseLease(ctx, sess.ID, a.lease)
		}
		e.answers.remove(a)
		cancel()
		e.wg.Done()
	}
	// The lease is claimed while the answer is prepared (its agent and history read): the
	// two round trips to the database overlap, and the model is asked only once both are
	// done, so a session another node answers is refused before anything starts.
	var claimed chan error
	// A session stored with its first turn is known to no other node until then: there is
	// no lease to take.
	if held != "" {
		a.lease = held
		e.watchLeases(a)
	} else if e.leases && in.create == nil {
		a.lease = store.NewMessageID()
		claimed = make(chan error, 1)
		go func() {
			ok, err := store.ClaimSessionAnswer(ctx, e.cfg.Store, sess.TenantID, sess.ID, e.cfg.Node, a.lease, e.cfg.LeaseTTL)
			if err == nil && !ok {
				err = ErrBusy
			}
			claimed <- err
		}()
	}
	user, run, err := e.prepare(ctx, sess, in, a)
	if claimed != nil {
		if cerr := <-claimed; cerr != nil {
			// Refused: the lease is another answer's, nothing to release. (After another
			// failure the release is tried: it frees the lease only if it is this one's.)
			a.released = errors.Is(cerr, ErrBusy)
			release()
			return nil, cerr
		}
		e.watchLeases(a)
	}
	if err != nil {
		release()
		return nil, err
	}
	a.emit(&Event{Type: EventStart, User: user})
	go func() {
		// The session is free before the answer is reported done: a client that sends its
		// next message as soon as it has the answer is not refused as busy.
		defer close(a.done)
		defer release()
		run(answerCtx)
	}()
	return &Pending{a: a, user: user}, nil
}

// Stream delivers the answer's events to sink (nil: none) from the caller's goroutine, in
// order, and returns the turn once the answer is stored; when ctx ends or sink fails first it
// returns that error, and the answer goes on.
func (p *Pending) Stream(ctx context.Context, sink Sink) (*Turn, error) {
	a := p.a
	flusher, _ := sink.(Flusher)
	deliver := func() error {
		evs, _ := a.take()
		if sink == nil || len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			if err := sink.Event(ev); err != nil {
				return err
			}
		}
		if flusher != nil {
			return flusher.Flush()
		}
		return nil
	}
	for {
		_, more := a.peek()
		if err := deliver(); err != nil {
			return nil, err
		}
		select {
		case <-more:
		case <-a.done:
			if err := deliver(); err != nil {
				return nil, err
			}
			return &Turn{User: p.user, Answer: a.result.Answer, Closed: a.result.Closed}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func hasContent(parts []store.MessagePart) bool {
	for _, p := range parts {
		if (p.Type == store.PartText && strings.TrimSpace(p.Text) != "") || (p.Type == store.PartFile && p.URL != "") {
			return true
		}
	}
	return false
}

// claim makes a the session's answer, unless one is being made or the node is stopping.
func (e *Engine) claim(a *answer) error {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.stopping {
		return ErrShutdown
	}
	if !e.answers.claim(a) {
		return ErrBusy
	}
	e.wg.Add(1)
	return nil
}

// Cancel stops the answer being made for a session of the tenant, on this node or on
// another: the model's upstream request is closed, and what was made so far is stored as a
// canceled answer. It waits (within ctx) until that is stored. ErrNotAnswering when nothing
// is being answered.
//
// An answer on another node is asked to stop through the session's row (the lease is marked
// canceled); that node sees it within LeasePoll and stops as it would for a cancel of its
// own, and this node waits for the lease to be released with the stored turn.
func (e *Engine) Cancel(ctx context.Context, tenantID, sessionID string) error {
	if a := e.cancelAnswer(tenantID, sessionID, false); a != nil {
		select {
		case <-a.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !e.leases {
		return ErrNotAnswering
	}
	lease, ok, err := store.CancelSessionAnswer(ctx, e.cfg.Store, tenantID, sessionID)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotAnswering
	}
	t := time.NewTicker(e.cfg.LeasePoll / 4)
	defer t.Stop()
	for {
		held, err := store.SessionAnswerHeld(ctx, e.cfg.Store, sessionID, lease)
		if err != nil || !held {
			return err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchLeases starts, unless it runs, the loop that renews this node's answer leases and
// stops the answers whose session was canceled, closed or deleted on another node. It ends
// when no answer holds a lease.
//
// a is the answer whose lease was just claimed: from now on the loop watches it (not while
// its claim is under way, when the row still names the lease before it).
func (e *Engine) watchLeases(a *answer) {
	a.leaseHeld.Store(true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leasing {
		return
	}
	e.leasing = true
	go e.leaseLoop()
}

//nolint:contextcheck // the loop renews the leases of every answer on the node, not of one request
func (e *Engine) leaseLoop() {
	t := time.NewTicker(e.cfg.LeasePoll)
	defer t.Stop()
	renewed := time.Now()
	for range t.C {
		// Collected under e.mu: an answer marked held meanwhile finds the loop still
		// running (and is seen at the next tick) or ended (and starts it again).
		e.mu.Lock()
		held := map[string]*answer{}
		e.answers.each(func(a *answer) {
			if a.leaseHeld.Load() {
				held[a.sessionID] = a
			}
		})
		if len(held) == 0 {
			e.leasing = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeasePoll*10)
		ids := make([]string, 0, len(held))
		for id := range held {
			ids = append(ids, id)
		}
		rows, err := store.SessionAnswerLeases(ctx, e.cfg.Store, ids)
		if err != nil {
			e.log.Warn("session answer leases not read", "error", err)
		}
		for id, a := range held {
			row, ok := rows[id]
			if err == nil && (!ok || row.Lease != a.lease || row.Canceled || row.Status == store.SessionClosed) {
				// Canceled or closed on another node, deleted, or (after this node could
				// not renew it) claimed by another: this answer stops.
				a.canceled.Store(true)
				a.cancel()
			}
		}
		if time.Since(renewed) >= e.cfg.LeaseTTL/3 {
			leases := make(map[string]string, len(held))
			for id, a := range held {
				leases[id] = a.lease
			}
			if err := store.RenewSessionAnswers(ctx, e.cfg.Store, leases, e.cfg.LeaseTTL); err != nil {
				e.log.Warn("session answer leases not renewed", "error", err)
			} else {
				renewed = time.Now()
			}
		}
		cancel()
	}
}

// cancelAnswer cancels the session's answer, if any, and returns it; wait waits for it to
// be stored.
func (e *Engine) cancelAnswer(tenantID, sessionID string, wait bool) *answer {
	a := e.answers.get(sessionID)
	if a == nil || a.tenantID != tenantID || a.stored.Load() {
		return nil
	}
	a.canceled.Store(true)
	a.cancel()
	if wait {
		<-a.done
	}
	return a
}

// Shutdown refuses new messages and waits for the answers being made to be stored; when ctx
// ends first, they are canceled (and stored as such) and waited for.
func (e *Engine) Shutdown(ctx context.Context) {
	e.life.Lock()
	e.stopping = true
	e.life.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	defer e.stopFlows()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	e.answers.each(func(a *answer) { a.cancel() })
	<-done
}

// stopFlows ends every workflow run.
func (e *Engine) stopFlows() {
	e.mu.Lock()
	flows := e.flows
	e.flows = map[string]*flow{}
	e.mu.Unlock()
	for _, f := range flows {
		f.stop()
	}
}

// prepare reads what the answer needs and returns the user message and the function that
// makes the answer and stores the turn.
func (e *Engine) prepare(ctx context.Context, sess *store.Session, in Input, a *answer) (*store.SessionMessage, func(context.Context), error) {
	st := e.cfg.Store
	var ag *store.Agent
	var err error
	if in.Version != nil {
		ag = in.Version.Agent
	} else if ag, err = store.Get[store.Agent](ctx, st, sess.TenantID, *sess.AgentID); errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoAgent
	} else if err != nil {
		return nil, nil, err
	}
	stored, ok := e.history.get(sess.ID, sess.MessageCount)
	if !ok && in.create == nil {
		if stored, err = store.SessionHistory(ctx, st, sess.TenantID, sess.ID, e.cfg.HistoryMessages-1); err != nil {
			return nil, nil, err
		}
	}
	if len(stored) >= e.cfg.HistoryMessages {
		stored = stored[len(stored)-(e.cfg.HistoryMessages-1):]
	}
	// The answer's ID is drawn after the user message's, so that it sorts after it. The
	// user message is stored with its answer, in one transaction (see run).
	user := &store.SessionMessage{ID: store.NewMessageID(), SessionID: sess.ID, TenantID: sess.TenantID, Role: store.RoleUser,
		Parts: in.Parts, Meta: in.Meta, Status: store.MessageCompleted, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if user.Meta == nil {
		user.Meta = map[string]any{}
	}
	a.messageID = store.NewMessageID()
	history := window(append(stored, *user), e.cfg.HistoryChars)
	run := func(ctx context.Context) { e.run(ctx, sess, ag, in, user, stored, history, a) }
	return user, run, nil
}

// run makes the answer with the agent's brain and stores it.
func (e *Engine) run(ctx context.Context, sess *store.Session, ag *store.Agent, in Input, user *store.SessionMessage, stored []store.SessionMessage, history []llm.Message, a *answer) {
	log := e.log.With("session_id", sess.ID, "tenant_id", sess.TenantID, "agent_id", ag.ID)
	var (
		runErr error
		ended  bool
		model  = ag.Model
		price  *llm.Price
	)
	brain, route, err := e.brain(ctx, sess, ag, in.Version, log)
	if err != nil {
		runErr = err
	} else {
		if route.Model != "" {
			model, price = route.Model, route.Price
		}
		_, ended, runErr = brain.Answer(ctx, a, history)
	}
	parts, usage, stop, hungUp := a.snapshot()
	ended = ended || hungUp
	msg := &store.SessionMessage{ID: a.messageID, Role: store.RoleAssistant, Parts: parts, Model: model,
		InputTokens: usage.InputTokens, OutputTokens: usage.OutputTokens, Status: store.MessageCompleted}
	if price != nil {
		msg.CostUSD = price.Cost(usage)
	}
	if meta := a.knowledgeMeta(); meta != nil {
		msg.Meta = meta
	}
	switch {
	case a.canceled.Load():
		msg.Status, msg.FinishReason, msg.Error = store.MessageCanceled, FinishCanceled, "the answer was canceled"
	case runErr != nil:
		msg.Status, msg.FinishReason, msg.Error = store.MessageFailed, FinishError, failureText(runErr)
		log.Warn("session answer failed", "error", runErr)
	case ended:
		msg.FinishReason = FinishEndCall
	default:
		msg.FinishReason = finishReason(stop)
	}
	if msg.Status != store.MessageCompleted {
		a.emit(&Event{Type: EventError, Error: msg.Error})
	}
	// The turn (the user message and its answer) is stored in one transaction: it is never
	// half there, and a turn costs one write. It is stored even when the session was closed
	// meanwhile; not when it was deleted (ErrNotFound).
	storeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	closed := false
	if err := e.turns.write(store.SessionAppend{TenantID: sess.TenantID, SessionID: sess.ID, Lease: a.lease, Close: in.Close,
		New: in.create, Messages: []*store.SessionMessage{user, msg}}); err != nil {
		var ve *store.ValidationError
		if !errors.Is(err, store.ErrNotFound) && !errors.As(err, &ve) {
			log.Error("session turn not stored", "error", err)
		}
		msg.Status, msg.Error = store.MessageFailed, "the turn could not be stored: "+err.Error()
	} else {
		a.released = true
		a.stored.Store(true)
		// The session's next message is made over this history, without reading it again.
		next := append(slices.Clip(stored), *user, *msg)
		e.history.put(sess.ID, sess.MessageCount+2, next, e.cfg.HistoryMessages)
		if in.create != nil {
			created := *sess
			e.publish(storeCtx, &created, TypeCreated, &created)
		}
		e.publish(storeCtx, sess, TypeMessage, user)
		e.publish(storeCtx, sess, TypeMessage, msg)
		if in.Close {
			// Closed by the turn's own write.
			s := *sess
			now := time.Now().UTC()
			s.Status, s.ClosedAt, s.MessageCount = store.SessionClosed, &now, sess.MessageCount+2
			closed = true
			e.publish(storeCtx, &s, TypeClosed, &s)
		}
	}
	if ended && !closed {
		if s, did, err := store.CloseSession(storeCtx, e.cfg.Store, sess.TenantID, sess.ID); err == nil && did {
			closed = true
			e.publish(storeCtx, s, TypeClosed, s)
		}
	}
	// The session is free as soon as its turn is stored (and closed when the agent ended
	// it): a client that reads the answer may send its next message at once.
	e.answers.remove(a)
	a.result = Turn{Answer: msg, Closed: closed}
	a.emit(&Event{Type: EventFinish, FinishReason: msg.FinishReason, Usage: usage, CostUSD: msg.CostUSD, Model: model, Answer: msg})
}

// failureText is what a failed answer's Error says.
func failureText(err error) string {
	var ue *llm.UpstreamError
	if errors.As(err, &ue) {
		if ue.Message != "" {
			return "upstream provider error: " + ue.Message
		}
		return "upstream provider error: " + ue.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the answer took too long"
	}
	return err.Error()
}

func finishReason(r llm.StopReason) string {
	switch r {
	case llm.StopLength:
		return FinishLength
	case llm.StopContentFilter:
		return FinishFilter
	}
	return FinishStop
}

// textBrain answers one message of a text session over its history.
type textBrain interface {
	Answer(ctx context.Context, c agent.Conversation, history []llm.Message) ([]llm.Message, bool, error)
}

// brain is the agent's brain as a call gets it, for text: the LLM brain with the agent's
// webhook tools and end_call (transfer and keys mean nothing in text; no filler phrase is
// said while a tool runs), on the agent's model resolved in the tenant's registry.
func (e *Engine) brain(ctx context.Context, sess *store.Session, ag *store.Agent, version *Version, log *slog.Logger) (textBrain, llm.Route, error) {
	tenantID := sess.TenantID
	var route llm.Route
	reg, err := e.cfg.Models(ctx, tenantID)
	if err == nil {
		route, err = reg.Route(ag.Model)
	}
	if err != nil && ag.WorkflowID == nil {
		return nil, llm.Route{}, fmt.Errorf("the agent's model cannot be reached: %w", err)
	}
	tools := func() []*store.Tool {
		if version != nil {
			return version.Tools // a published version calls the tools it was published with
		}
		var tools []*store.Tool
		for _, id := range ag.ToolIDs {
			t, err := store.Get[store.Tool](ctx, e.cfg.Store, tenantID, id)
			if err != nil {
				log.Warn("the agent's tool is not readable", "tool", id, "error", err)
				continue
			}
			tools = append(tools, t)
		}
		return tools
	}()
	if ag.WorkflowID != nil {
		// A workflow's llm nodes say they cannot think when the model cannot be reached,
		// as on a call.
		wf, err := store.Get[store.Workflow](ctx, e.cfg.Store, tenantID, *ag.WorkflowID)
		if err != nil {
			return nil, llm.Route{}, fmt.Errorf("the agent's workflow is not readable: %w", err)
		}
		mk := func() agent.Brain {
			return agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf, Agent: ag, Provider: route.Provider, Model: route.Upstream,
				Tools: tools, Webhooks: e.cfg.Webhooks, Knowledge: e.cfg.Knowledge, FillerDelay: -1, Logger: log})
		}
		return &flowBrain{e: e, sessionID: sess.ID, tenantID: tenantID, make: mk}, route, nil
	}
	b, ok := agent.NewLLMBrain(agent.LLMBrainConfig{Agent: ag, Provider: route.Provider, Model: route.Upstream,
		Tools: tools, Webhooks: e.cfg.Webhooks, Builtins: []string{agent.ToolEndCall}, FillerDelay: -1,
		HistoryLimit: e.cfg.HistoryMessages, Knowledge: e.cfg.Knowledge, Logger: log}).(textBrain)
	if !ok {
		return nil, llm.Route{}, errors.New("the LLM brain cannot answer text sessions")
	}
	return b, route, nil
}

// publish sends a session's event to its topics.
func (e *Engine) publish(ctx context.Context, sess *store.Session, typ string, data any) {
	if e.cfg.Publisher == nil {
		return
	}
	topics := []string{"session:" + sess.ID}
	if sess.AgentID != nil {
		topics = append(topics, "agent:"+*sess.AgentID)
	}
	e.cfg.Publisher.PublishSession(ctx, sess.TenantID, topics, typ, data)
}
