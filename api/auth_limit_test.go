package api_test

import (
	"net/http"
	"testing"

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
