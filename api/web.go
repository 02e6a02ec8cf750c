package api

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/web"
)

// webRoutes serve the pages for people (package web): the voice client at /call, and at /
// for a browser; the dashboard at /dashboard; the studio at /studio; and their scripts and
// styles. The pages are public: they sign in from the browser, with a key or an email and
// password, and call the API like any client.
func (s *Server) webRoutes() []route {
	const tag = "Web"
	return []route{
		{Method: http.MethodGet, Path: "/call", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webPage(web.PageCall),
			Summary: "The browser voice client: sign in, choose an agent, and call it over WebRTC (also at / for a browser)"},
		{Method: http.MethodGet, Path: "/dashboard", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webPage(web.PageDashboard),
			Summary: "The dashboard: live calls with their transcripts and events, reports of ended calls, recent calls, agents"},
		{Method: http.MethodGet, Path: "/calls", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webPage(web.PageCalls),
			Summary: "The call history: calls by agent, status, direction, time and number, and each call's recording, voicemail, turn latency, cost, transcript, events and errors"},
		{Method: http.MethodGet, Path: "/analytics", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webPage(web.PageAnalytics),
			Summary: "Charts of the tenant's calls: volume, answer rate, turn latency percentiles and cost, by hour or day"},
		{Method: http.MethodGet, Path: "/studio", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webPage(web.PageStudio),
			Summary: "The studio: make and change agents, phone numbers, trunks, tools, knowledge bases and API keys in the browser"},
		{Method: http.MethodGet, Path: "/web/assets/{file}", Tag: tag, Raw: true, Status: http.StatusOK, Handle: s.webAsset,
			Summary: "Scripts, styles and images of the voice client and the dashboard"},
	}
}

func (s *Server) webPage(name string) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, _ *Principal) error {
		html, ok := web.Page(name)
		if !ok {
			return errNotFound("Page")
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", web.ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The microphone, for the voice client; nothing else the browser could lend.
		h.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(html)
		return nil
	}
}

func (s *Server) webAsset(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	data, ct, ok := web.Asset(r.PathValue("file"))
	if !ok {
		return errNotFound("Asset")
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	// Revalidated, so that a new build's pages never run an old build's scripts.
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
	return nil
}

// prefersHTML reports whether a request's Accept header ranks HTML above JSON: a browser
// navigating to a page does; curl (*/*), an API client (application/json) and a request
// without Accept do not. Ties go to JSON, the answer the API has always given.
func prefersHTML(accept string) bool {
	if accept == "" {
		return false
	}
	var html, json float64
	htmlExact, jsonExact := -1, -1 // how specific the range that set each is
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		rank := func(exact, sub, any string) int {
			switch mt {
			case exact:
				return 2
			case sub:
				return 1
			case any:
				return 0
			}
			return -1
		}
		if r := max(rank("text/html", "text/*", "*/*"), rank("application/xhtml+xml", "", "")); r > htmlExact {
			htmlExact, html = r, q
		}
		if r := rank("application/json", "application/*", "*/*"); r > jsonExact {
			jsonExact, json = r, q
		}
	}
	return html > json
}
