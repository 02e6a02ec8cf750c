package store_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkCallHistory times the call history's pages over a tenant's calls (and as many of
// another tenant's), by store and number of calls (SWITCHBOARD_BENCH_CALLS, as
// BenchmarkAnalytics): the first page, a page deep in the list, one agent's completed calls
// over a week, and a number search that matches nothing (the worst case: every call of
// the tenant is looked at). Each answer counts its total, as the API's does. It reports
// the p50 and p99 of the queries' times, and a call's page of kept events.
func BenchmarkCallHistory(b *testing.B) {
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
					seedBenchCalls(b, s, ten.ID, n)
					tenantID = ten.ID
				}
				// One call with a full history of kept events.
				c := &store.Call{Direction: store.CallInbound, From: "+14155550142", To: "+15550001", Status: store.CallCompleted}
				if err := store.Create(ctx, s, tenantID, c); err != nil {
					b.Fatal(err)
				}
				for i := range store.MaxCallEvents {
					store.RecordCallEvent(s, tenantID, c.ID, "call.transcript", map[string]any{"text": "turn " + strconv.Itoa(i), "role": "user"})
				}
				if err := s.FlushCallEvents(ctx); err != nil {
					b.Fatal(err)
				}
				week := benchEnd.Add(-7 * 24 * time.Hour)
				page := store.Page{Limit: 20}
				for _, q := range []struct {
					name string
					run  func() (int, error)
				}{
					{"first-page", func() (int, error) {
						_, total, err := store.ListCalls(ctx, s, tenantID, store.CallFilter{}, page)
						return total, err
					}},
					{"deep-page", func() (int, error) {
						_, total, err := store.ListCalls(ctx, s, tenantID, store.CallFilter{}, store.Page{Limit: 20, Offset: n / 2})
						return total, err
					}},
					{"agent-completed-week", func() (int, error) {
						_, total, err := store.ListCalls(ctx, s, tenantID, store.CallFilter{AgentID: agentID, Status: store.CallCompleted, Since: week, Until: benchEnd}, page)
						return total, err
					}},
					{"number-search-miss", func() (int, error) {
						_, total, err := store.ListCalls(ctx, s, tenantID, store.CallFilter{Number: "4155559999"}, page)
						if total != 0 {
							return 0, fmt.Errorf("%d calls found by a number no call has", total)
						}
						return -1, err
					}},
					{"events-page", func() (int, error) {
						_, total, err := store.ListCallEvents(ctx, s, tenantID, c.ID, store.Page{Limit: 100, Offset: 1000})
						return total, err
					}},
				} {
					b.Run(q.name, func(b *testing.B) {
						times := make([]time.Duration, 0, b.N)
						b.ResetTimer()
						for range b.N {
							began := time.Now()
							total, err := q.run()
							if err != nil || total == 0 {
								b.Fatalf("%d found (%v)", total, err)
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
