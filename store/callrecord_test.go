package store_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// A call whose end carries what a database refuses or JSON cannot carry (a NUL in its report,
// which PostgreSQL refuses in JSONB; a NaN in its quality) still ends in its record, and a
// good call's update beside it is written at once, not queued behind it.
func TestCallRecordPoisonState(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		bad := liveCall(t, s, f.tenant.ID, "node-a")
		good := liveCall(t, s, f.tenant.ID, "node-a")

		now := time.Now().UTC()
		bad.Status, bad.EndedReason, bad.EndedAt, bad.DurationSeconds = store.CallCompleted, store.EndedCallerHangup, &now, 60
		bad.Quality.JitterMS, bad.Quality.PacketsReceived = math.NaN(), 3000
		bad.Report = map[string]any{"summary": "the caller said \x00 here", "latency_ms": math.Inf(1), "turns": 4}
		bad.Metadata = map[string]any{"from\x00": "x"}
		if err := store.UpdateCallState(ctx, s, bad); err != nil {
			t.Fatalf("poisoned end: %v, want written (cleaned)", err)
		}
		good.Metadata = map[string]any{"step": "menu"}
		if err := store.UpdateCallState(ctx, s, good); err != nil {
			t.Fatalf("good call beside it: %v, want written at once", err)
		}
		if st := s.CallWriterStats(); st.Queued != 0 || st.Refused != 0 {
			t.Fatalf("writer %+v", st)
		}
		got, err := store.Get[store.Call](ctx, s, f.tenant.ID, bad.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.CallCompleted || got.EndedReason != store.EndedCallerHangup || got.Quality.PacketsReceived != 3000 || got.Quality.JitterMS != 0 {
			t.Errorf("record %s/%s quality %+v", got.Status, got.EndedReason, got.Quality)
		}
		if got.Report["summary"] != "the caller said \uFFFD here" || got.Report["latency_ms"] != nil || got.Report["turns"] != 4.0 || got.Metadata["from\uFFFD"] != "x" {
			t.Errorf("report %v metadata %v", got.Report, got.Metadata)
		}
		if g, _ := store.Get[store.Call](ctx, s, f.tenant.ID, good.ID); g.Metadata["step"] != "menu" {
			t.Errorf("good call's metadata %v", g.Metadata)
		}
	})
}

// A record that ended stays as it ended. A node found lost while it still ran goes on
// carrying its calls until they end on their own; their later states (live ones, and
// their own end) do not make the record live again nor replace the node-lost end already
// published, though what else they carry (the report) is kept.
func TestCallRecordEndedIsFinal(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		if _, err := store.Beat(ctx, s, "node-x", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		c := liveCall(t, s, f.tenant.ID, "node-x")
		if _, claimed, err := store.FailLostNode(ctx, s, "node-x", 1); err != nil || !claimed {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		lost, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if err != nil || lost.Status != store.CallFailed || lost.EndedReason != store.EndedNodeLost {
			t.Fatalf("after the claim: %+v %v", lost, err)
		}
		// The node, still running, writes the call's state as it goes on, then its end.
		c.Status, c.Codec = store.CallInProgress, "PCMA"
		if err := store.UpdateCallState(ctx, s, c); err != nil {
			t.Fatal(err)
		}
		if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); got.Status != store.CallFailed || got.EndedReason != store.EndedNodeLost || got.EndedAt == nil {
			t.Fatalf("after a live state: %s/%s ended %v, want failed/node-lost kept", got.Status, got.EndedReason, got.EndedAt)
		}
		end := time.Now().UTC().Add(time.Hour)
		c.Status, c.EndedReason, c.EndedAt, c.DurationSeconds = store.CallCompleted, store.EndedCallerHangup, &end, 3600
		c.Report = map[string]any{"turns": 7}
		if err := store.UpdateCallState(ctx, s, c); err != nil {
			t.Fatal(err)
		}
		got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
		if got.Status != store.CallFailed || got.EndedReason != store.EndedNodeLost || !got.EndedAt.Equal(*lost.EndedAt) || got.DurationSeconds != lost.DurationSeconds {
			t.Errorf("after its own end: %s/%s ended %v (%vs), want the node-lost end %v (%vs)", got.Status, got.EndedReason, got.EndedAt, got.DurationSeconds, lost.EndedAt, lost.DurationSeconds)
		}
		if got.Report["turns"] != 7.0 || got.Codec != "PCMA" {
			t.Errorf("report %v codec %q: what the later states carry is kept", got.Report, got.Codec)
		}

		// A live record still takes every state, up to its end.
		d := liveCall(t, s, f.tenant.ID, "node-y")
		d.Status, d.EndedReason, d.EndedAt = store.CallCompleted, store.EndedAgentHangup, &end
		if err := store.UpdateCallState(ctx, s, d); err != nil {
			t.Fatal(err)
		}
		if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, d.ID); got.Status != store.CallCompleted || got.EndedReason != store.EndedAgentHangup || !got.EndedAt.Equal(end.Truncate(time.Microsecond)) {
			t.Errorf("live record's end: %s/%s %v", got.Status, got.EndedReason, got.EndedAt)
		}
	})
}

// Should the database refuse for good something a state holds that cleaning cannot help
// (here a check an operator added on metadata), the call's status and end land all the
// same, without the rest, and the refusal is counted.
func TestCallRecordEndLandsWithoutRefusedFields(t *testing.T) {
	t.Parallel()
	s, conn := lockableStore(t, store.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newCallFixture(t, s, "acme")
	c := liveCall(t, s, f.tenant.ID, "node-a")
	exec(t, conn, "ALTER TABLE calls ADD CONSTRAINT metadata_small CHECK (length(metadata::text) < 100)")
	now := time.Now().UTC()
	c.Status, c.EndedReason, c.EndedAt, c.DurationSeconds = store.CallCompleted, store.EndedCallerHangup, &now, 60
	c.Metadata = map[string]any{"notes": strings.Repeat("x", 200)}
	if err := store.UpdateCallState(ctx, s, c); err != nil {
		t.Fatalf("end with refused metadata: %v, want its end written", err)
	}
	got, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
	if err != nil || got.Status != store.CallCompleted || got.EndedReason != store.EndedCallerHangup || got.DurationSeconds != 60 || len(got.Metadata) != 0 {
		t.Fatalf("record %+v, %v; want completed/caller-hangup without the refused metadata", got, err)
	}
	if st := s.CallWriterStats(); st.Refused != 1 || st.Queued != 0 {
		t.Fatalf("writer %+v, want the refusal counted", st)
	}
}

// Calls created behind their callers (QueueCallCreate, Behind): 200 calls at once, each
// with a later state left behind too and half of them ended (waited for), all reach the
// database in order, batched; the ended ones read as ended the moment their end returns,
// and FlushCalls waits for the rest. A call the store would refuse is refused at once,
// naming the field, with nothing written.
func TestCallCreateBehind(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		const n = 200
		calls := make([]*store.Call, n)
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				now := time.Now().UTC()
				c := &store.Call{Direction: store.CallInbound, Status: store.CallRinging, To: "sip:echo@127.0.0.1",
					From: "sip:caller@127.0.0.1", Destination: "echo", Node: "node-a", StartedAt: &now}
				w, err := store.QueueCallCreate(s, f.tenant.ID, c)
				if err != nil {
					t.Error(err)
					return
				}
				w.Behind()
				c.Status, c.AnsweredAt, c.Codec = store.CallInProgress, &now, "PCMU"
				store.QueueCallState(s, c).Behind()
				if i%2 == 0 {
					end := time.Now().UTC()
					c.Status, c.EndedAt, c.EndedReason = store.CallCompleted, &end, store.EndedCallerHangup
					if err := store.QueueCallState(s, c).Wait(ctx); err != nil {
						t.Error(err)
						return
					}
					if got, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); err != nil || got.Status != store.CallCompleted {
						t.Errorf("call %d right after its end: %v %v", i, got, err)
					}
				}
				calls[i] = c
			}()
		}
		wg.Wait()
		if err := s.FlushCalls(ctx); err != nil {
			t.Fatal(err)
		}
		for i, c := range calls {
			if c == nil {
				continue
			}
			got, err := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			want := store.CallInProgress
			if i%2 == 0 {
				want = store.CallCompleted
			}
			if got.Status != want || got.Codec != "PCMU" || got.AnsweredAt == nil || got.Destination != "echo" || got.From != "sip:caller@127.0.0.1" {
				t.Fatalf("call %d: %s codec %q answered %v destination %q", i, got.Status, got.Codec, got.AnsweredAt, got.Destination)
			}
		}
		if st := s.CallWriterStats(); st.Queued != 0 || st.Refused != 0 || st.Dropped != 0 || st.Batched == 0 {
			t.Errorf("writer %+v, want states written in batches", st)
		}
		bad := &store.Call{Direction: store.CallInbound, Status: store.CallRinging, To: strings.Repeat("x", 5000)}
		var ve *store.ValidationError
		if _, err := store.QueueCallCreate(s, f.tenant.ID, bad); !errors.As(err, &ve) || ve.Fields[0].Field != "to" {
			t.Fatalf("a call the store refuses: %v", err)
		}
	})
}
