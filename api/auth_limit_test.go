package api_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestBadKeysCostNoLookups: a wrong key presented again is refused from the negative cache
// without a database lookup; past the limit of failures a minute, the client's address is
// refused with 429 and Retry-After before any lookup, while a key the node holds valid goes
// on working from the same address.
func TestBadKeysCostNoLookups(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
			if d == store.Postgres {
				opts.URL = pgtest.URL(t)
			}
			ts := newTestServerOpts(t, opts, api.Config{AuthFailureLimit: 5})
			wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil), http.StatusOK, "the operator's key")

			bad := "as_test_0123456789012345678901234567890123456789"
			before := ts.Auth.Lookups()
			for range 3 {
				wantError(t, ts.do(http.MethodGet, "/api/v1/agents", bad, nil), http.StatusUnauthorized, "authentication_error", "")
			}
			if n := ts.Auth.Lookups() - before; n != 1 {
				t.Fatalf("a wrong key presented 3 times cost %d lookups, want 1", n)
			}
			// Two more wrong keys make five failures this minute.
			for _, k := range []string{bad[:len(bad)-1] + "x", bad[:len(bad)-1] + "y"} {
				wantError(t, ts.do(http.MethodGet, "/api/v1/agents", k, nil), http.StatusUnauthorized, "authentication_error", "")
			}
			before = ts.Auth.Lookups()
			r := ts.do(http.MethodGet, "/api/v1/agents", bad[:len(bad)-1]+"z", nil)
			wantError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", "")
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %v", r.Header)
			}
			// A made-up access token fails on its signature, before any lookup.
			wantError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer("a.b.c")), http.StatusUnauthorized, "authentication_error", "")
			if n := ts.Auth.Lookups() - before; n != 0 {
				t.Fatalf("refused address cost %d lookups, want 0", n)
			}
			// The operator's key, held valid, still works from the same address.
			wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil), http.StatusOK, "a known key from a refused address")
		})
	}
}

// TestSharedAddressKeepsValidKeys: behind an address many clients share (a NAT), one client
// looping with a wrong or revoked key does not lock the others out: a key found valid in the
// last hour is still looked up, and works, from an address past its limit of failures, long
// after its cache entry expired. A key never seen, a key revoked and a key last seen valid
// over an hour ago are refused with the address.
func TestSharedAddressKeepsValidKeys(t *testing.T) {
	t.Parallel()
	ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret}, api.Config{AuthFailureLimit: 5})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	api.SetAuthClock(ts.Auth, func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	advance := func(d time.Duration) { clock.Add(int64(d)) }

	used := ts.newKey("acme", "used", 0, store.ScopeRead)
	revoked := ts.newKey("acme", "revoked", 0, store.ScopeRead)
	fresh := ts.newKey("acme", "fresh", 0, store.ScopeRead)
	for _, k := range []string{used, revoked} {
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", k, nil), http.StatusOK, "a key in use")
	}
	acme := ts.tenantAdmin("acme")
	r := ts.do(http.MethodGet, "/api/v1/keys", acme, nil)
	wantStatus(t, r, http.StatusOK, "list keys")
	var revokedID string
	for _, it := range r.JSON(t)["items"].([]any) {
		if k := it.(map[string]any); k["name"] == "revoked" {
			revokedID = k["id"].(string)
		}
	}
	wantStatus(t, ts.do(http.MethodDelete, "/api/v1/keys/"+revokedID, acme, nil), http.StatusNoContent, "revoke")
	// Ten minutes later the cache holds none of them, and one client loops with the
	// revoked key past the address's limit. The limit counts in windows of the wall
	// clock's minutes: the checks begin early in one, so that they all fall in it.
	advance(10 * time.Minute)
	waitOutMinuteEdge(30 * time.Second)
	for i := 0; i < 5; i++ {
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", revoked, nil), http.StatusUnauthorized, "authentication_error", "")
	}
	wantError(t, ts.do(http.MethodGet, "/api/v1/agents", revoked, nil), http.StatusTooManyRequests, "rate_limit_exceeded", "")
	before := ts.Auth.Lookups()
	wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", used, nil), http.StatusOK, "a key used ten minutes before, from the refused address")
	if n := ts.Auth.Lookups() - before; n != 1 {
		t.Errorf("the key cost %d lookups, want 1: its cache entry had expired", n)
	}
	wantError(t, ts.do(http.MethodGet, "/api/v1/agents", fresh, nil), http.StatusTooManyRequests, "rate_limit_exceeded", "")
	// An hour after it was last found valid, a key is a stranger again.
	advance(61 * time.Minute)
	wantError(t, ts.do(http.MethodGet, "/api/v1/agents", used, nil), http.StatusTooManyRequests, "rate_limit_exceeded", "")
}
