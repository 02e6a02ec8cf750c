package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// A key never gets more than its maker, while it is used as well as when it is made: what
// the keys a key made spend and request counts against the maker's limits, a maker narrowed
// narrows them, no key raises its own limits or its makers', and revoking a maker revokes
// every key below it.

// TestKeyMadeByKeyBoundWhileUsed: children each given their maker's whole budget, rate
// limit or token limit share it instead of adding to it, and narrowing a maker's scopes
// narrows what its keys may do on their next request.
func TestKeyMadeByKeyBoundWhileUsed(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		spend := func(key string) {
			t.Helper()
			// Each answer of oai/priced costs $0.05 and 2,000 tokens.
			g.oa.Enqueue(llmtest.Reply{Text: "ok", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 1000}})
			gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", key, gwTurns[0].body(gwOpenAI, "oai/priced", false)), "oai/priced")
		}
		ask := func(key string) response {
			t.Helper()
			return g.post(t, "/v1/chat/completions", key, gwTurns[0].body(gwOpenAI, "oai/priced", false))
		}

		// Budget: two children of a $0.10 maker each get $0.10; one of them spends it.
		maker, _ := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}, "budget_usd": 0.1})
		a, _ := amaKey(t, ts, maker, nil)
		b, _ := amaKey(t, ts, maker, nil)
		spend(a)
		spend(a)
		if msg := amaOpenAIError(t, ask(b), http.StatusPaymentRequired); !strings.Contains(msg, "key that made it") {
			t.Errorf("child refused with %q, want the maker's budget named", msg)
		}
		strictOpenAIError(t, ask(maker), http.StatusPaymentRequired)
		// What its children spent is gone from what the maker can hand out, too.
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "x"}, bearer(maker)), http.StatusPaymentRequired)

		// Tokens a minute: the child's tokens count against the maker's 1,500.
		tokMaker, _ := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}, "token_limit": 1500})
		tokChild, _ := amaKey(t, ts, tokMaker, nil)
		spend(tokChild)
		strictOpenAIError(t, ask(tokMaker), http.StatusTooManyRequests)

		// Requests a minute: the child inherits 5 and shares them with its maker (whose
		// request making the child was the first).
		rateMaker, _ := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}, "rate_limit": 5})
		rateChild, _ := amaKey(t, ts, rateMaker, nil)
		for i, key := range []string{rateChild, rateChild, rateMaker, rateMaker} {
			if r := ts.request(http.MethodGet, "/v1/keys/validate", nil, bearer(key)); r.Status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
			}
		}
		gwAmaError(t, ts.request(http.MethodGet, "/v1/keys/validate", nil, bearer(rateMaker)), http.StatusTooManyRequests)
		gwAmaError(t, ts.request(http.MethodGet, "/v1/keys/validate", nil, bearer(rateChild)), http.StatusTooManyRequests)

		// Scopes: an admin child of a maker narrowed to read holds read from then on.
		scopeMaker, scopeMakerID := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}})
		scopeChild, _ := amaKey(t, ts, scopeMaker, nil)
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/keys/"+scopeMakerID, g.ts.Key, map[string]any{"scopes": []string{store.ScopeRead}}), http.StatusOK, "narrow the maker")
		r := ts.request(http.MethodGet, "/v1/keys/validate", nil, bearer(scopeChild))
		wantStatus(t, r, http.StatusOK, "validate")
		if sc, _ := r.JSON(t)["scopes"].([]any); len(sc) != 1 || sc[0] != store.ScopeRead {
			t.Errorf("child of a read maker holds %v, want [read]", sc)
		}
		gwAmaError(t, ts.request(http.MethodPost, "/v1/keys", map[string]any{"name": "x"}, bearer(scopeChild)), http.StatusForbidden)
	})
}

// TestKeyCannotRaiseItsOwnLimits: PATCH /api/v1/keys/{id} lets no key raise its own limits
// or those of a key above it (narrowing is allowed), and holds every key made by a key
// within what its maker holds, whoever asks.
func TestKeyCannotRaiseItsOwnLimits(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		ts := g.ts.with(t)
		patch := func(key, id string, body map[string]any) response {
			t.Helper()
			return ts.do(http.MethodPatch, "/api/v1/keys/"+id, key, body)
		}
		maker, makerID := g.newKey(t, map[string]any{"scopes": []string{store.ScopeAdmin}, "rate_limit": 100, "token_limit": 1000,
			"budget_usd": 1.0, "expires_at": time.Now().Add(time.Hour)})
		child, childID := amaKey(t, ts, maker, map[string]any{"rate_limit": 50, "token_limit": 500, "budget_usd": 0.5})
		_, grandID := amaKey(t, ts, child, map[string]any{"token_limit": 100})

		for field, body := range map[string]map[string]any{
			"rate_limit":  {"rate_limit": 60},
			"token_limit": {"token_limit": 0},
			"budget_usd":  {"budget_usd": 0.75},
			"expires_at":  {"expires_at": time.Now().Add(2 * time.Hour)},
		} {
			wantError(t, patch(child, childID, body), http.StatusForbidden, "authorization_error", field)
		}
		// Nor its maker's.
		wantError(t, patch(child, makerID, map[string]any{"rate_limit": 200}), http.StatusForbidden, "authorization_error", "rate_limit")
		// Narrowing itself is allowed.
		r := patch(child, childID, map[string]any{"name": "narrower", "rate_limit": 40})
		wantStatus(t, r, http.StatusOK, "narrow itself")
		if got := r.JSON(t); got["rate_limit"] != float64(40) || got["parent_id"] != makerID {
			t.Errorf("narrowed key %v", got)
		}
		// A key made by a key stays within its maker, whoever asks: the child cannot lift
		// its own child past itself, nor the operator lift the child past the maker.
		wantError(t, patch(child, grandID, map[string]any{"token_limit": 600}), http.StatusForbidden, "authorization_error", "token_limit")
		wantError(t, patch(g.ts.Key, childID, map[string]any{"rate_limit": 150}), http.StatusForbidden, "authorization_error", "rate_limit")
		// The maker may raise its child within its own bounds.
		wantStatus(t, patch(maker, childID, map[string]any{"rate_limit": 90}), http.StatusOK, "maker raises its child")
		// A key made on the canonical route by a key is bounded the same way.
		wantError(t, ts.do(http.MethodPost, "/api/v1/keys", child, map[string]any{"name": "wide", "token_limit": 501}),
			http.StatusForbidden, "authorization_error", "token_limit")
	})
}

// TestRevokeMakerRevokesItsKeys: revoking a key revokes every key it made and every key
// those made, at once: their requests are refused and their open event streams and
// sockets end as their own revocation would end them; the maker's sibling goes on.
func TestRevokeMakerRevokesItsKeys(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ss := newStreamServer(t, streamOptions{Dialect: d})
			admin := ss.newKey("acme", "admin", 0, "admin")
			tenant := ss.get("/api/v1/auth/me", admin)["tenant_id"].(string)
			made := ss.create("/api/v1/keys", admin, obj{"name": "maker", "scopes": arr{"admin"}})
			maker, makerID := made["key"].(string), made["id"].(string)
			child, _ := amaKey(t, ss.testServer, maker, nil)
			grandchild, _ := amaKey(t, ss.testServer, child, nil)
			sibling := ss.create("/api/v1/keys", admin, obj{"name": "sibling", "scopes": arr{"read"}})["key"].(string)

			childStreams := ss.openLive(t, tenant, hdr("X-API-Key", child))
			grandStreams := ss.openLive(t, tenant, hdr("X-API-Key", grandchild))
			other := ss.openLive(t, tenant, hdr("X-API-Key", sibling))

			wantStatus(t, ss.do(http.MethodDelete, "/api/v1/keys/"+makerID, admin, nil), http.StatusNoContent, "revoke the maker")
			revoked := time.Now()
			if err := ss.Hub.Publish(tenant, "tenant", "test.after", map[string]any{}); err != nil {
				t.Fatal(err)
			}
			childStreams.wantRevoked(realtime.ReasonKeyRevoked, revoked)
			grandStreams.wantRevoked(realtime.ReasonKeyRevoked, revoked)
			other.wantAlive(ss, tenant)
			for _, key := range []string{maker, child, grandchild} {
				wantError(t, ss.do(http.MethodGet, "/api/v1/agents", key, nil), http.StatusUnauthorized, "authentication_error", "")
			}
			wantStatus(t, ss.do(http.MethodGet, "/api/v1/agents", sibling, nil), http.StatusOK, "the sibling")
			// The listing shows each of them revoked.
			r := ss.do(http.MethodGet, "/api/v1/keys?limit=100", admin, nil)
			wantStatus(t, r, http.StatusOK, "list keys")
			revokedKeys := 0
			for _, it := range r.JSON(t)["items"].([]any) {
				if k := it.(map[string]any); k["revoked_at"] != nil {
					revokedKeys++
				}
			}
			if revokedKeys != 3 {
				t.Errorf("%d keys revoked, want the maker and the two below it", revokedKeys)
			}
			ss.waitOpen(t, 2)
		})
	}
}
