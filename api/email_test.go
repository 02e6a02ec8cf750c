package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// TestEmailPerTenant: an email is unique within a tenant only, so creating a user tells a
// tenant nothing about another tenant's users (no 409 across tenants; a 409 within one). A
// login finds the user by email and password, and asks for the tenant only when both match
// users of several.
func TestEmailPerTenant(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		acme := ts.tenantAdmin("acme")
		globex := ts.tenantAdmin("globex")
		ada := func(key, password string) response {
			return ts.do(http.MethodPost, "/api/v1/users", key, obj{"email": "Ada@Example.com", "password": password, "scopes": arr{"read"}})
		}
		wantStatus(t, ada(acme, "acme password 1"), http.StatusCreated, "the user in acme")
		wantStatus(t, ada(globex, "globex password 2"), http.StatusCreated, "a user of the same email in globex")
		wantError(t, ada(acme, "another password"), http.StatusConflict, "conflict", "email")

		login := func(body obj) response { return ts.do(http.MethodPost, "/api/v1/auth/login", "", body) }
		for _, c := range []struct{ password, tenant string }{{"acme password 1", ts.tenantID(acme)}, {"globex password 2", ts.tenantID(globex)}} {
			r := login(obj{"email": "ada@example.com", "password": c.password})
			wantStatus(t, r, http.StatusOK, "login")
			access := r.JSON(t)["access_token"].(string)
			if got := ts.request(http.MethodGet, "/api/v1/auth/me", nil, bearer(access)).JSON(t)["tenant_id"]; got != c.tenant {
				t.Fatalf("signed in to %v, want %s", got, c.tenant)
			}
		}
		wantError(t, login(obj{"email": "ada@example.com", "password": "acme password 1", "tenant": "globex"}), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, login(obj{"email": "ada@example.com", "password": "wrong"}), http.StatusUnauthorized, "authentication_error", "")

		// The same password in both: the login names the tenant.
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/users", globex, obj{"email": "bob@example.com", "password": "shared password", "scopes": arr{"read"}}), http.StatusCreated, "bob in globex")
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/users", acme, obj{"email": "bob@example.com", "password": "shared password", "scopes": arr{"read"}}), http.StatusCreated, "bob in acme")
		wantError(t, login(obj{"email": "bob@example.com", "password": "shared password"}), http.StatusUnprocessableEntity, "validation_error", "tenant")
		r := login(obj{"email": "bob@example.com", "password": "shared password", "tenant": "acme"})
		wantStatus(t, r, http.StatusOK, "login naming the tenant")
		if got := ts.request(http.MethodGet, "/api/v1/auth/me", nil, bearer(r.JSON(t)["access_token"].(string))).JSON(t)["tenant_id"]; got != ts.tenantID(acme) {
			t.Fatalf("signed in to %v, want acme", got)
		}
	})
}

// TestLoginChecksAsManyHashes: a login checks as many password hashes whether the email has
// no account, one, or accounts in several tenants, and whether the password is right, so
// that its time tells nobody how many tenants know an email; naming the tenant, where an
// email is unique, it checks one.
func TestLoginChecksAsManyHashes(t *testing.T) {
	t.Parallel()
	ts := newTestServerConfig(t, store.SQLite, api.Config{LoginRateLimit: 1000})
	admins := []string{ts.tenantAdmin("acme"), ts.tenantAdmin("globex"), ts.tenantAdmin("initech")}
	for i, key := range admins {
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/users", key, obj{"email": "many@example.com", "password": fmt.Sprintf("password %d", i), "scopes": arr{"read"}}), http.StatusCreated, "many")
	}
	wantStatus(t, ts.do(http.MethodPost, "/api/v1/users", admins[0], obj{"email": "one@example.com", "password": "password 0", "scopes": arr{"read"}}), http.StatusCreated, "one")
	for _, c := range []struct {
		name                    string
		email, password, tenant string
		status, checks          int
	}{
		{"unknown email", "nobody@example.com", "password 0", "", http.StatusUnauthorized, store.MaxLoginCandidates},
		{"one tenant, wrong password", "one@example.com", "wrong", "", http.StatusUnauthorized, store.MaxLoginCandidates},
		{"one tenant", "one@example.com", "password 0", "", http.StatusOK, store.MaxLoginCandidates},
		{"three tenants, wrong password", "many@example.com", "wrong", "", http.StatusUnauthorized, store.MaxLoginCandidates},
		{"three tenants", "many@example.com", "password 2", "", http.StatusOK, store.MaxLoginCandidates},
		{"unknown in the tenant", "nobody@example.com", "password 0", "globex", http.StatusUnauthorized, 1},
		{"in the tenant", "many@example.com", "password 1", "globex", http.StatusOK, 1},
	} {
		before := api.PasswordChecks(ts.API)
		r := ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": c.email, "password": c.password, "tenant": c.tenant})
		wantStatus(t, r, c.status, c.name)
		if n := api.PasswordChecks(ts.API) - before; n != uint64(c.checks) {
			t.Errorf("%s: %d password hashes checked, want %d", c.name, n, c.checks)
		}
	}
}
