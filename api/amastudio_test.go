package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// AmaStudio's /v1 surface (../shared/seeds/000_…) as its clients use it: amallm_ keys that
// make keys, /v1/messages as its document sends it, and its error shape on every /v1 route
// while the OpenAI and Anthropic SDKs keep theirs.

// amaKey makes an amallm_ key through POST /v1/keys with the maker's credential and the
// given fields, and returns its secret and ID.
func amaKey(t testing.TB, ts *testServer, maker string, fields map[string]any) (secret, id string) {
	t.Helper()
	body := map[string]any{"name": "studio"}
	for k, v := range fields {
		body[k] = v
	}
	r := ts.with(t).request(http.MethodPost, "/v1/keys", body, hdr("X-API-Key", maker))
	wantStatus(t, r, http.StatusOK, "POST /v1/keys")
	m := r.JSON(t)
	secret, _ = m["key"].(string)
	id, _ = m["id"].(string)
	if !strings.HasPrefix(secret, "amallm_") || id == "" {
		t.Fatalf("created %s", r.Body)
	}
	return secret, id
}

// amaOpenAIError checks an AmaStudio request's error on an OpenAI route: OpenAI's four
// fields, with AmaStudio's integer code.
func amaOpenAIError(t testing.TB, r response, status int) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 1 || body["error"] == nil {
		t.Fatalf("not an error body: %s", r.Body)
	}
	e := body["error"]
	msg, _ := e["message"].(string)
	typ, _ := e["type"].(string)
	_, hasParam := e["param"]
	if code, ok := e["code"].(float64); !ok || int(code) != status || msg == "" || typ == "" || !hasParam || len(e) != 4 {
		t.Fatalf("error %s, want message, type, param and code %d", r.Body, status)
	}
	return msg
}

// amaAnthropicError checks an AmaStudio request's error on /v1/messages: Anthropic's body
// with AmaStudio's integer code in its error object.
func amaAnthropicError(t testing.TB, r response, status int) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body struct {
		Type  string         `json:"type"`
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("not an error body: %s", r.Body)
	}
	msg, _ := body.Error["message"].(string)
	typ, _ := body.Error["type"].(string)
	if code, ok := body.Error["code"].(float64); body.Type != "error" || !ok || int(code) != status || msg == "" || typ == "" || len(body.Error) != 3 {
		t.Fatalf("error %s, want type error and an error with type, message and code %d", r.Body, status)
	}
	return msg
}

// strictOpenAIError checks OpenAI's own shape, whose code is a string or null.
func strictOpenAIError(t testing.TB, r response, status int) gwErr {
	t.Helper()
	e := gwOpenAIError(t, r, status)
	var body map[string]map[string]any
	_ = json.Unmarshal(r.Body, &body)
	switch body["error"]["code"].(type) {
	case nil, string:
	default:
		t.Errorf("OpenAI error with a code that is not a string: %s", r.Body)
	}
	return e
}

// TestAmaStudioKeys: AmaStudio's key routes: a created amallm_ key is shown once, listed
// without its secret, validated from X-API-Key or Bearer, works on the gateway, and can
// list and make keys as its maker could; errors are {"error":{"message","code":<status>}}.
func TestAmaStudioKeys(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		r := ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "studio"}, hdr("X-API-Key", g.ts.Key))
		wantStatus(t, r, http.StatusOK, "POST /v1/keys")
		created := r.JSON(t)
		secret, _ := created["key"].(string)
		if !strings.HasPrefix(secret, "amallm_") || len(secret) < 30 || created["name"] != "studio" || created["id"] == nil {
			t.Fatalf("created %s", r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}

		listed := func(key string) []map[string]any {
			t.Helper()
			r := ts.request(http.MethodGet, "/v1/keys", nil, bearer(key))
			wantStatus(t, r, http.StatusOK, "GET /v1/keys")
			if strings.Contains(string(r.Body), secret) {
				t.Errorf("the list shows a key: %s", r.Body)
			}
			var list struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(r.Body, &list); err != nil {
				t.Fatal(err)
			}
			return list.Keys
		}
		found := false
		for _, k := range listed(g.ts.Key) {
			if k["id"] == created["id"] {
				found = true
				if k["name"] != "studio" || !strings.HasPrefix(fmt.Sprint(k["prefix"]), "amallm_") {
					t.Errorf("listed key %v", k)
				}
			}
		}
		if !found {
			t.Errorf("the new key is not listed")
		}

		for _, h := range []http.Header{hdr("X-API-Key", secret), bearer(secret)} {
			r = ts.request(http.MethodGet, "/v1/keys/validate", nil, h)
			wantStatus(t, r, http.StatusOK, "validate")
			m := r.JSON(t)
			if m["valid"] != true || m["key_id"] != created["id"] || m["tenant_id"] != g.ts.Default.ID {
				t.Errorf("validate: %s", r.Body)
			}
		}
		for _, h := range []http.Header{hdr("X-API-Key", "amallm_nonsense"), bearer("amallm_nonsense"), {}} {
			gwAmaError(t, ts.request(http.MethodGet, "/v1/keys/validate", nil, h), http.StatusUnauthorized)
		}

		// The key made by an admin is an admin: it uses the gateway, lists keys and makes
		// keys, which can do the same in turn.
		g.oa.Enqueue(llmtest.Reply{Text: "ok"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", secret, gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)), "oai/gpt-test")
		if len(listed(secret)) < 2 {
			t.Errorf("the amallm_ key lists too few keys")
		}
		child, _ := amaKey(t, ts, secret, nil)
		grandchild, _ := amaKey(t, ts, child, nil)
		listed(grandchild)

		// A key made with read and write only uses the gateway but makes no keys.
		rw, _ := amaKey(t, ts, secret, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})
		g.oa.Enqueue(llmtest.Reply{Text: "ok"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", rw, gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)), "oai/gpt-test")
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "x"}, bearer(rw)), http.StatusForbidden)
		gwAmaError(t, ts.request(http.MethodGet, "/v1/keys", nil, bearer(rw)), http.StatusForbidden)
		// With X-API-Key as with Bearer.
		gwAmaError(t, ts.request(http.MethodGet, "/v1/keys", nil, hdr("X-API-Key", rw)), http.StatusForbidden)

		// Bad bodies are 400, AmaStudio's code for invalid requests, naming the field.
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", `{"name":`, bearer(g.ts.Key)), http.StatusBadRequest)
		for field, body := range map[string]map[string]any{
			"name":      {"name": ""},
			"scopes[0]": {"name": "x", "scopes": []string{"everything"}},
		} {
			msg := gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", body, bearer(g.ts.Key)), http.StatusBadRequest)
			if !strings.Contains(msg, field) {
				t.Errorf("message %q does not name %s", msg, field)
			}
		}
		// Login through the AmaStudio route answers in its shape too.
		gwAmaError(t, ts.request(http.MethodPost, "/v1/auth/login", map[string]any{"email": "nobody@example.com", "password": "wrong-password"}, nil), http.StatusUnauthorized)
	})
}

// TestAmaStudioKeyBounds: a key made at /v1/keys never gets more than the key that made
// it: what it leaves open it inherits (scopes, rate limit, expiry, token limit, what is
// left of the budget), and what it asks beyond its maker is refused with 403 naming the
// field, down a chain of keys.
func TestAmaStudioKeyBounds(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		// Each answer of oai/priced costs $0.05 (1000 tokens in at $10, 1000 out at $40 a million).
		maker, makerID := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}, "rate_limit": 50,
			"expires_at": expires, "token_limit": 100_000, "budget_usd": 0.2})
		g.oa.Enqueue(llmtest.Reply{Text: "ok", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 1000}})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", maker, gwTurns[0].body(gwOpenAI, "oai/priced", false)), "oai/priced")

		keyOf := func(id string) store.APIKey {
			t.Helper()
			var k store.APIKey
			r := ts.do(http.MethodGet, "/api/v1/keys/"+id, g.ts.Key, nil)
			wantStatus(t, r, http.StatusOK, "GET key")
			if err := json.Unmarshal(r.Body, &k); err != nil {
				t.Fatal(err)
			}
			return k
		}
		check := func(what string, k store.APIKey, rate, tokens int, budget float64, exp time.Time) {
			t.Helper()
			if k.RateLimit != rate || k.TokenLimit != tokens || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) ||
				k.BudgetUSD < budget-1e-9 || k.BudgetUSD > budget+1e-9 || len(k.Scopes) != 1 || k.Scopes[0] != store.ScopeAdmin {
				t.Errorf("%s: %+v, want rate %d, tokens %d, budget %v, expiry %v, scopes [admin]", what, k, rate, tokens, budget, exp)
			}
		}
		if k := keyOf(makerID); k.Kind != "as_test_" && k.Kind != "as_live_" {
			t.Fatalf("maker %+v", k)
		}
		child, childID := amaKey(t, ts, maker, nil)
		check("inherited", keyOf(childID), 50, 100_000, 0.15, expires)

		// A narrower key is made as asked.
		_, narrowID := amaKey(t, ts, maker, map[string]any{"rate_limit": 10, "token_limit": 500, "budget_usd": 0.01,
			"expires_at": expires.Add(-time.Minute)})
		check("narrower", keyOf(narrowID), 10, 500, 0.01, expires.Add(-time.Minute))

		for field, body := range map[string]map[string]any{
			"rate_limit":  {"rate_limit": 51},
			"token_limit": {"token_limit": 100_001},
			"budget_usd":  {"budget_usd": 0.16},
			"expires_at":  {"expires_at": expires.Add(time.Minute)},
		} {
			body["name"] = "greedy"
			for _, key := range []string{maker, child} {
				msg := gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", body, bearer(key)), http.StatusForbidden)
				if !strings.Contains(msg, field) {
					t.Errorf("%s: message %q does not name it", field, msg)
				}
			}
		}
		msg := gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "past", "expires_at": time.Now().Add(-time.Hour)}, bearer(maker)), http.StatusBadRequest)
		if !strings.Contains(msg, "expires_at") {
			t.Errorf("message %q does not name expires_at", msg)
		}

		// A key without admin cannot give it: a read and write key of the maker makes
		// none, and a key asked with fewer scopes holds fewer.
		_, readID := amaKey(t, ts, child, map[string]any{"scopes": []string{store.ScopeRead}})
		if k := keyOf(readID); len(k.Scopes) != 1 || k.Scopes[0] != store.ScopeRead {
			t.Errorf("read key %+v", k)
		}

		// A signed-in user without admin makes no keys through /v1/keys either.
		r := ts.do(http.MethodPost, "/api/v1/users", g.ts.Key, map[string]any{"email": "writer@example.com", "password": "correct-horse-battery", "scopes": []string{"read", "write"}})
		wantStatus(t, r, http.StatusCreated, "POST user")
		r = ts.request(http.MethodPost, "/v1/auth/login", map[string]any{"email": "writer@example.com", "password": "correct-horse-battery"}, nil)
		wantStatus(t, r, http.StatusOK, "login")
		token, _ := r.JSON(t)["access_token"].(string)
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "x"}, bearer(token)), http.StatusForbidden)

		// A maker whose budget is spent makes no key that could spend.
		spender, _ := amaKey(t, ts, maker, map[string]any{"budget_usd": 0.05})
		g.oa.Enqueue(llmtest.Reply{Text: "ok", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 1000}})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", spender, gwTurns[0].body(gwOpenAI, "oai/priced", false)), "oai/priced")
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "x"}, bearer(spender)), http.StatusPaymentRequired)
	})
}

// TestAmaStudioMessagesMaxTokens: /v1/messages as AmaStudio's document sends it, without
// max_tokens, is answered (streamed and whole) with the provider's default; a client of
// Anthropic's API (anthropic-version) with a key that is not AmaStudio's must still send it.
func TestAmaStudioMessagesMaxTokens(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		ama, _ := amaKey(t, ts, g.ts.Key, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})
		doc := func(model string, stream bool) map[string]any {
			return map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": "Hello"}}, "stream": stream}
		}
		for _, h := range []http.Header{hdr("X-API-Key", ama), bearer(ama), hdr("X-API-Key", ama, "anthropic-version", "2023-06-01"), hdr("X-API-Key", g.ts.Key)} {
			for _, model := range []string{"ant/claude-test", "oai/gpt-test"} {
				up := g.upstream(strings.Split(model, "/")[0])
				up.Enqueue(llmtest.Reply{Text: "Hi there"})
				r := ts.request(http.MethodPost, "/v1/messages", doc(model, false), h)
				if got := gwAnthropicAnswer(t, r, model); got.Text != "Hi there" {
					t.Errorf("%s: %+v", model, got)
				}
				sent := up.Last().Map()
				switch mt, ok := sent["max_tokens"]; {
				case model == "ant/claude-test" && (!ok || gwNum(mt) != llm.DefaultAnthropicMaxTokens):
					t.Errorf("the Anthropic upstream got max_tokens %v, want the default %d", mt, llm.DefaultAnthropicMaxTokens)
				case model == "oai/gpt-test" && (ok || sent["max_completion_tokens"] != nil):
					t.Errorf("the OpenAI upstream got a max_tokens it was not asked: %s", up.Last().Body)
				}
				up.Enqueue(llmtest.Reply{Text: "Hi there"})
				r = ts.request(http.MethodPost, "/v1/messages", doc(model, true), h)
				if got := gwAnthropicStream(t, r, model, -1); got.Text != "Hi there" {
					t.Errorf("%s streamed: %+v", model, got)
				}
			}
		}
		// Anthropic's clients always send max_tokens; one that does not is told.
		before := len(g.an.Requests())
		e := gwAnthropicError(t, ts.request(http.MethodPost, "/v1/messages", doc("ant/claude-test", false),
			hdr("X-API-Key", g.ts.Key, "anthropic-version", "2023-06-01")), http.StatusBadRequest)
		if !strings.Contains(e.Message, "max_tokens") {
			t.Errorf("error %+v does not name max_tokens", e)
		}
		// A max_tokens given is checked for everyone.
		body := doc("ant/claude-test", false)
		body["max_tokens"] = 0
		if msg := amaAnthropicError(t, ts.request(http.MethodPost, "/v1/messages", body, hdr("X-API-Key", ama)), http.StatusBadRequest); !strings.Contains(msg, "max_tokens") {
			t.Errorf("message %q does not name max_tokens", msg)
		}
		if len(g.an.Requests()) != before {
			t.Errorf("refused requests reached the upstream")
		}
	})
}

// TestAmaStudioErrorShapes: every /v1 route (the gateway's two, models, keys, validate,
// login, a path that serves nothing, a method a path does not serve) answers an AmaStudio
// request's errors with message and the integer code of the document (400 bad input, 401,
// 403, 404, 405, 502 upstream failure), in a superset of the SDK's shape on the SDKs'
// routes; requests that are not AmaStudio's get exactly the SDKs' shapes; the canonical
// surface keeps its own.
func TestAmaStudioErrorShapes(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		ama, _ := amaKey(t, ts, g.ts.Key, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})
		other := g.ts.Key
		const bogus = "amallm_not-a-key"
		chat := func(model string) map[string]any { return gwTurns[0].body(gwOpenAI, model, false) }
		msgs := func(model string) map[string]any { return gwTurns[0].body(gwAnthropic, model, false) }
		asAma := func(key string) http.Header { return hdr("X-API-Key", key) }
		antSDK := func(key string) http.Header { return hdr("X-API-Key", key, "anthropic-version", "2023-06-01") }

		type probe struct {
			name         string
			method, path string
			body         any
			status       int
			field        string // named in the message, when set
			upstream     *llmtest.Server
			fail         llmtest.Reply
		}
		failing := llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "the model fell over"}
		gateway := []probe{
			{"bad model", "", "", nil, http.StatusBadRequest, "model", nil, llmtest.Reply{}},
			{"bad json", "", "", `{"model":`, http.StatusBadRequest, "", nil, llmtest.Reply{}},
			{"bad field", "", "", nil, http.StatusBadRequest, "messages", nil, llmtest.Reply{}},
			{"upstream failure", "", "", nil, http.StatusBadGateway, "", g.oa, failing},
			{"wrong method", http.MethodGet, "", nil, http.StatusMethodNotAllowed, "", nil, llmtest.Reply{}},
		}
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			path := gwPath(surface)
			for _, p := range gateway {
				p.path, p.name = path, surface+" "+p.name
				if p.method == "" {
					p.method = http.MethodPost
				}
				switch {
				case p.body != nil:
				case p.field == "model":
					p.body = chat("nope/some-model")
					if surface == gwAnthropic {
						p.body = msgs("nope/some-model")
					}
				case p.field == "messages":
					p.body = map[string]any{"model": "oai/gpt-test", "max_tokens": 8, "messages": []any{}}
				case p.method == http.MethodPost:
					p.body = chat("oai/gpt-test")
					if surface == gwAnthropic {
						p.body = msgs("oai/gpt-test")
					}
				}
				for _, key := range []string{ama, other} {
					if p.upstream != nil {
						p.upstream.Enqueue(p.fail)
					}
					h := asAma(key)
					if surface == gwAnthropic && key == other {
						h = antSDK(key)
					}
					r := ts.request(p.method, p.path, p.body, h)
					var msg string
					switch {
					case key == ama && surface == gwOpenAI:
						msg = amaOpenAIError(t, r, p.status)
					case key == ama:
						msg = amaAnthropicError(t, r, p.status)
					case surface == gwOpenAI:
						msg = strictOpenAIError(t, r, p.status).Message
					default:
						msg = gwAnthropicError(t, r, p.status).Message
					}
					if p.field != "" && !strings.Contains(msg, p.field) {
						t.Errorf("%s: message %q does not name %s", p.name, msg, p.field)
					}
					if p.status == http.StatusBadGateway && !strings.Contains(msg, "the model fell over") {
						t.Errorf("%s: message %q does not say what the upstream said", p.name, msg)
					}
				}
			}
		}

		// Authentication on the SDKs' routes: an amallm_ key, even a wrong one, makes the
		// request AmaStudio's.
		amaOpenAIError(t, ts.request(http.MethodPost, "/v1/chat/completions", chat("oai/gpt-test"), asAma(bogus)), http.StatusUnauthorized)
		amaOpenAIError(t, ts.request(http.MethodGet, "/v1/models", nil, bearer(bogus)), http.StatusUnauthorized)
		amaAnthropicError(t, ts.request(http.MethodPost, "/v1/messages", msgs("oai/gpt-test"), asAma(bogus)), http.StatusUnauthorized)
		if e := strictOpenAIError(t, ts.request(http.MethodGet, "/v1/models", nil, nil), http.StatusUnauthorized); e.Type != "authentication_error" {
			t.Errorf("OpenAI 401 %+v", e)
		}
		gwAnthropicError(t, ts.request(http.MethodPost, "/v1/messages", msgs("oai/gpt-test"), antSDK("as_test_not-a-key")), http.StatusUnauthorized)
		amaOpenAIError(t, ts.request(http.MethodDelete, "/v1/models", nil, asAma(ama)), http.StatusMethodNotAllowed)
		strictOpenAIError(t, ts.request(http.MethodDelete, "/v1/models", nil, asAma(other)), http.StatusMethodNotAllowed)

		// AmaStudio's own routes answer in its shape whoever asks.
		for _, key := range []string{ama, other, bogus, ""} {
			h := http.Header{}
			if key != "" {
				h = bearer(key)
			}
			status := http.StatusUnauthorized
			switch key {
			case ama:
				status = http.StatusForbidden
			case other:
				status = http.StatusBadRequest
			}
			gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": ""}, h), status)
			gwAmaError(t, ts.request(http.MethodDelete, "/v1/keys", nil, h), http.StatusMethodNotAllowed)
		}
		gwAmaError(t, ts.request(http.MethodPost, "/v1/auth/login", `{"email":`, nil), http.StatusBadRequest)
		gwAmaError(t, ts.request(http.MethodGet, "/v1/keys/validate", nil, hdr("X-API-Key", "as_test_nothing")), http.StatusUnauthorized)

		// Paths that serve nothing: AmaStudio's requests in its shape, Anthropic's clients in
		// theirs, anyone else in OpenAI's.
		for _, path := range []string{"/v1/nothing", "/v1/agents/nobody/here", "/v1", "/v1/knowledge/kb_1/nothing"} {
			msg := gwAmaError(t, ts.request(http.MethodPost, path, map[string]any{}, asAma(ama)), http.StatusNotFound)
			if msg == "" {
				t.Errorf("%s: no message", path)
			}
			gwAmaError(t, ts.request(http.MethodGet, path, nil, asAma(bogus)), http.StatusNotFound)
			gwAnthropicError(t, ts.request(http.MethodPost, path, map[string]any{}, antSDK(other)), http.StatusNotFound)
			strictOpenAIError(t, ts.request(http.MethodGet, path, nil, bearer(other)), http.StatusNotFound)
		}
		// The canonical surface keeps its shape, amallm_ key or not.
		wantError(t, ts.request(http.MethodGet, "/api/v1/nothing", nil, asAma(ama)), http.StatusNotFound, "not_found", "")
		wantError(t, ts.request(http.MethodDelete, "/api/v1/agents", nil, asAma(ama)), http.StatusMethodNotAllowed, "method_not_allowed", "")

		// The OpenAPI document says which shape each route's errors take.
		var doc struct {
			Paths      map[string]map[string]struct{ Responses map[string]map[string]any }
			Components struct{ Responses map[string]any }
		}
		if err := json.Unmarshal(ts.do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]string{"/v1/chat/completions": "OpenAIError", "/v1/messages": "AnthropicError",
			"/v1/keys": "AmaStudioError", "/v1/agents/sessions": "AmaStudioError", "/api/v1/agents": "Error"} {
			bad := "400"
			if want == "Error" {
				bad = "422"
			}
			if ref := doc.Paths[path]["post"].Responses[bad]["$ref"]; ref != "#/components/responses/"+want || doc.Components.Responses[want] == nil {
				t.Errorf("POST %s: %s answers %v, want %s", path, bad, ref, want)
			}
		}
	})
}
