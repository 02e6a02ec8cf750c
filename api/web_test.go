package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// browserAccept is what Chromium sends when it navigates to a page.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

// TestRootNegotiation: GET / is the voice client for a browser, with or without a key, and
// the service information for everyone else: API clients, curl, a request without Accept.
func TestRootNegotiation(t *testing.T) {
	t.Parallel()
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000})
	for _, c := range []struct {
		accept string
		html   bool
	}{
		{"", false},
		{"application/json", false},
		{"*/*", false},
		{"application/json, text/html", false}, // a tie goes to the API
		{"text/html;q=0.5, application/json", false},
		{"application/*", false},
		{browserAccept, true},
		{"text/html", true},
		{"application/xhtml+xml", true},
		{"text/html, application/json;q=0.9", true},
		{"text/*, application/json;q=0.5", true},
		{"text/html;q=0, */*", false},
	} {
		for _, key := range []string{"", ts.Key} {
			h := hdr("Accept", c.accept)
			if c.accept == "" {
				h = http.Header{}
			}
			if key != "" {
				h.Set("X-API-Key", key)
			}
			r := ts.request(http.MethodGet, "/", nil, h)
			wantStatus(t, r, http.StatusOK, "GET / with Accept "+c.accept)
			if !strings.Contains(r.Header.Get("Vary"), "Accept") {
				t.Errorf("Accept %q: Vary %q, want Accept", c.accept, r.Header.Get("Vary"))
			}
			ct := r.Header.Get("Content-Type")
			if c.html {
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(r.Body), `src="/web/assets/call.js"`) {
					t.Errorf("Accept %q: %s %.200s, want the voice client", c.accept, ct, r.Body)
				}
				continue
			}
			if !strings.HasPrefix(ct, "application/json") || r.JSON(t)["service"] != "Switchboard" {
				t.Errorf("Accept %q: %s %.200s, want the service information", c.accept, ct, r.Body)
			}
		}
	}
	if r := ts.request(http.MethodHead, "/", nil, hdr("Accept", browserAccept)); r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("HEAD / from a browser: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
}

// TestWebPages: the voice client, the dashboard and the studio are HTML under a strict content security
// policy that load only scripts and styles of their own origin, all served, and nothing else
// under /web/assets.
func TestWebPages(t *testing.T) {
	t.Parallel()
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000})
	for _, page := range []struct{ path, script string }{
		{"/call", "/web/assets/call.js"},
		{"/dashboard", "/web/assets/dashboard.js"},
		{"/calls", "/web/assets/history.js"},
		{"/analytics", "/web/assets/analytics.js"},
		{"/studio", "/web/assets/studio.js"},
	} {
		r := ts.request(http.MethodGet, page.path, nil, hdr("Accept", browserAccept))
		wantStatus(t, r, http.StatusOK, page.path)
		if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Fatalf("%s: Content-Type %q", page.path, ct)
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
			t.Fatalf("%s: Content-Security-Policy %q", page.path, csp)
		}
		html := string(r.Body)
		// Nothing from another origin, and nothing inline that the policy would refuse.
		for _, bad := range []string{"http://", "https://", `"//`, "<script>", " style=", " onclick=", " onload="} {
			if strings.Contains(html, bad) {
				t.Fatalf("%s holds %q", page.path, bad)
			}
		}
		refs := map[string]bool{}
		for _, m := range assetRef.FindAllStringSubmatch(html, -1) {
			refs[m[1]+m[2]] = true
		}
		for _, want := range []string{"/web/assets/common.js", page.script, "/web/assets/style.css"} {
			if !refs[want] {
				t.Fatalf("%s does not load %s: %v", page.path, want, refs)
			}
		}
		for ref := range refs {
			if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
				t.Fatalf("%s refers to %q, not of its origin", page.path, ref)
			}
			if !strings.HasPrefix(ref, "/web/assets/") {
				continue // links to the other pages
			}
			a := ts.do(http.MethodGet, ref, "", nil)
			wantStatus(t, a, http.StatusOK, ref)
			ct := a.Header.Get("Content-Type")
			switch {
			case strings.HasSuffix(ref, ".js"):
				// SVG's namespace is a name, not a place anything is loaded from.
				body := strings.ReplaceAll(string(a.Body), "'http://www.w3.org/2000/svg'", "")
				if ct != "text/javascript; charset=utf-8" || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
					t.Fatalf("%s: Content-Type %q, or it names another origin", ref, ct)
				}
			case strings.HasSuffix(ref, ".css"):
				if ct != "text/css; charset=utf-8" || strings.Contains(string(a.Body), "@import") || strings.Contains(string(a.Body), "url(") {
					t.Fatalf("%s: Content-Type %q, or it loads more", ref, ct)
				}
			case strings.HasSuffix(ref, ".svg"):
				if ct != "image/svg+xml" {
					t.Fatalf("%s: Content-Type %q", ref, ct)
				}
			default:
				t.Fatalf("%s loads %s, of a kind the test does not know", page.path, ref)
			}
			if a.Header.Get("X-Content-Type-Options") != "nosniff" || len(a.Body) < 100 {
				t.Fatalf("%s: %d bytes, headers %v", ref, len(a.Body), a.Header)
			}
		}
	}
	for _, bad := range []string{"/web/assets/nothing.js", "/web/assets/..%2fweb.go", "/web/assets/..%2f..%2fapi%2fserver.go", "/web/assets/.hidden.js", "/web/assets/web.go"} {
		r := ts.do(http.MethodGet, bad, "", nil)
		wantJSONError(t, r, http.StatusNotFound, "not_found")
		if strings.Contains(string(r.Body), "package ") {
			t.Fatalf("%s serves source", bad)
		}
	}
	// The pages are public: they sign in from the browser.
	for _, path := range []string{"/call", "/dashboard", "/calls", "/analytics", "/studio", "/web/assets/style.css"} {
		if r := ts.do(http.MethodGet, path, "as_live_"+strings.Repeat("x", 40), nil); r.Status != http.StatusOK {
			t.Fatalf("%s with a wrong key: %d", path, r.Status)
		}
	}
}
