package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// liveCall creates a call of the tenant, in progress on node and answered a minute ago.
func liveCall(t *testing.T, s *store.Store, tenantID, node string) *store.Call {
	t.Helper()
	c := store.NewOutboundCall()
	at := time.Now().UTC().Add(-time.Minute)
	c.To, c.Destination, c.Node, c.Status, c.AnsweredAt = "sip:echo@127.0.0.1", "echo", node, store.CallInProgress, &at
	if err := store.Create(context.Background(), s, tenantID, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// lostCalls collects what a heartbeat's OnLost receives.
type lostCalls struct {
	mu    sync.Mutex
	calls []store.Call
	more  chan struct{}
}

func newLostCalls() *lostCalls { return &lostCalls{more: make(chan struct{}, 100)} }

func (l *lostCalls) add(c store.Call) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	l.more <- struct{}{}
}

func (l *lostCalls) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.calls {
		out = append(out, c.ID)
	}
	return out
}

func runHeartbeat(t *testing.T, ctx context.Context, s *store.Store, opts store.HeartbeatOptions) {
	t.Helper()
	h, err := store.NewHeartbeat(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	hctx, cancel := context.WithCancel(ctx)
	go func() { defer close(done); h.Run(hctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A node killed and started again under another name (a container's new host name): the
// old name stops beating, and the node that notices fails the old node's live calls,
// node-lost, once, with an event, even when two nodes notice at once. A node that keeps
// beating, and the noticing nodes themselves, keep their calls.
func TestNodeLost(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")

		// Node A beat once and carried calls, then was killed: no Leave, no more beats.
		a, err := store.NewHeartbeat(s, store.HeartbeatOptions{Node: "node-a", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		talking := liveCall(t, s, f.tenant.ID, "node-a")
		ringing := liveCall(t, s, f.tenant.ID, "node-a")
		ringing.Status, ringing.AnsweredAt = store.CallRinging, nil
		if err := store.UpdateCallState(ctx, s, ringing); err != nil {
			t.Fatal(err)
		}
		done := liveCall(t, s, f.tenant.ID, "node-a")
		done.Status, done.EndedReason = store.CallCompleted, store.EndedCallerHangup
		if err := store.UpdateCallState(ctx, s, done); err != nil {
			t.Fatal(err)
		}
		// Node C keeps beating; B1 and B2 (node A's successor under a new name, and a
		// neighbour) watch with a shorter timeout than C's, so that they are the ones that
		// notice, and carry calls of their own. The timeouts are forty beats long: a busy
		// machine (or database) that delays a beat does not make a beating node look lost.
		runHeartbeat(t, ctx, s, store.HeartbeatOptions{Node: "node-c", Every: 50 * time.Millisecond, Timeout: 5 * time.Second})
		ofC := liveCall(t, s, f.tenant.ID, "node-c")
		lost := newLostCalls()
		for _, name := range []string{"node-b1", "node-b2"} {
			runHeartbeat(t, ctx, s, store.HeartbeatOptions{Node: name, Every: 50 * time.Millisecond, Timeout: 2 * time.Second, OnLost: lost.add})
		}
		ofB := liveCall(t, s, f.tenant.ID, "node-b1")

		for range 2 {
			select {
			case <-lost.more:
			case <-ctx.Done():
				t.Fatalf("node A's calls not failed; lost so far: %v", lost.ids())
			}
		}
		// Let both watchers look again, longer than the timeout: neither may fail a call
		// twice, nor C's, which beats.
		waitBeats(ctx, t, s, 50, "node-b1", "node-b2")
		if ids := lost.ids(); len(ids) != 2 {
			t.Fatalf("lost calls reported %v, want node A's two live calls once each", ids)
		}
		for _, id := range []string{talking.ID, ringing.ID} {
			got, err := store.Get[store.Call](ctx, s, f.tenant.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != store.CallFailed || got.EndedReason != store.EndedNodeLost || got.EndedAt == nil {
				t.Errorf("call %s: %s/%q ended %v, want failed/node-lost", id, got.Status, got.EndedReason, got.EndedAt)
			}
			if id == talking.ID && got.DurationSeconds < 59 {
				t.Errorf("answered a minute ago, duration %v", got.DurationSeconds)
			}
		}
		lost.mu.Lock()
		reported := append([]store.Call(nil), lost.calls...)
		lost.mu.Unlock()
		for _, c := range reported {
			if c.Status != store.CallFailed || c.EndedReason != store.EndedNodeLost || c.TenantID != f.tenant.ID {
				t.Errorf("event data %+v, want the failed record", c)
			}
		}
		for _, tt := range []struct {
			id, status string
		}{{done.ID, store.CallCompleted}, {ofC.ID, store.CallInProgress}, {ofB.ID, store.CallInProgress}} {
			if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, tt.id); got.Status != tt.status {
				t.Errorf("call %s is %s, want %s", tt.id, got.Status, tt.status)
			}
		}
		nodes, err := store.ListNodes(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		if len(names) != 3 || names[0] != "node-b1" || names[1] != "node-b2" || names[2] != "node-c" {
			t.Errorf("nodes %v, want node A's heartbeat gone and the others kept", names)
		}
		// Node A comes back under its old name: its heartbeat says it was lost.
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// waitBeats waits until each node has beaten (and so looked at the others) n more times.
func waitBeats(ctx context.Context, t *testing.T, s *store.Store, n int64, names ...string) {
	t.Helper()
	beats := func() map[string]int64 {
		nodes, err := store.ListNodes(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, n := range nodes {
			m[n.Name] = n.Beats
		}
		return m
	}
	from := beats()
	for {
		now, ok := beats(), true
		for _, name := range names {
			ok = ok && now[name] >= from[name]+n
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nodes %v did not beat %d times: %v → %v", names, n, from, now)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A node stopping gracefully fails what is still live under its name (shutdown) and removes
// its heartbeat at once.
func TestLeaveNode(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		if _, err := store.Beat(ctx, s, "node-a", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		c := liveCall(t, s, f.tenant.ID, "node-a")
		other := liveCall(t, s, f.tenant.ID, "node-b")
		if n, err := store.LeaveNode(ctx, s, "node-a"); err != nil || n != 1 {
			t.Fatalf("leave: %d, %v; want 1 call", n, err)
		}
		if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); got.Status != store.CallFailed || got.EndedReason != store.EndedShutdown {
			t.Errorf("left call %s/%s", got.Status, got.EndedReason)
		}
		if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, other.ID); got.Status != store.CallInProgress {
			t.Errorf("another node's call %s", got.Status)
		}
		if nodes, _ := store.ListNodes(ctx, s); len(nodes) != 0 {
			t.Errorf("nodes %v after leave", nodes)
		}
		// Beats at once of a new node (a race on its first row) all count.
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := store.Beat(ctx, s, "node-y", "1", time.Now()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if nodes, _ := store.ListNodes(ctx, s); len(nodes) != 1 || nodes[0].Beats != 8 {
			t.Errorf("nodes %+v, want node-y with 8 beats", nodes)
		}
		// A lost node's claim is taken once: a second claim at the same beat finds nothing.
		if _, err := store.Beat(ctx, s, "node-x", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		x := liveCall(t, s, f.tenant.ID, "node-x")
		if calls, claimed, err := store.FailLostNode(ctx, s, "node-x", 2); err != nil || claimed || len(calls) != 0 {
			t.Fatalf("claim at a beat the node is not at: %v, %v, %v", calls, claimed, err)
		}
		if calls, claimed, err := store.FailLostNode(ctx, s, "node-x", 1); err != nil || !claimed || len(calls) != 1 || calls[0].ID != x.ID {
			t.Fatalf("claim: %v, %v, %v", calls, claimed, err)
		}
		if calls, claimed, err := store.FailLostNode(ctx, s, "node-x", 1); err != nil || claimed || len(calls) != 0 {
			t.Fatalf("second claim: %v, %v, %v", calls, claimed, err)
		}
	})
}

func TestHeartbeatOptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts store.HeartbeatOptions
		ok   bool
	}{
		{"defaults", store.HeartbeatOptions{Node: "a"}, true},
		{"no name", store.HeartbeatOptions{}, false},
		{"timeout under twice the beat", store.HeartbeatOptions{Node: "a", Every: 5 * time.Second, Timeout: 9 * time.Second}, false},
		{"negative", store.HeartbeatOptions{Node: "a", Every: -time.Second}, false},
		{"short", store.HeartbeatOptions{Node: "a", Every: time.Second, Timeout: 2 * time.Second}, true},
	} {
		if _, err := store.NewHeartbeat(nil, tt.opts); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
