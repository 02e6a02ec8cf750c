package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// newSession makes a tenant, an agent and a session of it.
func newSession(t testing.TB, s *store.Store) (tenantID string, sess *store.Session) {
	t.Helper()
	ctx := context.Background()
	ten, err := s.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ag := store.NewAgent()
	ag.Name = "Ala"
	if err := store.Create(ctx, s, ten.ID, ag); err != nil {
		t.Fatal(err)
	}
	sess = store.NewSession()
	sess.AgentID = &ag.ID
	if err := store.Create(ctx, s, ten.ID, sess); err != nil {
		t.Fatal(err)
	}
	return ten.ID, sess
}

// fillSession appends n messages, alternately the user's and the agent's, 500 a transaction.
func fillSession(t testing.TB, s *store.Store, tenantID, sessionID string, n int) {
	t.Helper()
	for done := 0; done < n; {
		var batch []*store.SessionMessage
		for ; done < n && len(batch) < 500; done++ {
			role := store.RoleUser
			if done%2 == 1 {
				role = store.RoleAssistant
			}
			batch = append(batch, &store.SessionMessage{Role: role, OutputTokens: 1,
				Parts: []store.MessagePart{{Type: store.PartText, Text: fmt.Sprintf("message %d: %s", done, strings.Repeat("lorem ipsum ", 8))}}})
		}
		if err := store.AppendSessionMessages(context.Background(), s, tenantID, sessionID, batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSessionMessagesPageByCursor(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tenantID, sess := newSession(t, s)
		fillSession(t, s, tenantID, sess.ID, 1200)
		got, err := store.Get[store.Session](ctx, s, tenantID, sess.ID)
		if err != nil || got.MessageCount != 1200 || got.OutputTokens != 1200 {
			t.Fatalf("session %+v %v", got, err)
		}
		var ids []string
		cursor := ""
		for {
			page, err := store.ListSessionMessages(ctx, s, tenantID, sess.ID, cursor, 0, 500)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				ids = append(ids, m.ID)
			}
			cursor = page[len(page)-1].ID
		}
		if len(ids) != 1200 || !slices.IsSorted(ids) {
			t.Fatalf("%d messages, sorted %v", len(ids), slices.IsSorted(ids))
		}
		first, _ := store.ListSessionMessages(ctx, s, tenantID, sess.ID, "", 0, 1)
		if !strings.HasPrefix(first[0].Text(), "message 0:") {
			t.Fatalf("first message %q", first[0].Text())
		}
		last, err := store.SessionHistory(ctx, s, tenantID, sess.ID, 3)
		if err != nil || len(last) != 3 || !strings.HasPrefix(last[2].Text(), "message 1199:") || last[0].ID > last[2].ID {
			t.Fatalf("history %v %v", last, err)
		}
		// Another tenant reads nothing and writes nothing.
		other, err := s.EnsureTenant(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		if page, _ := store.ListSessionMessages(ctx, s, other.ID, sess.ID, "", 0, 10); len(page) != 0 {
			t.Fatalf("another tenant read %d messages", len(page))
		}
		if err := store.AppendSessionMessages(ctx, s, other.ID, sess.ID, &store.SessionMessage{Role: store.RoleUser}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's append: %v", err)
		}
		// A batch with a missing session writes the others.
		ok := &store.SessionAppend{TenantID: tenantID, SessionID: sess.ID, Messages: []*store.SessionMessage{{Role: store.RoleUser}}}
		gone := &store.SessionAppend{TenantID: tenantID, SessionID: "ses_01jdq3zzzzzzzzzzzzzzzzzzzz", Messages: []*store.SessionMessage{{Role: store.RoleUser}}}
		if err := store.AppendSessionBatch(ctx, s, []*store.SessionAppend{gone, ok}); err != nil || ok.Err != nil || !errors.Is(gone.Err, store.ErrNotFound) {
			t.Fatalf("batch: %v, %v, %v", err, ok.Err, gone.Err)
		}
		// The page is read along an index, from the cursor on, not by scanning the table
		// (SQLite takes the (session_id, id) index; PostgreSQL, with one session in the
		// table, may as well take the primary key).
		plan := queryPlan(t, s, tenantID, sess.ID, ids[600])
		want := "session_messages_session_idx"
		if s.Dialect() == store.Postgres {
			want = "Index Scan"
		}
		if !strings.Contains(plan, want) || strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "SCAN session_messages\n") {
			t.Fatalf("the page is not read by the index:\n%s", plan)
		}
		// Deleting the session deletes its messages.
		if err := store.Delete[store.Session](ctx, s, tenantID, sess.ID); err != nil {
			t.Fatal(err)
		}
		n, err := s.DB().NewSelect().Table("session_messages").Where("session_id = ?", sess.ID).Count(ctx)
		if err != nil || n != 0 {
			t.Fatalf("%d messages left: %v", n, err)
		}
	})
}

// queryPlan is the database's plan of a page read after cursor.
func queryPlan(t *testing.T, s *store.Store, tenantID, sessionID, cursor string) string {
	t.Helper()
	ctx := context.Background()
	q := s.DB().NewSelect().Table("session_messages").Where("session_id = ?", sessionID).Where("tenant_id = ?", tenantID).
		Where("id > ?", cursor).Order("id ASC").Limit(500).String()
	prefix := "EXPLAIN QUERY PLAN "
	if s.Dialect() == store.Postgres {
		if _, err := s.DB().ExecContext(ctx, "ANALYZE session_messages"); err != nil {
			t.Fatal(err)
		}
		prefix = "EXPLAIN "
	}
	rows, err := s.DB().QueryContext(ctx, prefix+q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, vals...)
	}
	return b.String()
}

func TestSessionMigrationRollsBack(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		names, err := s.Rollback(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "20261207000040") }) {
			// Every migration of a fresh store is one group; it went with the rest.
			t.Logf("rolled back %v", names)
		}
		if _, err := s.DB().NewSelect().Table("session_messages").Count(ctx); err == nil {
			t.Fatal("session_messages is still there after the rollback")
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		tenantID, sess := newSession(t, s)
		fillSession(t, s, tenantID, sess.ID, 2)
	})
}

// BenchmarkSessionHistoryPage reads pages of 500 messages from a session of 10,000, each after
// a random cursor, as GET /api/v1/sessions/{id}/messages?cursor=…&pageSize=500 does (the
// session's own read by ID aside), and reports the p50 and p99 of a page.
//
//	go test -run '^$' -bench SessionHistoryPage -benchtime 2000x ./store/
func BenchmarkSessionHistoryPage(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			s := openStore(b, d)
			tenantID, sess := newSession(b, s)
			fillSession(b, s, tenantID, sess.ID, 10_000)
			ctx := context.Background()
			all, err := store.ListSessionMessages(ctx, s, tenantID, sess.ID, "", 0, 10_000)
			if err != nil || len(all) != 10_000 {
				b.Fatalf("%d messages: %v", len(all), err)
			}
			if d == store.Postgres {
				if _, err := s.DB().ExecContext(ctx, "ANALYZE session_messages"); err != nil {
					b.Fatal(err)
				}
			}
			durs := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cursor := all[rand.IntN(len(all)-500)].ID
				start := time.Now()
				page, err := store.ListSessionMessages(ctx, s, tenantID, sess.ID, cursor, 0, 500)
				durs = append(durs, time.Since(start))
				if err != nil || len(page) != 500 {
					b.Fatalf("page of %d: %v", len(page), err)
				}
			}
			b.StopTimer()
			slices.Sort(durs)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(durs[len(durs)/2]), "p50-ms")
			b.ReportMetric(ms(durs[min(len(durs)-1, len(durs)*99/100)]), "p99-ms")
		})
	}
}

// TestSessionStoredWithItsFirstTurn: a session of one run is inserted with its messages,
// counted and closed, in the batch's one transaction; one whose agent the tenant does not
// have (deleted meanwhile, or another tenant's) writes nothing of itself and spoils no other.
func TestSessionStoredWithItsFirstTurn(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tenantID, sess := newSession(t, s)
		other, err := s.EnsureTenant(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		turn := func() []*store.SessionMessage {
			return []*store.SessionMessage{{Role: store.RoleUser, Parts: []store.MessagePart{{Type: store.PartText, Text: "Hi"}}},
				{Role: store.RoleAssistant, InputTokens: 7, OutputTokens: 3, CostUSD: 0.5, Parts: []store.MessagePart{{Type: store.PartText, Text: "Hello."}}}}
		}
		fresh := func(tenant string) *store.Session {
			n := store.NewSession()
			n.AgentID, n.Label = sess.AgentID, "run"
			if err := store.NewSessionRow(s, tenant, n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		run := fresh(tenantID)
		ok := &store.SessionAppend{TenantID: tenantID, SessionID: run.ID, New: run, Close: true, Messages: turn()}
		// Another tenant's agent: refused by name, nothing of it written.
		stray := fresh(other.ID)
		bad := &store.SessionAppend{TenantID: other.ID, SessionID: stray.ID, New: stray, Close: true, Messages: turn()}
		old := &store.SessionAppend{TenantID: tenantID, SessionID: sess.ID, Messages: turn()}
		if err := store.AppendSessionBatch(ctx, s, []*store.SessionAppend{bad, ok, old}); err != nil || ok.Err != nil || old.Err != nil {
			t.Fatalf("batch: %v, %v, %v", err, ok.Err, old.Err)
		}
		var ve *store.ValidationError
		if !errors.As(bad.Err, &ve) || ve.Fields[0].Field != "agent_id" {
			t.Fatalf("a run of another tenant's agent: %v", bad.Err)
		}
		if _, err := store.Get[store.Session](ctx, s, other.ID, stray.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused session was stored: %v", err)
		}
		if n, err := s.DB().NewSelect().Table("session_messages").Where("session_id = ?", stray.ID).Count(ctx); err != nil || n != 0 {
			t.Fatalf("%d messages of the refused session: %v", n, err)
		}
		got, err := store.Get[store.Session](ctx, s, tenantID, run.ID)
		if err != nil || got.Status != store.SessionClosed || got.ClosedAt == nil || got.MessageCount != 2 ||
			got.InputTokens != 7 || got.OutputTokens != 3 || got.CostUSD != 0.5 || got.Label != "run" {
			t.Fatalf("run session %+v %v", got, err)
		}
		if msgs, err := store.ListSessionMessages(ctx, s, tenantID, run.ID, "", 0, 10); err != nil || len(msgs) != 2 || msgs[1].Text() != "Hello." {
			t.Fatalf("run messages %v %v", msgs, err)
		}
		if got, err := store.Get[store.Session](ctx, s, tenantID, sess.ID); err != nil || got.MessageCount != 2 || got.Status != store.SessionActive {
			t.Fatalf("the other session of the batch %+v %v", got, err)
		}
	})
}

// TestClaimSessionAnswerRow: the claim and the read of the session in one statement; a
// second claim is refused while the first is held, a closed session is not claimed, and
// another tenant's session is not found. Each refusal returns the session as it is.
func TestClaimSessionAnswerRow(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tenantID, sess := newSession(t, s)
		got, ok, err := store.ClaimSessionAnswerRow(ctx, s, tenantID, sess.ID, "n1", "lease-1", time.Minute)
		if err != nil || !ok || got.ID != sess.ID || got.AgentID == nil || *got.AgentID != *sess.AgentID || got.Status != store.SessionActive {
			t.Fatalf("claim: %+v %v %v", got, ok, err)
		}
		if got, ok, err := store.ClaimSessionAnswerRow(ctx, s, tenantID, sess.ID, "n2", "lease-2", time.Minute); err != nil || ok || got.ID != sess.ID {
			t.Fatalf("a held session claimed again: %v %v", ok, err)
		}
		if err := store.ReleaseSessionAnswer(ctx, s, sess.ID, "lease-1"); err != nil {
			t.Fatal(err)
		}
		if _, did, err := store.CloseSession(ctx, s, tenantID, sess.ID); err != nil || !did {
			t.Fatalf("close: %v %v", did, err)
		}
		if got, ok, err := store.ClaimSessionAnswerRow(ctx, s, tenantID, sess.ID, "n2", "lease-3", time.Minute); err != nil || ok || got.Status != store.SessionClosed {
			t.Fatalf("a closed session claimed: %v %v", ok, err)
		}
		other, err := s.EnsureTenant(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.ClaimSessionAnswerRow(ctx, s, other.ID, sess.ID, "n2", "lease-4", time.Minute); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another tenant's claim: %v", err)
		}
	})
}
