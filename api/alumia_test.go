package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// alumiaHeaders are the headers of Alumia's quickstart: the key as a bearer token and the
// organisation by slug.
func alumiaHeaders(key, org string) http.Header {
	h := bearer(key)
	if org != "" {
		h.Set("X-Alumia-Org", org)
	}
	return h
}

// wantAlumiaError checks an answer is Alumia's error: the status, {"error":{"code":CODE,
// "message","details":[…]}}, naming field when field is set.
func wantAlumiaError(t testing.TB, r response, status int, code, field string) {
	t.Helper()
	wantError(t, r, status, code, field)
}

// TestAlumiaKeysAndOrganizations walks the quickstart's first two steps: an alm_ key made
// once, agents listed with it under X-Alumia-Org, and the tenancy rules of the header.
func TestAlumiaKeysAndOrganizations(t *testing.T) {
	eachServer(t, func(t *testing.T, ts *testServer) {
		ts = ts.with(t)
		acmeAdmin := ts.tenantAdmin("acme")
		ts.tenantAdmin("globex")

		// An alumia key, made by the API and shown this once.
		r := ts.request(http.MethodPost, "/api/v1/keys", map[string]any{"name": "quickstart", "kind": "alumia", "scopes": []string{"read", "write"}}, hdr("X-API-Key", acmeAdmin))
		wantStatus(t, r, http.StatusCreated, "POST /api/v1/keys kind alumia")
		made := r.JSON(t)
		key, _ := made["key"].(string)
		if !strings.HasPrefix(key, "alm_live_") || len(key) != len("alm_live_")+40 || made["kind"] != "alm_live_" {
			t.Fatalf("alumia key = %q (kind %v)", key, made["kind"])
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		again := ts.get("/api/v1/keys/"+made["id"].(string), acmeAdmin)
		if _, shown := again["key"]; shown || !strings.HasPrefix(again["display"].(string), "alm_live_") {
			t.Errorf("the key read back: %v", again)
		}
		testKey := ts.create("/api/v1/keys", acmeAdmin, map[string]any{"name": "ci", "kind": "alumia", "env": "test"})["key"].(string)
		if !strings.HasPrefix(testKey, "alm_test_") {
			t.Errorf("env test made %q", testKey)
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/keys", acmeAdmin, map[string]any{"name": "x", "kind": "vercel"}), 422, "validation_error", "kind")
		wantError(t, ts.do(http.MethodPost, "/api/v1/keys", acmeAdmin, map[string]any{"name": "x", "kind": "alumia", "env": "prod"}), 422, "validation_error", "env")
		if k := ts.create("/api/v1/keys", acmeAdmin, map[string]any{"name": "plain"})["key"].(string); !strings.HasPrefix(k, "as_live_") {
			t.Errorf("a key without kind is %q, not as_live_", k)
		}

		// Agents of the org, in an envelope both documents read: the items carry their id.
		agentID := ts.createID("/api/v1/agents", acmeAdmin, map[string]any{"name": "Ala"})
		r = ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders(key, "acme"))
		wantStatus(t, r, http.StatusOK, "GET /api/v1/agents as Alumia")
		var page struct {
			Items []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"items"`
			Total *int `json:"total"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil || page.Total == nil || len(page.Items) != 1 || page.Items[0].ID != agentID || page.Items[0].Name != "Ala" {
			t.Fatalf("agents: %s", r.Body)
		}
		// Without the header, the key's own tenant.
		wantStatus(t, ts.request(http.MethodGet, "/api/v1/agents/"+agentID, nil, bearer(key)), http.StatusOK, "agent without X-Alumia-Org")

		// Another tenant's slug, or none that exists: 404 in Alumia's shape, the same for both.
		wrong := ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders(key, "globex"))
		wantAlumiaError(t, wrong, http.StatusNotFound, "NOT_FOUND", "X-Alumia-Org")
		none := ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders(key, "no-such-org"))
		wantAlumiaError(t, none, http.StatusNotFound, "NOT_FOUND", "X-Alumia-Org")
		// A canonical key under X-Alumia-Org is held to the same rule.
		wantAlumiaError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders(acmeAdmin, "globex")), http.StatusNotFound, "NOT_FOUND", "")

		// An operator may name any org, and acts in it.
		opAgent := ts.request(http.MethodPost, "/api/v1/agents", map[string]any{"name": "Made by the operator"}, alumiaHeaders(ts.Key, "acme"))
		wantStatus(t, opAgent, http.StatusCreated, "operator creates in acme")
		if n := ts.total("/api/v1/agents", acmeAdmin); n != 2 {
			t.Errorf("acme holds %d agents after the operator's, want 2", n)
		}
		if n := ts.total("/api/v1/agents", ts.Key); n != 0 {
			t.Errorf("the operator's own tenant holds %d agents", n)
		}

		// 401 UNAUTHORIZED for a bad or missing key, when the request is Alumia's.
		wantAlumiaError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders("alm_live_"+strings.Repeat("x", 40), "acme")), 401, "UNAUTHORIZED", "")
		wantAlumiaError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, hdr("X-Alumia-Org", "acme")), 401, "UNAUTHORIZED", "")
		wantAlumiaError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer("alm_test_nope")), 401, "UNAUTHORIZED", "")
		// Validation and unknown routes speak Alumia too; canonical requests are unchanged.
		wantAlumiaError(t, ts.request(http.MethodPost, "/api/v1/agents", "{", alumiaHeaders(key, "acme")), 422, "UNPROCESSABLE_CONTENT", "body")
		wantAlumiaError(t, ts.request(http.MethodGet, "/api/v1/nothing-here", nil, alumiaHeaders(key, "acme")), 404, "NOT_FOUND", "")
		wantError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, nil), 401, "authentication_error", "")
		wantError(t, ts.request(http.MethodGet, "/api/v1/agents/agt_nope", nil, bearer(acmeAdmin)), 404, "not_found", "")
	})
}

// TestTenantBalance: a prepaid balance an operator sets, that usage draws down, and that no
// other write puts back.
func TestTenantBalance(t *testing.T) {
	eachServer(t, func(t *testing.T, ts *testServer) {
		ts = ts.with(t)
		admin := ts.tenantAdmin("acme")
		ten, err := ts.Store.TenantBySlug(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		path := "/api/v1/tenants/" + ten.ID
		if got := ts.get(path, admin); got["balance_usd"] != nil {
			t.Fatalf("a new tenant keeps a balance: %v", got["balance_usd"])
		}
		// Only an operator sets a balance; the tenant's own admin reads it.
		wantError(t, ts.do(http.MethodPatch, path, admin, map[string]any{"balance_usd": 100}), 403, "authorization_error", "")
		if got := ts.get(path, admin); got["balance_usd"] != nil {
			t.Fatalf("a refused PATCH set the balance: %v", got["balance_usd"])
		}
		wantError(t, ts.do(http.MethodPatch, path, ts.Key, map[string]any{"balance_usd": -1}), 422, "validation_error", "balance_usd")
		wantError(t, ts.do(http.MethodPatch, path, ts.Key, map[string]any{"balance_usd": "ten"}), 422, "validation_error", "balance_usd")
		r := ts.do(http.MethodPatch, path, ts.Key, map[string]any{"balance_usd": 2.5})
		wantStatus(t, r, http.StatusOK, "operator sets the balance")
		if r.JSON(t)["balance_usd"] != 2.5 {
			t.Fatalf("balance after PATCH: %s", r.Body)
		}

		// Usage draws it down; what a rename writes leaves it as usage left it.
		rec := func(tenantID string, cost float64) *store.UsageRecord {
			u := &store.UsageRecord{KeyID: "key_x", Surface: "openai", Provider: "oai", Model: "oai/priced", CostUSD: cost, Status: 200}
			u.TenantID = tenantID
			return u
		}
		if err := ts.Store.CreateUsage(context.Background(), []*store.UsageRecord{rec(ten.ID, 1), rec(ten.ID, 0.25), rec(ts.Default.ID, 3)}); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, ts.do(http.MethodPatch, path, admin, map[string]any{"name": "Acme Inc."}), http.StatusOK, "rename")
		got := ts.get(path, admin)
		if got["balance_usd"] != 1.25 || got["name"] != "Acme Inc." {
			t.Fatalf("after usage of $1.25 and a rename: %v", got)
		}
		if def := ts.get("/api/v1/tenants/"+ts.Default.ID, ts.Key); def["balance_usd"] != nil {
			t.Errorf("usage gave a tenant without a balance one: %v", def["balance_usd"])
		}
		// It may go below zero (the answer that spends it is whole); null makes it unlimited.
		if err := ts.Store.DrawTenantBalance(context.Background(), ten.ID, 2); err != nil {
			t.Fatal(err)
		}
		if got := ts.get(path, admin); got["balance_usd"] != -0.75 {
			t.Fatalf("overdrawn balance: %v", got["balance_usd"])
		}
		r = ts.do(http.MethodPatch, path, ts.Key, map[string]any{"balance_usd": nil})
		wantStatus(t, r, http.StatusOK, "balance null")
		if v, ok := r.JSON(t)["balance_usd"]; !ok || v != nil {
			t.Fatalf("balance after null: %s", r.Body)
		}
		// A tenant may be made with a balance.
		made := ts.create("/api/v1/tenants", ts.Key, map[string]any{"slug": "prepaid", "balance_usd": 10})
		if made["balance_usd"] != 10.0 {
			t.Errorf("created with balance: %v", made)
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/tenants", ts.Key, map[string]any{"slug": "neg", "balance_usd": -5}), 422, "validation_error", "balance_usd")
	})
}
