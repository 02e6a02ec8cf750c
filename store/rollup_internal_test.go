package store

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/uptrace/bun"
)

// TestHistogramText: the histograms read back what was written, spaced as SQLite keeps
// it or as a JSON printer would, negative counts included (a change taken away), and a
// malformed one is refused.
func TestHistogramText(t *testing.T) {
	want := histogram{0: {2, 7}, 12: {3, 4500}, 400: {-1, -123456789012}}
	v, err := want.Value()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []any{v, []byte(`{"0": [2, 7], "12": [3, 4500], "400": [-1, -123456789012]}`)} {
		var got histogram
		if err := got.Scan(text); err != nil || !maps.Equal(got, want) {
			t.Errorf("%s read as %v, %v", text, got, err)
		}
	}
	for _, bad := range []string{`{"1": [2]}`, `{"401": [1, 1]}`, `{"1": [1.5, 2]}`} {
		var got histogram
		if err := got.Scan(bad); err == nil {
			t.Errorf("%s read as %v", bad, got)
		}
	}
	var got histogram
	if err := got.Scan("{}"); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
}

// TestHistogramPercentile: nearest rank, the mean of the bin it falls in.
func TestHistogramPercentile(t *testing.T) {
	h := histogram{}
	for _, v := range []int64{10000, 20000, 30000, 40000} {
		h.add(v, durationUnitMS, 1)
	}
	percentile := func(p int) *float64 {
		var tl tally
		tl.addShare(&callRollup{DurationBins: h})
		return binPercentile(&tl.dur, p, 1000)
	}
	for p, want := range map[int]float64{50: 20, 90: 40, 99: 40, 1: 10} {
		if got := percentile(p); got == nil || *got != want {
			t.Errorf("p%d %v, want %v", p, got, want)
		}
	}
	h.add(40000, durationUnitMS, -1)
	if got := percentile(99); got == nil || *got != 30 {
		t.Errorf("p99 after taking 40 s away: %v", got)
	}
	if binOf(9, durationUnitMS) != 0 || binOf(10, durationUnitMS) != 1 || binOf(20, durationUnitMS) != 1+binsPerDoubling {
		t.Errorf("bins: %d %d %d", binOf(9, durationUnitMS), binOf(10, durationUnitMS), binOf(20, durationUnitMS))
	}
}

// TestReasonCountsText: the end reasons read back what was written, as SQLite keeps them or
// spaced, an escaped one included, and a malformed one is refused.
func TestReasonCountsText(t *testing.T) {
	want := reasonCounts{"caller-hangup": 3, "error": -1, `odd"one`: 2}
	v, err := want.Value()
	if err != nil {
		t.Fatal(err)
	}
	var got reasonCounts
	if err := got.Scan(v); err != nil || !maps.Equal(got, want) {
		t.Errorf("%v read as %v, %v", v, got, err)
	}
	if err := got.Scan(`{"caller-hangup": 3, "error": -1}`); err != nil || got["caller-hangup"] != 3 || got["error"] != -1 || len(got) != 2 {
		t.Errorf("spaced: %v, %v", got, err)
	}
	for _, bad := range []string{`{"a": }`, `{"a`} {
		if err := got.Scan(bad); err == nil {
			t.Errorf("%s read as %v", bad, got)
		}
	}
}

// TestErrorLogUsesFailedIndex: the error log's read of failed calls is one the partial index
// calls_tenant_failed_idx answers, on both databases: its condition and failureReasons
// have not drifted apart.
func TestErrorLogUsesFailedIndex(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(string(d), func(t *testing.T) {
			opts := Options{DataDir: t.TempDir()}
			if d == Postgres {
				opts.URL = pgtest.URL(t)
			}
			ctx := context.Background()
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			q := s.failedCallsQuery("ten_x", time.Now().Add(-time.Hour), time.Now()).String()
			var plan []string
			err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				explain := "EXPLAIN QUERY PLAN "
				if d == Postgres {
					// Without rows a table is read whole whatever its indexes: let the
					// planner show which index it can use.
					if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
						return err
					}
					explain = "EXPLAIN "
				}
				rows, err := tx.QueryContext(ctx, explain+q)
				if err != nil {
					return err
				}
				defer rows.Close()
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						return err
					}
					plan = append(plan, fmt.Sprint(vals...))
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(plan, "\n"), "calls_tenant_failed_idx") {
				t.Errorf("the failed calls are not read through calls_tenant_failed_idx:\n%s\n%s", q, strings.Join(plan, "\n"))
			}
		})
	}
}
