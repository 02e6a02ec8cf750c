package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"
)

// chatBody is a one-turn request of either surface.
func chatBody(surface, model string) map[string]any {
	msgs := []map[string]any{{"role": "user", "content": "What is on the other side?"}}
	if surface == gwAnthropic {
		return map[string]any{"model": model, "max_tokens": 64, "messages": msgs}
	}
	return map[string]any{"model": model, "messages": msgs}
}

// TestTenantProvidersCannotReachInward: a tenant admin cannot make the gateway its way into
// the node's network. A provider whose base_url is a loopback, metadata, link-local or
// private address, or localhost, is refused at creation and on update (422 naming
// base_url); a provider that leads inward anyway (stored before the rule, or a name that
// resolves inward) is refused where it connects, on both surfaces, with one 502 message that
// tells nothing of what is there, and the inward service is never reached.
func TestTenantProvidersCannotReachInward(t *testing.T) {
	t.Parallel()
	inner := llmtest.NewOpenAI(t) // the node's own service on loopback
	reg, err := llm.NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg})
	admin := ts.tenantAdmin("ssrf")
	port := inner.URL[strings.LastIndex(inner.URL, ":")+1:]

	for _, u := range []string{
		inner.URL + "/v1",
		"http://localhost:" + port + "/v1",
		"http://169.254.169.254/latest/meta-data",
		"http://[::1]:" + port,
		"http://[::ffff:127.0.0.1]:" + port,
		"http://[fe80::1]/",
		"http://10.0.0.1/v1",
		"http://100.64.0.1/v1",
		"http://2130706433:" + port,
	} {
		r := ts.do(http.MethodPost, "/api/v1/providers", admin, map[string]any{"name": "inward", "kind": "openai", "base_url": u})
		wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "base_url")
	}
	ok := ts.create("/api/v1/providers", admin, map[string]any{"name": "public", "kind": "openai", "base_url": "https://api.example.com/v1"})
	r := ts.do(http.MethodPatch, "/api/v1/providers/"+ok["id"].(string), admin, map[string]any{"base_url": "http://169.254.169.254/"})
	wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "base_url")

	// Rows that lead inward all the same, as one written before the rule was.
	ten, err := ts.Store.EnsureTenant(context.Background(), "ssrf")
	if err != nil {
		t.Fatal(err)
	}
	inward := map[string]string{
		"loop":     inner.URL + "/v1",
		"named":    "http://localhost:" + port + "/v1", // a name that resolves to loopback
		"metadata": "http://169.254.169.254/latest",
		"mapped":   "http://[::ffff:127.0.0.1]:" + port + "/v1",
		"ant":      inner.URL, // the other dialect's client
	}
	for name, u := range inward {
		p := store.NewModelProvider()
		p.Name, p.BaseURL = name, u
		if name == "ant" {
			p.Kind = "anthropic"
		}
		if err := store.Create(context.Background(), ts.Store, ten.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	for name := range inward {
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			r := ts.request(http.MethodPost, gwPath(surface), chatBody(surface, name+"/gpt-x"), hdr("X-API-Key", admin))
			var e gwErr
			if surface == gwOpenAI {
				e = gwOpenAIError(t, r, http.StatusBadGateway)
			} else {
				e = gwAnthropicError(t, r, http.StatusBadGateway)
			}
			if e.Message != "Upstream provider error: the provider did not answer" {
				t.Errorf("%s on %s: %q, want the one message of an unreachable provider", name, surface, e.Message)
			}
		}
	}
	if n := len(inner.Requests()); n != 0 {
		t.Fatalf("the node's own service was reached %d times", n)
	}
}

// TestTenantProvidersOperatorSwitch: with --allow-private-providers, a tenant's provider on
// loopback is created and answers end to end; its error bodies are still not relayed.
func TestTenantProvidersOperatorSwitch(t *testing.T) {
	t.Parallel()
	mine := llmtest.NewOpenAI(t)
	client := netguard.NewTenantClient(true)
	t.Cleanup(client.CloseIdleConnections)
	reg, err := llm.NewRegistry(nil, llm.WithTenantClient(client))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg, AllowPrivateProviders: true})
	admin := ts.tenantAdmin("lan")
	ts.create("/api/v1/providers", admin, map[string]any{"name": "ollama", "kind": "openai", "base_url": mine.URL})

	mine.Enqueue(llmtest.Reply{Text: "From the local model."})
	o := gwOpenAIAnswer(t, ts.request(http.MethodPost, "/v1/chat/completions", chatBody(gwOpenAI, "ollama/llama3"), hdr("X-API-Key", admin)), "ollama/llama3")
	if o.Text != "From the local model." {
		t.Errorf("answer %+v", o)
	}
	mine.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorType: "server_error", ErrorMessage: "db password is hunter2"})
	e := gwOpenAIError(t, ts.request(http.MethodPost, "/v1/chat/completions", chatBody(gwOpenAI, "ollama/llama3"), hdr("X-API-Key", admin)), http.StatusBadGateway)
	if strings.Contains(e.Message, "hunter2") || e.Message != "Upstream provider error: the provider answered 500 Internal Server Error (server_error)" {
		t.Errorf("relayed: %q", e.Message)
	}
}
