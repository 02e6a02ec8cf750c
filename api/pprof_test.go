package api_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// TestPprofOffByDefault: a node started without SWITCHBOARD_PPROF has no /debug/pprof, not
// even for the operator, and its document does not list it.
func TestPprofOffByDefault(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, store.SQLite)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		wantError(t, ts.do(http.MethodGet, path, ts.Key, nil), http.StatusNotFound, "not_found", "")
	}
	for path := range ts.openAPI().Paths {
		if strings.HasPrefix(path, "/debug/") {
			t.Fatalf("the document lists %s with profiles off", path)
		}
	}
}

// TestPprofOperatorOnly: with profiles on, the operator gets real profiles over HTTP; an
// ordinary key of the default tenant, an admin of another tenant and a request without a key
// are refused, and an unknown profile is not found.
func TestPprofOperatorOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret}, api.Config{Pprof: true})

	// A heap profile and a one-second CPU profile: pprof's gzipped protocol buffers.
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/goroutine"} {
		r := ts.do(http.MethodGet, path, ts.Key, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatalf("GET %s: not a profile (%v): %.100q", path, err, r.Body)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || len(raw) == 0 {
			t.Fatalf("GET %s: a profile of %d bytes: %v", path, len(raw), err)
		}
	}
	r := ts.do(http.MethodGet, "/debug/pprof/goroutine?debug=1", ts.Key, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "goroutine profile:") {
		t.Fatalf("goroutine?debug=1: %d %.200s", r.Status, r.Body)
	}
	r = ts.do(http.MethodGet, "/debug/pprof/", ts.Key, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "heap") {
		t.Fatalf("index: %d %.200s", r.Status, r.Body)
	}
	wantError(t, ts.do(http.MethodGet, "/debug/pprof/nosuch", ts.Key, nil), http.StatusNotFound, "not_found", "")
	wantError(t, ts.do(http.MethodGet, "/debug/pprof/heap/more", ts.Key, nil), http.StatusNotFound, "not_found", "")

	writer := ts.newKey(ts.Default.Slug, "writer", 0, store.ScopeWrite)
	otherAdmin := ts.newKey("other", "admin", 0, store.ScopeAdmin)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline"} {
		wantError(t, ts.do(http.MethodGet, path, writer, nil), http.StatusForbidden, "authorization_error", "")
		wantError(t, ts.do(http.MethodGet, path, otherAdmin, nil), http.StatusForbidden, "authorization_error", "")
		if r := ts.do(http.MethodGet, path, "", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("GET %s without a key: %d %s", path, r.Status, r.Body)
		}
	}

	// The document lists the routes when they are served.
	paths := ts.openAPI().Paths
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/{profile}"} {
		if _, ok := paths[path]; !ok {
			t.Fatalf("the document lacks %s", path)
		}
	}
}
