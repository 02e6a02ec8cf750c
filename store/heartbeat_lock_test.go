package store_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// lockableStore opens a migrated store of the dialect and a second, plain connection to the
// same database, as another process (another node, a backup, an operator's shell) holds one.
func lockableStore(t *testing.T, d store.Dialect) (*store.Store, *sql.Conn) {
	t.Helper()
	ctx := context.Background()
	opts := store.Options{DataDir: t.TempDir()}
	driver, dsn := "sqlite", "file:"+opts.DataDir+"/switchboard.db?_pragma=busy_timeout(0)"
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
		driver, dsn = "pgx", opts.URL
	}
	s, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return s, conn
}

func exec(t *testing.T, conn *sql.Conn, query string) {
	t.Helper()
	if _, err := conn.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// nodeBeats reads one node's beat count (0 when it has no heartbeat).
func nodeBeats(ctx context.Context, t *testing.T, s *store.Store, name string) int64 {
	t.Helper()
	nodes, err := store.ListNodes(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n.Beats
		}
	}
	return 0
}

// A watcher busy with a lost node (here, handing its calls to a slow OnLost, as a publish
// to a congested hub is) does not delay its own node's beats: beats run on their own.
func TestHeartbeatBeatsWhileWatching(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		if _, err := store.Beat(ctx, s, "node-x", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		liveCall(t, s, f.tenant.ID, "node-x")
		entered, release := make(chan struct{}, 1), make(chan struct{})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		runHeartbeat(t, ctx, s, store.HeartbeatOptions{Node: "node-a", Every: 50 * time.Millisecond, Timeout: 400 * time.Millisecond,
			OnLost: func(store.Call) {
				entered <- struct{}{}
				<-release
			}})
		t.Cleanup(unblock) // before the heartbeat's own cleanup, which waits for Run
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("node-x's call never reported lost")
		}
		bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
		defer bcancel()
		waitBeats(bctx, t, s, 5, "node-a")
		unblock()
	})
}

// A watcher never waits on another watcher's claim: with the lost node's heartbeat row
// locked by another transaction (a watcher failing its calls), the claim is skipped, and
// this node beats on without a pause; once the lock goes, the node's calls are failed.
func TestHeartbeatClaimSkipsLockedRow(t *testing.T) {
	t.Parallel()
	s, conn := lockableStore(t, store.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newCallFixture(t, s, "acme")
	if _, err := store.Beat(ctx, s, "node-c", "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	c := liveCall(t, s, f.tenant.ID, "node-c")
	exec(t, conn, "BEGIN")
	exec(t, conn, "SELECT * FROM nodes WHERE name = 'node-c' FOR UPDATE")

	const timeout = 2 * time.Second
	lost := newLostCalls()
	runHeartbeat(t, ctx, s, store.HeartbeatOptions{Node: "node-a", Every: 50 * time.Millisecond, Timeout: timeout, OnLost: lost.add})
	// Watch node-a's beats for long enough that it tried to claim node-c at least once
	// (silent for the timeout, then a watch): the longest pause between two beats must stay
	// well under the timeout, which a watcher blocked on the lock would have caused.
	start, last, lastAt, longest := time.Now(), int64(-1), time.Now(), time.Duration(0)
	for time.Since(start) < 3*timeout {
		if b := nodeBeats(ctx, t, s, "node-a"); b != last {
			last, lastAt = b, time.Now()
		}
		longest = max(longest, time.Since(lastAt))
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if longest > timeout/2 {
		t.Fatalf("node-a's beats paused for %v while node-c's row was locked", longest)
	}
	if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); got.Status != store.CallInProgress {
		t.Fatalf("node-c's call %s while another transaction held its claim", got.Status)
	}
	// A claim of its own at this moment returns at once, empty-handed.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	calls, claimed, err := store.FailLostNode(cctx, s, "node-c", 1)
	ccancel()
	if err != nil || claimed || len(calls) != 0 {
		t.Fatalf("claim of a locked row: %d calls, %v, %v; want skipped at once", len(calls), claimed, err)
	}
	exec(t, conn, "ROLLBACK")
	select {
	case <-lost.more:
	case <-ctx.Done():
		t.Fatal("node-c's call not failed once its row was free")
	}
	if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, c.ID); got.Status != store.CallFailed || got.EndedReason != store.EndedNodeLost {
		t.Fatalf("node-c's call %s/%s", got.Status, got.EndedReason)
	}
}

// A lost node's calls are failed in several short transactions when there are more than
// one holds; each once.
func TestFailLostNodeInBatches(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		defer store.SetFailBatch(3)()
		ctx := context.Background()
		f := newCallFixture(t, s, "acme")
		if _, err := store.Beat(ctx, s, "node-x", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for range 7 {
			want[liveCall(t, s, f.tenant.ID, "node-x").ID] = true
		}
		calls, claimed, err := store.FailLostNode(ctx, s, "node-x", 1)
		if err != nil || !claimed || len(calls) != 7 {
			t.Fatalf("claim: %d calls, %v, %v", len(calls), claimed, err)
		}
		for _, c := range calls {
			if !want[c.ID] {
				t.Errorf("call %s reported twice or not node-x's", c.ID)
			}
			delete(want, c.ID)
		}
	})
}

// The first beat is retried while the database refuses it, before the node takes calls;
// past the timeout Join says why.
func TestHeartbeatJoin(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			s, conn := lockableStore(t, d)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			lock := "BEGIN IMMEDIATE"
			if d == store.Postgres {
				lock = "BEGIN; LOCK TABLE nodes IN ACCESS EXCLUSIVE MODE"
			}
			logs := &beatLogs{refused: make(chan struct{}, 10)}
			opts := store.HeartbeatOptions{Node: "node-a", Every: 250 * time.Millisecond, Timeout: 2 * time.Second, Log: slog.New(logs)}

			// The database holds the first beats off for a while, then lets one through.
			exec(t, conn, lock)
			h, err := store.NewHeartbeat(s, opts)
			if err != nil {
				t.Fatal(err)
			}
			joined := make(chan error, 1)
			go func() { joined <- h.Join(ctx) }()
			select {
			case <-logs.refused:
			case <-ctx.Done():
				t.Fatal("first beat never refused")
			}
			exec(t, conn, "ROLLBACK")
			if err := <-joined; err != nil {
				t.Fatalf("join once the database let the beat through: %v", err)
			}
			if nodeBeats(ctx, t, s, "node-a") == 0 {
				t.Fatal("no heartbeat after Join")
			}

			// Refused throughout: Join gives up within its bound and says so.
			exec(t, conn, lock)
			opts.Node = "node-b"
			h, _ = store.NewHeartbeat(s, opts)
			begun := time.Now()
			err = h.Join(ctx)
			exec(t, conn, "ROLLBACK")
			if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "heartbeat not written") {
				t.Fatalf("join with the database locked: %v", err)
			}
			if took := time.Since(begun); took > 10*time.Second {
				t.Errorf("join took %v to give up, want about the 2 s timeout", took)
			}
		})
	}
}

// beatLogs signals each "heartbeat not written" record.
type beatLogs struct{ refused chan struct{} }

func (l *beatLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *beatLogs) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "heartbeat not written") {
		select {
		case l.refused <- struct{}{}:
		default:
		}
	}
	return nil
}
func (l *beatLogs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *beatLogs) WithGroup(string) slog.Handler      { return l }

// Live calls of a node without a heartbeat (a version from before heartbeats, a name from
// before a restart) are failed once their records have been quiet for the timeout; the
// watcher's own calls, calls of a node with a heartbeat, recent calls and ended ones are not.
func TestFailOrphanedCalls(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var mu sync.Mutex
		clock := time.Now().UTC().Truncate(time.Microsecond)
		store.SetClock(s, func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
		advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
		f := newCallFixture(t, s, "acme")
		if _, err := store.Beat(ctx, s, "node-b", "1", time.Now()); err != nil {
			t.Fatal(err)
		}
		orphan := liveCall(t, s, f.tenant.ID, "old-node")
		ended := liveCall(t, s, f.tenant.ID, "old-node")
		ended.Status, ended.EndedReason = store.CallCompleted, store.EndedCallerHangup
		if err := store.UpdateCallState(ctx, s, ended); err != nil {
			t.Fatal(err)
		}
		mine := liveCall(t, s, f.tenant.ID, "node-a")    // the watcher's own, though it has no row
		watched := liveCall(t, s, f.tenant.ID, "node-b") // judged by node-b's heartbeat
		advance(time.Minute)
		recent := liveCall(t, s, f.tenant.ID, "old-node")
		advance(time.Second)

		calls, err := store.FailOrphanedCalls(ctx, s, "node-a", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != 1 || calls[0].ID != orphan.ID || calls[0].EndedReason != store.EndedNodeLost {
			t.Fatalf("failed %+v, want only the quiet orphan", calls)
		}
		for _, tt := range []struct {
			c      *store.Call
			status string
		}{{orphan, store.CallFailed}, {ended, store.CallCompleted}, {mine, store.CallInProgress}, {watched, store.CallInProgress}, {recent, store.CallInProgress}} {
			if got, _ := store.Get[store.Call](ctx, s, f.tenant.ID, tt.c.ID); got.Status != tt.status {
				t.Errorf("call of %s: %s, want %s", tt.c.Node, got.Status, tt.status)
			}
		}
		if calls, err := store.FailOrphanedCalls(ctx, s, "node-a", 30*time.Second); err != nil || len(calls) != 0 {
			t.Fatalf("second sweep: %v, %v", calls, err)
		}
	})
}
