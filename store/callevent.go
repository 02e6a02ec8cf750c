package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

// A past call keeps what it published as it went (its state changes, transcript, agent
// speech, latency figures, tool calls, barge-ins, errors, answering-machine detection): the
// hub's replay holds a call's events for minutes, the call's history for as long as the
// call is kept. The events are written behind the call, in batches, by a goroutine of the
// store: RecordCallEvent never waits for the database, so the media path never does either.
//
// What is kept of one call is bounded (MaxCallEvents, MaxCallEventBytes): a call that says
// more keeps its first events and a last one of type EventsTruncated saying so. While the
// database is away, events wait in a bounded queue (callEventQueue, callEventRetryFor) and
// are dropped past it, counted in CallEventStats.

// Bounds of what is kept of one call's events.
const (
	// MaxCallEvents is how many events of one call are kept, EventsTruncated included.
	MaxCallEvents = 2000
	// MaxCallEventBytes bounds the JSON data of one call's kept events.
	MaxCallEventBytes = 1 << 20
)

// EventsTruncated is the last event kept of a call that published past the bounds; its data
// (CallEventsTruncated) says how many were kept.
const EventsTruncated = "call.events_truncated"

const (
	// callEventQueue bounds the events of all the node's calls waiting for the database.
	callEventQueue = 20000
	// callEventBatch is how many events one insert writes at most.
	callEventBatch = 500
	// callEventRetryFor is how long an event waits for the database, or for its call's
	// record (written behind the call too), before it is dropped.
	callEventRetryFor = 10 * time.Minute
	// callEventRetryEvery is the wait between attempts while events wait.
	callEventRetryEvery = time.Second
	// callBudgetIdle is how long a call's count of kept events is remembered after its last
	// event: longer than any event comes after a call's end.
	callBudgetIdle = time.Hour
)

// CallEvent is one event a call published, as kept in its history.
type CallEvent struct {
	bun.BaseModel `bun:"table:call_events"`

	// ID orders the events of the history; with At it is the order of a call's events.
	ID       int64           `bun:"id,pk,autoincrement" json:"id"`
	TenantID string          `bun:"tenant_id,notnull" json:"-"`
	CallID   string          `bun:"call_id,notnull" json:"call_id"`
	Type     string          `bun:"type,notnull" json:"type"`
	At       time.Time       `bun:"at,notnull" json:"time"`
	Data     json.RawMessage `bun:"data,type:json,notnull" json:"data"`
}

// CallEventsTruncated is the data of EventsTruncated.
type CallEventsTruncated struct {
	// Kept is how many events of the call were kept before this one.
	Kept int `json:"kept"`
	// Reason names the bound: "max_events" or "max_bytes".
	Reason string `json:"reason"`
}

// CallEventStats are the event log's counters since the store opened.
type CallEventStats struct {
	// Written is how many events reached the database.
	Written int64
	// Dropped counts events given up: past a call's bounds, past the queue's, refused by
	// the database, or left waiting when the store closed.
	Dropped int64
}

// eventLog is the write-behind of calls' events; see above.
type eventLog struct {
	s   *Store
	log *slog.Logger

	mu      sync.Mutex
	pending []pendingEvent
	budgets map[string]*callBudget
	flushes []chan struct{}
	running bool
	closed  bool
	// busy: the goroutine holds events it took from pending and has not settled yet.
	busy       bool
	wake, stop chan struct{}
	done       chan struct{}
	dropLogged bool

	written, dropped atomic.Int64
	// holding: a pass holds events back until their calls' records are inserted.
	holding atomic.Bool
}

type pendingEvent struct {
	ev     CallEvent
	queued time.Time
}

// callBudget is what a call has used of its bounds.
type callBudget struct {
	n, bytes  int
	truncated bool
	last      time.Time
}

func newEventLog(s *Store, log *slog.Logger) *eventLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &eventLog{s: s, log: log, budgets: map[string]*callBudget{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// RecordCallEvent keeps an event a call of the tenant published (typ, with data that
// encodes as JSON) in the call's history. It never blocks: the event is written behind the
// call. A nil store keeps nothing.
func RecordCallEvent(s *Store, tenantID, callID, typ string, data any) {
	if s == nil || s.events == nil || callID == "" || tenantID == "" {
		return
	}
	s.events.record(tenantID, callID, typ, eventJSON(data), time.Now().UTC())
}

// eventJSON encodes data as the database takes it: NaN and infinities become null (cleaned
// as a call's report is), NUL characters U+FFFD (PostgreSQL refuses them in JSON).
func eventJSON(data any) json.RawMessage {
	raw, err := json.Marshal(data)
	if err != nil {
		v, _ := cleanJSON(data)
		if raw, err = json.Marshal(v); err != nil {
			return json.RawMessage("null")
		}
	}
	if bytes.Contains(raw, []byte(`\u0000`)) {
		raw = bytes.ReplaceAll(raw, []byte(`\u0000`), []byte(`\ufffd`))
	}
	return raw
}

func (l *eventLog) record(tenantID, callID, typ string, raw json.RawMessage, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	b := l.budgets[callID]
	if b == nil {
		b = &callBudget{}
		l.budgets[callID] = b
		if len(l.budgets)%1024 == 0 {
			l.forgetIdleLocked(at)
		}
	}
	b.last = at
	if b.truncated {
		l.dropped.Add(1)
		return
	}
	reason := ""
	switch {
	case b.n+1 >= MaxCallEvents:
		reason = "max_events"
	case b.bytes+len(raw) > MaxCallEventBytes:
		reason = "max_bytes"
	}
	if reason != "" {
		// The marker takes the last place, so a reader knows the history stops here.
		b.truncated = true
		l.dropped.Add(1)
		typ, raw = EventsTruncated, eventJSON(CallEventsTruncated{Kept: b.n, Reason: reason})
	}
	if len(l.pending) >= callEventQueue {
		l.dropped.Add(1)
		if !l.dropLogged {
			l.dropLogged = true
			l.log.Warn("call events dropped: too many wait for the database", "queue", callEventQueue)
		}
		return
	}
	b.n++
	b.bytes += len(raw)
	l.pending = append(l.pending, pendingEvent{ev: CallEvent{TenantID: tenantID, CallID: callID, Type: typ, At: at, Data: raw}, queued: at})
	if !l.running {
		l.running = true
		l.done = make(chan struct{})
		go l.run(l.done)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// forgetIdleLocked forgets the budgets of calls that published nothing for callBudgetIdle.
func (l *eventLog) forgetIdleLocked(now time.Time) {
	for id, b := range l.budgets {
		if now.Sub(b.last) > callBudgetIdle {
			delete(l.budgets, id)
		}
	}
}

// run writes pending events until the store closes.
//
//nolint:contextcheck // write-behind outlives the calls that publish and carries its own deadlines
func (l *eventLog) run(done chan struct{}) {
	defer close(done)
	var retry <-chan time.Time
	for {
		select {
		case <-l.wake:
		case <-retry:
		case <-l.stop:
			// What waits gets one last attempt, bounded: a store closing does not hang
			// on a database that is away.
			ctx, cancel := context.WithTimeout(context.Background(), callWriteTimeout)
			l.pass(ctx)
			cancel()
			l.mu.Lock()
			l.dropped.Add(int64(len(l.pending)))
			l.pending = nil
			l.notifyLocked()
			l.mu.Unlock()
			return
		}
		retry = nil
		if waiting := l.pass(context.Background()); waiting {
			retry = time.After(callEventRetryEvery)
		}
	}
}

// pass writes what is pending, in batches, and says whether some events wait to be tried
// again (the database is away, or their call's record is not written yet).
func (l *eventLog) pass(ctx context.Context) (waiting bool) {
	var later []pendingEvent
	holding := false
	defer func() { l.holding.Store(holding) }()
	for {
		l.mu.Lock()
		n := min(len(l.pending), callEventBatch)
		if n == 0 {
			l.pending = append(later, l.pending...)
			waiting = len(l.pending) > 0
			l.busy = false
			l.notifyLocked()
			l.mu.Unlock()
			return waiting
		}
		batch := append([]pendingEvent(nil), l.pending[:n]...)
		l.pending = l.pending[n:]
		l.busy = true
		l.mu.Unlock()
		batch, held := l.holdUncreated(batch)
		later = append(later, held...)
		holding = holding || len(held) > 0
		if len(batch) == 0 {
			continue
		}
		again, away := l.write(ctx, batch)
		later = append(later, again...)
		if away {
			// The database is away: the rest waits for the next attempt rather than each
			// batch waiting out its own timeout.
			l.mu.Lock()
			l.pending = append(later, l.pending...)
			l.busy = false
			l.mu.Unlock()
			return true
		}
	}
}

// holdUncreated takes out of batch the events of calls whose record the call writer has
// not inserted yet (a call's first state is written behind the call, as its events are):
// written now, they would make the whole insert fail on the missing record, and then be
// written one by one. They wait for the next pass, which recordsCreated starts as soon as
// a record is inserted.
func (l *eventLog) holdUncreated(batch []pendingEvent) (ready, held []pendingEvent) {
	l.holding.Store(true) // before looking: an insert from now on nudges the next pass
	ids := make([]string, len(batch))
	for i := range batch {
		ids[i] = batch[i].ev.CallID
	}
	wait := make([]bool, len(batch))
	l.s.calls.uncreated(ids, wait)
	ready = batch[:0]
	for i, p := range batch {
		if wait[i] {
			held = append(held, p)
		} else {
			ready = append(ready, p)
		}
	}
	return ready, held
}

// recordsCreated is the call writer telling that a call's record was inserted: a pass
// holding events back for one starts again at once.
func (l *eventLog) recordsCreated() {
	if l.holding.Load() {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// write inserts a batch in one statement; when the database refuses it, each event alone,
// so that one refused event costs no other. It returns the events to try again, and whether
// the database is away.
func (l *eventLog) write(ctx context.Context, batch []pendingEvent) (again []pendingEvent, away bool) {
	rows := make([]CallEvent, len(batch))
	for i := range batch {
		rows[i] = batch[i].ev
	}
	wctx, cancel := context.WithTimeout(ctx, callWriteTimeout)
	_, err := l.s.db.NewInsert().Model(&rows).Exec(wctx)
	cancel()
	if err == nil {
		l.written.Add(int64(len(rows)))
		return nil, false
	}
	now := time.Now()
	if errors.Is(classify(err), ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return l.keep(batch, now), true
	}
	for _, p := range batch {
		wctx, cancel := context.WithTimeout(ctx, callWriteTimeout)
		_, err := l.s.db.NewInsert().Model(&p.ev).Exec(wctx)
		cancel()
		var conflict *ConflictError
		err = classify(err)
		switch {
		case err == nil:
			l.written.Add(1)
		case errors.As(err, &conflict), errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			// The call's record is written behind the call too, and may not be there
			// yet (or the database went away meanwhile): the event waits for it.
			again = append(again, l.keep([]pendingEvent{p}, now)...)
		default:
			l.dropped.Add(1)
			l.log.Warn("call event refused by the database", "call_id", p.ev.CallID, "type", p.ev.Type, "error", err)
		}
	}
	return again, false
}

// keep returns the events still young enough to wait, and counts the others dropped.
func (l *eventLog) keep(batch []pendingEvent, now time.Time) []pendingEvent {
	out := batch[:0:0]
	for _, p := range batch {
		if now.Sub(p.queued) < callEventRetryFor {
			out = append(out, p)
		} else {
			l.dropped.Add(1)
		}
	}
	return out
}

func (l *eventLog) notifyLocked() {
	if len(l.pending) > 0 || l.busy {
		return
	}
	for _, ch := range l.flushes {
		close(ch)
	}
	l.flushes = nil
}

// flush waits until every event recorded before it is written (or dropped).
func (l *eventLog) flush(ctx context.Context) error {
	l.mu.Lock()
	if len(l.pending) == 0 && !l.busy {
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.flushes = append(l.flushes, ch)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *eventLog) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	done := l.done
	close(l.stop)
	l.mu.Unlock()
	if done != nil {
		<-done
	}
}

// FlushCallEvents waits until the call events recorded so far are in the database (or
// dropped, as CallEventStats counts), or ctx ends.
func (s *Store) FlushCallEvents(ctx context.Context) error { return s.events.flush(ctx) }

// CallEventStats returns the event log's counters.
func (s *Store) CallEventStats() CallEventStats {
	return CallEventStats{Written: s.events.written.Load(), Dropped: s.events.dropped.Load()}
}

// ListCallEvents reads a page of the history of a call of the tenant, oldest first, and how
// many events it holds. Another tenant's call has none.
func ListCallEvents(ctx context.Context, s *Store, tenantID, callID string, page Page) ([]CallEvent, int, error) {
	items := make([]CallEvent, 0, page.Limit)
	total, err := s.db.NewSelect().Model(&items).Where("call_id = ?", callID).Where("tenant_id = ?", tenantID).
		Order("at", "id").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// DeleteCallEventsBefore deletes the events of every call published before t, and returns
// how many it deleted: the node's retention of call events.
func DeleteCallEventsBefore(ctx context.Context, s *Store, t time.Time) (int64, error) {
	res, err := s.db.NewDelete().Model((*CallEvent)(nil)).Where("at < ?", t.UTC()).Exec(ctx)
	if err != nil {
		return 0, classify(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// callEventSweepEvery is how often a store with a retention of call events deletes the
// expired ones; retention is counted in hours or days.
const callEventSweepEvery = time.Hour

// sweepCallEvents deletes events older than retention every callEventSweepEvery, the first
// time a minute after the store opened (once it has been migrated), until stop closes.
//
//nolint:contextcheck // the sweep belongs to the store, not to the request that opened it
func (s *Store) sweepCallEvents(retention time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	select {
	case <-stop:
		return
	case <-time.After(time.Minute):
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n, err := DeleteCallEventsBefore(ctx, s, time.Now().Add(-retention))
		cancel()
		switch {
		case err != nil:
			s.events.log.Warn("expired call events not deleted", "error", err)
		case n > 0:
			s.events.log.Info("expired call events deleted", "events", n, "retention", retention)
		}
		select {
		case <-stop:
			return
		case <-time.After(callEventSweepEvery):
		}
	}
}
