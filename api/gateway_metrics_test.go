package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/store"
)

// TestGatewayMetrics: the node's /metrics counts the gateway's requests by the provider that
// answered and their status class, their tokens and cost at the configured prices, and the
// failures of a provider whose fallback then answered; no label names a model.
func TestGatewayMetrics(t *testing.T) {
	t.Parallel()
	oa, an := llmtest.NewOpenAI(t), llmtest.NewAnthropic(t)
	oa.RequireKey(gwOAIKey)
	an.RequireKey(gwAntKey)
	tenantHTTP := netguard.NewTenantClient(true)
	t.Cleanup(tenantHTTP.CloseIdleConnections)
	reg, err := llm.NewRegistry(gwProviders(oa, an), llm.WithTenantClient(tenantHTTP))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg, AllowPrivateProviders: true, Metrics: metrics.New()})
	g := &gwServer{ts: ts, oa: oa, an: an}

	oa.Enqueue(llmtest.Reply{Text: "Priced.", Usage: llm.Usage{InputTokens: 100000, OutputTokens: 50000}})
	if r := g.post(t, gwPath(gwOpenAI), ts.Key, gwTurns[0].body(gwOpenAI, "oai/priced", false)); r.Status != http.StatusOK {
		t.Fatalf("priced request: %d %s", r.Status, r.Body)
	}
	oa.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "primary down"})
	an.Enqueue(llmtest.Reply{Text: "From the fallback.", Usage: llm.Usage{InputTokens: 7, OutputTokens: 3}})
	if r := g.post(t, gwPath(gwOpenAI), ts.Key, gwTurns[0].body(gwOpenAI, "oai/flaky", false)); r.Status != http.StatusOK {
		t.Fatalf("fallback request: %d %s", r.Status, r.Body)
	}

	r := ts.do(http.MethodGet, "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	text := string(r.Body)
	for _, want := range []string{
		`switchboard_gateway_requests_total{provider="oai",status="2xx"} 1`,
		`switchboard_gateway_requests_total{provider="ant",status="2xx"} 1`,
		`switchboard_gateway_tokens_total{kind="input",provider="oai"} 100000`,
		`switchboard_gateway_tokens_total{kind="output",provider="oai"} 50000`,
		`switchboard_gateway_tokens_total{kind="output",provider="ant"} 3`,
		`switchboard_gateway_cost_usd_total{provider="oai"} 3`, // 0.1 M in at $10, 0.05 M out at $40
		`switchboard_gateway_upstream_errors_total{provider="oai"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "switchboard_gateway_") && (strings.Contains(line, "priced") || strings.Contains(line, "flaky")) {
			t.Errorf("a gateway series names a model: %s", line)
		}
	}
}
