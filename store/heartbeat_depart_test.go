package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// A node's heartbeat runs from Start until Stop, and its last word (Depart) fails what is
// still live under its name and removes its heartbeat, so that no other node finds it lost.
func TestHeartbeatStartDepart(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		h, err := store.NewHeartbeat(s, store.HeartbeatOptions{Node: "node-a", Version: "1", Every: 20 * time.Millisecond, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		h.Stop() // before Start: nothing to stop
		if err := h.Join(ctx); err != nil {
			t.Fatal(err)
		}
		h.Start(ctx)
		t.Cleanup(h.Stop)
		waitBeats(ctx, t, s, 3, "node-a")
		c := liveCall(t, s, f.tenant.ID, "node-a")
		h.Depart()
		h.Stop() // again, after Depart stopped it
		if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); got.Status != store.CallFailed || got.EndedReason != store.EndedShutdown {
			t.Errorf("call live at departure: %s/%s, want failed/shutdown", got.Status, got.EndedReason)
		}
		if nodes, _ := store.ListNodes(ctx, s); len(nodes) != 0 {
			t.Errorf("nodes %v after Depart, want none", nodes)
		}
	})
}
