package store

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/switchboard-go/switchboard/internal/pgtest"
)

// numberKeyMigration is the version of the migration that makes numbers unique as dialled.
const numberKeyMigration = "20261207000010"

// numberRow is a phone number written before numbers were unique, and the key the migration
// must give it ("" for none).
type numberRow struct {
	id, tenant, number, key string
}

// The migration that adds number_key fills it for numbers written before it, as NumberKey
// would, leaves a number that collides with an older one routing nowhere rather than failing
// the node's start (shown as not routable, listed for the node's log, still editable), and
// goes down and up again.
func TestMigrationNumberKey(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := Options{DataDir: t.TempDir()}
			if d == Postgres {
				opts.URL = pgtest.URL(t)
			}
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })

			// The schema as it was before the migration.
			before := fstest.MapFS{}
			err = fs.WalkDir(migrationFiles, "migrations", func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() || e.Name() >= numberKeyMigration {
					return err
				}
				b, err := fs.ReadFile(migrationFiles, path)
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
			old := migrate.NewMigrator(s.db, ms, migrate.WithTemplateData(columnTypes[s.dialect]),
				migrate.WithTableName("switchboard_migrations"), migrate.WithLocksTableName("switchboard_migration_locks"),
				migrate.WithMarkAppliedOnSuccess(true))
			if err := old.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := old.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			// Tenants as rows of that schema: the Tenant model of today reads columns that
			// later migrations add.
			t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			a, b := &Tenant{ID: "ten_acme"}, &Tenant{ID: "ten_globex"}
			for _, ten := range []*Tenant{a, b} {
				if _, err := s.db.ExecContext(ctx, `INSERT INTO tenants (id, slug, name, metadata, created_at, updated_at)
					VALUES (?, ?, ?, '{}', ?, ?)`, ten.ID, ten.ID[4:], ten.ID[4:], t0, t0); err != nil {
					t.Fatal(err)
				}
			}
			rows := []numberRow{
				{"pn_01", a.ID, "+14155550100", "14155550100"},
				{"pn_02", b.ID, "14155550100", ""}, // the same number, later: routes nowhere
				{"pn_03", a.ID, "Support", "support"},
				{"pn_04", b.ID, "support", ""},
				{"pn_05", b.ID, "1.800.555", "1800555"},
				{"pn_06", b.ID, "0800123", "0800123"},
				{"pn_07", a.ID, "Desk-7", "desk-7"},
				{"pn_08", a.ID, "12", "12"},
				{"pn_09", a.ID, "1234567890123456", "1234567890123456"},
				{"pn_10", b.ID, "+4930123456", "4930123456"},
			}
			ids := map[string]string{} // label → ID
			for i, r := range rows {
				at := t0.Add(time.Duration(i) * time.Minute)
				ids[r.id] = newID(prefixPhoneNumber)
				if _, err := s.db.ExecContext(ctx, `INSERT INTO phone_numbers
					(id, tenant_id, number, name, destination, metadata, created_at, updated_at)
					VALUES (?, ?, ?, '', 'echo', '{}', ?, ?)`, ids[r.id], r.tenant, r.number, at, at); err != nil {
					t.Fatal(err)
				}
			}

			applied, err := s.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) == 0 || !strings.HasPrefix(applied[0], numberKeyMigration) {
				t.Fatalf("applied %v, want %s first", applied, numberKeyMigration)
			}
			for _, r := range rows {
				var key *string
				if err := s.db.NewSelect().Table("phone_numbers").Column("number_key").Where("id = ?", ids[r.id]).Scan(ctx, &key); err != nil {
					t.Fatal(err)
				}
				got := ""
				if key != nil {
					got = *key
				}
				if got != r.key {
					t.Errorf("%s %q: key %q, want %q", r.id, r.number, got, r.key)
				}
				if r.key != "" && NumberKey(r.number) != r.key {
					t.Errorf("NumberKey(%q) = %q, the migration %q", r.number, NumberKey(r.number), r.key)
				}
			}
			if p, err := s.PhoneNumberByNumber(ctx, "+1 (415) 555-0100"); err != nil || p.ID != ids["pn_01"] {
				t.Fatalf("the older of a collision: %+v %v", p, err)
			}
			// The index holds from now on.
			if _, err := s.db.ExecContext(ctx, "UPDATE phone_numbers SET number_key = '14155550100' WHERE id = ?", ids["pn_02"]); err == nil {
				t.Fatal("a second row with a taken key was written")
			}

			// A number that routes nowhere says so, is named at start, and its tenant can still
			// change it: keeping its number keeps it unroutable, a free number routes it.
			unroutable, err := UnroutablePhoneNumbers(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(unroutable) != 2 || unroutable[0].ID != ids["pn_02"] || unroutable[1].ID != ids["pn_04"] {
				t.Fatalf("unroutable numbers %+v, want pn_02 and pn_04", unroutable)
			}
			routable := func(label string, want bool) *PhoneNumber {
				t.Helper()
				p, err := Get[PhoneNumber](ctx, s, rows[slices.IndexFunc(rows, func(r numberRow) bool { return r.id == label })].tenant, ids[label])
				if err != nil {
					t.Fatal(err)
				}
				raw, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					Routable    *bool  `json:"routable"`
					NotRoutable string `json:"not_routable"`
				}
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatal(err)
				}
				if got.Routable == nil || *got.Routable != want || (got.NotRoutable == "") != want {
					t.Fatalf("%s: %s, want routable %v with a reason when not", label, raw, want)
				}
				return p
			}
			routable("pn_01", true)
			p := routable("pn_02", false)
			p.Name = "kept"
			if err := Update(ctx, s, p); err != nil {
				t.Fatalf("renaming an unroutable number: %v", err)
			}
			p = routable("pn_02", false)
			if p.Name != "kept" {
				t.Fatalf("renamed to %q, want kept", p.Name)
			}
			p.Number = "1-415-555-0100" // the same number, as dialled
			if err := Update(ctx, s, p); err != nil {
				t.Fatalf("respelling an unroutable number: %v", err)
			}
			routable("pn_02", false)
			p = routable("pn_04", false)
			p.Number = "DESK-7" // pn_07's
			var ce *ConflictError
			if err := Update(ctx, s, p); !errors.As(err, &ce) || ce.Field != "number" {
				t.Fatalf("an unroutable number changed to a taken one: %v, want a conflict on number", err)
			}
			p = routable("pn_02", false)
			p.Number = "+14155550199"
			if err := Update(ctx, s, p); err != nil {
				t.Fatalf("an unroutable number changed to a free one: %v", err)
			}
			routable("pn_02", true)
			if p, err := s.PhoneNumberByNumber(ctx, "14155550199"); err != nil || p.ID != ids["pn_02"] {
				t.Fatalf("the number changed to a free one does not route: %+v %v", p, err)
			}
			if p, err := s.PhoneNumberByNumber(ctx, "14155550100"); err != nil || p.ID != ids["pn_01"] {
				t.Fatalf("the older number: %+v %v", p, err)
			}

			// Down and up again.
			m, err := s.migrator()
			if err != nil {
				t.Fatal(err)
			}
			group, err := m.Rollback(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, mg := range group.Migrations {
				names = append(names, mg.Name)
			}
			if !slices.Contains(names, numberKeyMigration) {
				t.Fatalf("rolled back %v, want %s among them", names, numberKeyMigration)
			}
			if _, err := s.db.ExecContext(ctx, "SELECT number_key FROM phone_numbers"); err == nil {
				t.Fatal("number_key is still there after the rollback")
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if p, err := s.PhoneNumberByNumber(ctx, "SUPPORT"); err != nil || p.ID != ids["pn_03"] {
				t.Fatalf("after migrating again: %+v %v", p, err)
			}
		})
	}
}
