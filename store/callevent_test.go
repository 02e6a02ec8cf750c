package store_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// inboundCall stores an ended inbound call of the tenant.
func inboundCall(t *testing.T, s *store.Store, tenantID string) *store.Call {
	t.Helper()
	now := time.Now().UTC()
	c := &store.Call{Direction: store.CallInbound, From: "+14155550142", To: "+14155550100", Status: store.CallCompleted,
		EndedReason: store.EndedCallerHangup, StartedAt: &now, EndedAt: &now}
	if err := store.Create(context.Background(), s, tenantID, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func flushEvents(t *testing.T, s *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.FlushCallEvents(ctx); err != nil {
		t.Fatalf("call events not written: %v", err)
	}
}

// TestCallEventsKeptInOrder: a call's events are written behind it and read back in the
// order it published them, paged, with data the database would refuse as it is (a NUL, a
// NaN) cleaned; another tenant reads none of them; they go with the call when it is
// deleted, and with the retention's sweep.
func TestCallEventsKeptInOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, b := newCallFixture(t, s, "acme"), newCallFixture(t, s, "globex")
		c := inboundCall(t, s, a.tenant.ID)
		store.RecordCallEvent(s, a.tenant.ID, c.ID, "call.created", c)
		for i := range 5 {
			store.RecordCallEvent(s, a.tenant.ID, c.ID, "call.transcript", map[string]any{"text": "turn " + string(rune('0'+i))})
		}
		store.RecordCallEvent(s, a.tenant.ID, c.ID, "agent.error", map[string]any{"stage": "tts", "error": "bad\x00byte", "ms": math.NaN()})
		flushEvents(t, s)

		all, total, err := store.ListCallEvents(ctx, s, a.tenant.ID, c.ID, store.Page{Limit: 100})
		if err != nil || total != 7 || len(all) != 7 {
			t.Fatalf("events %d of %d (%v), want 7", len(all), total, err)
		}
		if all[0].Type != "call.created" || all[6].Type != "agent.error" {
			t.Fatalf("events out of order: %s … %s", all[0].Type, all[6].Type)
		}
		var last map[string]any
		if err := json.Unmarshal(all[6].Data, &last); err != nil || last["error"] != "bad\uFFFDbyte" || last["ms"] != nil {
			t.Fatalf("cleaned event %s (%v)", all[6].Data, err)
		}
		page, total, err := store.ListCallEvents(ctx, s, a.tenant.ID, c.ID, store.Page{Limit: 2, Offset: 2})
		if err != nil || total != 7 || len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
			t.Fatalf("page 2: %v of %d (%v)", page, total, err)
		}
		if other, total, err := store.ListCallEvents(ctx, s, b.tenant.ID, c.ID, store.Page{Limit: 100}); err != nil || total != 0 || len(other) != 0 {
			t.Fatalf("another tenant reads %d events (%v)", total, err)
		}

		// Retention deletes what is older than it, and nothing newer.
		if n, err := store.DeleteCallEventsBefore(ctx, s, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("retention of an hour deleted %d (%v)", n, err)
		}
		if n, err := store.DeleteCallEventsBefore(ctx, s, time.Now().Add(time.Second)); err != nil || n != 7 {
			t.Fatalf("retention deleted %d (%v), want 7", n, err)
		}

		// Deleting the call deletes its history.
		c2 := inboundCall(t, s, a.tenant.ID)
		store.RecordCallEvent(s, a.tenant.ID, c2.ID, "call.created", c2)
		flushEvents(t, s)
		if err := store.Delete[store.Call](ctx, s, a.tenant.ID, c2.ID); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.DB().NewSelect().Table("call_events").ColumnExpr("COUNT(*)").Where("call_id = ?", c2.ID).Scan(ctx, &left); err != nil || left != 0 {
			t.Fatalf("%d events outlived their call (%v)", left, err)
		}
		if st := s.CallEventStats(); st.Written != 8 || st.Dropped != 0 {
			t.Fatalf("stats %+v, want 8 written, none dropped", st)
		}
	})
}

// TestCallEventsBounded: a call that publishes more than MaxCallEvents events, or more than
// MaxCallEventBytes of them, keeps its first ones and a last call.events_truncated saying
// how many; another call's history is not cut by it.
func TestCallEventsBounded(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		many, big, small := inboundCall(t, s, f.tenant.ID), inboundCall(t, s, f.tenant.ID), inboundCall(t, s, f.tenant.ID)
		for range store.MaxCallEvents + 100 {
			store.RecordCallEvent(s, f.tenant.ID, many.ID, "call.dtmf", map[string]any{"digit": "1"})
		}
		blob := strings.Repeat("x", 100<<10)
		for range 20 {
			store.RecordCallEvent(s, f.tenant.ID, big.ID, "call.transcript", map[string]any{"text": blob})
		}
		store.RecordCallEvent(s, f.tenant.ID, small.ID, "call.created", small)
		flushEvents(t, s)

		for _, tc := range []struct {
			call   *store.Call
			kept   int
			reason string
		}{{many, store.MaxCallEvents, "max_events"}, {big, 11, "max_bytes"}} {
			evs, total, err := store.ListCallEvents(ctx, s, f.tenant.ID, tc.call.ID, store.Page{Limit: 100, Offset: max(0, tc.kept-1)})
			if err != nil || total != tc.kept || len(evs) != 1 {
				t.Fatalf("%s: %d events kept (%v), want %d", tc.reason, total, err, tc.kept)
			}
			var marker store.CallEventsTruncated
			if evs[0].Type != store.EventsTruncated || json.Unmarshal(evs[0].Data, &marker) != nil ||
				marker.Reason != tc.reason || marker.Kept != tc.kept-1 {
				t.Fatalf("%s: last event %s %s", tc.reason, evs[0].Type, evs[0].Data)
			}
		}
		if _, total, _ := store.ListCallEvents(ctx, s, f.tenant.ID, small.ID, store.Page{Limit: 10}); total != 1 {
			t.Fatalf("another call kept %d events, want 1", total)
		}
	})
}

// TestCallEventWaitsForItsCall: an event published before its call's record is in the
// database (a record written behind the call) waits for it rather than being lost.
func TestCallEventWaitsForItsCall(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		now := time.Now().UTC()
		c := &store.Call{Direction: store.CallInbound, From: "+14155550142", To: "+14155550100", Status: store.CallRinging, StartedAt: &now}
		w, err := store.QueueCallCreate(s, f.tenant.ID, c)
		if err != nil {
			t.Fatal(err)
		}
		store.RecordCallEvent(s, f.tenant.ID, c.ID, "call.created", c)
		w.Behind()
		if err := s.FlushCalls(ctx); err != nil {
			t.Fatal(err)
		}
		flushEvents(t, s)
		if evs, total, err := store.ListCallEvents(ctx, s, f.tenant.ID, c.ID, store.Page{Limit: 10}); err != nil || total != 1 || evs[0].Type != "call.created" {
			t.Fatalf("events %v (%v), want call.created", evs, err)
		}
	})
}
