package store

import (
	"context"
	"embed"
	"fmt"
	"io"
	"time"

	"github.com/uptrace/bun/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// columnTypes fill the placeholders of the migration files for each dialect. Dialect lets a
// file emit what only one database has ({{if eq .Dialect "sqlite"}}: FTS5 tables, triggers;
// PostgreSQL's generated tsvector and GIN index).
var columnTypes = map[Dialect]map[string]string{
	SQLite:   {"Dialect": "sqlite", "JSON": "TEXT", "Time": "TIMESTAMP", "Serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "Blob": "BLOB"},
	Postgres: {"Dialect": "postgres", "JSON": "JSONB", "Time": "TIMESTAMPTZ", "Serial": "BIGSERIAL PRIMARY KEY", "Blob": "BYTEA"},
}

func (s *Store) migrator() (*migrate.Migrator, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrationFiles); err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	// The calls' rollups are filled from their rows by Go, which bins their durations and
	// latencies exactly as every later write does (rollup.go).
	ms.Add(migrate.Migration{Name: "20261207000301", Comment: "call_rollups_backfill",
		Up: func(ctx context.Context, _ *migrate.Migrator, _ *migrate.Migration) error {
			return rebuildRollups(ctx, s.db, s.dialect, time.Time{}, time.Time{})
		},
		Down: func(context.Context, *migrate.Migrator, *migrate.Migration) error { return nil },
	})
	return migrate.NewMigrator(s.db, ms,
		migrate.WithTemplateData(columnTypes[s.dialect]),
		migrate.WithTableName("switchboard_migrations"),
		migrate.WithLocksTableName("switchboard_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true),
	), nil
}

// Migrate applies every migration not yet applied and returns their names. Several nodes
// starting at once take turns through the migrator's lock.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, classify(err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("store: another node is migrating: %w", err)
	}
	defer func() { _ = m.Unlock(context.WithoutCancel(ctx)) }()
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var names []string
	for _, mg := range group.Migrations {
		names = append(names, mg.String())
	}
	return names, nil
}

// Rollback undoes the last group of migrations applied and returns their names.
func (s *Store) Rollback(ctx context.Context) ([]string, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, classify(err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("store: another node is migrating: %w", err)
	}
	defer func() { _ = m.Unlock(context.WithoutCancel(ctx)) }()
	group, err := m.Rollback(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: rollback: %w", err)
	}
	var names []string
	for _, mg := range group.Migrations {
		names = append(names, mg.String())
	}
	return names, nil
}

// MigrationStatus writes each migration and whether it is applied.
func (s *Store) MigrationStatus(ctx context.Context, w io.Writer) error {
	m, err := s.migrator()
	if err != nil {
		return err
	}
	if err := m.Init(ctx); err != nil {
		return classify(err)
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return classify(err)
	}
	for _, mg := range ms {
		state := "pending"
		if mg.IsApplied() {
			state = "applied " + mg.MigratedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%-40s %s\n", mg.String(), state)
	}
	return nil
}
