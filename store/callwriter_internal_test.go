package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The call writer's rules, against a database that is away when the test says: order per
// call, coalescing that keeps what a call set once, the bounds of the queue, and the drain.
// The store's own tests (and sip's) run it against real SQLite and PostgreSQL.

// flakyDB is a database the test turns off and on: it keeps every state written.
type flakyDB struct {
	mu      sync.Mutex
	down    bool
	written map[string][]Call
	// inWrite, when set, receives each write as it starts (the write then waits on
	// release).
	inWrite chan string
	release chan struct{}
}

func newFlakyDB() *flakyDB { return &flakyDB{written: map[string][]Call{}} }

func (d *flakyDB) write(ctx context.Context, c *Call) error {
	if d.inWrite != nil {
		d.inWrite <- c.ID
		select {
		case <-d.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return fmt.Errorf("%w: connection refused", ErrUnavailable)
	}
	if c.ID == "gone" {
		return ErrNotFound
	}
	if c.ID == "poison" {
		// What PostgreSQL answers a value it will never take (a NUL in JSONB).
		return fmt.Errorf("store: %w", &pgconn.PgError{Code: "22P05", Message: "unsupported Unicode escape sequence"})
	}
	d.written[c.ID] = append(d.written[c.ID], *c)
	return nil
}

func (d *flakyDB) setDown(down bool) {
	d.mu.Lock()
	d.down = down
	d.mu.Unlock()
}

func (d *flakyDB) last(id string) (Call, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.written[id]
	if len(w) == 0 {
		return Call{}, 0
	}
	return w[len(w)-1], len(w)
}

// logCount counts the records logged at a level and above whose message has a prefix.
type logCount struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCount) WithGroup(string) slog.Handler      { return l }
func (l *logCount) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func testWriter(t *testing.T, db *flakyDB, limit int, maxAge time.Duration) (*callWriter, *logCount) {
	t.Helper()
	logs := &logCount{}
	w := newCallWriter(db.write, slog.New(logs), limit, maxAge)
	t.Cleanup(w.close)
	return w, logs
}

func state(id, status string, n int) *Call {
	return &Call{Row: Row{ID: id, TenantID: "ten_1"}, Status: status, Metadata: map[string]any{"n": n}}
}

func flush(t *testing.T, w *callWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// A state the database refuses is queued and written when it returns; the states of a
// call that come meanwhile are coalesced behind it and written after it, never before.
func TestCallWriterOrderAndRetry(t *testing.T) {
	db := newFlakyDB()
	w, logs := testWriter(t, db, 0, 0)
	ctx := context.Background()

	if err := w.deposit(state("a", CallRinging, 1), false).Wait(ctx); err != nil {
		t.Fatalf("database up: %v", err)
	}
	db.setDown(true)
	for n := 2; n <= 5; n++ {
		if err := w.deposit(state("a", CallInProgress, n), false).Wait(ctx); !errors.Is(err, ErrCallQueued) {
			t.Fatalf("state %d with the database away: %v, want ErrCallQueued", n, err)
		}
	}
	if st := w.stats(); st.Queued != 1 {
		t.Fatalf("stats %+v, want one call queued (its states coalesced)", st)
	}
	db.setDown(false)
	// The next state of the call does not jump the queue: it joins it.
	if err := w.deposit(state("a", CallCompleted, 6), false).Wait(ctx); err != nil && !errors.Is(err, ErrCallQueued) {
		t.Fatal(err)
	}
	flush(t, w)
	got, writes := db.last("a")
	if got.Status != CallCompleted || got.Metadata["n"] != 6 {
		t.Fatalf("last written %s n=%v, want completed n=6", got.Status, got.Metadata["n"])
	}
	db.mu.Lock()
	for i := 1; i < len(db.written["a"]); i++ {
		if a, b := db.written["a"][i-1].Metadata["n"].(int), db.written["a"][i].Metadata["n"].(int); b < a {
			t.Errorf("state %d written after state %d", b, a)
		}
	}
	db.mu.Unlock()
	if writes > 3 {
		t.Errorf("%d writes, want the queued states coalesced (at most 3)", writes)
	}
	if st := w.stats(); st.Queued != 0 || st.Retried < 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v after the drain", st)
	}
	if logs.count("call records queued") != 1 || logs.count("call records written") != 1 {
		t.Errorf("logs %v: want the outage and its end logged once each", logs.msgs)
	}
	w.mu.Lock()
	left := len(w.calls)
	w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d calls still tracked after the drain", left)
	}
}

// Coalescing keeps what a call set once: a later state without the end does not undo it.
func TestCallWriterCoalesceKeepsTerminalFields(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	ctx := context.Background()
	db.setDown(true)
	answered, ended := time.Now().Add(-time.Minute), time.Now()
	s1 := state("a", CallInProgress, 1)
	s1.AnsweredAt, s1.Codec = &answered, "PCMU"
	s2 := state("a", CallCompleted, 2)
	s2.EndedAt, s2.EndedReason, s2.DurationSeconds = &ended, EndedCallerHangup, 60
	s2.Quality.PacketsReceived = 3000
	s2.Report = map[string]any{"turns": 4}
	s3 := state("a", CallInProgress, 3) // a stale writer's view: live, no answer, no end
	s3.Metadata["late"] = true
	for _, s := range []*Call{s1, s2, s3} {
		_ = w.deposit(s, false).Wait(ctx)
	}
	db.setDown(false)
	flush(t, w)
	got, _ := db.last("a")
	if got.Status != CallCompleted || got.EndedReason != EndedCallerHangup || got.EndedAt == nil || got.DurationSeconds != 60 {
		t.Errorf("ended fields lost: %s %q %v %v", got.Status, got.EndedReason, got.EndedAt, got.DurationSeconds)
	}
	if got.AnsweredAt == nil || got.Codec != "PCMU" || got.Quality.PacketsReceived != 3000 || got.Report["turns"] != 4 {
		t.Errorf("answer, codec, quality or report lost: %+v", got)
	}
	if got.Metadata["n"] != 3 || got.Metadata["late"] != true {
		t.Errorf("metadata %v, want the latest keys", got.Metadata)
	}
}

// The queue holds at most limit calls; one more is dropped, counted and logged once.
func TestCallWriterBoundedByCount(t *testing.T) {
	db := newFlakyDB()
	w, logs := testWriter(t, db, 2, 0)
	ctx := context.Background()
	db.setDown(true)
	for _, id := range []string{"a", "b", "c", "d"} {
		_ = w.deposit(state(id, CallCompleted, 1), false).Wait(ctx)
	}
	if st := w.stats(); st.Queued != 2 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want 2 queued and 2 dropped", st)
	}
	if n := logs.count("call records dropped"); n != 1 {
		t.Errorf("drop logged %d times, want once", n)
	}
	db.setDown(false)
	flush(t, w)
	for id, want := range map[string]int{"a": 1, "b": 1, "c": 0, "d": 0} {
		if _, n := db.last(id); n != want {
			t.Errorf("call %s written %d times, want %d", id, n, want)
		}
	}
}

// A state waits at most maxAge; then it is dropped and counted.
func TestCallWriterBoundedByAge(t *testing.T) {
	db := newFlakyDB()
	w, logs := testWriter(t, db, 0, time.Hour)
	var mu sync.Mutex
	clock := time.Now()
	w.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	db.setDown(true)
	_ = w.deposit(state("a", CallCompleted, 1), false).Wait(context.Background())
	mu.Lock()
	clock = clock.Add(time.Hour + time.Second)
	mu.Unlock()
	flush(t, w) // the retry pass finds it too old: dropped, and the queue is empty
	if st := w.stats(); st.Dropped != 1 || st.Queued != 0 {
		t.Fatalf("stats %+v, want the old state dropped", st)
	}
	if logs.count("call records dropped") != 1 {
		t.Errorf("logs %v", logs.msgs)
	}
	db.setDown(false)
	if _, n := db.last("a"); n != 0 {
		t.Errorf("dropped state written")
	}
}

// A call whose record is gone is not retried: the caller hears ErrNotFound.
func TestCallWriterPermanentError(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	if err := w.deposit(state("gone", CallCompleted, 1), false).Wait(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v, want ErrNotFound", err)
	}
	if st := w.stats(); st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// One call's state the database refuses for good holds up no other call's: neither the
// states written at once after it (the writer does not take the refusal for an outage) nor
// those queued behind it during an outage (the retry pass gives it up and goes on).
func TestCallWriterPoisonHoldsNoOne(t *testing.T) {
	db := newFlakyDB()
	w, logs := testWriter(t, db, 0, 0)
	ctx := context.Background()
	if err := w.deposit(state("poison", CallCompleted, 1), false).Wait(ctx); err == nil || errors.Is(err, ErrCallQueued) {
		t.Fatalf("poison: %v, want the database's refusal, not queued", err)
	}
	if err := w.deposit(state("a", CallInProgress, 1), false).Wait(ctx); err != nil {
		t.Fatalf("a good call after a refused one: %v, want written at once", err)
	}
	if st := w.stats(); st.Queued != 0 || st.Refused != 1 {
		t.Fatalf("stats %+v, want nothing queued and one refused", st)
	}

	// During an outage the poison is queued first (oldest), a good call behind it.
	db.setDown(true)
	for _, id := range []string{"poison", "b"} {
		if err := w.deposit(state(id, CallCompleted, 2), false).Wait(ctx); !errors.Is(err, ErrCallQueued) {
			t.Fatalf("%s with the database away: %v", id, err)
		}
	}
	db.setDown(false)
	flush(t, w)
	if got, n := db.last("b"); n != 1 || got.Status != CallCompleted {
		t.Fatalf("call b written %d times (%s), want its end written behind the refused state", n, got.Status)
	}
	if st := w.stats(); st.Queued != 0 || st.Refused != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if logs.count("call record refused") != 1 {
		t.Errorf("logs %v: want the refused queued state logged once", logs.msgs)
	}
}

// A state is cleaned as it is queued: NUL and invalid UTF-8 become U+FFFD, NaN and ±Inf 0 in
// the record's fields and null in its maps, unencodable values null; the caller's maps are
// not changed.
func TestCleanState(t *testing.T) {
	type odd struct {
		Note string  `json:"note"`
		F    float64 `json:"f"`
	}
	report := map[string]any{"ok": "fine", "nul\x00key": "a\x00b", "nan": math.NaN(), "list": []any{math.Inf(1), "x\xffy"},
		"struct": odd{Note: "n\x00"}, "bad": odd{F: math.NaN()}, "n": 3}
	c := &Call{Status: CallCompleted, EndedReason: "caller\x00hangup", DurationSeconds: math.NaN(),
		Quality: CallQuality{JitterMS: math.Inf(-1), RTTMS: 12}, Report: report, Metadata: map[string]any{"k": "v"}}
	meta := c.Metadata
	cleanState(c)
	if c.EndedReason != "caller\uFFFDhangup" || c.DurationSeconds != 0 || c.Quality.JitterMS != 0 || c.Quality.RTTMS != 12 {
		t.Errorf("fields %q %v %+v", c.EndedReason, c.DurationSeconds, c.Quality)
	}
	want := map[string]any{"ok": "fine", "nul\uFFFDkey": "a\uFFFDb", "nan": nil, "list": []any{nil, "x\uFFFDy"},
		"struct": map[string]any{"note": "n\uFFFD", "f": 0.0}, "bad": nil, "n": 3}
	if fmt.Sprint(c.Report) != fmt.Sprint(want) {
		t.Errorf("report\n got %v\nwant %v", c.Report, want)
	}
	if _, ok := report["nul\x00key"]; !ok || !math.IsNaN(report["nan"].(float64)) {
		t.Error("the caller's map was changed")
	}
	if fmt.Sprintf("%p", c.Metadata) != fmt.Sprintf("%p", meta) {
		t.Error("a clean map was copied")
	}
	if _, err := json.Marshal(c); err != nil {
		t.Errorf("cleaned state does not encode: %v", err)
	}
}

// Closing the store drops what is still queued, counted, and stops the retry loop.
func TestCallWriterCloseDrops(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	db.setDown(true)
	_ = w.deposit(state("a", CallCompleted, 1), false).Wait(context.Background())
	w.close()
	if st := w.stats(); st.Queued != 0 || st.Dropped != 1 {
		t.Fatalf("stats %+v, want the queued state dropped at close", st)
	}
	if err := w.deposit(state("b", CallCompleted, 1), false).Wait(context.Background()); !errors.Is(err, ErrCallQueued) {
		t.Fatalf("after close: %v", err)
	}
	if st := w.stats(); st.Dropped != 2 {
		t.Fatalf("stats %+v: a state refused after close is dropped at once", st)
	}
}

// Writers of one call at once: while one state is being written, the others wait for it and
// the newest is written next; what reaches the database never goes back.
func TestCallWriterConcurrentStatesInOrder(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Hold the first write so that the others pile up behind it.
	db.inWrite, db.release = make(chan string, 100), make(chan struct{})
	var order sync.Mutex // states are deposited in n order, as a CallRecord does under its lock
	n := 0
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order.Lock()
			n++
			cw := w.deposit(state("a", CallInProgress, n), false)
			order.Unlock()
			if err := cw.Wait(ctx); err != nil {
				errs <- err
			}
		}()
	}
	select {
	case <-db.inWrite:
	case <-ctx.Done():
		t.Fatal("no write started")
	}
	go func() {
		for {
			select {
			case db.release <- struct{}{}:
			case <-db.inWrite:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, writes := db.last("a")
	if got.Metadata["n"] != 20 {
		t.Fatalf("last written n=%v, want 20", got.Metadata["n"])
	}
	db.mu.Lock()
	for i := 1; i < len(db.written["a"]); i++ {
		if a, b := db.written["a"][i-1].Metadata["n"].(int), db.written["a"][i].Metadata["n"].(int); b < a {
			t.Errorf("state %d written after state %d", b, a)
		}
	}
	db.mu.Unlock()
	if writes >= 20 {
		t.Logf("%d writes for 20 states", writes)
	}
}

// SQLite locked by another process (a backup, a sqlite3 shell) past the attempt's timeout:
// the call's end is queued and written once the lock is released.
func TestCallWriterSQLiteLocked(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.calls.timeout = 300 * time.Millisecond
	ten, err := s.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	c := NewOutboundCall()
	c.To, c.Destination, c.Status = "sip:echo@127.0.0.1", "echo", CallInProgress
	if err := Create(ctx, s, ten.ID, c); err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", "file:"+dir+"/switchboard.db?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	c.Status, c.EndedReason, c.EndedAt = CallCompleted, EndedCallerHangup, &now
	if err := UpdateCallState(ctx, s, c); !errors.Is(err, ErrCallQueued) {
		t.Fatalf("update while locked: %v, want ErrCallQueued", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.FlushCalls(fctx); err != nil {
		t.Fatal(err)
	}
	got, err := Get[Call](ctx, s, ten.ID, c.ID)
	if err != nil || got.Status != CallCompleted || got.EndedReason != EndedCallerHangup {
		t.Fatalf("record %+v, %v; want completed caller-hangup", got, err)
	}
}

// A database that hangs rather than refuses costs one attempt's timeout, not one per
// update: once it refused, the other calls' states are queued without trying, and written
// in order when it answers again.
func TestCallWriterQueuesWithoutTryingWhileRefused(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	w.timeout = 200 * time.Millisecond
	db.inWrite, db.release = make(chan string, 100), make(chan struct{}) // never released: hangs
	ctx := context.Background()
	if err := w.deposit(state("a", CallCompleted, 1), false).Wait(ctx); !errors.Is(err, ErrCallQueued) {
		t.Fatalf("hung database: %v", err)
	}
	if err := w.deposit(state("b", CallCompleted, 1), false).Wait(ctx); !errors.Is(err, ErrCallQueued) {
		t.Fatalf("second call: %v", err)
	}
	tried := map[string]int{}
	for len(db.inWrite) > 0 {
		tried[<-db.inWrite]++
	}
	if tried["b"] != 0 {
		t.Fatalf("attempts %v: the second call's state was tried against a database that hangs", tried)
	}
	close(db.release) // answers again
	flush(t, w)
	for _, id := range []string{"a", "b"} {
		if _, n := db.last(id); n != 1 {
			t.Errorf("call %s written %d times, want once", id, n)
		}
	}
}

// BenchmarkCallWriterOverhead is what the writer adds to each update of a call's record when
// the database answers: the bookkeeping around a write that costs nothing here.
func BenchmarkCallWriterOverhead(b *testing.B) {
	w := newCallWriter(func(context.Context, *Call) error { return nil }, nil, 0, 0)
	defer w.close()
	c := state("a", CallInProgress, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.deposit(c, false).Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// Only errors that say the database is away are retried; those about the state are not.
func TestCallWriterRetryable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("store: %w", &pgconn.PgError{Code: code}) }
	_, jsonErr := json.Marshal(math.NaN())
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: connection refused", ErrUnavailable), true},
		{fmt.Errorf("write: %w", context.DeadlineExceeded), true},
		{pg("08006"), true}, {pg("40P01"), true}, {pg("53100"), true}, {pg("57P01"), true}, {pg("55P03"), true},
		{pg("22P05"), false}, {pg("22021"), false}, {pg("42601"), false},
		{&ConflictError{Field: "id"}, false}, {ErrNotFound, false},
		{fmt.Errorf("store: %w", jsonErr), false}, {errors.New("store: SQL logic error: unrecognized token"), false},
	} {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// Group commit: while one call's state is being written, the states other calls wait for
// go to the flush loop, several in one transaction, and each Wait returns once its own
// state is written.
func TestCallWriterWaitersJoinBatches(t *testing.T) {
	db := newFlakyDB()
	w, _ := testWriter(t, db, 0, 0)
	w.batch = func(ctx context.Context, states []batchState) error {
		for _, b := range states {
			if err := db.write(ctx, b.C); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db.inWrite, db.release = make(chan string, 100), make(chan struct{})
	first := make(chan error, 1)
	go func() { first <- w.deposit(state("first", CallInProgress, 1), false).Wait(ctx) }()
	select {
	case <-db.inWrite: // the first call's own write has started, and is held
	case <-ctx.Done():
		t.Fatal("no write started")
	}
	const others = 10
	var wg sync.WaitGroup
	errs := make(chan error, others)
	for i := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.deposit(state(fmt.Sprintf("c%d", i), CallCompleted, i), false).Wait(ctx); err != nil {
				errs <- err
			}
		}()
	}
	// Every waiter hands its state to the flush loop (whose first write is held too, as
	// the first call's is) rather than writing it; wait until all ten have.
	for {
		w.mu.Lock()
		handed, own := w.inFlush, w.ownWrites
		w.mu.Unlock()
		if own != 1 {
			t.Fatalf("%d callers writing their own states, want only the first", own)
		}
		if handed == others {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d waiters handed to the flush loop", handed, others)
		case <-time.After(time.Millisecond):
		}
	}
	close(db.release)
	go func() {
		for range db.inWrite {
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := range others {
		if got, n := db.last(fmt.Sprintf("c%d", i)); n != 1 || got.Status != CallCompleted {
			t.Errorf("c%d: %d writes, last %q", i, n, got.Status)
		}
	}
	// The flush loop's first write took what was listed then (one state or more); all
	// that came while it was held went in the next, one transaction.
	if st := w.stats(); st.Batches < 1 || st.Batches > 2 || st.Batched < others-1 {
		t.Fatalf("stats %+v: want the ten waiters in one or two batches", st)
	}
}
