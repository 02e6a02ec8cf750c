package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestHealthVersionRoot: the public routes answer without credentials (and ignore wrong ones).
func TestHealthVersionRoot(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ts := newTestServerConfig(t, d, api.Config{Commit: "abc1234"})
			for _, key := range []string{"", "as_live_" + strings.Repeat("x", 40)} {
				for _, path := range []string{"/health", "/api/v1/health"} {
					r := ts.do(http.MethodGet, path, key, nil)
					wantStatus(t, r, http.StatusOK, path)
					h := r.JSON(t)
					if h["status"] != "healthy" || h["database_connected"] != true || h["database"] != string(d) || h["version"] != "test" {
						t.Fatalf("%s: %s", path, r.Body)
					}
					if up, ok := h["uptime_seconds"].(float64); !ok || up < 0 || !strings.HasPrefix(h["uptime"].(string), "Days: ") {
						t.Fatalf("%s uptime: %s", path, r.Body)
					}
					if r.Header.Get("Cache-Control") != "no-store" {
						t.Fatalf("%s may be cached", path)
					}
					if r.Header.Get("X-RateLimit-Limit") != "" {
						t.Fatalf("%s is rate-limited as if authenticated", path)
					}
				}
				v := ts.get("/version", key)
				if v["version"] != "test" || v["service_version"] != "test" || v["commit"] != "abc1234" || v["go_version"] != runtime.Version() {
					t.Fatalf("version: %v", v)
				}
				root := ts.get("/", key)
				if root["service"] != "Switchboard" || root["version"] != "test" || root["api"] != "/api/v1" || root["description"] == "" {
					t.Fatalf("service info: %v", root)
				}
				for _, link := range []string{"docs", "redoc", "openapi", "health"} {
					wantStatus(t, ts.do(http.MethodGet, root[link].(string), "", nil), http.StatusOK, "link "+link)
				}
			}
			id1, id2 := ts.do(http.MethodGet, "/health", "", nil).Header.Get("X-Request-ID"), ts.do(http.MethodGet, "/health", "", nil).Header.Get("X-Request-ID")
			if id1 == "" || id1 == id2 {
				t.Fatalf("X-Request-IDs %q and %q: want one of its own for each request", id1, id2)
			}
			if id := ts.request(http.MethodGet, "/health", nil, hdr("X-Request-ID", "trace-1")).Header.Get("X-Request-ID"); id != "trace-1" {
				t.Fatalf("client's X-Request-ID not kept: %q", id)
			}
		})
	}
}

// lockedBuffer is a log destination the server writes from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPanicIsA500 injects a panic into handlers by leaving out the dependencies they use (the
// server is built without a store and without an authenticator): the request is a 500 in the
// error shape, the log has the stack, and the server goes on serving.
func TestPanicIsA500(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	srv := httptest.NewServer(api.New(api.Config{Log: slog.New(slog.NewTextHandler(&logs, nil)), Version: "test"}).Handler())
	t.Cleanup(srv.Close)
	ts := &testServer{t: t, URL: srv.URL}

	// /health reaches for the store; an authenticated route for the authenticator.
	for _, c := range []struct{ path, key string }{{"/health", ""}, {"/api/v1/agents", "as_live_" + strings.Repeat("k", 40)}} {
		r := ts.do(http.MethodGet, c.path, c.key, nil)
		wantJSONError(t, r, http.StatusInternalServerError, "internal_error")
		if strings.Contains(string(r.Body), "nil pointer") || strings.Contains(string(r.Body), "goroutine") {
			t.Fatalf("500 tells the client about the panic: %s", r.Body)
		}
		if !strings.Contains(logs.String(), "path="+c.path) {
			t.Fatalf("no log line for the panic on %s:\n%s", c.path, logs.String())
		}
	}
	out := logs.String()
	if !strings.Contains(out, "panic serving request") || !strings.Contains(out, "goroutine ") || !strings.Contains(out, "nil pointer") {
		t.Fatalf("panic log lacks message, stack or cause:\n%s", out)
	}
	// The server lives on.
	v := ts.get("/version", "")
	if v["version"] != "test" {
		t.Fatalf("version after panics: %v", v)
	}
	wantError(t, ts.do(http.MethodGet, "/api/v1/agents", "", nil), http.StatusUnauthorized, "authentication_error", "")
}

// TestDatabaseAway: while PostgreSQL is down, requests that need it are 503 (and a key that
// cannot be checked is not called wrong), health says so, and all recovers when it returns.
func TestDatabaseAway(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	ts := newTestServerOpts(t, store.Options{URL: cluster.URL, Secret: testSecret}, api.Config{})
	ts.createID("/api/v1/agents", ts.Key, obj{"name": "desk"})
	unused := ts.newKey("default", "never used", 0, "read")

	cluster.Stop()
	r := ts.do(http.MethodGet, "/health", "", nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("health with the database down: %d %s", r.Status, r.Body)
	}
	if h := r.JSON(t); h["database_connected"] != false || h["status"] != "unhealthy" {
		t.Fatalf("health with the database down: %s", r.Body)
	}
	wantJSONError(t, ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil), http.StatusServiceUnavailable, "service_unavailable")
	wantJSONError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, obj{"name": "lost"}), http.StatusServiceUnavailable, "service_unavailable")
	wantJSONError(t, ts.do(http.MethodGet, "/api/v1/agents", unused, nil), http.StatusServiceUnavailable, "service_unavailable")
	wantStatus(t, ts.do(http.MethodGet, "/version", "", nil), http.StatusOK, "version needs no database")

	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ts.do(http.MethodGet, "/health", "", nil).Status != http.StatusOK {
		select {
		case <-ctx.Done():
			t.Fatal("health did not recover after the database returned")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := ts.total("/api/v1/agents", ts.Key); n != 1 {
		t.Fatalf("after recovery: %d agents, want 1 (nothing lost, nothing half-written)", n)
	}
	wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", unused, nil), http.StatusOK, "unused key after recovery")
	ts.createID("/api/v1/agents", ts.Key, obj{"name": "after"})
}

// TestHealthChecks: the node's other parts (the SIP listeners) are reported by /health, and
// one that stopped makes the node unhealthy: a load balancer stops sending it calls.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	var stopped atomic.Bool
	ts := newTestServerConfig(t, store.SQLite, api.Config{Checks: func() []api.HealthCheck {
		return []api.HealthCheck{
			{Name: "sip-udp", Healthy: true, Detail: "127.0.0.1:5060"},
			{Name: "sip-tcp", Healthy: !stopped.Load(), Detail: "127.0.0.1:5060"},
		}
	}})
	r := ts.do(http.MethodGet, "/health", "", nil)
	wantStatus(t, r, http.StatusOK, "/health")
	if h := r.JSON(t); h["status"] != "healthy" || len(h["checks"].([]any)) != 2 {
		t.Fatalf("/health: %s", r.Body)
	}
	stopped.Store(true)
	r = ts.do(http.MethodGet, "/health", "", nil)
	wantStatus(t, r, http.StatusServiceUnavailable, "/health with a stopped listener")
	h := r.JSON(t)
	tcp := h["checks"].([]any)[1].(map[string]any)
	if h["status"] != "unhealthy" || h["database_connected"] != true || tcp["name"] != "sip-tcp" || tcp["healthy"] != false {
		t.Fatalf("/health with a stopped listener: %s", r.Body)
	}
}
