package api_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/promtest"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// TestMetricsPrometheus: a real Prometheus scrapes a running node's /metrics with the
// metrics token, and its query API gives back the requests the test made, counted by route
// pattern (never the path with its ids) and status, with their latency, beside the event
// hub's, the database pool's and the Go runtime's figures.
func TestMetricsPrometheus(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-0123456789"
	hub := realtime.NewHub(realtime.Options{})
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Hub: hub, MetricsToken: token})

	var ids []string
	for _, name := range []string{"Ada", "Grace", "Edsger"} {
		ids = append(ids, ts.createID("/api/v1/agents", ts.Key, map[string]any{"name": name}))
	}
	for _, id := range ids {
		if r := ts.do(http.MethodGet, "/api/v1/agents/"+id, ts.Key, nil); r.Status != http.StatusOK {
			t.Fatalf("get agent: %d %s", r.Status, r.Body)
		}
	}
	if r := ts.do(http.MethodGet, "/api/v1/agents/agt_nosuchagent", ts.Key, nil); r.Status != http.StatusNotFound {
		t.Fatalf("missing agent: %d %s", r.Status, r.Body)
	}
	for _, p := range []string{"/wp-admin/1", "/wp-admin/2", "/.env"} {
		if r := ts.do(http.MethodGet, p, "", nil); r.Status != http.StatusNotFound {
			t.Fatalf("%s: %d", p, r.Status)
		}
	}
	sub := hub.Subscribe(ts.Default.ID)
	defer sub.Close()
	if err := hub.Publish(ts.Default.ID, "agent:"+ids[0], realtime.TypeAgentUpdated, map[string]string{"id": ids[0]}); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, promtest.Target{Addr: u.Host, Token: token})
	const limit = 60 * time.Second
	atLeast := func(n float64) func([]promtest.Sample) bool {
		return func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value >= n }
	}

	prom.WaitFor(limit, `switchboard_http_requests_total{route="/api/v1/agents/{id}",method="GET",code="200"}`, atLeast(3))
	prom.WaitFor(limit, `switchboard_http_requests_total{route="/api/v1/agents/{id}",method="GET",code="404"}`, atLeast(1))
	prom.WaitFor(limit, `switchboard_http_requests_total{route="/api/v1/agents",method="POST",code="201"}`, atLeast(3))
	prom.WaitFor(limit, `switchboard_http_requests_total{route="unmatched",code="404"}`, atLeast(3))
	prom.WaitFor(limit, `switchboard_http_request_duration_seconds_count{route="/api/v1/agents/{id}",code="200"}`, atLeast(3))
	// Prometheus's own scrapes are requests too, counted under their pattern.
	prom.WaitFor(limit, `switchboard_http_requests_total{route="/metrics",code="200"}`, atLeast(1))

	// No series is labelled with a path or an id: every route label is a pattern.
	all := prom.WaitFor(limit, `switchboard_http_requests_total`, func(s []promtest.Sample) bool { return len(s) > 0 })
	for _, s := range all {
		route := s.Labels["route"]
		for _, id := range ids {
			if strings.Contains(route, id) {
				t.Errorf("a series is labelled with an agent's id: %v", s.Labels)
			}
		}
		if strings.Contains(route, "wp-admin") || strings.Contains(route, ".env") {
			t.Errorf("a series is labelled with a raw path: %v", s.Labels)
		}
	}

	prom.WaitFor(limit, `switchboard_hub_subscribers`, atLeast(1))
	prom.WaitFor(limit, `switchboard_hub_events_published_total`, atLeast(1))
	prom.WaitFor(limit, `go_sql_max_open_connections{db_name="sqlite"}`, atLeast(1))
	prom.WaitFor(limit, `go_goroutines`, atLeast(1))
	prom.WaitFor(limit, `process_resident_memory_bytes`, atLeast(1))
	// The scrape itself succeeded with the token (up is 1 only then).
	prom.WaitFor(limit, `up`, atLeast(1))
}

// TestMetricsAccess: /metrics is open to a request straight from this host, and otherwise
// only to the operator's token or allow-list, each refusal in the canonical error shape.
func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-0123456789"
	// A request with X-Forwarded-For came through a proxy: not from loopback, whatever the
	// socket's address (the test's client is on loopback).
	proxied := func(extra ...string) http.Header {
		return hdr(append([]string{"X-Forwarded-For", "203.0.113.7"}, extra...)...)
	}

	closed := newTestServerConfig(t, store.SQLite, api.Config{})
	if r := closed.request(http.MethodGet, "/metrics", nil, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "go_goroutines") {
		t.Fatalf("from loopback: %d %.200s", r.Status, r.Body)
	}
	r := closed.request(http.MethodGet, "/metrics", nil, proxied())
	if r.Status != http.StatusForbidden || r.JSON(t)["error"].(map[string]any)["code"] != "authorization_error" {
		t.Fatalf("through a proxy, no token or allow-list set: %d %s", r.Status, r.Body)
	}
	// A token given where none is set opens nothing.
	if r := closed.request(http.MethodGet, "/metrics", nil, proxied("Authorization", "Bearer "+token)); r.Status != http.StatusForbidden {
		t.Fatalf("a token where none is set: %d %s", r.Status, r.Body)
	}

	withToken := newTestServerConfig(t, store.SQLite, api.Config{MetricsToken: token})
	for _, tt := range []struct {
		name   string
		h      http.Header
		status int
	}{
		{"no token", proxied(), http.StatusUnauthorized},
		{"wrong token", proxied("Authorization", "Bearer not-the-token-at-all"), http.StatusUnauthorized},
		{"token without Bearer", proxied("Authorization", token), http.StatusUnauthorized},
		{"the token", proxied("Authorization", "Bearer "+token), http.StatusOK},
		// A wrong token is refused even from loopback: a scraper misconfigured is told so.
		{"wrong token from loopback", hdr("Authorization", "Bearer not-the-token-at-all"), http.StatusUnauthorized},
	} {
		r := withToken.request(http.MethodGet, "/metrics", nil, tt.h)
		if r.Status != tt.status {
			t.Errorf("%s: %d, want %d: %.200s", tt.name, r.Status, tt.status, r.Body)
		}
		if r.Status == http.StatusUnauthorized {
			if r.Header.Get("WWW-Authenticate") == "" || r.JSON(t)["error"].(map[string]any)["code"] != "authentication_error" {
				t.Errorf("%s: 401 without WWW-Authenticate or the error shape: %v %s", tt.name, r.Header, r.Body)
			}
		}
	}

	// The allow-list is of the socket's address (the proxy's, behind one).
	allowed := newTestServerConfig(t, store.SQLite, api.Config{MetricsAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if r := allowed.request(http.MethodGet, "/metrics", nil, proxied()); r.Status != http.StatusOK {
		t.Fatalf("from an allowed network: %d %s", r.Status, r.Body)
	}
	others := newTestServerConfig(t, store.SQLite, api.Config{MetricsAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if r := others.request(http.MethodGet, "/metrics", nil, proxied()); r.Status != http.StatusForbidden {
		t.Fatalf("from a network not allowed: %d %s", r.Status, r.Body)
	}
}
