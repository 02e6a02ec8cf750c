package metrics

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLabelsBounded: whatever a client sends, the method and code labels take a fixed set
// of values, and an empty route is Unmatched.
func TestLabelsBounded(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"GET": "GET", "PATCH": "PATCH", "get": "other", "PROPFIND": "other", "": "other", strings.Repeat("X", 1000): "other"} {
		if got := Method(in); got != want {
			t.Errorf("Method(%.20q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int]string{0: "200", 200: "200", 101: "101", 404: "404", 599: "599", 600: "other", 99: "other", -1: "other", 1 << 20: "other"} {
		if got := Code(in); got != want {
			t.Errorf("Code(%d) = %q, want %q", in, got, want)
		}
	}
	r := New()
	h := r.HTTP()
	for range 3 {
		h.Start()
		h.Done("", "BREW", 418, time.Millisecond)
	}
	h.Start()
	h.Done("/api/v1/agents/{id}", http.MethodGet, 200, 2*time.Millisecond)
	if n := testutil.CollectAndCount(h.requests); n != 2 {
		t.Errorf("%d series of requests, want 2", n)
	}
	if v := testutil.ToFloat64(h.requests.WithLabelValues(Unmatched, "other", "418")); v != 3 {
		t.Errorf("unmatched requests %v, want 3", v)
	}
	if v := testutil.ToFloat64(h.inFlight); v != 0 {
		t.Errorf("in flight %v after every request ended", v)
	}
}

// TestHub: the hub's figures are read at each scrape.
func TestHub(t *testing.T) {
	t.Parallel()
	r := New()
	var st HubStats
	if err := r.Hub(func() HubStats { return st }); err != nil {
		t.Fatal(err)
	}
	st = HubStats{Subscribers: 4, Topics: 2, Published: 10, Dropped: 1}
	want := `
# HELP switchboard_hub_subscribers Subscriptions to the event hub open now.
# TYPE switchboard_hub_subscribers gauge
switchboard_hub_subscribers 4
# HELP switchboard_hub_events_dropped_total Events a subscriber missed because it was too far behind.
# TYPE switchboard_hub_events_dropped_total counter
switchboard_hub_events_dropped_total 1
`
	if err := testutil.GatherAndCompare(r.Gatherer(), strings.NewReader(want), "switchboard_hub_subscribers", "switchboard_hub_events_dropped_total"); err != nil {
		t.Error(err)
	}
	if err := r.Hub(func() HubStats { return st }); err == nil {
		t.Error("a second hub registered over the first")
	}
	if err := r.Database(nil, "sqlite"); err == nil {
		t.Error("a nil database registered")
	}
}

// BenchmarkHTTPDone is what measuring costs each request the API answers.
func BenchmarkHTTPDone(b *testing.B) {
	h := New().HTTP()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Start()
			h.Done("/api/v1/agents/{id}", http.MethodGet, http.StatusOK, 3*time.Millisecond)
		}
	})
}
