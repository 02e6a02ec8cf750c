package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// TestCallRollupsFollowEveryWrite writes calls through every path that writes a call's row
// (the generic Create, Update and Delete; the call writer's single writes, its batches and
// its creations behind the caller; a node failing its live calls as it leaves; an agent
// deleted under its calls) and checks that the hourly rollups are what the calls' rows sum
// up to: equal, row for row, to the rollups rebuilt from the rows as the migration builds
// them, and giving the same analytics, figure for figure, as a read of the rows alone.
func TestCallRollupsFollowEveryWrite(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		other := newCallFixture(t, s, "globex")
		gone := store.NewAgent()
		gone.Name = "gone"
		if err := store.Create(ctx, s, f.tenant.ID, gone); err != nil {
			t.Fatal(err)
		}
		base := time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
		at := func(i int) time.Time { return base.Add(time.Duration(i) * 17 * time.Minute) }
		newCall := func(i int, tenantID string, agentID *string) *store.Call {
			start := at(i)
			return &store.Call{Direction: store.CallInbound, Status: store.CallRinging, From: "sip:caller@127.0.0.1",
				To: "sip:desk@127.0.0.1", AgentID: agentID, Node: "node-a", StartedAt: &start}
		}
		end := func(c *store.Call, i int) {
			ans, fin := *c.StartedAt, c.StartedAt.Add(time.Duration(30+i)*time.Second)
			c.Status, c.AnsweredAt, c.EndedAt, c.EndedReason = store.CallCompleted, &ans, &fin, store.EndedCallerHangup
			c.DurationSeconds = float64(30 + i)
			c.CallUsage = store.CallUsage{Turns: i % 4, Interruptions: i % 2, ToolCalls: i % 3, ToolFailures: i % 2,
				InputTokens: 100 * i, OutputTokens: 10 * i, CostUSD: float64(i) / 1000,
				TurnLatenciesMS: []float64{float64(300 + 10*i), float64(700 + i), 1234.5}}
		}

		// The generic Create, then Update and Delete.
		var made []*store.Call
		for i := range 4 {
			store.SetClock(s, func() time.Time { return at(i) })
			c := newCall(i, f.tenant.ID, &f.agent.ID)
			if i%2 == 1 {
				end(c, i)
			}
			if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
				t.Fatal(err)
			}
			made = append(made, c)
		}
		store.SetClock(s, func() time.Time { return time.Now().UTC() })
		end(made[0], 0)
		if err := store.Update(ctx, s, made[0]); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete[store.Call](ctx, s, f.tenant.ID, made[3].ID); err != nil {
			t.Fatal(err)
		}

		// The call writer: created and written at once, state by state.
		for i := 4; i < 10; i++ {
			agentID := &f.agent.ID
			switch i % 3 {
			case 1:
				agentID = &gone.ID
			case 2:
				agentID = nil
			}
			store.SetClock(s, func() time.Time { return at(i) })
			c := newCall(i, f.tenant.ID, agentID)
			if agentID == nil {
				c.Destination = "echo"
			}
			w, err := store.QueueCallCreate(s, f.tenant.ID, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			store.SetClock(s, func() time.Time { return time.Now().UTC() })
			if i%2 == 0 {
				end(c, i)
				if err := store.UpdateCallState(ctx, s, c); err != nil {
					t.Fatal(err)
				}
				// What the call used comes after its end, with its latencies.
				c.TurnLatenciesMS = append(c.TurnLatenciesMS, 2500)
				if err := store.UpdateCallState(ctx, s, c); err != nil {
					t.Fatal(err)
				}
			}
		}

		// The call writer's batches: calls of both tenants created behind their callers.
		for i := 10; i < 30; i++ {
			tenantID, agentID := f.tenant.ID, &f.agent.ID
			if i%4 == 0 {
				tenantID, agentID = other.tenant.ID, &other.agent.ID
			}
			store.SetClock(s, func() time.Time { return at(i) })
			c := newCall(i, tenantID, agentID)
			c.Node = "node-b"
			w, err := store.QueueCallCreate(s, tenantID, c)
			if err != nil {
				t.Fatal(err)
			}
			w.Behind()
			if i%3 != 0 {
				end(c, i)
				store.QueueCallState(s, c).Behind()
			}
		}
		store.SetClock(s, func() time.Time { return time.Now().UTC() })
		if err := s.FlushCalls(ctx); err != nil {
			t.Fatal(err)
		}

		// A node leaving fails its live calls.
		if n, err := store.LeaveNode(ctx, s, "node-b"); err != nil || n == 0 {
			t.Fatalf("leave: %d calls, %v", n, err)
		}

		checkRollups(ctx, t, s)

		// An agent deleted: its calls are no agent's, in the rollups' analytics too.
		if err := store.Delete[store.Agent](ctx, s, f.tenant.ID, gone.ID); err != nil {
			t.Fatal(err)
		}
		for _, tenantID := range []string{f.tenant.ID, other.tenant.ID} {
			checkAnalyticsRaw(ctx, t, s, tenantID, "")
			checkAnalyticsRaw(ctx, t, s, tenantID, f.agent.ID)
		}
		checkAnalyticsRaw(ctx, t, s, f.tenant.ID, gone.ID)
	})
}

// checkRollups compares the rollups kept by the writes with those rebuilt from the rows.
func checkRollups(ctx context.Context, t *testing.T, s *store.Store) {
	t.Helper()
	kept, err := store.Rollups(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 {
		t.Fatal("no rollups kept")
	}
	if err := store.RebuildRollups(ctx, s); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := store.Rollups(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept, rebuilt) {
		t.Errorf("rollups kept by the writes:\n%s\nrebuilt from the calls:\n%s", kept, rebuilt)
	}
}

// checkAnalyticsRaw compares the analytics read through the rollups with a read of the
// calls' rows alone, by hour and by day, over ranges of whole hours and of part hours.
func checkAnalyticsRaw(ctx context.Context, t *testing.T, s *store.Store, tenantID, agentID string) {
	t.Helper()
	now := time.Now().UTC()
	for _, r := range []struct{ from, to time.Time }{
		{now.Add(-48 * time.Hour), now.Add(time.Hour)},
		{now.Truncate(time.Hour).Add(-4*time.Hour - 20*time.Minute), now.Truncate(time.Hour).Add(-time.Hour - 7*time.Minute)},
		{now.Truncate(time.Hour).Add(-3 * time.Hour), now.Truncate(time.Hour).Add(-2 * time.Hour)},
	} {
		for _, bucket := range []string{store.BucketHour, store.BucketDay} {
			q := store.CallAnalyticsQuery{From: r.from, To: r.to, Bucket: bucket, AgentID: agentID}
			rolled, err := store.AnalyzeCalls(ctx, s, tenantID, q)
			if err != nil {
				t.Fatal(err)
			}
			restore := store.ReadRawCalls(s)
			raw, err := store.AnalyzeCalls(ctx, s, tenantID, q)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(rolled)
			b, _ := json.Marshal(raw)
			if string(a) != string(b) {
				t.Errorf("%s %v..%v by %s: through the rollups\n%s\nfrom the rows\n%s", agentID, r.from, r.to, bucket, a, b)
			}
		}
	}
}

// TestTurnLatencyOverTurns: the turn-latency percentiles are over the turns of the calls,
// not over each call's median, and within their bin of the exact nearest-rank value.
func TestTurnLatencyOverTurns(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		from := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		// One call of five quick turns and one slow turn; one call of one slow turn; and
		// one recorded before turns were kept, whose median stands for its turns.
		var all []float64
		for i, ls := range [][]float64{{210, 220, 230, 240, 250, 4000}, {3000}, nil} {
			at := from.Add(time.Duration(i) * time.Minute)
			store.SetClock(s, func() time.Time { return at })
			ans := at
			c := &store.Call{Direction: store.CallInbound, Status: store.CallCompleted, From: "+15550100", To: "+15550001",
				AgentID: &f.agent.ID, StartedAt: &at, AnsweredAt: &ans, EndedAt: &ans, EndedReason: store.EndedCallerHangup}
			c.TurnLatenciesMS = ls
			if ls == nil {
				median := 1000.0
				c.LatencyP50MS = &median
				ls = []float64{median}
			}
			all = append(all, ls...)
			if err := store.Create(ctx, s, f.tenant.ID, c); err != nil {
				t.Fatal(err)
			}
		}
		store.SetClock(s, func() time.Time { return time.Now().UTC() })
		got, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: from.Add(24 * time.Hour), Bucket: store.BucketDay})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(all)
		// Eight turns: the nearest-rank p50 is the 4th (240 ms), p90 and p99 the 8th.
		for _, c := range []struct {
			name string
			got  *float64
			want float64
		}{{"p50", got.Total.TurnLatencyP50MS, all[3]}, {"p90", got.Total.TurnLatencyP90MS, all[7]}, {"p99", got.Total.TurnLatencyP99MS, all[7]}} {
			if c.got == nil || *c.got < c.want/1.045 || *c.got > c.want*1.045 {
				t.Errorf("turn latency %s %v, want %v within 4.5%% (the turns: %v)", c.name, deref(c.got), c.want, all)
			}
		}
		if got.Total.Calls != 3 || got.Total.Answered != 3 {
			t.Errorf("calls %d answered %d, want 3 and 3", got.Total.Calls, got.Total.Answered)
		}
	})
}

// TestSessionErrorLog: a session's failed answer and its failed tool calls are in the error
// log, with their time, session, agent and message, paged with the calls' errors, of the
// tenant only, and of the agent asked for.
func TestSessionErrorLog(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		other := newCallFixture(t, s, "globex")
		at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		session := func(tenantID, agentID string) *store.Session {
			sess := store.NewSession()
			sess.AgentID = &agentID
			if err := store.Create(ctx, s, tenantID, sess); err != nil {
				t.Fatal(err)
			}
			return sess
		}
		sess, theirs := session(f.tenant.ID, f.agent.ID), session(other.tenant.ID, other.agent.ID)
		user := func(i int) *store.SessionMessage {
			return &store.SessionMessage{Role: store.RoleUser, CreatedAt: at.Add(time.Duration(i) * time.Minute),
				Parts: []store.MessagePart{{Type: store.PartText, Text: "where is my order?"}}}
		}
		answer := func(i int, status, errText string, parts ...store.MessagePart) *store.SessionMessage {
			return &store.SessionMessage{Role: store.RoleAssistant, Status: status, Error: errText, Parts: parts,
				CreatedAt: at.Add(time.Duration(i)*time.Minute + time.Second)}
		}
		toolFailed := store.MessagePart{Type: store.PartToolResult, ToolCallID: "c1", ToolName: "get_order", Result: "webhook answered 500", IsError: true}
		toolDone := store.MessagePart{Type: store.PartToolResult, ToolCallID: "c2", ToolName: "get_order", Result: "shipped"}
		for _, turn := range []struct {
			tenantID, sessionID string
			msgs                []*store.SessionMessage
		}{
			{f.tenant.ID, sess.ID, []*store.SessionMessage{user(0), answer(0, store.MessageCompleted, "", toolDone)}},
			{f.tenant.ID, sess.ID, []*store.SessionMessage{user(1), answer(1, store.MessageCompleted, "", toolFailed)}},
			{f.tenant.ID, sess.ID, []*store.SessionMessage{user(2), answer(2, store.MessageFailed, "the model failed: upstream 503")}},
			{f.tenant.ID, sess.ID, []*store.SessionMessage{user(3), answer(3, store.MessageCanceled, "the answer was canceled")}},
			{other.tenant.ID, theirs.ID, []*store.SessionMessage{user(4), answer(4, store.MessageFailed, "not ours")}},
		} {
			if err := store.AppendSessionMessages(ctx, s, turn.tenantID, turn.sessionID, turn.msgs...); err != nil {
				t.Fatal(err)
			}
		}
		q := store.ErrorLogQuery{From: at.Add(-time.Hour), To: at.Add(time.Hour)}
		items, total, err := store.ErrorLog(ctx, s, f.tenant.ID, q, store.Page{Limit: 1})
		if err != nil || total != 2 || len(items) != 1 {
			t.Fatalf("first page: %d of %d, %v; want 1 of 2", len(items), total, err)
		}
		e := items[0]
		if e.Kind != store.ErrorProvider || e.Stage != store.ErrorStageBrain || e.Message != "the model failed: upstream 503" ||
			e.SessionID == nil || *e.SessionID != sess.ID || e.CallID != nil || e.AgentID == nil || *e.AgentID != f.agent.ID ||
			!e.At.Equal(at.Add(2*time.Minute+time.Second)) {
			t.Errorf("newest session error %+v", e)
		}
		items, _, err = store.ErrorLog(ctx, s, f.tenant.ID, q, store.Page{Limit: 1, Offset: 1})
		if err != nil || len(items) != 1 || items[0].Kind != store.ErrorTool || items[0].Message != "get_order: webhook answered 500" ||
			items[0].SessionID == nil || *items[0].SessionID != sess.ID {
			t.Errorf("second page %+v, %v; want the tool failure", items, err)
		}
		q.AgentID = other.agent.ID
		if _, total, err := store.ErrorLog(ctx, s, f.tenant.ID, q, store.Page{Limit: 10}); err != nil || total != 0 {
			t.Errorf("another tenant's agent: %d errors, %v", total, err)
		}
		q.AgentID = f.agent.ID
		if _, total, err := store.ErrorLog(ctx, s, f.tenant.ID, q, store.Page{Limit: 10}); err != nil || total != 2 {
			t.Errorf("the agent's errors: %d, %v; want 2", total, err)
		}
	})
}

// TestCallRollupsConcurrentFirstWrites: calls of one agent and hour written at once, each in
// its own transaction, race to make their hour's rollup row; each adds to it, none is lost
// or refused.
func TestCallRollupsConcurrentFirstWrites(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		const n = 40
		start := make(chan struct{})
		errs := make(chan error, n)
		for range n {
			go func() {
				<-start
				now := time.Now().UTC()
				c := &store.Call{Direction: store.CallInbound, Status: store.CallRinging, From: "sip:caller@127.0.0.1",
					To: "sip:desk@127.0.0.1", AgentID: &f.agent.ID, Node: "node-a", StartedAt: &now}
				errs <- store.Create(ctx, s, f.tenant.ID, c)
			}()
		}
		close(start)
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		got, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: time.Now().Add(-2 * time.Hour), To: time.Now().Add(2 * time.Hour), Bucket: store.BucketDay})
		if err != nil || got.Total.Calls != n {
			t.Fatalf("analytics: %v calls, %v; want %d", got.Total.Calls, err, n)
		}
		checkRollups(ctx, t, s)
	})
}
