package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// eachDialect runs f against a migrated SQLite file and a migrated PostgreSQL database.
func eachDialect(t *testing.T, f func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, openStore(t, d))
		})
	}
}

func openStore(t testing.TB, d store.Dialect) *store.Store {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir()}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	ctx := context.Background()
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

func fieldsOf(err error) []string {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestAgentRoundTrip(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ten, err := s.EnsureTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		tool := store.NewTool()
		tool.Name = "lookup_order"
		tool.Webhook.URL = "https://example.com/orders"
		tool.Parameters = map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}, "required": []any{"id"}}
		if err := store.Create(ctx, s, ten.ID, tool); err != nil {
			t.Fatal(err)
		}
		a := store.NewAgent()
		a.Name = "Front desk"
		a.ToolIDs = []string{tool.ID}
		a.Metadata = map[string]any{"team": "support"}
		if err := store.Create(ctx, s, ten.ID, a); err != nil {
			t.Fatal(err)
		}
		got, err := store.Get[store.Agent](ctx, s, ten.ID, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Front desk" || got.Voice.Provider != "espeak" || got.Turn.EndpointingMS != 600 ||
			!got.Turn.Interruptions || len(got.ToolIDs) != 1 || got.Metadata["team"] != "support" {
			t.Fatalf("round trip lost fields: %+v", got)
		}
		if _, off := got.CreatedAt.Zone(); off != 0 {
			t.Fatalf("created_at not UTC: %v", got.CreatedAt)
		}
		if !got.CreatedAt.Equal(a.CreatedAt.Truncate(time.Microsecond)) && !got.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("created_at %v, want %v", got.CreatedAt, a.CreatedAt)
		}
		got.Name = "Reception"
		if err := store.Update(ctx, s, got); err != nil {
			t.Fatal(err)
		}
		items, total, err := store.List[store.Agent](ctx, s, ten.ID, store.Page{Limit: 10})
		if err != nil || total != 1 || items[0].Name != "Reception" {
			t.Fatalf("list: %v %d %+v", err, total, items)
		}
		// The tool is in use and cannot be deleted while the agent lists it.
		var ce *store.ConflictError
		if err := store.Delete[store.Tool](ctx, s, ten.ID, tool.ID); !errors.As(err, &ce) {
			t.Fatalf("deleting a tool in use: %v, want conflict", err)
		}
		if err := store.Delete[store.Agent](ctx, s, ten.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get[store.Agent](ctx, s, ten.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := store.Delete[store.Tool](ctx, s, ten.ID, tool.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, _ := s.EnsureTenant(ctx, "a")
		b, _ := s.EnsureTenant(ctx, "b")
		wf := &store.Workflow{Name: "menu", Graph: store.Graph{Start: "hi", Nodes: []store.Node{{ID: "hi", Type: "say", Text: "Hello"}}}}
		if err := store.Create(ctx, s, a.ID, wf); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get[store.Workflow](ctx, s, b.ID, wf.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("b read a's workflow: %v", err)
		}
		if err := store.Delete[store.Workflow](ctx, s, b.ID, wf.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("b deleted a's workflow: %v", err)
		}
		wf.TenantID = b.ID
		if err := store.Update(ctx, s, wf); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("b updated a's workflow: %v", err)
		}
		// An agent of b may not point at a's workflow: it does not exist for b.
		ag := store.NewAgent()
		ag.Name = "x"
		ag.WorkflowID = &wf.ID
		if err := store.Create(ctx, s, b.ID, ag); strings.Join(fieldsOf(err), ",") != "workflow_id" {
			t.Fatalf("cross-tenant reference: %v", err)
		}
		if _, total, _ := store.List[store.Agent](ctx, s, b.ID, store.Page{Limit: 10}); total != 0 {
			t.Fatalf("half-written agent left behind: %d", total)
		}
	})
}

func TestUniqueAndValidation(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, _ := s.EnsureTenant(ctx, "a")
		b, _ := s.EnsureTenant(ctx, "b")
		pn := store.NewPhoneNumber()
		pn.Number = "+14155550100"
		pn.Destination = "echo"
		if err := store.Create(ctx, s, a.ID, pn); err != nil {
			t.Fatal(err)
		}
		dup := store.NewPhoneNumber()
		dup.Number = "+14155550100"
		var ce *store.ConflictError
		if err := store.Create(ctx, s, b.ID, dup); !errors.As(err, &ce) || ce.Field != "number" {
			t.Fatalf("duplicate number: %v", err)
		}
		bad := store.NewPhoneNumber()
		bad.Number = "+0123"
		if f := fieldsOf(store.Create(ctx, s, a.ID, bad)); len(f) != 1 || f[0] != "number" {
			t.Fatalf("bad number fields: %v", f)
		}
		if _, err := s.EnsureTenant(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTenant(ctx, &store.Tenant{Slug: "a", Name: "again"}); !errors.As(err, &ce) || ce.Field != "slug" {
			t.Fatalf("duplicate slug: %v", err)
		}
	})
}

func TestKeysAndTokens(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ten, _ := s.EnsureTenant(ctx, "k")
		for _, kind := range store.KeyKinds {
			k := &store.APIKey{Name: "ci", Kind: kind, Scopes: []string{"read"}}
			secret, err := s.CreateAPIKey(ctx, ten.ID, k)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(secret, kind) || len(secret) != len(kind)+40 || store.KnownKeyKind(secret) != kind {
				t.Fatalf("key %q of kind %q", secret, kind)
			}
			got, err := s.APIKeyByHash(ctx, store.HashKey(secret))
			if err != nil || got.ID != k.ID || strings.Contains(got.Display, secret[len(kind)+4:len(secret)-4]) {
				t.Fatalf("lookup: %v %+v", err, got)
			}
		}
		short := &store.User{Email: "a@example.com", Scopes: []string{"read"}, Password: "short"}
		if f := fieldsOf(store.Create(ctx, s, ten.ID, short)); len(f) != 1 || f[0] != "password" {
			t.Fatalf("short password: %v", f)
		}
		u := &store.User{Email: "Ops@Example.com", Name: "Ops", Scopes: []string{"admin"}, Password: "correct horse"}
		if err := store.Create(ctx, s, ten.ID, u); err != nil {
			t.Fatal(err)
		}
		got, err := s.UserByEmail(ctx, "ops@example.com", "")
		if err != nil || !got.CheckPassword("correct horse") || got.CheckPassword("wrong") {
			t.Fatalf("user: %v", err)
		}
		rt, err := s.IssueRefreshToken(ctx, got, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		u2, rt2, err := s.RotateRefreshToken(ctx, rt.Secret, time.Hour)
		if err != nil || u2.ID != u.ID || rt2.Secret == rt.Secret || rt2.FamilyID != rt.FamilyID {
			t.Fatalf("rotate: %v (%+v after %+v)", err, rt2, rt)
		}
		if err := s.CheckUserSession(ctx, u.TenantID, u.ID, rt.FamilyID); err != nil {
			t.Fatalf("the family of a live refresh token: %v", err)
		}
		// A second use of a spent token revokes the family: the token it was traded for
		// stops working too.
		_, _, err = s.RotateRefreshToken(ctx, rt.Secret, time.Hour)
		var reuse *store.TokenReuseError
		if !errors.Is(err, store.ErrTokenInvalid) || !errors.As(err, &reuse) || reuse.FamilyID != rt.FamilyID || reuse.UserID != u.ID {
			t.Fatalf("second use of a refresh token: %v", err)
		}
		if _, _, err := s.RotateRefreshToken(ctx, rt2.Secret, time.Hour); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("the newest token of a revoked family: %v", err)
		}
		if err := s.CheckUserSession(ctx, u.TenantID, u.ID, rt.FamilyID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the family of a reused refresh token still live: %v", err)
		}
		if _, _, err := s.RotateRefreshToken(ctx, "rt_unknown", time.Hour); !errors.Is(err, store.ErrTokenInvalid) {
			t.Fatalf("an unknown refresh token: %v", err)
		}
	})
}

func TestMigrateDownAndUp(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		names, err := s.Rollback(ctx)
		if err != nil || len(names) == 0 {
			t.Fatalf("rollback: %v %v", names, err)
		}
		if _, err := s.TenantBySlug(ctx, "x"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenants table still there after rollback: %v", err)
		}
		if names, err := s.Migrate(ctx); err != nil || len(names) == 0 {
			t.Fatalf("migrate again: %v %v", names, err)
		}
		if names, err := s.Migrate(ctx); err != nil || len(names) != 0 {
			t.Fatalf("migrate is not idempotent: %v %v", names, err)
		}
	})
}

func TestOpenRefusesBadURL(t *testing.T) {
	if _, err := store.Open(context.Background(), store.Options{URL: "mysql://x"}); err == nil {
		t.Fatal("mysql URL accepted")
	}
	if _, err := store.Open(context.Background(), store.Options{URL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}); err == nil {
		t.Fatal("unreachable postgres accepted")
	}
	if _, err := store.Open(context.Background(), store.Options{URL: filepath.Join(t.TempDir(), "x.db")}); err != nil {
		t.Fatal(err)
	}
}
