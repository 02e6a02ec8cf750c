package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// FindInboundTrunks answers from a cache, which a trunk written through the same Store
// invalidates at once (create, update, delete, the tenant's deletion), and which sees a
// trunk written by another node sharing the database within InboundTrunksTTL.
func TestInboundTrunksCache(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := store.Options{DataDir: t.TempDir()}
			if d == store.Postgres {
				opts.URL = pgtest.URL(t)
			}
			open := func() *store.Store {
				s, err := store.Open(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				if _, err := s.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				return s
			}
			s, other := open(), open() // two nodes on one database
			ten, err := s.EnsureTenant(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			names := func() []string {
				t.Helper()
				got, err := store.FindInboundTrunks(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, tr := range got {
					out = append(out, tr.Name)
				}
				return out
			}
			want := func(what string, w ...string) {
				t.Helper()
				if got := names(); !slices.Equal(got, w) {
					t.Fatalf("%s: inbound trunks %v, want %v", what, got, w)
				}
			}
			want("none yet")
			tr := store.NewTrunk()
			tr.Name, tr.Inbound.AllowedCIDRs = "lab", []string{"127.0.0.0/8"}
			if err := store.Create(ctx, s, ten.ID, tr); err != nil {
				t.Fatal(err)
			}
			want("created", "lab")
			tr.Direction, tr.Outbound.Address = "outbound", "sip.example.com"
			if err := store.Update(ctx, s, tr); err != nil {
				t.Fatal(err)
			}
			want("made outbound")
			tr.Direction = "both"
			if err := store.Update(ctx, s, tr); err != nil {
				t.Fatal(err)
			}
			want("made both", "lab")
			if err := store.Delete[store.Trunk](ctx, s, ten.ID, tr.ID); err != nil {
				t.Fatal(err)
			}
			want("deleted")

			// Another node's trunk shows within the TTL.
			far := store.NewTrunk()
			far.Name, far.Inbound.AllowedCIDRs = "far", []string{"198.51.100.0/24"}
			if err := store.Create(ctx, other, ten.ID, far); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(store.InboundTrunksTTL + 5*time.Second)
			for !slices.Equal(names(), []string{"far"}) {
				if time.Now().After(deadline) {
					t.Fatalf("another node's trunk not seen after %s", store.InboundTrunksTTL+5*time.Second)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The tenant's deletion takes its trunks with it at once.
			if err := s.DeleteTenant(ctx, ten.ID); err != nil {
				t.Fatal(err)
			}
			want("tenant deleted")
		})
	}
}
