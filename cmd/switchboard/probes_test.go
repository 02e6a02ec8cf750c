package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProbesAndMetrics: a node serving is ready, with its database and each SIP listener
// checked; its /metrics, open on loopback, carries the database pool, the event hub and the
// requests it answered; the metrics token reaches the API (a wrong one is refused); and the
// node still stops cleanly.
func TestProbesAndMetrics(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_METRICS_TOKEN=probe-token-0123456789"}
	n := startServe(t, env)

	status, ready := n.call(http.MethodGet, "/health/ready", "", "")
	if status != http.StatusOK || ready["status"] != "ready" {
		t.Fatalf("/health/ready: %d %v", status, ready)
	}
	seen := map[string]bool{}
	for _, c := range ready["checks"].([]any) {
		m := c.(map[string]any)
		seen[m["name"].(string)] = m["healthy"].(bool)
	}
	for _, name := range []string{"draining", "database", "sip-udp", "sip-tcp"} {
		if !seen[name] {
			t.Errorf("/health/ready: check %s missing or failing: %v", name, ready["checks"])
		}
	}
	if status, live := n.call(http.MethodGet, "/health/live", "", ""); status != http.StatusOK || live["status"] != "live" {
		t.Errorf("/health/live: %d %v", status, live)
	}

	scrape := func(auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+n.addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := n.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, text := scrape("")
	if code != http.StatusOK {
		t.Fatalf("/metrics from loopback: %d %.300s", code, text)
	}
	for _, want := range []string{
		`switchboard_http_requests_total{code="200",method="GET",route="/health/ready"} 1`,
		`go_sql_open_connections{db_name="sqlite"}`,
		`switchboard_hub_subscribers`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := scrape("Bearer probe-token-0123456789"); code != http.StatusOK {
		t.Errorf("/metrics with the token: %d", code)
	}
	if code, _ := scrape("Bearer not-the-probe-token"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", code)
	}

	n.signal(syscall.SIGTERM)
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
