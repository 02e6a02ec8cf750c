package store

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// eventStore is a migrated SQLite store with one tenant, closed when the test ends.
func eventStore(t *testing.T) (*Store, *Tenant) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := s.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return s, ten
}

// TestCallEventBeforeItsCall: an event whose call's record is not in the database yet (a
// record written behind the call) is kept to be tried again, not dropped, and is written
// once the record is there; one past the time an event may wait is dropped and counted. A
// database that does not answer holds the batch back as a whole.
func TestCallEventBeforeItsCall(t *testing.T) {
	ctx := context.Background()
	s, ten := eventStore(t)
	now := time.Now().UTC()
	c := &Call{Direction: CallInbound, From: "+14155550142", To: "+14155550100", Status: CallRinging, StartedAt: &now}
	c.ID, c.TenantID, c.CreatedAt, c.UpdatedAt = newID(prefixCall), ten.ID, now, now
	l := s.events
	ev := func(queued time.Time) pendingEvent {
		return pendingEvent{ev: CallEvent{TenantID: ten.ID, CallID: c.ID, Type: "call.created", At: now, Data: eventJSON(c)}, queued: queued}
	}

	again, away := l.write(ctx, []pendingEvent{ev(now), ev(now.Add(-callEventRetryFor))})
	if away || len(again) != 1 || l.dropped.Load() != 1 || l.written.Load() != 0 {
		t.Fatalf("before the call: %d to try again (away %v), %d dropped, %d written; want 1 again, the stale one dropped",
			len(again), away, l.dropped.Load(), l.written.Load())
	}
	if _, err := s.db.NewInsert().Model(c).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if again, away = l.write(ctx, again); away || len(again) != 0 || l.written.Load() != 1 {
		t.Fatalf("after the call: %d to try again (away %v), %d written", len(again), away, l.written.Load())
	}

	// A database that does not answer in time: the batch waits whole, and the writer says
	// the database is away.
	late, cancel := context.WithDeadline(ctx, now.Add(-time.Second))
	defer cancel()
	again, away = l.write(late, []pendingEvent{ev(now), ev(now)})
	if !away || len(again) != 2 {
		t.Fatalf("database not answering: %d to try again, away %v", len(again), away)
	}
}

// failedInserts counts the inserts into call_events the database refused.
type failedInserts struct{ n atomic.Int64 }

func (h *failedInserts) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (h *failedInserts) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if e.Err != nil && strings.Contains(e.Query, "call_events") {
		h.n.Add(1)
	}
}

// TestCallEventsHeldForUncreatedRecord: the events of a call whose record the call writer
// has not inserted yet are held back rather than sent in the batch (where the missing
// record would refuse the whole insert and make every event go alone); the insert of the
// record wakes the log, and the held events are written then.
func TestCallEventsHeldForUncreatedRecord(t *testing.T) {
	ctx := context.Background()
	s, ten := eventStore(t)
	hook := &failedInserts{}
	s.db = s.db.WithQueryHook(hook) // nothing runs on the store yet
	now := time.Now().UTC()
	newCall := func() *Call {
		return &Call{Direction: CallInbound, From: "+14155550142", To: "+14155550100", Status: CallRinging, StartedAt: &now}
	}
	written := newCall()
	written.ID, written.TenantID, written.CreatedAt, written.UpdatedAt = newID(prefixCall), ten.ID, now, now
	if _, err := s.db.NewInsert().Model(written).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	queued := newCall()
	wq, err := QueueCallCreate(s, ten.ID, queued) // its record stays with the writer for now
	if err != nil {
		t.Fatal(err)
	}
	l := s.events
	l.mu.Lock()
	for _, id := range []string{written.ID, queued.ID, written.ID} {
		l.pending = append(l.pending, pendingEvent{ev: CallEvent{TenantID: ten.ID, CallID: id, Type: "call.created", At: now, Data: eventJSON(id)}, queued: now})
	}
	l.mu.Unlock()

	if waiting := l.pass(ctx); !waiting || l.written.Load() != 2 || hook.n.Load() != 0 {
		t.Fatalf("first pass: waiting %v, %d written, %d inserts refused; want the written call's 2 events in, the other held",
			waiting, l.written.Load(), hook.n.Load())
	}
	l.mu.Lock()
	held := len(l.pending)
	l.mu.Unlock()
	if held != 1 || !l.holding.Load() {
		t.Fatalf("%d events held (holding %v), want the queued call's one", held, l.holding.Load())
	}
	select {
	case <-l.wake:
		t.Fatal("the log was woken before the record was inserted")
	default:
	}

	wq.Behind()
	if err := s.FlushCalls(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.wake: // the record's insert woke the log
	default:
		t.Fatal("the record was inserted and the log not woken")
	}
	if waiting := l.pass(ctx); waiting || l.written.Load() != 3 || hook.n.Load() != 0 || l.holding.Load() {
		t.Fatalf("after the record: waiting %v, %d written, %d inserts refused, holding %v", waiting, l.written.Load(), hook.n.Load(), l.holding.Load())
	}
}
