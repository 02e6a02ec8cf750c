package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
)

// A call's record must end the way its call did, even when the database is away at that
// moment: a record left in-progress is a call billed, counted and shown as live forever.
// Every write of a call's state therefore goes through the store's call writer. It writes
// at once when it can, in the caller's goroutine, so that a record is final before the
// call's call.ended event goes out. When the database refuses, the state is queued and a
// goroutine of the store (not of the call, which may be long gone) retries it with backoff
// until the database returns, oldest call first.
//
// Per call the writer keeps order: a state is written only after every state given to it
// before, and while one state of a call waits, later states of the call are coalesced into
// it (the latest wins, but what a call sets once, its answer and its end, is never undone
// by a stale state). So a call has at most one state queued.
//
// The queue is bounded: at most CallRetryLimit calls wait at once, and a state waits at
// most CallRetryFor; past either it is dropped, logged once per outage and counted
// (CallWriterStats.Dropped).
//
// Only a database that is away is waited for. A state the database refuses for what it
// holds is not retried: it is counted (CallWriterStats.Refused), what ends the call (status,
// times, end reason) is written without the rest, and the other calls' states go on. So that a call's own data cannot make its record refused, a state is
// cleaned before it is queued: NUL characters (which PostgreSQL refuses in text and JSON)
// and invalid UTF-8 become U+FFFD, and numbers JSON cannot carry (NaN, ±Inf) become 0 or
// null.

// errRefusing is why a state is queued without an attempt: the database refused the last one.
var errRefusing = errors.New("the database refused the last write; queued without trying")

// ErrCallQueued: the database refused the state of a call for now; the store retries it
// until the database returns (within its bounds). The caller loses nothing.
var ErrCallQueued = errors.New("store: call record queued until the database returns")

// Bounds of the call writer's queue, unless Options say otherwise.
const (
	DefaultCallRetryLimit = 10000
	DefaultCallRetryFor   = time.Hour
	// callWriteTimeout bounds one attempt to write a state: a database that does not
	// answer in time is away, and the state is queued.
	callWriteTimeout = 5 * time.Second
	// callRetryBackoff is the first wait between attempts, doubled up to callRetryMaxBackoff
	// while the database stays away.
	callRetryBackoff    = 100 * time.Millisecond
	callRetryMaxBackoff = 2 * time.Second
)

// CallWriterStats are the call writer's counters since the store opened.
type CallWriterStats struct {
	// Queued is how many calls have a state waiting for the database now.
	Queued int
	// Retried is how many queued states were written once the database returned.
	Retried int64
	// Dropped is how many states were given up: past the queue's bounds, or left queued
	// when the store closed.
	Dropped int64
	// Refused is how many states the database refused for good, in whole (the record is
	// gone) or in part (a value it would not take: the call's end was written without the
	// rest): not retried, and not holding up any other call's.
	Refused int64
	// Batches is how many transactions wrote several calls' states at once, and Batched
	// how many states they wrote.
	Batches, Batched int64
}

// callWriter is the write-behind of calls' records; see above.
type callWriter struct {
	write func(ctx context.Context, c *Call) error
	// insert writes the first state of a call created behind its caller (QueueCallCreate):
	// the row does not exist yet. batch writes several states in one transaction, and says
	// whether it could (nil: the states are written one by one). Either may be nil: write
	// is used.
	insert func(ctx context.Context, c *Call) error
	batch  func(ctx context.Context, states []batchState) error
	// created, when set, is told (with w.mu held) that a call's row was inserted: the
	// event log writes the events it held back for it.
	created func()

	log     *slog.Logger
	limit   int
	maxAge  time.Duration
	timeout time.Duration
	now     func() time.Time

	mu    sync.Mutex
	calls map[string]*callState
	// queued counts the calls whose state waits for the retry loop.
	queued int
	// running: the retry loop runs; wake nudges it; closed: the store closed.
	running bool
	wake    chan struct{}
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed when the current run of the retry loop ends
	// idle is closed and replaced whenever the queue becomes empty (FlushCalls waits on it).
	idle chan struct{}
	// outage: the queue has been non-empty since the last time it drained; logged once.
	outage, dropLogged bool
	// refusing: the last write the database answered was refused. Callers then queue their
	// states without trying, so that a database that hangs rather than refuses costs a
	// call's goroutine no more than one attempt's timeout per outage, not one per update.
	refusing bool

	// behind is the calls whose newest state no caller waits for (CallWrite.Behind): the
	// flush loop writes them, several in one transaction. flushing: it runs; inFlush counts
	// the states it holds (listed or being written), which FlushCalls waits for.
	behind   []string
	flushing bool
	inFlush  int
	flushed  chan struct{} // closed when the current run of the flush loop ends
	// ownWrites counts the states callers are writing themselves (settle): while any is,
	// or the flush loop runs, a caller's state joins the flush loop's next batch instead.
	ownWrites int

	retried, dropped, refused atomic.Int64
	batches, batched          atomic.Int64
}

// batchState is one state the flush loop writes in a batch.
type batchState struct {
	C      *Call
	Insert bool
	id     string
	st     *callState
	seq    uint64
}

// callState is what the writer knows of one call with a state in flight or queued.
type callState struct {
	// latest is the newest state not yet written (coalesced), and seq its sequence number.
	latest    *Call
	latestSeq uint64
	// seq is the last sequence number given to a state of the call; written is the highest
	// one in the database.
	seq, written uint64
	// writing: a goroutine (a caller or the retry loop) is writing a state of the call.
	writing bool
	// create: the call's row is not in the database yet: its next write inserts it.
	create bool
	// behind: the call is listed for the flush loop.
	behind bool
	// waiting: the database refused; latest waits for the retry loop since queuedAt.
	waiting  bool
	queuedAt time.Time
	// users counts the callers inside write for this call.
	users int
	// changed is closed and replaced when written, writing or waiting change.
	changed chan struct{}
}

func newCallWriter(write func(ctx context.Context, c *Call) error, log *slog.Logger, limit int, maxAge time.Duration) *callWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if limit <= 0 {
		limit = DefaultCallRetryLimit
	}
	if maxAge <= 0 {
		maxAge = DefaultCallRetryFor
	}
	return &callWriter{write: write, log: log, limit: limit, maxAge: maxAge, timeout: callWriteTimeout,
		now: time.Now, calls: map[string]*callState{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), idle: make(chan struct{})}
}

// notify wakes those waiting on a change of st; w.mu is held.
func (st *callState) notify() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// deposit gives the writer c's state, behind the call's states deposited before it, and
// returns its ticket; settle (Wait) or Behind must follow. create says that c is the call's
// first state and its row is not in the database yet.
func (w *callWriter) deposit(c *Call, create bool) *CallWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.calls[c.ID]
	if st == nil {
		st = &callState{changed: make(chan struct{})}
		w.calls[c.ID] = st
	}
	st.create = st.create || create
	st.seq++
	st.latest, st.latestSeq = coalesce(st.latest, c), st.seq
	st.users++
	return &CallWrite{w: w, id: c.ID, st: st, seq: st.seq}
}

// settle writes the deposited state, or waits for the write that carries it: nil once it
// (or a later state of the call) is in the database, ErrCallQueued (wrapped) when it waits
// for the database, or the error that makes it impossible to write (ErrNotFound).
func (w *callWriter) settle(ctx context.Context, t *CallWrite) error {
	st, seq := t.st, t.seq
	w.mu.Lock()
	defer func() {
		st.users--
		if st.users == 0 && st.latest != nil && !st.writing && !st.waiting {
			// A state left behind (CallWrite.Behind) while ours was written: the flush
			// loop writes it.
			w.listBehind(t.id, st)
		}
		w.forget(t.id, st)
		w.mu.Unlock()
	}()
	for {
		switch {
		case st.written >= seq:
			return nil
		case st.waiting:
			return fmt.Errorf("%w (call %s)", ErrCallQueued, t.id)
		case !st.writing && w.refusing:
			w.enqueue(t.id, st, errRefusing)
			if st.waiting {
				return fmt.Errorf("%w (call %s)", ErrCallQueued, t.id)
			}
			return fmt.Errorf("%w (call %s): dropped", ErrCallQueued, t.id)
		case !st.writing && !st.behind && (w.flushing || w.ownWrites > 0) && !w.closed:
			// Other states are being written: ours joins the flush loop's next batch
			// (group commit), where alone it would queue for the database's writer
			// behind them and then pay a transaction of its own.
			w.listBehind(t.id, st)
		case !st.writing && !st.behind:
			// Our turn: write the newest state, which holds ours.
			if err := w.writeLatest(ctx, t.id, st); err != nil {
				return err
			}
			continue
		}
		changed := st.changed
		w.mu.Unlock()
		select {
		case <-changed:
			w.mu.Lock()
		case <-ctx.Done():
			// Our state is still to be written behind the one in flight: the retry loop
			// takes it over.
			w.mu.Lock()
			if st.written < seq {
				w.enqueue(t.id, st, ctx.Err())
				return fmt.Errorf("%w (call %s): %w", ErrCallQueued, t.id, ctx.Err())
			}
		}
	}
}

// writeLatest writes st.latest with w.mu held on entry and on return (released while the
// database works). A refused state is queued: ErrCallQueued, or the permanent error.
func (w *callWriter) writeLatest(ctx context.Context, id string, st *callState) error {
	c, seq, insert := st.latest, st.latestSeq, st.create
	st.latest, st.writing = nil, true
	w.ownWrites++
	w.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	err := w.attempt(wctx, c, insert)
	cancel()
	w.mu.Lock()
	w.ownWrites--
	return w.wrote(id, st, c, seq, insert, err)
}

// wrote settles the write of st's state c (seq, inserted or not) that ended with err; w.mu
// is held. A permanent error (the record is gone, a value refused) is returned for the
// caller to report: the state is given up and the call's later states go on. A database
// that is away queues the state for the retry loop: ErrCallQueued.
func (w *callWriter) wrote(id string, st *callState, c *Call, seq uint64, insert bool, err error) error {
	st.writing = false
	// Only a database that is away makes the others queue without trying: one that
	// answered, even with a refusal of this state, is there for the next.
	w.refusing = err != nil && retryable(err)
	defer st.notify()
	if err == nil || !retryable(err) {
		if err != nil {
			w.refused.Add(1)
		}
		if insert {
			w.inserted(st)
		}
		st.written = max(st.written, seq)
		if st.latest != nil && st.users == 0 {
			// A later state no caller will write: the flush loop does.
			w.listBehind(id, st)
		}
		return err
	}
	// Refused: the state goes back under any later one and waits for the retry loop.
	st.latest = coalesce(c, st.latest)
	st.latestSeq = max(st.latestSeq, seq)
	w.enqueue(id, st, err)
	return fmt.Errorf("%w: %w", ErrCallQueued, err)
}

// enqueue makes st wait for the retry loop, within the queue's bounds; w.mu is held.
func (w *callWriter) enqueue(id string, st *callState, cause error) {
	if st.waiting {
		return
	}
	if w.closed {
		w.drop(id, st, "the store is closed", cause)
		return
	}
	if w.queued >= w.limit {
		w.drop(id, st, "the queue of call records is full", cause)
		return
	}
	st.waiting, st.queuedAt = true, w.now()
	w.queued++
	if !w.outage {
		w.outage = true
		w.log.Warn("call records queued: the database refused them; retrying until it returns",
			"error", cause, "limit", w.limit, "retry_for", w.maxAge)
	}
	if !w.running {
		w.running = true
		w.done = make(chan struct{})
		go w.retry(w.done)
	}
}

// drop gives up the state of a call; w.mu is held.
func (w *callWriter) drop(id string, st *callState, why string, cause error) {
	if st.waiting {
		st.waiting = false
		w.queued--
	}
	st.written = max(st.written, st.latestSeq)
	st.latest = nil
	w.dropped.Add(1)
	if !w.dropLogged {
		w.dropLogged = true
		w.log.Error("call records dropped: "+why+"; these calls keep their last written state",
			"call", id, "error", cause, "limit", w.limit, "retry_for", w.maxAge)
	}
	st.notify()
	w.forget(id, st)
	w.checkIdle()
}

// inserted records that st's row is in the database, and tells the event log; w.mu is held.
func (w *callWriter) inserted(st *callState) {
	st.create = false
	if w.created != nil {
		w.created()
	}
}

// uncreated says, for each call id, whether its row is still to be inserted by the writer
// (its first state queued behind the call, not yet in the database).
func (w *callWriter) uncreated(ids []string, out []bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, id := range ids {
		st := w.calls[id]
		out[i] = st != nil && st.create
	}
}

// forget removes the call once nothing of it is in flight or queued; w.mu is held.
func (w *callWriter) forget(id string, st *callState) {
	if st.users == 0 && !st.writing && !st.waiting && !st.behind && st.latest == nil && w.calls[id] == st {
		delete(w.calls, id)
	}
}

// checkIdle tells FlushCalls the queue is empty; w.mu is held.
func (w *callWriter) checkIdle() {
	if w.queued > 0 || w.inFlush > 0 {
		return
	}
	if w.outage {
		w.outage, w.dropLogged = false, false
		w.log.Info("call records written: the database is back", "retried", w.retried.Load(), "dropped", w.dropped.Load())
	}
	close(w.idle)
	w.idle = make(chan struct{})
}

// retry is the retry loop: while calls wait, it writes their states, oldest first, and
// backs off while the database refuses. It ends when the queue is empty or the store
// closes.
func (w *callWriter) retry(done chan struct{}) {
	defer close(done)
	backoff := callRetryBackoff
	timer := time.NewTimer(backoff)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-w.wake:
		case <-w.stop:
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		}
		refused := w.retryPass()
		w.mu.Lock()
		if w.queued == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if refused {
			backoff = min(2*backoff, callRetryMaxBackoff)
		} else {
			backoff = callRetryBackoff
		}
		timer.Reset(backoff)
	}
}

// retryPass tries the waiting calls oldest first, and stops at the first the database
// refuses because it is still away: refused reports that. A state refused for good is
// given up (logged with its call, counted) and the pass goes on to the next.
//
//nolint:contextcheck // write-behind retries outlive the calls' requests and carry their own deadlines
func (w *callWriter) retryPass() (refused bool) {
	w.mu.Lock()
	type item struct {
		id string
		at time.Time
	}
	var items []item
	for id, st := range w.calls {
		if st.waiting {
			items = append(items, item{id, st.queuedAt})
		}
	}
	w.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].at.Before(items[j].at) })
	for _, it := range items {
		w.mu.Lock()
		st := w.calls[it.id]
		if st == nil || !st.waiting || st.writing {
			w.mu.Unlock()
			continue
		}
		if w.now().Sub(st.queuedAt) > w.maxAge {
			w.drop(it.id, st, "queued longer than the writer retries", nil)
			w.mu.Unlock()
			continue
		}
		if w.closing() {
			w.mu.Unlock()
			return true
		}
		c, seq, insert := st.latest, st.latestSeq, st.create
		st.latest, st.writing = nil, true
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		err := w.attempt(ctx, c, insert)
		cancel()
		w.mu.Lock()
		st.writing = false
		w.refusing = err != nil && retryable(err)
		if err != nil && retryable(err) {
			st.latest = coalesce(c, st.latest)
			st.latestSeq = max(st.latestSeq, seq)
			st.notify()
			w.mu.Unlock()
			return true
		}
		if err != nil {
			w.refused.Add(1)
			w.log.Warn("call record refused by the database; this state is given up", "call", it.id, "status", c.Status, "error", err)
		} else {
			w.retried.Add(1)
		}
		if insert {
			w.inserted(st)
		}
		st.written = max(st.written, seq)
		if st.latest == nil {
			// Written up to date: the call is off the queue. A later state that came
			// meanwhile stays queued, and is written next, in order.
			st.waiting = false
			w.queued--
		}
		st.notify()
		w.forget(it.id, st)
		w.checkIdle()
		w.mu.Unlock()
	}
	return false
}

// closing reports whether the store is closing; w.mu is held.
func (w *callWriter) closing() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// flush waits until no call waits for the database, trying at once.
func (w *callWriter) flush(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.queued == 0 && w.inFlush == 0 {
			w.mu.Unlock()
			return nil
		}
		idle, n := w.idle, w.queued+w.inFlush
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("store: %d call records still queued: %w", n, ctx.Err())
		case <-time.After(callRetryBackoff):
			// Nudge the loop again: it may be sleeping through a long backoff.
		}
	}
}

// close stops the retry loop; states still queued are dropped and counted.
func (w *callWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	running, done := w.running, w.done
	flushing, flushed := w.flushing, w.flushed
	close(w.stop)
	w.mu.Unlock()
	if flushing {
		// What the flush loop holds is written (or queued, and dropped below) first.
		<-flushed
	}
	if running {
		<-done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queued > 0 {
		w.log.Error("store closed with call records still queued; they keep their last written state", "calls", w.queued)
		for id, st := range w.calls {
			if st.waiting {
				w.drop(id, st, "the store closed", nil)
			}
		}
	}
}

func (w *callWriter) stats() CallWriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return CallWriterStats{Queued: w.queued, Retried: w.retried.Load(), Dropped: w.dropped.Load(), Refused: w.refused.Load(),
		Batches: w.batches.Load(), Batched: w.batched.Load()}
}

// retryable says whether a write refused with err may succeed later: the database was
// unreachable, unavailable, busy or too slow for the attempt. Anything else (a record that
// does not exist, a value the database refuses, a state that cannot be encoded) will be
// refused again, so it is never retried: retried, one bad record would hold every other
// call's record behind it.
func retryable(err error) bool {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Connection exceptions, transaction rollbacks (serialization failure, deadlock),
		// insufficient resources (disk full, out of memory, too many connections),
		// operator intervention (shutting down, cannot connect now, statement cancelled)
		// and a lock not available in time pass; everything else is about the statement
		// itself.
		for _, class := range []string{"08", "40", "53", "57"} {
			if strings.HasPrefix(pgErr.Code, class) {
				return true
			}
		}
		return pgErr.Code == "55P03"
	}
	return false
}

// coalesce merges two states of one call into one to write: newer wins, but what the call
// set once (when it started, was answered and ended, why, and how it went) is kept from
// older when newer lacks it, and a final status is never turned back into a live one.
// Either may be nil.
func coalesce(older, newer *Call) *Call {
	if older == nil {
		return newer
	}
	if newer == nil {
		return older
	}
	m := *newer
	if m.StartedAt == nil {
		m.StartedAt = older.StartedAt
	}
	if m.AnsweredAt == nil {
		m.AnsweredAt = older.AnsweredAt
	}
	if m.SIPCallID == "" {
		m.SIPCallID = older.SIPCallID
	}
	if m.Codec == "" {
		m.Codec = older.Codec
	}
	if older.EndedAt != nil && m.EndedAt == nil {
		m.EndedAt, m.EndedReason, m.Status, m.DurationSeconds = older.EndedAt, older.EndedReason, older.Status, older.DurationSeconds
	}
	if m.Quality == (CallQuality{}) {
		m.Quality = older.Quality
	}
	if len(m.Report) == 0 {
		m.Report = older.Report
	}
	if reflect.ValueOf(m.CallUsage).IsZero() {
		m.CallUsage = older.CallUsage
	}
	if len(older.Metadata) > 0 {
		md := maps.Clone(older.Metadata)
		maps.Copy(md, m.Metadata)
		m.Metadata = md
	}
	return &m
}

// UpdateCallState writes what changes while a call is carried: SIP Call-ID, codec, status,
// ended reason, times, duration, quality, metadata and report. Unlike Update it leaves the
// call's agent and trunk alone (either may be deleted while the call is live) and checks no
// references, so the record of a call always keeps up with the call. Once the record has
// ended (by this call or by another node that found its node lost), its status, times and
// end reason stay as they are; the rest is still written.
//
// It goes through the store's call writer: nil when the state is written, an error
// wrapping ErrCallQueued when the database refused it for now and the store retries it in
// the background (in order, behind the call's earlier states), ErrNotFound for a call
// that is not in the store. c is not kept: the writer copies what it queues.
func UpdateCallState(ctx context.Context, s *Store, c *Call) error {
	return QueueCallState(s, c).Wait(ctx)
}

// CallWrite is a state of a call given to the store's call writer: its place in the call's
// order is taken; Wait writes it.
type CallWrite struct {
	w   *callWriter
	id  string
	st  *callState
	seq uint64
}

// QueueCallState gives the call writer c's state, after every state of the call given
// before: a caller that changes a call's record under its own lock calls it under that lock,
// so that the states are written in the order they were made. The returned CallWrite must be
// waited on. c is copied.
func QueueCallState(s *Store, c *Call) *CallWrite {
	cp := *c
	cp.Metadata, cp.Report = maps.Clone(c.Metadata), maps.Clone(c.Report)
	cleanState(&cp)
	return s.calls.deposit(&cp, false)
}

// QueueCallCreate gives the call writer a new call's first state, to be inserted behind
// its caller: a call is answered from memory, and its record reaches the database as soon
// as the database takes it, batched with other calls' states, in order before the call's
// later states, retried while the database is away (as UpdateCallState says). It sets c's
// ID and times, as Create does, and refuses what Create refuses (a *ValidationError). Unlike
// Create it checks no references: the call's agent and trunk were read to route it. The
// returned CallWrite is waited on (Wait) or left to the writer (Behind).
func QueueCallCreate(s *Store, tenantID string, c *Call) (*CallWrite, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	c.ID, c.TenantID, c.CreatedAt, c.UpdatedAt = newID(c.idPrefix()), tenantID, now, now
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	if c.Report == nil {
		c.Report = map[string]any{}
	}
	cp := *c
	cp.Metadata, cp.Report = maps.Clone(c.Metadata), maps.Clone(c.Report)
	cleanState(&cp)
	return s.calls.deposit(&cp, true), nil
}

// cleanState makes c a state every database accepts, whatever the call put in it: NUL
// characters (PostgreSQL refuses them in text and in JSON) and invalid UTF-8 become U+FFFD,
// numbers JSON cannot carry (NaN, ±Inf) become 0 in the record's own fields and null in
// metadata and report, and values that cannot be encoded as JSON at all become null. The
// maps of c are not changed in place (they may be shared with the caller): a changed one is
// replaced by a cleaned copy.
func cleanState(c *Call) {
	c.SIPCallID, c.Codec = cleanString(c.SIPCallID), cleanString(c.Codec)
	c.Status, c.EndedReason = cleanString(c.Status), cleanString(c.EndedReason)
	c.DurationSeconds = finite(c.DurationSeconds)
	q := &c.Quality
	q.LossPercent, q.JitterMS, q.RTTMS = finite(q.LossPercent), finite(q.JitterMS), finite(q.RTTMS)
	u := &c.CallUsage
	u.STTSeconds, u.CostUSD = finite(u.STTSeconds), finite(u.CostUSD)
	if u.LatencyP50MS != nil && finite(*u.LatencyP50MS) != *u.LatencyP50MS {
		u.LatencyP50MS = nil
	}
	if slices.ContainsFunc(u.TurnLatenciesMS, func(v float64) bool { return finite(v) != v }) {
		u.TurnLatenciesMS = slices.DeleteFunc(slices.Clone(u.TurnLatenciesMS), func(v float64) bool { return finite(v) != v })
	}
	for _, p := range []*float64{&u.Cost.Model, &u.Cost.STT, &u.Cost.TTS, &u.Cost.Telephony, &u.Cost.Total} {
		*p = finite(*p)
	}
	if v, changed := cleanJSON(c.Metadata); changed {
		c.Metadata, _ = v.(map[string]any)
	}
	if v, changed := cleanJSON(c.Report); changed {
		c.Report, _ = v.(map[string]any)
	}
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func cleanString(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanJSON returns v cleaned as cleanState says, and whether anything changed (v itself is
// returned, untouched, when nothing did).
func cleanJSON(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, json.Number:
		return v, false
	case string:
		c := cleanString(x)
		return c, c != x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, true
		}
		return v, false
	case float32:
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, true
		}
		return v, false
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			ck := cleanString(k)
			ce, changed := cleanJSON(e)
			if ck == k && !changed {
				continue
			}
			if out == nil {
				out = maps.Clone(x)
			}
			delete(out, k)
			out[ck] = ce
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			ce, changed := cleanJSON(e)
			if !changed {
				continue
			}
			if out == nil {
				out = append([]any(nil), x...)
			}
			out[i] = ce
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		// A named string type: cleaned as a string.
		c := cleanString(rv.String())
		return c, c != rv.String()
	}
	// Any other value (a struct, a typed slice or map) is cleaned through its JSON: one
	// that cannot be encoded becomes null, one whose encoding holds a NUL is decoded and
	// cleaned.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, true
	}
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return v, false
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, true
	}
	c, _ := cleanJSON(g)
	return c, true
}

// Wait writes the state, or waits while an earlier state of the call is being written
// (then writes the newest), as UpdateCallState says. It is called once, or Behind is.
func (cw *CallWrite) Wait(ctx context.Context) error { return cw.w.settle(ctx, cw) }

// Behind leaves the state to the writer: its flush loop writes it (with other calls'
// states, in one transaction) without anyone waiting, in the call's order. A state the
// database refuses for now is retried as any other; one it refuses for good is logged.
func (cw *CallWrite) Behind() {
	w := cw.w
	w.mu.Lock()
	defer w.mu.Unlock()
	cw.st.users--
	if cw.st.written >= cw.seq {
		w.forget(cw.id, cw.st)
		return
	}
	if cw.st.writing || cw.st.waiting {
		// The write under way takes care of it (wrote lists what is left), or the retry
		// loop does.
		return
	}
	w.listBehind(cw.id, cw.st)
}

// flushBatch is the most states the flush loop writes in one transaction.
const flushBatch = 128

// listBehind lists st's call for the flush loop, starting it if need be; w.mu is held.
func (w *callWriter) listBehind(id string, st *callState) {
	if st.behind {
		return
	}
	st.behind = true
	w.behind = append(w.behind, id)
	w.inFlush++
	if !w.flushing {
		w.flushing = true
		w.flushed = make(chan struct{})
		go w.flushLoop(w.flushed)
	}
}

// flushLoop writes the listed calls' newest states, up to flushBatch in one transaction,
// until none is listed. A batch the database refuses as a whole is written state by state,
// so that one state it refuses for good does not hold the others back.
//
//nolint:contextcheck // write-behind outlives the calls' requests and carries its own deadlines
func (w *callWriter) flushLoop(done chan struct{}) {
	defer close(done)
	for {
		w.mu.Lock()
		n := min(len(w.behind), flushBatch)
		if n == 0 {
			w.flushing = false
			w.mu.Unlock()
			return
		}
		ids := w.behind[:n:n]
		w.behind = w.behind[n:]
		if len(w.behind) == 0 {
			w.behind = nil
		}
		batch := make([]batchState, 0, n)
		for _, id := range ids {
			st := w.calls[id]
			if st == nil {
				w.inFlush--
				continue
			}
			st.behind = false
			if st.writing || st.waiting || st.latest == nil {
				// Someone else writes it (and wrote lists what is left) or the retry
				// loop does, or it was written meanwhile.
				w.inFlush--
				w.forget(id, st)
				continue
			}
			batch = append(batch, batchState{C: st.latest, Insert: st.create, id: id, st: st, seq: st.latestSeq})
			st.latest, st.writing = nil, true
		}
		w.checkIdle()
		w.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		errs := w.writeBatch(batch)
		w.mu.Lock()
		for i, b := range batch {
			if err := w.wrote(b.id, b.st, b.C, b.seq, b.Insert, errs[i]); err != nil && !errors.Is(err, ErrCallQueued) {
				w.log.Warn("call record refused by the database; this state is given up", "call", b.id, "status", b.C.Status, "error", err)
			}
			w.inFlush--
			w.forget(b.id, b.st)
		}
		w.checkIdle()
		w.mu.Unlock()
	}
}

// writeBatch writes the states in one transaction when it can, else one by one; it
// returns each state's error.
func (w *callWriter) writeBatch(batch []batchState) []error {
	errs := make([]error, len(batch))
	if len(batch) > 1 && w.batch != nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		err := w.batch(ctx, batch)
		cancel()
		if err == nil {
			w.batches.Add(1)
			w.batched.Add(int64(len(batch)))
			return errs
		}
	}
	for i, b := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		errs[i] = w.attempt(ctx, b.C, b.Insert)
		cancel()
	}
	return errs
}

// FlushCalls waits until every queued call record is written (or dropped), nudging the
// retry at once; a node calls it as it stops, with a deadline, before it closes the store.
func (s *Store) FlushCalls(ctx context.Context) error { return s.calls.flush(ctx) }

// CallWriterStats reports the call writer's queue and counters.
func (s *Store) CallWriterStats() CallWriterStats { return s.calls.stats() }

// writeCallState is one attempt to write a call's state. Should the database refuse
// something the state holds (not because it is away), what ends the call is written without
// the rest: a *partialWriteError.
func writeCallState(ctx context.Context, s *Store, c *Call) error {
	stamp(s, c)
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	if c.Report == nil {
		c.Report = map[string]any{}
	}
	write := func(columns ...string) error {
		return s.rollTx(ctx, []string{c.ID}, func(tx bun.Tx) error { return updateCall(ctx, tx, c, columns...) })
	}
	err := write(fullState...)
	if err == nil || retryable(err) || errors.Is(err, ErrNotFound) {
		return err
	}
	if write() != nil {
		return err
	}
	return &partialWriteError{err: err}
}

// stamp dates a state that its maker did not: a state's updated_at is when the call
// changed, not when the writer caught up with it, so that a reader can order what it read
// from the store and what it heard in the call's events (which carry the same time).
func stamp(s *Store, c *Call) {
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = s.now()
	}
}

// fullState is what a call's state writes beyond its status, times and end.
var fullState = []string{"sip_call_id", "codec", "quality", "metadata", "report", "amd", "recording_url", "recording_expires_at", "media_security",
	"input_tokens", "output_tokens", "stt_seconds", "tts_characters", "turns", "interruptions",
	"tool_calls", "tool_failures", "latency_p50_ms", "turn_latencies_ms", "cost_usd", "cost"}

// insertCallState writes the first state of a call created behind its caller
// (QueueCallCreate). An earlier attempt the database committed but did not confirm in time
// left the row there: then the state is written over it.
func insertCallState(ctx context.Context, s *Store, c *Call) error {
	stamp(s, c)
	inserted := false
	err := s.rollTx(ctx, []string{c.ID}, func(tx bun.Tx) error {
		var err error
		inserted, err = insertCall(ctx, tx, c)
		return err
	})
	if err != nil || inserted {
		return err
	}
	return writeCallState(ctx, s, c)
}

// insertCall inserts the call's row unless it is there already (inserted false).
func insertCall(ctx context.Context, db bun.IDB, c *Call) (inserted bool, err error) {
	res, err := db.NewInsert().Model(c).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, classify(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// rollTx runs fn, which writes the rows of the calls ids, in a transaction that applies the
// change of their figures to the analytics' rollups (rollCalls).
func (s *Store) rollTx(ctx context.Context, ids []string, fn func(tx bun.Tx) error) error {
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return rollCalls(ctx, tx, s.dialect, ids, func() error { return fn(tx) })
	})
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return classify(err)
}

// writeCallStates writes several calls' states in one transaction: one commit for many
// calls, where SQLite's single writer would otherwise take one each. Any refusal refuses
// them all; the writer then writes them one by one.
func writeCallStates(ctx context.Context, s *Store, states []batchState) error {
	ids := make([]string, len(states))
	for i, b := range states {
		ids[i] = b.C.ID
	}
	return s.rollTx(ctx, ids, func(tx bun.Tx) error {
		for _, b := range states {
			c := b.C
			stamp(s, c)
			if c.Metadata == nil {
				c.Metadata = map[string]any{}
			}
			if c.Report == nil {
				c.Report = map[string]any{}
			}
			inserted := false
			if b.Insert {
				var err error
				if inserted, err = insertCall(ctx, tx, c); err != nil {
					return err
				}
			}
			if !inserted {
				if err := updateCall(ctx, tx, c, fullState...); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// updateCall writes the call's status, times and end, and the columns given. An ended record
// stays as it ended: the call's status, times and end are written only while the record is
// live. A call found lost (node-lost) while its node still ran keeps going until it ends on
// its own, and its later states must not make the record live again, nor replace the end
// that was already published; what else they carry (quality, metadata, report) is still
// written.
func updateCall(ctx context.Context, db bun.IDB, c *Call, columns ...string) error {
	q := db.NewUpdate().Model(c).
		Column(append([]string{"status", "ended_reason", "started_at", "answered_at", "ended_at",
			"duration_seconds", "updated_at"}, columns...)...)
	live := bun.List(liveStatuses)
	for col, v := range map[string]any{"status": c.Status, "ended_reason": c.EndedReason, "started_at": c.StartedAt,
		"answered_at": c.AnsweredAt, "ended_at": c.EndedAt, "duration_seconds": c.DurationSeconds} {
		q = q.Value(col, "CASE WHEN status IN (?) THEN ? ELSE ? END", live, v, bun.Ident(col))
	}
	res, err := q.Where("id = ?", c.ID).Where("tenant_id = ?", c.TenantID).Exec(ctx)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// partialWriteError: the database refused part of a call's state for good; the call's
// status, times and end were written without the rest.
type partialWriteError struct{ err error }

func (e *partialWriteError) Error() string {
	return "store: call record written without its codec, quality, metadata and report: " + e.err.Error()
}

func (e *partialWriteError) Unwrap() error { return e.err }

// attempt is one write of a call's state. A state written in part counts as written (what
// ends the call is in the database); the refusal of the rest is logged with the call and
// counted.
func (w *callWriter) attempt(ctx context.Context, c *Call, insert bool) error {
	write := w.write
	if insert && w.insert != nil {
		write = w.insert
	}
	err := write(ctx, c)
	var pe *partialWriteError
	if errors.As(err, &pe) {
		w.refused.Add(1)
		w.log.Warn("call record written without its codec, quality, metadata and report: the database refused them",
			"call", c.ID, "status", c.Status, "error", pe.err)
		return nil
	}
	return err
}
