// Package web holds Switchboard's pages for people: the voice client, with which a browser
// calls an agent over WebRTC; the dashboard of live and recent calls, their transcripts
// and reports, and the tenant's agents; and the studio, where a tenant's agents, numbers,
// trunks, tools, knowledge bases and keys are made and changed. They are plain HTML, CSS and JavaScript embedded in
// the binary; they load nothing from another origin, so they work offline, and they talk to
// the server only through its public API (/api/v1, its event stream and WebRTC sessions).
package web

import (
	"embed"
	"path"
	"strings"
)

//go:embed pages/*.html assets
var files embed.FS

// Pages a server may serve; each is pages/<name>.html.
const (
	PageCall      = "call"
	PageDashboard = "dashboard"
	// PageCalls is the call history and a call's page; PageAnalytics the charts of the
	// tenant's calls; PageStudio where a tenant's things are made and changed.
	PageCalls     = "calls"
	PageAnalytics = "analytics"
	PageStudio    = "studio"
)

// Page returns the HTML of a page (PageCall, PageDashboard, PageCalls, PageAnalytics,
// PageStudio).
func Page(name string) ([]byte, bool) {
	if name != PageCall && name != PageDashboard && name != PageCalls && name != PageAnalytics && name != PageStudio {
		return nil, false
	}
	b, err := files.ReadFile("pages/" + name + ".html")
	return b, err == nil
}

// Asset returns a script, style or image of the pages, by its file name, with its media
// type; ok is false for any other name.
func Asset(name string) (data []byte, contentType string, ok bool) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return nil, "", false
	}
	contentType, known := assetTypes[path.Ext(name)]
	if !known {
		return nil, "", false
	}
	data, err := files.ReadFile("assets/" + name)
	if err != nil {
		return nil, "", false
	}
	return data, contentType, true
}

var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// ContentSecurityPolicy is the policy the pages are served with: everything from this
// origin only, no inline script, and media from the streams the pages make.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
