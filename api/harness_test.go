package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestMain lowers the cost of password hashes: every login checks ten (see login), which
// at bcrypt's default cost under the race detector takes seconds; the checks are counted,
// not timed.
func TestMain(m *testing.M) {
	store.PasswordCost = bcrypt.MinCost
	pgtest.Main(m)
}

// testServer is a real Switchboard API on a loopback listener over a real, migrated store.
type testServer struct {
	t       testing.TB
	URL     string
	Store   *store.Store
	Auth    *api.Authenticator
	API     *api.Server
	Default *store.Tenant
	// Key is an admin key of the default tenant (an operator).
	Key string
}

var testSecret = []byte("switchboard-test-secret-0123456789")

// newTestServer starts a server on the given dialect.
func newTestServer(t testing.TB, d store.Dialect) *testServer {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	return newTestServerOpts(t, opts, api.Config{})
}

func newTestServerOpts(t testing.TB, opts store.Options, cfg api.Config) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	def, err := st.EnsureTenant(ctx, store.DefaultTenantSlug)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := api.NewAuthenticator(st, testSecret, def.ID, log)
	cfg.Store, cfg.Auth, cfg.Log, cfg.Version = st, auth, log, "test"
	as := api.New(cfg)
	srv := httptest.NewServer(as.Handler())
	t.Cleanup(srv.Close)
	ts := &testServer{t: t, URL: srv.URL, Store: st, Auth: auth, API: as, Default: def}
	ts.Key = ts.newKey(def.Slug, "operator", 0, store.ScopeAdmin)
	return ts
}

// newKey makes a key of the tenant of that slug (created if missing) with the given scopes.
func (ts *testServer) newKey(slug, name string, rateLimit int, scopes ...string) string {
	ts.t.Helper()
	ctx := context.Background()
	ten, err := ts.Store.EnsureTenant(ctx, slug)
	if err != nil {
		ts.t.Fatal(err)
	}
	secret, err := ts.Store.CreateAPIKey(ctx, ten.ID, &store.APIKey{Name: name, Kind: "as_test_", Scopes: scopes, RateLimit: rateLimit})
	if err != nil {
		ts.t.Fatal(err)
	}
	return secret
}

// response is an answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// do sends a request with key as X-API-Key (none when empty); body is marshalled unless it
// is a string or []byte, which are sent as they are.
func (ts *testServer) do(method, path, key string, body any) response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// eachDialect runs f against a server on SQLite and one on PostgreSQL.
func eachDialect(t *testing.T, f func(t *testing.T, ts *testServer)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newTestServer(t, d))
		})
	}
}

// wantError checks an answer is the canonical error of that status and code, naming field
// when field is not empty.
func wantError(t testing.TB, r response, status int, code, field string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.Body)
	}
	if body.Error.Code != code || body.Error.Message == "" || body.Error.Details == nil && field != "" {
		t.Fatalf("error %s, want code %s: %s", r.Body, code, r.Body)
	}
	if field == "" {
		return
	}
	for _, d := range body.Error.Details {
		if d.Field == field {
			return
		}
	}
	t.Fatalf("error does not name field %q: %s", field, r.Body)
}
