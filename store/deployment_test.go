package store_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// TestDeployConcurrently: deployments of one agent made at once each get a version of their
// own, 1 to n, on both databases; none is refused or lost.
func TestDeployConcurrently(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ten, err := st.EnsureTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		ag := store.NewAgent()
		ag.Name = "desk"
		if err := store.Create(ctx, st, ten.ID, ag); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		versions := make([]int, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := store.Deploy(ctx, st, ten.ID, ag.ID, "")
				if err != nil {
					errs[i] = err
					return
				}
				versions[i] = d.Version
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		sort.Ints(versions)
		for i, v := range versions {
			if v != i+1 {
				t.Fatalf("versions %v", versions)
			}
		}
		if _, err := store.Deploy(ctx, st, "ten_other", ag.ID, ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's agent: %v", err)
		}
	})
}
