package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDocsPagesLoadOffline: in Chromium, /redoc and /docs render the API document (an
// operation's summary shows) and ask nothing of another origin on the way: no CDN script,
// font or logo, so the documentation works offline and tells no third party who reads it.
// Every request they make is answered.
func TestDocsPagesLoadOffline(t *testing.T) {
	// Not parallel, like the other browser tests.
	n := startServe(t, []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()})
	b := startBrowser(t, "docs.mjs", "http://"+n.addr, artifactDir(t))
	for _, path := range []string{"/redoc", "/docs"} {
		p := b.next("page", 2*time.Minute)
		if p["path"] != path {
			t.Fatalf("the script reported %v, want %s", p["path"], path)
		}
		var requests []string
		for _, u := range p["requests"].([]any) {
			requests = append(requests, fmt.Sprint(u))
		}
		if foreign, _ := p["foreign"].([]any); len(foreign) > 0 {
			t.Errorf("%s asked other origins for %v", path, foreign)
		}
		if failed, _ := p["failed"].([]any); len(failed) > 0 {
			t.Errorf("%s: requests failed: %v", path, failed)
		}
		if !slices.ContainsFunc(requests, func(u string) bool { return strings.HasSuffix(u, "/openapi.json") }) {
			t.Errorf("%s did not load /openapi.json: %v", path, requests)
		}
		t.Logf("%s made %d requests: %v", path, len(requests), requests)
	}
	b.wait(30 * time.Second)
}
