package web

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPagesAndAssets: the pages are there, and assets are found by file name only.
func TestPagesAndAssets(t *testing.T) {
	t.Parallel()
	for _, name := range []string{PageCall, PageDashboard, PageCalls, PageAnalytics, PageStudio} {
		if b, ok := Page(name); !ok || !strings.HasPrefix(string(b), "<!doctype html>") {
			t.Errorf("page %s: %v %.40q", name, ok, b)
		}
	}
	for _, name := range []string{"", "nothing", "../web.go", "call.html", "../pages/call.html"} {
		if _, ok := Page(name); ok {
			t.Errorf("page %q found", name)
		}
	}
	for name, ct := range map[string]string{"call.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"} {
		if b, got, ok := Asset(name); !ok || got != ct || len(b) == 0 {
			t.Errorf("asset %s: %v %q", name, ok, got)
		}
	}
	for _, name := range []string{"", ".", "..", "../web.go", "web.go", "assets/call.js", `..\web.go`, ".hidden.js", "missing.js", "call.js/"} {
		if _, _, ok := Asset(name); ok {
			t.Errorf("asset %q found", name)
		}
	}
}

// TestScriptsParse: every script of the pages is JavaScript that parses (node --check), so
// that a syntax error fails here and not only in a browser.
func TestScriptsParse(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v): the pages' tests need Node.js 20 or later", err)
	}
	scripts, _ := fs.Glob(files, "assets/*.js")
	if len(scripts) < 3 {
		t.Fatalf("scripts: %v", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.CommandContext(t.Context(), node, "--check", filepath.FromSlash(s)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
}
