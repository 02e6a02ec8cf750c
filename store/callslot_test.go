package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// Places against a tenant's limit: never more than the limit, even when many takers race
// for the last ones (on PostgreSQL as nodes would); given back one by one or all of a node's
// at once (it stopped or was lost); another tenant's are not counted.
func TestCallSlots(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ten := &store.Tenant{Slug: "acme", Name: "Acme"}
		other := &store.Tenant{Slug: "other", Name: "Other"}
		for _, x := range []*store.Tenant{ten, other} {
			if err := s.CreateTenant(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		const limit = 3
		var (
			mu    sync.Mutex
			taken []string
			full  int
			wg    sync.WaitGroup
		)
		for i := range 8 {
			wg.Go(func() {
				node := "node-a"
				if i%2 == 1 {
					node = "node-b"
				}
				id, err := store.TakeCallSlot(ctx, s, ten.ID, node, limit)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, store.ErrTenantCallsFull):
					full++
				case err != nil && s.Dialect() == store.SQLite:
					full++ // SQLite's one writer refuses a taking whose read went stale: refused, not over the limit
				case err != nil:
					t.Error(err)
				default:
					taken = append(taken, id)
				}
			})
		}
		wg.Wait()
		n, err := store.CountCallSlots(ctx, s, ten.ID)
		if err != nil || n != len(taken) || n > limit || n == 0 || (s.Dialect() == store.Postgres && n != limit) {
			t.Fatalf("%d places held (%v), %d taken, %d refused; want at most %d (on PostgreSQL, exactly)", n, err, len(taken), full, limit)
		}
		if _, err := store.TakeCallSlot(ctx, s, other.ID, "node-a", 1); err != nil {
			t.Fatalf("another tenant's first place: %v", err)
		}
		if err := store.FreeCallSlot(ctx, s, taken[0]); err != nil {
			t.Fatal(err)
		}
		if err := store.FreeNodeCallSlots(ctx, s, "node-a"); err != nil {
			t.Fatal(err)
		}
		if err := store.FreeNodeCallSlots(ctx, s, "node-b"); err != nil {
			t.Fatal(err)
		}
		if n, _ := store.CountCallSlots(ctx, s, ten.ID); n != 0 {
			t.Fatalf("%d places held after every node gave its back", n)
		}
		if _, err := store.TakeCallSlot(ctx, s, ten.ID, "node-a", limit); err != nil {
			t.Fatalf("a place once all were given back: %v", err)
		}
	})
}
