package store_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// analyticsCall is one call of the known set the analytics are checked against.
type analyticsCall struct {
	agent    *store.Agent // nil: a built-in destination
	hour     int          // of 2026-12-01, UTC
	answered bool
	duration float64
	latency  float64 // 0: no answered spoken turn
	reason   string
	usage    store.CallUsage
}

func seedAnalytics(t *testing.T, s *store.Store, tenantID string, calls []analyticsCall) []*store.Call {
	t.Helper()
	ctx := context.Background()
	var out []*store.Call
	for i, ac := range calls {
		at := time.Date(2026, 12, 1, ac.hour, i, 0, 0, time.UTC)
		store.SetClock(s, func() time.Time { return at })
		c := &store.Call{Direction: store.CallInbound, From: "+15550100", To: "+15550001", Status: store.CallCompleted,
			EndedReason: ac.reason, CallUsage: ac.usage}
		if ac.agent != nil {
			c.AgentID = &ac.agent.ID
		} else {
			c.Destination = "echo"
		}
		end := at.Add(time.Duration(ac.duration*float64(time.Second)) + 5*time.Second)
		c.StartedAt, c.EndedAt = &at, &end
		if ac.answered {
			ans := at.Add(5 * time.Second)
			c.AnsweredAt, c.DurationSeconds = &ans, ac.duration
		} else {
			c.Status = store.CallFailed
		}
		if ac.latency > 0 {
			l := ac.latency
			c.LatencyP50MS = &l
		}
		if err := store.Create(ctx, s, tenantID, c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	store.SetClock(s, func() time.Time { return time.Now().UTC() })
	return out
}

func fptr(f float64) *float64 { return &f }

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

// checkFigures compares every figure of got with want.
func checkFigures(t *testing.T, name string, got, want store.CallFigures) {
	t.Helper()
	if got.Calls != want.Calls || got.Answered != want.Answered || math.Abs(got.AnswerRate-want.AnswerRate) > 1e-9 ||
		got.Turns != want.Turns || got.Interruptions != want.Interruptions || got.ToolCalls != want.ToolCalls ||
		got.ToolFailures != want.ToolFailures || got.InputTokens != want.InputTokens || got.OutputTokens != want.OutputTokens ||
		math.Abs(got.CostUSD-want.CostUSD) > 1e-9 {
		t.Errorf("%s: counts %+v\nwant %+v", name, got, want)
	}
	for _, p := range []struct {
		what      string
		got, want *float64
	}{
		{"avg duration", got.AvgDurationSeconds, want.AvgDurationSeconds},
		{"duration p50", got.DurationP50Seconds, want.DurationP50Seconds},
		{"duration p90", got.DurationP90Seconds, want.DurationP90Seconds},
		{"duration p99", got.DurationP99Seconds, want.DurationP99Seconds},
		{"latency p50", got.TurnLatencyP50MS, want.TurnLatencyP50MS},
		{"latency p90", got.TurnLatencyP90MS, want.TurnLatencyP90MS},
		{"latency p99", got.TurnLatencyP99MS, want.TurnLatencyP99MS},
	} {
		if !sameFloat(p.got, p.want) {
			t.Errorf("%s: %s %v, want %v", name, p.what, deref(p.got), deref(p.want))
		}
	}
	if len(got.EndReasons) != len(want.EndReasons) {
		t.Errorf("%s: end reasons %v, want %v", name, got.EndReasons, want.EndReasons)
	}
	for k, v := range want.EndReasons {
		if got.EndReasons[k] != v {
			t.Errorf("%s: end reasons %v, want %v", name, got.EndReasons, want.EndReasons)
		}
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestAnalyzeCalls checks every figure of the call analytics against a known set of calls,
// by hour, by day, by agent and in all, on both databases; another tenant's calls in the
// same hours are never counted, and a bucket that is neither hour nor day is refused by name.
func TestAnalyzeCalls(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		a1 := f.agent
		a2 := store.NewAgent()
		a2.Name = "sales"
		if err := store.Create(ctx, s, f.tenant.ID, a2); err != nil {
			t.Fatal(err)
		}
		other := newCallFixture(t, s, "globex")

		u := func(turns, interruptions, tools, failures, in, out int, cost float64) store.CallUsage {
			return store.CallUsage{Turns: turns, Interruptions: interruptions, ToolCalls: tools, ToolFailures: failures,
				InputTokens: in, OutputTokens: out, CostUSD: cost}
		}
		seedAnalytics(t, s, f.tenant.ID, []analyticsCall{
			{agent: a1, hour: 10, answered: true, duration: 10, latency: 500, reason: store.EndedCallerHangup, usage: u(2, 1, 2, 1, 100, 50, 0.01)},
			{agent: a1, hour: 10, answered: true, duration: 20, latency: 700, reason: store.EndedAgentHangup, usage: u(3, 0, 1, 0, 200, 100, 0.02)},
			{agent: a2, hour: 10, reason: store.EndedError},
			{agent: a2, hour: 11, answered: true, duration: 40, latency: 900, reason: store.EndedAgentError, usage: u(1, 2, 0, 0, 10, 5, 0.004)},
			{hour: 11, answered: true, duration: 30, reason: store.EndedCallerHangup, usage: u(0, 0, 0, 0, 0, 0, 0.005)},
		})
		seedAnalytics(t, s, other.tenant.ID, []analyticsCall{
			{agent: other.agent, hour: 10, answered: true, duration: 99, latency: 99, reason: store.EndedError, usage: u(9, 9, 9, 9, 9, 9, 9)},
		})

		from, to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
		got, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: to, Bucket: store.BucketHour})
		if err != nil {
			t.Fatal(err)
		}
		hour10 := store.CallFigures{Calls: 3, Answered: 2, AnswerRate: 2.0 / 3, AvgDurationSeconds: fptr(15),
			DurationP50Seconds: fptr(10), DurationP90Seconds: fptr(20), DurationP99Seconds: fptr(20),
			TurnLatencyP50MS: fptr(500), TurnLatencyP90MS: fptr(700), TurnLatencyP99MS: fptr(700),
			Turns: 5, Interruptions: 1, ToolCalls: 3, ToolFailures: 1, InputTokens: 300, OutputTokens: 150, CostUSD: 0.03,
			EndReasons: map[string]int{store.EndedCallerHangup: 1, store.EndedAgentHangup: 1, store.EndedError: 1}}
		hour11 := store.CallFigures{Calls: 2, Answered: 2, AnswerRate: 1, AvgDurationSeconds: fptr(35),
			DurationP50Seconds: fptr(30), DurationP90Seconds: fptr(40), DurationP99Seconds: fptr(40),
			TurnLatencyP50MS: fptr(900), TurnLatencyP90MS: fptr(900), TurnLatencyP99MS: fptr(900),
			Turns: 1, Interruptions: 2, InputTokens: 10, OutputTokens: 5, CostUSD: 0.009,
			EndReasons: map[string]int{store.EndedAgentError: 1, store.EndedCallerHangup: 1}}
		total := store.CallFigures{Calls: 5, Answered: 4, AnswerRate: 0.8, AvgDurationSeconds: fptr(25),
			DurationP50Seconds: fptr(20), DurationP90Seconds: fptr(40), DurationP99Seconds: fptr(40),
			TurnLatencyP50MS: fptr(700), TurnLatencyP90MS: fptr(900), TurnLatencyP99MS: fptr(900),
			Turns: 6, Interruptions: 3, ToolCalls: 3, ToolFailures: 1, InputTokens: 310, OutputTokens: 155, CostUSD: 0.039,
			EndReasons: map[string]int{store.EndedCallerHangup: 2, store.EndedAgentHangup: 1, store.EndedError: 1, store.EndedAgentError: 1}}
		if len(got.Buckets) != 2 || !got.Buckets[0].Start.Equal(from.Add(10*time.Hour)) || !got.Buckets[1].Start.Equal(from.Add(11*time.Hour)) {
			t.Fatalf("buckets %+v, want 10:00 and 11:00", got.Buckets)
		}
		checkFigures(t, "10:00", got.Buckets[0].CallFigures, hour10)
		checkFigures(t, "11:00", got.Buckets[1].CallFigures, hour11)
		checkFigures(t, "total", got.Total, total)

		if len(got.Agents) != 3 || got.Agents[2].AgentID != nil {
			t.Fatalf("agents %+v, want two agents and the calls of none", got.Agents)
		}
		byAgent := map[string]store.CallFigures{}
		for _, a := range got.Agents[:2] {
			byAgent[*a.AgentID] = a.CallFigures
		}
		checkFigures(t, "agent 1", byAgent[a1.ID], store.CallFigures{Calls: 2, Answered: 2, AnswerRate: 1, AvgDurationSeconds: fptr(15),
			DurationP50Seconds: fptr(10), DurationP90Seconds: fptr(20), DurationP99Seconds: fptr(20),
			TurnLatencyP50MS: fptr(500), TurnLatencyP90MS: fptr(700), TurnLatencyP99MS: fptr(700),
			Turns: 5, Interruptions: 1, ToolCalls: 3, ToolFailures: 1, InputTokens: 300, OutputTokens: 150, CostUSD: 0.03,
			EndReasons: map[string]int{store.EndedCallerHangup: 1, store.EndedAgentHangup: 1}})
		checkFigures(t, "agent 2", byAgent[a2.ID], store.CallFigures{Calls: 2, Answered: 1, AnswerRate: 0.5, AvgDurationSeconds: fptr(40),
			DurationP50Seconds: fptr(40), DurationP90Seconds: fptr(40), DurationP99Seconds: fptr(40),
			TurnLatencyP50MS: fptr(900), TurnLatencyP90MS: fptr(900), TurnLatencyP99MS: fptr(900),
			Turns: 1, Interruptions: 2, InputTokens: 10, OutputTokens: 5, CostUSD: 0.004,
			EndReasons: map[string]int{store.EndedError: 1, store.EndedAgentError: 1}})
		checkFigures(t, "no agent", got.Agents[2].CallFigures, store.CallFigures{Calls: 1, Answered: 1, AnswerRate: 1, AvgDurationSeconds: fptr(30),
			DurationP50Seconds: fptr(30), DurationP90Seconds: fptr(30), DurationP99Seconds: fptr(30), CostUSD: 0.005,
			EndReasons: map[string]int{store.EndedCallerHangup: 1}})

		// By day: one bucket, the whole set. One agent: its calls alone.
		day, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: to, Bucket: store.BucketDay})
		if err != nil || len(day.Buckets) != 1 || !day.Buckets[0].Start.Equal(from) {
			t.Fatalf("by day: %v %+v", err, day)
		}
		checkFigures(t, "day", day.Buckets[0].CallFigures, total)
		one, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: to, Bucket: store.BucketDay, AgentID: a2.ID})
		if err != nil || len(one.Agents) != 1 {
			t.Fatalf("one agent: %v %+v", err, one)
		}
		checkFigures(t, "agent 2 alone", one.Total, byAgent[a2.ID])

		// A range that misses the calls (the end is excluded) has none.
		none, err := store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: from.Add(10 * time.Hour), Bucket: store.BucketHour})
		if err != nil || none.Total.Calls != 0 || len(none.Buckets) != 0 || none.Total.AvgDurationSeconds != nil {
			t.Fatalf("empty range: %v %+v", err, none)
		}

		_, err = store.AnalyzeCalls(ctx, s, f.tenant.ID, store.CallAnalyticsQuery{From: from, To: to, Bucket: "week"})
		var ve *store.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "bucket" {
			t.Errorf("bucket week: %v, want a validation error naming bucket", err)
		}
	})
}

// TestErrorLog pages through a tenant's errors: its failed calls, its calls' provider and
// tool failures and its gateway requests a provider failed, newest first, one agent's alone
// when asked; another tenant's are never listed.
func TestErrorLog(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := newCallFixture(t, s, "acme")
		a2 := store.NewAgent()
		a2.Name = "sales"
		if err := store.Create(ctx, s, f.tenant.ID, a2); err != nil {
			t.Fatal(err)
		}
		other := newCallFixture(t, s, "globex")
		calls := seedAnalytics(t, s, f.tenant.ID, []analyticsCall{
			{agent: f.agent, hour: 9, answered: true, duration: 10, reason: store.EndedCallerHangup},
			{agent: a2, hour: 10, reason: store.EndedError},
			{agent: a2, hour: 11, answered: true, duration: 40, reason: store.EndedAgentError},
		})
		otherCalls := seedAnalytics(t, s, other.tenant.ID, []analyticsCall{{agent: other.agent, hour: 10, reason: store.EndedError}})
		at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 30, 0, 0, time.UTC) }
		if err := store.CreateCallErrors(ctx, s, f.tenant.ID, calls[0].ID, calls[0].AgentID, []store.CallError{
			{Stage: store.ErrorStageTool, Message: "get_order: webhook answered 500", CreatedAt: at(9)}}); err != nil {
			t.Fatal(err)
		}
		if err := store.CreateCallErrors(ctx, s, f.tenant.ID, calls[2].ID, calls[2].AgentID, []store.CallError{
			{Stage: store.ErrorStageTTS, Message: "voice: 503", CreatedAt: at(11)}}); err != nil {
			t.Fatal(err)
		}
		if err := store.CreateCallErrors(ctx, s, other.tenant.ID, otherCalls[0].ID, otherCalls[0].AgentID, []store.CallError{
			{Stage: store.ErrorStageSTT, Message: "not ours", CreatedAt: at(10)}}); err != nil {
			t.Fatal(err)
		}
		store.SetClock(s, func() time.Time { return at(12) })
		failed := &store.UsageRecord{Provider: "openai", Model: "openai/gpt-test", Status: 502}
		failed.TenantID = f.tenant.ID
		fine := &store.UsageRecord{Provider: "openai", Model: "openai/gpt-test", Status: 200}
		fine.TenantID = f.tenant.ID
		if err := s.CreateUsage(ctx, []*store.UsageRecord{failed, fine}); err != nil {
			t.Fatal(err)
		}

		from, to := at(0).Add(-30*time.Minute), at(23)
		page := func(agent string, limit, offset int) ([]store.ErrorLogEntry, int) {
			t.Helper()
			items, total, err := store.ErrorLog(ctx, s, f.tenant.ID, store.ErrorLogQuery{From: from, To: to, AgentID: agent}, store.Page{Limit: limit, Offset: offset})
			if err != nil {
				t.Fatal(err)
			}
			return items, total
		}
		all, total := page("", 10, 0)
		kinds := []string{store.ErrorGatewayFailed, store.ErrorProvider, store.ErrorCallFailed, store.ErrorCallFailed, store.ErrorTool}
		if total != 5 || len(all) != 5 {
			t.Fatalf("error log: %d of %d: %+v", len(all), total, all)
		}
		for i, e := range all {
			if e.Kind != kinds[i] {
				t.Errorf("entry %d: %+v, want kind %s", i, e, kinds[i])
			}
		}
		if all[1].CallID == nil || *all[1].CallID != calls[2].ID || *all[1].AgentID != a2.ID || all[1].Message != "voice: 503" || !all[1].At.Equal(at(11)) {
			t.Errorf("provider error %+v", all[1])
		}
		if all[3].CallID == nil || *all[3].CallID != calls[1].ID || all[3].Stage != store.EndedError {
			t.Errorf("failed call %+v", all[3])
		}
		if all[0].CallID != nil || all[0].Stage != "openai" || all[0].Message != "the provider openai failed a request for openai/gpt-test: status 502" {
			t.Errorf("gateway error %+v", all[0])
		}

		// Pages: two, two, one, and none past the end.
		var seen []string
		for offset := 0; offset < 6; offset += 2 {
			items, n := page("", 2, offset)
			if n != 5 {
				t.Fatalf("page at %d: total %d", offset, n)
			}
			for _, e := range items {
				seen = append(seen, e.ID)
			}
		}
		if len(seen) != 5 {
			t.Errorf("paged %d entries, want 5", len(seen))
		}
		for i := range seen {
			if seen[i] != all[i].ID {
				t.Errorf("paged order %v differs from %v", seen, all)
				break
			}
		}
		if items, n := page("", 2, 6); len(items) != 0 || n != 5 {
			t.Errorf("past the end: %d items of %d", len(items), n)
		}

		// One agent: its failed calls and its calls' errors, not the gateway's.
		if items, n := page(a2.ID, 10, 0); n != 3 || len(items) != 3 {
			t.Errorf("agent 2's errors: %d of %d: %+v", len(items), n, items)
		}
	})
}
