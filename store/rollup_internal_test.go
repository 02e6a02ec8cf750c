package store

import (
	"encoding/json"
	"maps"
	"testing"
)

// TestHistogramJSON: the histograms read back what was written, spaced as SQLite keeps
// JSON or as PostgreSQL's jsonb gives it back, negative counts included (a change taken
// away), and a malformed one is refused.
func TestHistogramJSON(t *testing.T) {
	want := histogram{0: {2, 7}, 12: {3, 4500}, 400: {-1, -123456789012}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{string(b), `{"0": [2, 7], "12": [3, 4500], "400": [-1, -123456789012]}`} {
		var got histogram
		if err := json.Unmarshal([]byte(text), &got); err != nil || !maps.Equal(got, want) {
			t.Errorf("%s read as %v, %v", text, got, err)
		}
	}
	var got histogram
	if err := json.Unmarshal([]byte(`{"1": [2]}`), &got); err == nil {
		t.Errorf("a bin without its sum read as %v", got)
	}
	if err := json.Unmarshal([]byte(`{}`), &got); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
}

// TestHistogramPercentile: nearest rank, the mean of the bin it falls in.
func TestHistogramPercentile(t *testing.T) {
	h := histogram{}
	for _, v := range []int64{10000, 20000, 30000, 40000} {
		h.add(v, durationUnitMS, 1)
	}
	for p, want := range map[int]float64{50: 20, 90: 40, 99: 40, 1: 10} {
		if got := h.percentile(p, 1000); got == nil || *got != want {
			t.Errorf("p%d %v, want %v", p, got, want)
		}
	}
	h.add(40000, durationUnitMS, -1)
	if got := h.percentile(99, 1000); got == nil || *got != 30 {
		t.Errorf("p99 after taking 40 s away: %v", got)
	}
	if binOf(9, durationUnitMS) != 0 || binOf(10, durationUnitMS) != 1 || binOf(20, durationUnitMS) != 1+binsPerDoubling {
		t.Errorf("bins: %d %d %d", binOf(9, durationUnitMS), binOf(10, durationUnitMS), binOf(20, durationUnitMS))
	}
}
