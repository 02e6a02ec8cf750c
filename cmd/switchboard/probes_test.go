package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/promtest"
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

// TestCallMetricsScraped: a real Prometheus scrapes a node while it takes a SIP call, and
// its query API finds the call counted by how it ended, its setup time observed, the agents'
// turn-latency histogram, and the node's live calls back at none.
func TestCallMetricsScraped(t *testing.T) {
	t.Parallel()
	const token = "scrape-token-0123456789"
	n := startServe(t, []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_METRICS_TOKEN=" + token})
	prom := promtest.Start(t, promtest.Target{Addr: n.addr, Token: token})
	// The node is scraped before the call too: what the call changes is seen from a known start.
	prom.WaitFor(60*time.Second, `up`, func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value == 1 })
	if code := inviteStatus(t, "sip:echo@"+n.sipAddr()); code != 200 {
		t.Fatalf("call to echo: %d", code)
	}
	ended := prom.WaitFor(60*time.Second, `switchboard_calls_total{transport="sip",direction="inbound",status="completed",reason="caller-hangup"}`,
		func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value >= 1 })
	if len(ended) != 1 || ended[0].Value != 1 {
		t.Fatalf("calls ended by the caller: %v, want 1\n%s", ended, prom.Output())
	}
	setup := prom.WaitFor(60*time.Second, `switchboard_call_setup_seconds_count{direction="inbound"}`,
		func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value >= 1 })
	if len(setup) != 1 || setup[0].Value != 1 {
		t.Errorf("setups observed: %v, want 1", setup)
	}
	// The agents' turn latency is exported from the start (no agent answered on this call).
	if turns := prom.WaitFor(60*time.Second, `switchboard_turn_latency_seconds_count`,
		func(s []promtest.Sample) bool { return len(s) == 1 }); len(turns) != 1 {
		t.Errorf("turn latency histogram: %v, want it scraped", turns)
	}
	active := prom.WaitFor(60*time.Second, `sum(switchboard_calls_active)`,
		func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value == 0 })
	if len(active) != 1 || active[0].Value != 0 {
		t.Errorf("live calls after the call: %v, want 0", active)
	}
}
