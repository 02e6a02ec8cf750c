package api

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/web"
)

//go:embed docs/assets
var docAssets embed.FS

// ServiceInfo answers GET / for API clients.
type ServiceInfo struct {
	Service     string `json:"service"`
	Version     string `json:"version"`
	Description string `json:"description"`
	Docs        string `json:"docs"`
	Redoc       string `json:"redoc"`
	OpenAPI     string `json:"openapi"`
	Health      string `json:"health"`
	API         string `json:"api"`
}

// Health answers GET /health: whether this node, its database and its other parts (the
// SIP listeners) are well.
type Health struct {
	Status            string  `json:"status"`
	Version           string  `json:"version"`
	Uptime            string  `json:"uptime"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	DatabaseConnected bool    `json:"database_connected"`
	Database          string  `json:"database"`
	// Checks are the node's other parts, each healthy or not with why; one that is not
	// makes the node unhealthy (503).
	Checks []HealthCheck `json:"checks,omitempty"`
}

// HealthCheck is the state of one part of the node, such as a SIP listener.
type HealthCheck struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// VersionInfo answers GET /version.
type VersionInfo struct {
	ServiceVersion string `json:"service_version"`
	Version        string `json:"version"`
	Commit         string `json:"commit"`
	GoVersion      string `json:"go_version"`
	// AmplifierCoreVersion and AmplifierFoundationVersion are read by Amplifier's clients;
	// here both name this build, which serves that surface itself.
	AmplifierCoreVersion       string `json:"amplifier_core_version"`
	AmplifierFoundationVersion string `json:"amplifier_foundation_version"`
}

func (s *Server) metaRoutes() []route {
	const tag = "Health"
	health := func(w http.ResponseWriter, r *http.Request, _ *Principal) error { return s.health(w, r) }
	return append([]route{
		{Method: http.MethodGet, Path: "/", Tag: tag, Summary: "Service information (a browser, whose Accept ranks text/html first, gets the voice client)", Response: ServiceInfo{}, Status: http.StatusOK, Handle: s.root},
		{Method: http.MethodGet, Path: "/health", Tag: tag, Summary: "Health of this node, its database and its SIP listeners (503 when the database is away or a listener stopped)", Response: Health{}, Status: http.StatusOK, Handle: health},
		{Method: http.MethodGet, Path: "/api/v1/health", Tag: tag, Summary: "Health of this node, its database and its SIP listeners (503 when the database is away or a listener stopped)", Response: Health{}, Status: http.StatusOK, Handle: health},
		{Method: http.MethodGet, Path: "/version", Tag: tag, Summary: "Version of the server", Response: VersionInfo{}, Status: http.StatusOK, Handle: s.version},
		{Method: http.MethodGet, Path: "/openapi.json", Tag: "Documentation", Summary: "This OpenAPI 3.1 document", Response: map[string]any{}, Status: http.StatusOK, Handle: s.serveOpenAPI},
		{Method: http.MethodGet, Path: "/docs", Tag: "Documentation", Summary: "Interactive documentation (Swagger UI)", Raw: true, Status: http.StatusOK, Handle: s.page(swaggerPage)},
		{Method: http.MethodGet, Path: "/redoc", Tag: "Documentation", Summary: "Reference documentation (ReDoc)", Raw: true, Status: http.StatusOK, Handle: s.page(redocPage)},
		{Method: http.MethodGet, Path: "/docs/assets/{file}", Tag: "Documentation", Summary: "Scripts and styles of the documentation pages", Raw: true, Status: http.StatusOK, Handle: s.asset},
		{Method: http.MethodGet, Path: "/favicon.ico", Tag: "Documentation", Summary: "The icon of the pages", Raw: true, ContentType: "image/svg+xml", Status: http.StatusOK, Handle: s.favicon},
	}, s.webRoutes()...)
}

func (s *Server) root(w http.ResponseWriter, r *http.Request, p *Principal) error {
	w.Header().Add("Vary", "Accept")
	if prefersHTML(r.Header.Get("Accept")) {
		return s.webPage(web.PageCall)(w, r, p)
	}
	writeJSON(w, http.StatusOK, ServiceInfo{
		Service: "Switchboard", Version: s.cfg.Version,
		Description: "Telephony-first realtime voice agent server: SIP, WebRTC and WebSocket callers talk to AI agents",
		Docs:        "/docs", Redoc: "/redoc", OpenAPI: "/openapi.json", Health: "/health", API: "/api/v1",
	})
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	up := time.Since(s.started)
	h := Health{Status: "healthy", Version: s.cfg.Version, Uptime: formatUptime(up), UptimeSeconds: up.Seconds(),
		DatabaseConnected: true, Database: string(s.store.Dialect())}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		h.Status, h.DatabaseConnected, status = "unhealthy", false, http.StatusServiceUnavailable
	}
	if s.cfg.Checks != nil {
		h.Checks = s.cfg.Checks()
		for _, c := range h.Checks {
			if !c.Healthy {
				h.Status, status = "unhealthy", http.StatusServiceUnavailable
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, h)
	return nil
}

func formatUptime(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("Days: %d, Hours: %d, Minutes: %d, Seconds: %d", s/86400, s%86400/3600, s%3600/60, s%60)
}

func (s *Server) version(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	build := s.cfg.Commit
	if build == "" {
		build = s.cfg.Version
	}
	writeJSON(w, http.StatusOK, VersionInfo{ServiceVersion: s.cfg.Version, Version: s.cfg.Version, Commit: s.cfg.Commit, GoVersion: runtime.Version(),
		AmplifierCoreVersion: build, AmplifierFoundationVersion: build})
	return nil
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	s.openAPIOnce.Do(func() { s.openAPIJSON, _ = json.MarshalIndent(s.openAPI(), "", "  ") })
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openAPIJSON)
	return nil
}

func (s *Server) page(html string) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, _ *Principal) error {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// The pages load nothing from other origins: they work offline.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:")
		_, _ = w.Write([]byte(html))
		return nil
	}
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	name := r.PathValue("file")
	data, err := docAssets.ReadFile("docs/assets/" + name)
	if err != nil || strings.Contains(name, "/") {
		return errNotFound("Asset")
	}
	switch {
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(data)
	return nil
}

// favicon answers the request every browser makes of a site's root for its icon, whatever
// page it shows (the studio, the voice client, the documentation): Switchboard's SVG icon,
// which every current browser takes whatever the name ends with.
func (s *Server) favicon(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	data, ct, ok := web.Asset("favicon.svg")
	if !ok {
		return errNotFound("Icon")
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(data)
	return nil
}

const swaggerPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchboard API</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null});
</script>
</body>
</html>
`

const redocPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchboard API</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<div id="redoc"></div>
<script src="/docs/assets/redoc.standalone.js"></script>
<script>
// The system's fonts: ReDoc's own (Roboto, Montserrat) would be fetched from another origin.
var sans = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
Redoc.init("/openapi.json", {
  expandResponses: "200,201,202",
  requiredPropsFirst: true,
  theme: {typography: {fontFamily: sans, headings: {fontFamily: sans}, code: {fontFamily: "ui-monospace, 'SF Mono', Menlo, Consolas, monospace"}}}
}, document.getElementById("redoc"));
</script>
</body>
</html>
`
