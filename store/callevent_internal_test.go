package store

import (
	"context"
	"testing"
	"time"
)

// TestCallEventBeforeItsCall: an event whose call's record is not in the database yet (a
// record written behind the call) is kept to be tried again, not dropped, and is written
// once the record is there; one past the time an event may wait is dropped and counted. A
// database that does not answer holds the batch back as a whole.
func TestCallEventBeforeItsCall(t *testing.T) {
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
