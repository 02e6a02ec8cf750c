package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// Helpers over the harness: requests with any headers, and the few steps most tests repeat
// (create a resource, count a list, read every page of a list).

// newTestServerConfig starts a server on the given dialect with cfg (the store, the
// authenticator and the logger are the harness's).
func newTestServerConfig(t testing.TB, d store.Dialect, cfg api.Config) *testServer {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	return newTestServerOpts(t, opts, cfg)
}

// eachDialectConfig is eachDialect with a server configured by cfg.
func eachDialectConfig(t *testing.T, cfg api.Config, f func(t *testing.T, ts *testServer)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newTestServerConfig(t, d, cfg))
		})
	}
}

// eachServer runs f against a server on each dialect whose keys have a rate limit high enough
// for any test (the limit itself is tested with keys of their own).
func eachServer(t *testing.T, f func(t *testing.T, ts *testServer)) {
	t.Helper()
	eachDialectConfig(t, api.Config{DefaultRateLimit: 1_000_000}, f)
}

// with returns the server as seen from subtest t, so that its helpers fail t and not the test
// that started the server.
func (ts *testServer) with(t testing.TB) *testServer {
	c := *ts
	c.t = t
	return &c
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// bearer is the header of a credential sent as Authorization: Bearer.
func bearer(cred string) http.Header { return hdr("Authorization", "Bearer "+cred) }

// request sends a request with exactly the headers given, plus Content-Type application/json
// when there is a body and h names no Content-Type. body is marshalled unless it is a string
// or []byte.
func (ts *testServer) request(method, path string, body any, h http.Header) response {
	ts.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			ts.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// wantStatus fails the test unless r has that status.
func wantStatus(t testing.TB, r response, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
}

// create POSTs body to path and returns the created resource, which must answer 201 with an id.
func (ts *testServer) create(path, key string, body any) map[string]any {
	ts.t.Helper()
	r := ts.do(http.MethodPost, path, key, body)
	wantStatus(ts.t, r, http.StatusCreated, "POST "+path)
	m := r.JSON(ts.t)
	if id, _ := m["id"].(string); id == "" {
		ts.t.Fatalf("POST %s: created without an id: %s", path, r.Body)
	}
	return m
}

// createID is create returning the new id.
func (ts *testServer) createID(path, key string, body any) string {
	ts.t.Helper()
	return ts.create(path, key, body)["id"].(string)
}

// listPage is a decoded list answer.
type listPage struct {
	Items  []map[string]any `json:"items"`
	Total  *int             `json:"total"`
	Limit  *int             `json:"limit"`
	Offset *int             `json:"offset"`
}

// list GETs a list and checks its envelope.
func (ts *testServer) list(path, key string) listPage {
	ts.t.Helper()
	r := ts.do(http.MethodGet, path, key, nil)
	wantStatus(ts.t, r, http.StatusOK, "GET "+path)
	var p listPage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		ts.t.Fatalf("GET %s: %v: %s", path, err, r.Body)
	}
	if p.Items == nil || p.Total == nil || p.Limit == nil || p.Offset == nil {
		ts.t.Fatalf("GET %s: not a {items,total,limit,offset} envelope: %s", path, r.Body)
	}
	return p
}

// total is how many rows a list holds for key.
func (ts *testServer) total(path, key string) int {
	ts.t.Helper()
	return *ts.list(path, key).Total
}

// allIDs reads every page of a list, two items at a time, and returns the ids in order.
func (ts *testServer) allIDs(path, key string) []string {
	ts.t.Helper()
	var ids []string
	for offset := 0; ; offset += 2 {
		p := ts.list(fmt.Sprintf("%s?limit=2&offset=%d", path, offset), key)
		if *p.Limit != 2 || *p.Offset != offset {
			ts.t.Fatalf("GET %s: limit/offset %d/%d, want 2/%d", path, *p.Limit, *p.Offset, offset)
		}
		if len(p.Items) > 2 {
			ts.t.Fatalf("GET %s?limit=2: %d items", path, len(p.Items))
		}
		for _, it := range p.Items {
			ids = append(ids, it["id"].(string))
		}
		if offset+2 >= *p.Total {
			if len(ids) != *p.Total {
				ts.t.Fatalf("GET %s: pages hold %d items, total says %d", path, len(ids), *p.Total)
			}
			return ids
		}
	}
}

// get GETs a resource and decodes it.
func (ts *testServer) get(path, key string) map[string]any {
	ts.t.Helper()
	r := ts.do(http.MethodGet, path, key, nil)
	wantStatus(ts.t, r, http.StatusOK, "GET "+path)
	return r.JSON(ts.t)
}

// tenantAdmin makes an admin key of the tenant of that slug, created on first use. (The
// harness's Key is the operator's: an admin of the default tenant.)
func (ts *testServer) tenantAdmin(slug string) string {
	ts.t.Helper()
	return ts.newKey(slug, slug+"-admin", 0, store.ScopeAdmin)
}

// waitOutMinuteEdge sleeps past the turn of the minute when it is less than need away, so that
// a test of the one-minute rate-limit window runs inside one window.
func waitOutMinuteEdge(need time.Duration) {
	now := time.Now()
	next := now.Truncate(time.Minute).Add(time.Minute)
	if next.Sub(now) < need {
		time.Sleep(next.Sub(now) + 50*time.Millisecond)
	}
}

// errorDetails decodes the details of a canonical error answer.
func errorDetails(t testing.TB, r response) (code string, fields []string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Details []struct {
				Field string `json:"field"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("not an error body: %s", r.Body)
	}
	for _, d := range body.Error.Details {
		fields = append(fields, d.Field)
	}
	return body.Error.Code, fields
}

// wantJSONError checks that an error answer is JSON in the canonical shape with that status and
// code, and that details is an array (never null).
func wantJSONError(t testing.TB, r response, status int, code string) {
	t.Helper()
	wantError(t, r, status, code, "")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want application/json", ct)
	}
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &raw); err != nil || !bytes.HasPrefix(raw.Error["details"], []byte("[")) {
		t.Fatalf("error details is not an array: %s", r.Body)
	}
}
