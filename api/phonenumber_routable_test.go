package api_test

import (
	"context"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// numberKeysMigration is the migration that made phone numbers unique as they are dialled.
const numberKeysMigration = "20261207000010"

// migrateBeforeNumberKeys brings a new database to the schema it had before numbers were
// unique as dialled, the way an older Switchboard left it: the store's own migration files
// up to that one, recorded in the store's own migrations table.
func migrateBeforeNumberKeys(ctx context.Context, t *testing.T, st *store.Store) {
	t.Helper()
	before := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("../store"), "migrations", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() >= numberKeysMigration {
			return err
		}
		b, err := os.ReadFile("../store/" + path)
		before[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(before); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{"JSON": "TEXT", "Time": "TIMESTAMP", "Serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
	if st.Dialect() == store.Postgres {
		types = map[string]string{"JSON": "JSONB", "Time": "TIMESTAMPTZ", "Serial": "BIGSERIAL PRIMARY KEY"}
	}
	m := migrate.NewMigrator(st.DB(), ms, migrate.WithTemplateData(types),
		migrate.WithTableName("switchboard_migrations"), migrate.WithLocksTableName("switchboard_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// A number that collided with an older one when numbers became unique is not hidden: the
// API shows it not routable, with the reason; its tenant can still change its other fields
// (it stays not routable) and can move it to a free number (it routes again), while a
// number that is taken is still 409.
func TestUnroutablePhoneNumber(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
			if d == store.Postgres {
				opts.URL = pgtest.URL(t)
			}
			old, err := store.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			migrateBeforeNumberKeys(ctx, t, old)
			ids := map[string]string{} // slug → phone number ID
			t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			for i, n := range []struct{ slug, id, number string }{
				{"acme", "pn_01jdq3aaaaaaaaaaaaaaaaaaaa", "+14155550100"},
				{"globex", "pn_01jdq3bbbbbbbbbbbbbbbbbbbb", "14155550100"}, // the same number, later
			} {
				// The tenant as a row of that schema: the Tenant model of today reads columns
				// that later migrations add.
				tenantID := "ten_" + n.slug
				at := t0.Add(time.Duration(i) * time.Minute)
				if _, err := old.DB().ExecContext(ctx, `INSERT INTO tenants (id, slug, name, metadata, created_at, updated_at)
					VALUES (?, ?, ?, '{}', ?, ?)`, tenantID, n.slug, n.slug, at, at); err != nil {
					t.Fatal(err)
				}
				if _, err := old.DB().ExecContext(ctx, `INSERT INTO phone_numbers
					(id, tenant_id, number, name, destination, metadata, created_at, updated_at)
					VALUES (?, ?, ?, 'desk', 'echo', '{}', ?, ?)`, n.id, tenantID, n.number, at, at); err != nil {
					t.Fatal(err)
				}
				ids[n.slug] = n.id
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			ts := newTestServerOpts(t, opts, api.Config{}) // migrates the rest
			acme := ts.newKey("acme", "acme", 0, store.ScopeRead, store.ScopeWrite)
			globex := ts.newKey("globex", "globex", 0, store.ScopeRead, store.ScopeWrite)
			check := func(r response, status int, routable bool) map[string]any {
				t.Helper()
				if r.Status != status {
					t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
				}
				m := r.JSON(t)
				reason, _ := m["not_routable"].(string)
				if m["routable"] != routable || (reason == "") != routable {
					t.Fatalf("%s: want routable %v, with a reason when not", r.Body, routable)
				}
				return m
			}
			item := "/api/v1/phone-numbers/" + ids["globex"]
			check(ts.do("GET", "/api/v1/phone-numbers/"+ids["acme"], acme, nil), 200, true)
			m := check(ts.do("GET", item, globex, nil), 200, false)
			if reason := m["not_routable"].(string); !strings.Contains(reason, "free") {
				t.Errorf("reason %q does not say what to do", reason)
			}
			list := ts.do("GET", "/api/v1/phone-numbers", globex, nil).JSON(t)
			if items, _ := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["routable"] != false {
				t.Fatalf("list %v, want the one number, not routable", list)
			}

			m = check(ts.do("PATCH", item, globex, map[string]any{"name": "front desk", "destination": "tone"}), 200, false)
			if m["name"] != "front desk" || m["destination"] != "tone" {
				t.Fatalf("after PATCH: %v", m)
			}
			check(ts.do("PATCH", item, globex, map[string]any{"number": "1-415-555-0100"}), 200, false)
			if r := ts.do("POST", "/api/v1/phone-numbers", acme, map[string]any{"number": "+14155550177", "destination": "echo"}); r.Status != 201 {
				t.Fatalf("acme's second number: %d %s", r.Status, r.Body)
			}
			wantError(t, ts.do("PATCH", item, globex, map[string]any{"number": "14155550177"}), 409, "conflict", "number")
			check(ts.do("GET", item, globex, nil), 200, false)

			m = check(ts.do("PATCH", item, globex, map[string]any{"number": "+14155550199"}), 200, true)
			if m["number"] != "+14155550199" || m["name"] != "front desk" {
				t.Fatalf("after moving to a free number: %v", m)
			}
			check(ts.do("GET", item, globex, nil), 200, true)
			if p, err := ts.Store.PhoneNumberByNumber(ctx, "14155550199"); err != nil || p.ID != ids["globex"] {
				t.Fatalf("the number moved to a free one does not route: %+v %v", p, err)
			}
		})
	}
}
