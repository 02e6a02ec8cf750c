package api_test

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// TestKeyShownOnce: a new key is in the create answer and nowhere else, with the prefix of its
// environment, and works as X-API-Key and as Authorization: Bearer.
func TestKeyShownOnce(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		for _, c := range []struct{ env, prefix string }{{"", "as_live_"}, {"live", "as_live_"}, {"test", "as_test_"}} {
			body := obj{"name": "ci " + c.env}
			if c.env != "" {
				body["env"] = c.env
			}
			r := ts.do(http.MethodPost, "/api/v1/keys", ts.Key, body)
			wantStatus(t, r, http.StatusCreated, "create key")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("new key answered with Cache-Control %q, want no-store", cc)
			}
			k := r.JSON(t)
			secret, _ := k["key"].(string)
			if !strings.HasPrefix(secret, c.prefix) || len(secret) != len(c.prefix)+40 {
				t.Fatalf("env %q: key %q, want %s and 40 characters", c.env, secret, c.prefix)
			}
			if k["kind"] != c.prefix || !reflect.DeepEqual(k["scopes"], []any{"read", "write"}) {
				t.Fatalf("key %v", k)
			}
			if d, _ := k["display"].(string); !strings.HasPrefix(d, secret[:len(c.prefix)+4]) || strings.Contains(d, secret[len(c.prefix)+4:len(secret)-4]) {
				t.Fatalf("display %q shows too much or too little of %q", d, secret)
			}
			id := k["id"].(string)
			for _, path := range []string{"/api/v1/keys/" + id, "/api/v1/keys", "/api/v1/keys?limit=100"} {
				r := ts.do(http.MethodGet, path, ts.Key, nil)
				wantStatus(t, r, http.StatusOK, path)
				if strings.Contains(string(r.Body), secret) || strings.Contains(string(r.Body), store.HashKey(secret)) || strings.Contains(string(r.Body), `"key"`) {
					t.Fatalf("GET %s shows the key or its hash: %s", path, r.Body)
				}
			}
			for _, h := range []http.Header{hdr("X-API-Key", secret), bearer(secret), hdr("Authorization", "bearer "+secret)} {
				r := ts.request(http.MethodGet, "/api/v1/auth/me", nil, h)
				wantStatus(t, r, http.StatusOK, "new key as "+strings.Join(h.Values("Authorization"), ""))
				if me := r.JSON(t); me["key_id"] != id || me["tenant_id"] != ts.Default.ID {
					t.Fatalf("whoami of the new key: %v", me)
				}
			}
		}
		// A key that is not an admin cannot make or see keys.
		writer := ts.newKey("default", "writer", 0, "read", "write")
		wantError(t, ts.do(http.MethodPost, "/api/v1/keys", writer, obj{"name": "x"}), http.StatusForbidden, "authorization_error", "")
		wantError(t, ts.do(http.MethodGet, "/api/v1/keys", writer, nil), http.StatusForbidden, "authorization_error", "")
	})
}

// TestKeyRevocation: a revoked key stops working on the very next request, under either
// header, though it was cached by the request before.
func TestKeyRevocation(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		k := ts.create("/api/v1/keys", ts.Key, obj{"name": "doomed", "scopes": arr{"admin"}})
		secret, id := k["key"].(string), k["id"].(string)
		for range 3 {
			wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusOK, "before revocation")
		}
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/keys/"+id, ts.Key, nil), http.StatusNoContent, "revoke")
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(secret)), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", secret, obj{"name": "x"}), http.StatusUnauthorized, "authentication_error", "")
		if got := ts.get("/api/v1/keys/"+id, ts.Key); got["revoked_at"] == nil {
			t.Fatalf("revoked key shows no revoked_at: %v", got)
		}
		// Revoking again is harmless, and the key stays revoked.
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/keys/"+id, ts.Key, nil), http.StatusNoContent, "revoke again")
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusUnauthorized, "authentication_error", "")
		// A key may revoke itself; the answer is its last.
		self := ts.create("/api/v1/keys", ts.Key, obj{"name": "self", "scopes": arr{"admin"}})
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/keys/"+self["id"].(string), self["key"].(string), nil), http.StatusNoContent, "self-revoke")
		wantError(t, ts.do(http.MethodGet, "/api/v1/keys", self["key"].(string), nil), http.StatusUnauthorized, "authentication_error", "")
		// Other keys are untouched.
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil), http.StatusOK, "operator")
	})
}

// TestKeyExpiry: a key past its expiry does not work, and one that expires while cached stops
// working when the time passes.
func TestKeyExpiry(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		ctx := context.Background()
		past := time.Now().Add(-time.Second).UTC()
		expired, err := ts.Store.CreateAPIKey(ctx, ts.Default.ID, &store.APIKey{Name: "old", Kind: "as_test_", Scopes: []string{"admin"}, ExpiresAt: &past})
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", expired, nil), http.StatusUnauthorized, "authentication_error", "")

		expiry := time.Now().Add(2 * time.Second).UTC()
		k := ts.create("/api/v1/keys", ts.Key, obj{"name": "brief", "expires_at": expiry.Format(time.RFC3339Nano)})
		secret := k["key"].(string)
		if got, err := time.Parse(time.RFC3339Nano, k["expires_at"].(string)); err != nil || got.Sub(expiry).Abs() > time.Millisecond {
			t.Fatalf("expires_at %v, want %v", k["expires_at"], expiry)
		}
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusOK, "before expiry")
		time.Sleep(time.Until(expiry) + 50*time.Millisecond)
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusUnauthorized, "authentication_error", "")

		// A PATCH of the expiry into the past ends a working key at once.
		k = ts.create("/api/v1/keys", ts.Key, obj{"name": "cut short"})
		secret = k["key"].(string)
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusOK, "before PATCH")
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/keys/"+k["id"].(string), ts.Key, obj{"expires_at": past.Format(time.RFC3339)}), http.StatusOK, "PATCH expiry")
		wantError(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusUnauthorized, "authentication_error", "")
	})
}

// TestKeyScopeChange: a PATCH of a key's scopes takes effect on its next request.
func TestKeyScopeChange(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		k := ts.create("/api/v1/keys", ts.Key, obj{"name": "app", "scopes": arr{"read", "write"}})
		secret, item := k["key"].(string), "/api/v1/keys/"+k["id"].(string)
		ts.createID("/api/v1/agents", secret, obj{"name": "one"})

		r := ts.do(http.MethodPatch, item, ts.Key, obj{"scopes": arr{"read"}})
		wantStatus(t, r, http.StatusOK, "make read-only")
		if got := r.JSON(t); !reflect.DeepEqual(got["scopes"], []any{"read"}) || got["name"] != "app" {
			t.Fatalf("PATCH answer: %v", got)
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", secret, obj{"name": "two"}), http.StatusForbidden, "authorization_error", "")
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/agents", secret, nil), http.StatusOK, "read-only reads")
		if n := ts.total("/api/v1/agents", ts.Key); n != 1 {
			t.Fatalf("refused write wrote: %d agents", n)
		}
		wantStatus(t, ts.do(http.MethodPatch, item, ts.Key, obj{"scopes": arr{"write"}}), http.StatusOK, "give write back")
		ts.createID("/api/v1/agents", secret, obj{"name": "three"})
		wantError(t, ts.do(http.MethodPatch, item, ts.Key, obj{"scopes": arr{"superuser"}}), http.StatusUnprocessableEntity, "validation_error", "scopes[0]")
		wantError(t, ts.do(http.MethodPatch, item, ts.Key, obj{"key": "as_live_mine"}), http.StatusUnprocessableEntity, "validation_error", "key")
		if got := ts.get(item, ts.Key); !reflect.DeepEqual(got["scopes"], []any{"write"}) {
			t.Fatalf("refused PATCH changed scopes: %v", got["scopes"])
		}
	})
}

// TestLogin: a user signs in for an access token that works as Bearer and a refresh token that
// works once.
func TestLogin(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		u := ts.create("/api/v1/users", ts.Key, obj{"email": "Ada@Example.com", "name": "Ada", "password": "correct horse battery", "scopes": arr{"read", "write"}})
		login := func(email, pw string) response {
			return ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": email, "password": pw})
		}
		r := login("ada@example.com", "correct horse battery")
		wantStatus(t, r, http.StatusOK, "login")
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("tokens answered without Cache-Control: no-store")
		}
		tok := r.JSON(t)
		access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
		if strings.Count(access, ".") != 2 || !strings.HasPrefix(refresh, "rt_") || tok["token_type"] != "bearer" || tok["expires_in"] != 900.0 {
			t.Fatalf("login answer: %s", r.Body)
		}
		if user := tok["user"].(map[string]any); user["id"] != u["id"] || user["last_login_at"] == nil {
			t.Fatalf("login user: %v", user)
		}
		if strings.Contains(string(r.Body), "correct horse") || strings.Contains(string(r.Body), "password") {
			t.Fatalf("login answers the password: %s", r.Body)
		}

		wantStatus(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(access)), http.StatusOK, "access token as Bearer")
		wantStatus(t, ts.request(http.MethodPost, "/api/v1/agents", obj{"name": "by token"}, bearer(access)), http.StatusCreated, "write with token")
		me := ts.request(http.MethodGet, "/api/v1/auth/me", nil, bearer(access))
		wantStatus(t, me, http.StatusOK, "me")
		if m := me.JSON(t); m["user_id"] != u["id"] || m["tenant_id"] != ts.Default.ID || m["tenant_slug"] != "default" ||
			m["operator"] != false || m["key_id"] != nil || !reflect.DeepEqual(m["scopes"], []any{"read", "write"}) {
			t.Fatalf("me of a user: %s", me.Body)
		}
		// Users are admin-only: a write user cannot list them.
		wantError(t, ts.request(http.MethodGet, "/api/v1/users", nil, bearer(access)), http.StatusForbidden, "authorization_error", "")
		// A tampered token is refused.
		wantError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(access[:len(access)-2]+"xx")), http.StatusUnauthorized, "authentication_error", "")

		wantError(t, login("ada@example.com", "wrong password"), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, login("nobody@example.com", "correct horse battery"), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, login("ada@example.com", ""), http.StatusUnprocessableEntity, "validation_error", "password")
		wantError(t, login("", "x"), http.StatusUnprocessableEntity, "validation_error", "email")

		refreshWith := func(rt string) response {
			return ts.do(http.MethodPost, "/api/v1/auth/refresh", "", obj{"refresh_token": rt})
		}
		r = refreshWith(refresh)
		wantStatus(t, r, http.StatusOK, "refresh")
		next := r.JSON(t)
		access2, refresh2 := next["access_token"].(string), next["refresh_token"].(string)
		if refresh2 == refresh || !strings.HasPrefix(refresh2, "rt_") || access2 == "" {
			t.Fatalf("refresh answer: %s", r.Body)
		}
		wantStatus(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(access2)), http.StatusOK, "new access token")
		wantError(t, refreshWith("rt_made_up"), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, refreshWith(""), http.StatusUnprocessableEntity, "validation_error", "refresh_token")
		// An access token is not a refresh token.
		wantError(t, refreshWith(access2), http.StatusUnauthorized, "authentication_error", "")
		r = refreshWith(refresh2)
		wantStatus(t, r, http.StatusOK, "the new refresh token, once")
		access3 := r.JSON(t)["access_token"].(string)
		// A spent token used again revokes its family (TestRefreshTokenReuse covers it).
		wantError(t, refreshWith(refresh), http.StatusUnauthorized, "authentication_error", "")
		wantError(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(access3)), http.StatusUnauthorized, "authentication_error", "")

		// The key's own description.
		m := ts.get("/api/v1/auth/me", ts.Key)
		if m["operator"] != true || m["key_id"] == nil || m["user_id"] != nil || m["tenant_id"] != ts.Default.ID {
			t.Fatalf("me of the operator key: %v", m)
		}
		wantError(t, ts.do(http.MethodGet, "/api/v1/auth/me", "", nil), http.StatusUnauthorized, "authentication_error", "")
	})
}

// TestReadOnlyUser: a user's token carries the user's scopes.
func TestReadOnlyUser(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		ts.create("/api/v1/users", ts.Key, obj{"email": "viewer@example.com", "password": "correct horse battery", "scopes": arr{"read"}})
		r := ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": "viewer@example.com", "password": "correct horse battery"})
		wantStatus(t, r, http.StatusOK, "login")
		access := r.JSON(t)["access_token"].(string)
		wantStatus(t, ts.request(http.MethodGet, "/api/v1/agents", nil, bearer(access)), http.StatusOK, "read")
		wantError(t, ts.request(http.MethodPost, "/api/v1/agents", obj{"name": "x"}, bearer(access)), http.StatusForbidden, "authorization_error", "")
		// Tokens work in X-API-Key too, as any credential does.
		wantStatus(t, ts.request(http.MethodGet, "/api/v1/agents", nil, hdr("X-API-Key", access)), http.StatusOK, "token as X-API-Key")
	})
}

// rateHeaders checks the X-RateLimit headers of an answer.
func rateHeaders(t *testing.T, r response, limit, remaining int) {
	t.Helper()
	if got := r.Header.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Fatalf("X-RateLimit-Limit %q, want %d (status %d)", got, limit, r.Status)
	}
	if got := r.Header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Fatalf("X-RateLimit-Remaining %q, want %d (status %d)", got, remaining, r.Status)
	}
	reset, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
	if until := time.Until(time.Unix(reset, 0)); err != nil || until <= -time.Second || until > 61*time.Second {
		t.Fatalf("X-RateLimit-Reset %q is not within the coming minute", r.Header.Get("X-RateLimit-Reset"))
	}
}

// TestRateLimit: a key's limit a minute shows on every answer, and the request past it is a
// 429 with Retry-After; other keys are not affected.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ts *testServer) {
		key := ts.newKey("default", "slow", 3, "read", "write")
		waitOutMinuteEdge(5 * time.Second)
		// Answers of every kind count and carry the headers: a list, a 404, a refused write.
		r := ts.do(http.MethodGet, "/api/v1/agents", key, nil)
		wantStatus(t, r, http.StatusOK, "1st")
		rateHeaders(t, r, 3, 2)
		r = ts.do(http.MethodGet, "/api/v1/agents/agt_"+strings.Repeat("0", 26), key, nil)
		wantStatus(t, r, http.StatusNotFound, "2nd")
		rateHeaders(t, r, 3, 1)
		r = ts.do(http.MethodPost, "/api/v1/agents", key, `{"name":`)
		wantStatus(t, r, http.StatusUnprocessableEntity, "3rd")
		rateHeaders(t, r, 3, 0)
		for range 2 {
			r = ts.do(http.MethodGet, "/api/v1/agents", key, nil)
			wantJSONError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded")
			rateHeaders(t, r, 3, 0)
			retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || retry < 1 || retry > 61 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		}
		// The operator's key has the default limit, and its own count.
		r = ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil)
		wantStatus(t, r, http.StatusOK, "another key")
		if r.Header.Get("X-RateLimit-Limit") != "100" {
			t.Fatalf("default limit %q, want 100", r.Header.Get("X-RateLimit-Limit"))
		}
	})
}

// TestLoginRateLimit: sign-in attempts are limited per address.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	eachDialectConfig(t, api.Config{LoginRateLimit: 2}, func(t *testing.T, ts *testServer) {
		waitOutMinuteEdge(5 * time.Second)
		for range 2 {
			wantError(t, ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": "x@example.com", "password": "guess"}), http.StatusUnauthorized, "authentication_error", "")
		}
		r := ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": "x@example.com", "password": "guess"})
		wantJSONError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	})
}
