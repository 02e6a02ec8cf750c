package sip

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// A call hung up while its PostgreSQL is stopped: the record's end is queued by the store,
// and once the database is started again the record says completed, caller-hangup, with its
// end time and duration, though the call's goroutines are long gone. The database is a
// throwaway cluster of the test's own (pgtest.NewCluster), stopped and started with pg_ctl.
func TestRecordSurvivesDatabaseRestart(t *testing.T) {
	verifyNoLeaks(t)
	cluster := pgtest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: cluster.URL, Secret: testSecret, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: ten.ID, Events: events, Node: "node-a"})
	u := newTestCaller(t)
	peer := newRTPPeer(t)

	d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	peer.sendTone(t, parseAnswer(t, d.InviteResponse.Body()).rtp, 25)

	cluster.Stop()
	bye(ctx, t, d)
	events.wait(ctx, t, call.EventEnded, onTopic(rec.ID))
	if got := st.CallWriterStats(); got.Queued != 1 {
		t.Fatalf("writer %+v with the database stopped, want the call's end queued", got)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	// No nudge: the store's retry finds the database back by itself.
	var got *store.Call
	for got == nil || got.Live() {
		select {
		case <-ctx.Done():
			t.Fatalf("record still %v after the database returned", got)
		case <-time.After(50 * time.Millisecond):
		}
		got, _ = store.Get[store.Call](ctx, st, ten.ID, rec.ID)
	}
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCallerHangup) || got.EndedAt == nil || got.DurationSeconds <= 0 {
		t.Fatalf("record %s/%q ended %v duration %v, want completed/caller-hangup with its end", got.Status, got.EndedReason, got.EndedAt, got.DurationSeconds)
	}
	if got.Quality.PacketsReceived < 20 {
		t.Errorf("quality %+v, want the tone's packets counted", got.Quality)
	}
	if err := st.FlushCalls(ctx); err != nil {
		t.Fatal(err)
	}
	if w := st.CallWriterStats(); w.Queued != 0 || w.Retried != 1 || w.Dropped != 0 {
		t.Errorf("writer %+v after the database returned", w)
	}
}

// A node killed and started again under another name: the old name's heartbeat stops, and
// the new node fails the old node's live call (failed, node-lost) and publishes its
// call.ended on the call's and the tenant's topics.
func TestNodeLostCallEnded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	if _, err := store.Beat(ctx, st, "old-host", "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	c := store.NewOutboundCall()
	at := time.Now().UTC()
	c.To, c.Destination, c.Node, c.Status, c.AnsweredAt = "sip:echo@127.0.0.1", "echo", "old-host", store.CallInProgress, &at
	if err := store.Create(ctx, st, tenant, c); err != nil {
		t.Fatal(err)
	}

	events := newEventLog()
	h, err := store.NewHeartbeat(st, store.HeartbeatOptions{Node: "new-host", Every: 50 * time.Millisecond, Timeout: 300 * time.Millisecond,
		OnLost: func(rec store.Call) {
			if err := call.PublishEnded(events, nil, rec); err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.Run(hctx) }()
	ev := events.wait(ctx, t, call.EventEnded, onTopic(c.ID))
	stop()
	<-done
	if e := ev.Data.(store.Call); e.Status != store.CallFailed || e.EndedReason != store.EndedNodeLost || e.ID != c.ID {
		t.Errorf("event %+v, want the failed record", e)
	}
	events.mu.Lock()
	// One event, on the call's topic: the hub carries it to the tenant's topic too.
	var ended int
	for _, e := range events.events {
		if e.Type == call.EventEnded && e.Tenant == tenant {
			ended++
			if e.Topic != "call:"+c.ID {
				t.Errorf("call.ended on %s, want the call's topic", e.Topic)
			}
		}
	}
	events.mu.Unlock()
	if ended != 1 {
		t.Errorf("%d call.ended published, want 1", ended)
	}
	got, err := store.Get[store.Call](ctx, st, tenant, c.ID)
	if err != nil || got.Status != store.CallFailed || got.EndedReason != store.EndedNodeLost || got.EndedAt == nil {
		t.Fatalf("record %+v, %v; want failed/node-lost", got, err)
	}
}

// Signalling never waits for the database: with the calls table locked by another session
// (every write to it blocks), a call is answered, carries media and is hung up; its record
// reaches the database once the lock is let go, with its whole story: created, answered,
// ended.
func TestSetupNeverWaitsForTheDatabase(t *testing.T) {
	verifyNoLeaks(t)
	st, tenants := tenancyStore(t, store.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenants["default"], Events: events, Node: "node-a"})

	lock, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "LOCK TABLE calls IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_ = lock.Rollback()
		}
	}()

	u := newTestCaller(t)
	peer := newRTPPeer(t)
	d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	peer.sendTone(t, parseAnswer(t, d.InviteResponse.Body()).rtp, 25)
	bye(ctx, t, d)
	// The end waits for the record (it is final before call.ended goes out): it is not out
	// while the table is locked.
	if got, _ := store.Get[store.Call](ctx, st, tenants["default"], rec.ID); got != nil {
		t.Fatalf("the record was written through the lock: %+v", got)
	}
	_ = lock.Rollback()
	locked = false
	events.wait(ctx, t, call.EventEnded, onTopic(rec.ID))
	if err := st.FlushCalls(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get[store.Call](ctx, st, tenants["default"], rec.ID)
	if err != nil {
		t.Fatalf("record after the lock: %v", err)
	}
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCallerHangup) || got.AnsweredAt == nil ||
		got.Codec == "" || got.SIPCallID != d.InviteRequest.CallID().Value() || got.Quality.PacketsReceived < 20 {
		t.Fatalf("record %s/%s answered %v codec %q quality %+v", got.Status, got.EndedReason, got.AnsweredAt, got.Codec, got.Quality)
	}
}
