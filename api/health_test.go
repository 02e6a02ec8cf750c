package api_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// TestHealthProbes: /health/live is 200 while the process serves; /health/ready is 200 only
// while the node is not draining, its database answers and its SIP listeners serve, and a
// 503 names each check that failed. Then the store is closed: ready fails on the database,
// and live still answers.
func TestHealthProbes(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			var draining, sipDown atomic.Bool
			checks := func() []api.HealthCheck {
				if sipDown.Load() {
					return []api.HealthCheck{{Name: "sip-udp", Healthy: false, Detail: "127.0.0.1:5060: stopped"}}
				}
				return []api.HealthCheck{{Name: "sip-udp", Healthy: true, Detail: "127.0.0.1:5060"}}
			}
			ts := newTestServerConfig(t, d, api.Config{Draining: draining.Load, Checks: checks})

			probe := func(path string, want int) map[string]bool {
				t.Helper()
				r := ts.do(http.MethodGet, path, "", nil)
				if r.Status != want {
					t.Fatalf("%s: %d, want %d: %s", path, r.Status, want, r.Body)
				}
				if r.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: Cache-Control %q", path, r.Header.Get("Cache-Control"))
				}
				body := r.JSON(t)
				wantStatus := map[string]string{"/health/live": "live"}[path]
				if path == "/health/ready" {
					wantStatus = map[bool]string{true: "ready", false: "not_ready"}[want == http.StatusOK]
				}
				if body["status"] != wantStatus {
					t.Errorf("%s: status %v, want %s", path, body["status"], wantStatus)
				}
				healthy := map[string]bool{}
				checks, _ := body["checks"].([]any)
				for _, c := range checks {
					m := c.(map[string]any)
					healthy[m["name"].(string)] = m["healthy"].(bool)
					if !m["healthy"].(bool) && m["detail"] == "" {
						t.Errorf("%s: check %v failed without saying why", path, m)
					}
				}
				return healthy
			}
			want := func(got map[string]bool, name string, healthy bool) {
				t.Helper()
				if h, ok := got[name]; !ok || h != healthy {
					t.Errorf("check %s: %v (present %v), want healthy=%v; all: %v", name, h, ok, healthy, got)
				}
			}

			probe("/health/live", http.StatusOK)
			got := probe("/health/ready", http.StatusOK)
			want(got, "database", true)
			want(got, "draining", true)
			want(got, "sip-udp", true)

			draining.Store(true)
			got = probe("/health/ready", http.StatusServiceUnavailable)
			want(got, "draining", false)
			want(got, "database", true)
			probe("/health/live", http.StatusOK)
			draining.Store(false)

			sipDown.Store(true)
			got = probe("/health/ready", http.StatusServiceUnavailable)
			want(got, "sip-udp", false)
			want(got, "draining", true)
			sipDown.Store(false)
			probe("/health/ready", http.StatusOK)

			if err := ts.Store.Close(); err != nil {
				t.Fatal(err)
			}
			got = probe("/health/ready", http.StatusServiceUnavailable)
			want(got, "database", false)
			probe("/health/live", http.StatusOK)
		})
	}
}
