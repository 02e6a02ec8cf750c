package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// benchAgents is how many agents the benchmark's calls are spread over.
const benchAgents = 10

// benchSpan is the time the benchmark's calls are spread over, ending at benchEnd.
const benchSpan = 30 * 24 * time.Hour

var benchEnd = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// seedBenchCalls inserts n ended calls of the tenant, spread evenly over benchSpan and over
// its agents, in one INSERT … SELECT over a generated series (a recursive CTE on SQLite,
// generate_series on PostgreSQL): a fifth failed, the rest answered with durations, turn
// latencies, turns, tools, tokens and costs that vary from call to call. Another tenant
// gets as many calls at the same times, which the analytics must skip.
func seedBenchCalls(b *testing.B, s *store.Store, tenantID string, n int) {
	b.Helper()
	ctx := context.Background()
	start, span := benchEnd.Add(-benchSpan).Unix(), int64(benchSpan/time.Second)
	suffix := tenantID[len(tenantID)-6:] // the calls of two tenants have IDs of their own
	var series, at, id, turns string
	// Answered calls have three turns: their median latency, one quicker, one slower.
	latencies := "'[' || (250 + (s.n * 31 % 1500)) || ',' || (300 + (s.n * 31 % 1500)) || ',' || (300 + (s.n * 17 % 2500)) || ']'"
	if s.Dialect() == store.SQLite {
		series = "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < ?) SELECT n FROM seq"
		at = fmt.Sprintf("strftime('%%Y-%%m-%%d %%H:%%M:%%S', %d + s.n * %d / %d, 'unixepoch') || '+00:00'", start, span, n)
		id = "printf('call_b" + suffix + "%010d', s.n)"
		turns = latencies
	} else {
		series = "SELECT generate_series(0::bigint, ?) AS n"
		at = fmt.Sprintf("to_timestamp(%d + s.n * %d / %d)", start, span, n)
		id = "'call_b" + suffix + "' || lpad(s.n::text, 10, '0')"
		turns = "(" + latencies + ")::jsonb"
	}
	q := `INSERT INTO calls (id, tenant_id, direction, from_uri, to_uri, agent_id, destination, sip_call_id, codec,
	        status, ended_reason, node, timeout_seconds, started_at, answered_at, ended_at, duration_seconds,
	        quality, metadata, report, created_at, updated_at,
	        input_tokens, output_tokens, stt_seconds, tts_characters, turns, interruptions, tool_calls, tool_failures,
	        latency_p50_ms, cost_usd, cost, turn_latencies_ms)
	      SELECT ` + id + `, ?, 'inbound', '+15550100', '+15550001', a.id, '', '', 'PCMU',
	        CASE WHEN s.n % 5 = 0 THEN 'failed' ELSE 'completed' END,
	        CASE WHEN s.n % 5 = 0 THEN 'error' WHEN s.n % 7 = 0 THEN 'agent-hangup' ELSE 'caller-hangup' END,
	        'bench', 0, ` + at + `, CASE WHEN s.n % 5 = 0 THEN NULL ELSE ` + at + ` END, ` + at + `,
	        CASE WHEN s.n % 5 = 0 THEN 0 ELSE (s.n * 7919 % 600) + 0.5 END,
	        '{}', '{}', '{}', ` + at + `, ` + at + `,
	        s.n % 2000, s.n % 500, (s.n % 120) * 1.0, s.n % 900, s.n % 9, s.n % 3, s.n % 4, CASE WHEN s.n % 4 = 3 THEN 1 ELSE 0 END,
	        CASE WHEN s.n % 5 = 0 THEN NULL ELSE 300 + (s.n * 31 % 1500) END, (s.n % 1000) / 10000.0, '{}',
	        CASE WHEN s.n % 5 = 0 THEN NULL ELSE ` + turns + ` END
	      FROM (` + series + `) AS s
	      JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM agents WHERE tenant_id = ?) AS a ON a.k = s.n % ` + strconv.Itoa(benchAgents)
	if _, err := s.DB().NewRaw(q, tenantID, n-1, tenantID).Exec(ctx); err != nil {
		b.Fatalf("seed %d calls: %v", n, err)
	}
	if s.Dialect() == store.Postgres {
		if _, err := s.DB().ExecContext(ctx, "ANALYZE calls"); err != nil {
			b.Fatal(err)
		}
	} else if _, err := s.DB().ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

// benchSizes are the numbers of calls the analytics are measured at:
// SWITCHBOARD_BENCH_CALLS (a comma list, such as 10000,1000000), or 10,000.
func benchSizes(b *testing.B) []int {
	v := os.Getenv("SWITCHBOARD_BENCH_CALLS")
	if v == "" {
		return []int{10_000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < benchAgents {
			b.Fatalf("SWITCHBOARD_BENCH_CALLS: %q is not a number of calls", f)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkAnalytics times the call analytics and the error log over a tenant's calls (and
// as many of another tenant's), by store and number of calls: a day by hour, a week by day
// for one agent, the whole month by day, and the error log's first page over a week. It
// reports the p50 and p99 of the queries' times.
func BenchmarkAnalytics(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, n := range benchSizes(b) {
			b.Run(fmt.Sprintf("%s/calls=%d", d, n), func(b *testing.B) {
				s := openStore(b, d)
				ctx := context.Background()
				var tenantID, agentID string
				for _, slug := range []string{"other", "acme"} {
					ten, err := s.EnsureTenant(ctx, slug)
					if err != nil {
						b.Fatal(err)
					}
					for i := range benchAgents {
						a := store.NewAgent()
						a.Name = "agent " + strconv.Itoa(i)
						if err := store.Create(ctx, s, ten.ID, a); err != nil {
							b.Fatal(err)
						}
						agentID = a.ID
					}
					began := time.Now()
					seedBenchCalls(b, s, ten.ID, n)
					b.Logf("%s: %d calls of %s inserted in %v", d, n, slug, time.Since(began).Round(time.Millisecond))
					tenantID = ten.ID
				}
				// The calls were inserted with plain SQL: their rollups are built from them
				// as the migration that made the rollups builds them.
				began := time.Now()
				if err := store.RebuildRollups(ctx, s); err != nil {
					b.Fatal(err)
				}
				if _, err := s.DB().ExecContext(ctx, "ANALYZE"); err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: rollups of %d calls built in %v", d, 2*n, time.Since(began).Round(time.Millisecond))
				day := benchEnd.Add(-24 * time.Hour)
				week := benchEnd.Add(-7 * 24 * time.Hour)
				for _, c := range []struct {
					name string
					run  func() error
				}{
					{"day-by-hour", func() error {
						a, err := store.AnalyzeCalls(ctx, s, tenantID, store.CallAnalyticsQuery{From: day, To: benchEnd, Bucket: store.BucketHour})
						if err == nil && a.Total.Calls == 0 {
							err = fmt.Errorf("no calls in the day")
						}
						return err
					}},
					{"day-by-hour-part-hours", func() error {
						// A day that starts and ends inside hours: those two hours' calls
						// are read from their rows.
						from, to := day.Add(-31*time.Minute+17*time.Second), benchEnd.Add(-31*time.Minute+17*time.Second)
						a, err := store.AnalyzeCalls(ctx, s, tenantID, store.CallAnalyticsQuery{From: from, To: to, Bucket: store.BucketHour})
						if err == nil && a.Total.Calls == 0 {
							err = fmt.Errorf("no calls in the day")
						}
						return err
					}},
					{"agent-week-by-day", func() error {
						a, err := store.AnalyzeCalls(ctx, s, tenantID, store.CallAnalyticsQuery{From: week, To: benchEnd, Bucket: store.BucketDay, AgentID: agentID})
						if err == nil && a.Total.Calls == 0 {
							err = fmt.Errorf("no calls of the agent")
						}
						return err
					}},
					{"month-by-day", func() error {
						a, err := store.AnalyzeCalls(ctx, s, tenantID, store.CallAnalyticsQuery{From: benchEnd.Add(-benchSpan), To: benchEnd, Bucket: store.BucketDay})
						if err == nil && a.Total.Calls != n {
							err = fmt.Errorf("%d calls in the month, want %d", a.Total.Calls, n)
						}
						return err
					}},
					{"errors-week-page", func() error {
						_, total, err := store.ErrorLog(ctx, s, tenantID, store.ErrorLogQuery{From: week, To: benchEnd}, store.Page{Limit: 50})
						if err == nil && total == 0 {
							err = fmt.Errorf("no errors in the week")
						}
						return err
					}},
				} {
					b.Run(c.name, func(b *testing.B) {
						times := make([]time.Duration, 0, b.N)
						b.ReportAllocs()
						b.ResetTimer()
						for range b.N {
							began := time.Now()
							if err := c.run(); err != nil {
								b.Fatal(err)
							}
							times = append(times, time.Since(began))
						}
						b.StopTimer()
						slices.Sort(times)
						pick := func(p int) float64 {
							k := (len(times)*p + 99) / 100
							return float64(times[max(k-1, 0)].Microseconds()) / 1000
						}
						b.ReportMetric(pick(50), "p50-ms")
						b.ReportMetric(pick(99), "p99-ms")
					})
				}
			})
		}
	}
}
