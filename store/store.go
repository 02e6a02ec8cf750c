// Package store owns Switchboard's persistent state: the Bun models, their versioned
// migrations, and the queries over them. The same models, migrations and queries serve the
// embedded SQLite database and PostgreSQL. Every row belongs to a tenant, and every query that
// reads or changes a tenant's rows names the tenant, so one tenant can never reach another's.
//
// Models check their own invariants before they are written (Validate), and references between
// rows are checked inside the writing transaction, so no surface (REST, CLI, the compatible
// APIs) can leave an invalid or half-written row behind.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// Dialect names the database behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the database of one Switchboard node.
type Store struct {
	db      *bun.DB
	dialect Dialect
	sealer  *Sealer
	// stmts holds prepared statements by the model type they read (see getStatement).
	stmts sync.Map
	// rawCalls makes the analytics read the calls' rows only (a test compares the two reads).
	rawCalls atomic.Bool
	// sessionCols is what ClaimSessionAnswerRow returns (sessionColumns).
	sessionColsOnce sync.Once
	sessionCols     string
	// now is the clock of the store; tests may replace it.
	now func() time.Time
	// calls writes calls' records, retrying those the database refused (callwriter.go).
	calls *callWriter
	// events is the write-behind of calls' events (callevent.go); sweepStop ends the sweep
	// of expired ones, when there is a retention, and sweepDone says it ended.
	events               *eventLog
	sweepStop, sweepDone chan struct{}
	// trunkWrites counts the trunk writes committed through this Store; inbound caches the
	// node's inbound trunks against it (see FindInboundTrunks).
	trunkWrites atomic.Uint64
	inbound     inboundTrunks
}

// Options configure Open.
type Options struct {
	// URL is DATABASE_URL: "postgres://…" or "postgresql://…" selects PostgreSQL; "sqlite:PATH",
	// "file:PATH" or a plain path selects SQLite; empty means DataDir/switchboard.db.
	URL string
	// DataDir holds the SQLite file when URL is empty.
	DataDir string
	// MaxOpenConns bounds the connection pool (0: a default per dialect).
	MaxOpenConns int
	// Secret is the server secret that seals stored credentials (trunk passwords). Without
	// one, a store cannot write a credential it must read back.
	Secret []byte
	// Log receives what the store does on its own: call records queued while the database
	// is away, written when it returns, or dropped. Nil: discarded.
	Log *slog.Logger
	// CallRetryLimit bounds how many calls may have a record update waiting for the
	// database (0: DefaultCallRetryLimit); CallRetryFor, how long one waits (0:
	// DefaultCallRetryFor).
	CallRetryLimit int
	CallRetryFor   time.Duration
	// CallEventRetention is how long a call's events are kept (0: as long as the call).
	CallEventRetention time.Duration
}

// Open connects to the database named by opts and checks that it answers. It does not migrate;
// call Migrate for that.
func Open(ctx context.Context, opts Options) (*Store, error) {
	dialect, dsn, err := resolveURL(opts)
	if err != nil {
		return nil, err
	}
	var (
		sqldb *sql.DB
		db    *bun.DB
	)
	switch dialect {
	case Postgres:
		dsn = withQueryExecMode(dsn)
		sqldb, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		n := opts.MaxOpenConns
		if n == 0 {
			// A few connections a core: more only queue inside PostgreSQL (measured in
			// BENCHMARKS.md: 8 beat 16, 32 and 64 on two cores).
			n = 4 * runtime.GOMAXPROCS(0)
		}
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = bun.NewDB(sqldb, pgdialect.New())
	case SQLite:
		sqldb, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		n := opts.MaxOpenConns
		if n == 0 {
			n = max(8, 4*runtime.GOMAXPROCS(0))
		}
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
		sqldb.SetConnMaxLifetime(0)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	s := &Store{db: db, dialect: dialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	s.calls = newCallWriter(func(ctx context.Context, c *Call) error { return writeCallState(ctx, s, c) },
		opts.Log, opts.CallRetryLimit, opts.CallRetryFor)
	s.calls.insert = func(ctx context.Context, c *Call) error { return insertCallState(ctx, s, c) }
	s.calls.batch = func(ctx context.Context, states []batchState) error { return writeCallStates(ctx, s, states) }
	s.events = newEventLog(s, opts.Log)
	s.calls.created = s.events.recordsCreated
	if len(opts.Secret) > 0 {
		if s.sealer, err = NewSealer(opts.Secret); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: %s database does not answer: %w", dialect, err)
	}
	if opts.CallEventRetention > 0 {
		s.sweepStop, s.sweepDone = make(chan struct{}), make(chan struct{})
		go s.sweepCallEvents(opts.CallEventRetention, s.sweepStop, s.sweepDone)
	}
	return s, nil
}

// resolveURL turns DATABASE_URL into a dialect and a driver DSN.
func resolveURL(opts Options) (Dialect, string, error) {
	raw := strings.TrimSpace(opts.URL)
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("store: DATABASE_URL is not a valid URL: %w", err)
		}
		return Postgres, raw, nil
	}
	path := raw
	switch {
	case raw == "":
		dir := opts.DataDir
		if dir == "" {
			dir = "data"
		}
		path = filepath.Join(dir, "switchboard.db")
	case strings.HasPrefix(raw, "sqlite://"):
		path = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		path = strings.TrimPrefix(raw, "sqlite:")
	case strings.HasPrefix(raw, "file:"):
		path = strings.TrimPrefix(raw, "file:")
	case strings.Contains(raw, "://"):
		return "", "", fmt.Errorf("store: DATABASE_URL scheme not supported (want postgres:// or a SQLite path): %q", raw)
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return "", "", errors.New("store: empty SQLite path in DATABASE_URL")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return "", "", fmt.Errorf("store: create data directory: %w", err)
		}
	}
	// WAL lets readers run beside the one writer; busy_timeout makes a second writer wait
	// rather than fail; foreign keys are off in SQLite unless asked for on every connection.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
		"&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	return SQLite, dsn, nil
}

// withQueryExecMode makes pgx send queries in one round trip. Bun writes the values into the
// query text, so each query is new to the server, and pgx's default (prepare and cache every
// statement) would cost a second round trip and fill its cache with one-off statements.
func withQueryExecMode(dsn string) string {
	if strings.Contains(dsn, "default_query_exec_mode=") {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "default_query_exec_mode=exec"
}

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the Bun handle for packages that keep tables of their own (later capabilities
// add theirs through migrations here).
func (s *Store) DB() *bun.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.NewRaw("SELECT 1").Scan(ctx, &one); err != nil {
		return classify(err)
	}
	return nil
}

// Close closes the prepared statements and the connection pool. Call records still queued
// for the database are dropped (and logged): call FlushCalls first to wait for them.
func (s *Store) Close() error {
	s.calls.close()
	s.events.close()
	if s.sweepStop != nil {
		close(s.sweepStop)
		<-s.sweepDone
	}
	s.stmts.Range(func(_, v any) bool { _ = v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

// Sealer returns the sealer of the server secret, or nil when the store has none.
func (s *Store) Sealer() *Sealer { return s.sealer }
