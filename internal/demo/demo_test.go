package demo

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// A demo number another tenant took is left to it: the node starts, and no demo agent or
// workflow is written for a number that would not reach it.
func TestDemoNumberTaken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	def, err := st.EnsureTenant(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	pn := store.NewPhoneNumber()
	pn.Number, pn.Destination = "Demo", "echo"
	if err := store.Create(ctx, st, other.ID, pn); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, st, def, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("Ensure with the number taken: %v", err)
	}
	if _, n, err := store.List[store.Agent](ctx, st, def.ID, store.Page{Limit: 1}); err != nil || n != 0 {
		t.Fatalf("default tenant's agents: %d %v, want none", n, err)
	}
	if _, n, err := store.List[store.Workflow](ctx, st, def.ID, store.Page{Limit: 1}); err != nil || n != 0 {
		t.Fatalf("default tenant's workflows: %d %v, want none", n, err)
	}
}
