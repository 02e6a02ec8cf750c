package api

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-go/switchboard/store"
)

// Amplifier (../shared/seeds/002_…) is served at the root: /configs, /sessions,
// /applications and /smoke-tests, over the same store as the canonical surface (a config is
// an agent, a session from a config is a session of /api/v1/sessions, an application's key is
// one of the tenant's keys). Its clients are FastAPI's: every error on these paths, from
// authentication to an unknown method, is {"detail":"…"}, and a body FastAPI would refuse
// is a 422 with {"detail":[{"loc","msg","type"}]}.
//
// Amplifier's own server runs without keys on a developer's machine. The operator may allow
// that here (Config.AmplifierAuthOptional, SWITCHBOARD_AMPLIFIER_AUTH_REQUIRED=false): then a
// request without a key, straight from loopback, acts as the default tenant's admin on these
// paths, and on these paths only. A request that came through a proxy (one that names a
// forwarded client) is never taken as local, since a proxy on the same host connects from
// loopback for every client it serves.

// amplifierRoots are the first segments of the root Amplifier paths, those of the routes
// 0.3.0 removed included (a client of an older server gets FastAPI's 404 there).
var amplifierRoots = []string{"/configs", "/sessions", "/applications", "/smoke-tests", "/bundles", "/tools", "/providers"}

// amplifierPath reports whether a path is one of Amplifier's at the root.
func amplifierPath(p string) bool {
	for _, root := range amplifierRoots {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

func (s *Server) amplifierRoutes() []route {
	var rs []route
	rs = append(rs, s.amplifierConfigRoutes()...)
	rs = append(rs, s.amplifierSessionRoutes()...)
	rs = append(rs, s.amplifierAppRoutes()...)
	rs = append(rs, s.amplifierSmokeRoutes()...)
	for i := range rs {
		rs[i].Dialect, rs[i].Keyless = dialectFastAPI, true
	}
	return rs
}

// keylessPrincipal is who a keyless request acts as on the root Amplifier paths, or nil when
// it may not: only with the operator's switch on, from loopback, not through a proxy.
func (s *Server) keylessPrincipal(r *http.Request, rt *route) *Principal {
	if !rt.Keyless || !s.cfg.AmplifierAuthOptional || credential(r, false) != "" || !fromLoopback(r) {
		return nil
	}
	return &Principal{TenantID: s.auth.defaultTenantID, Scopes: []string{store.ScopeAdmin}, Operator: true, RateLimit: keylessRateLimit}
}

// fromLoopback reports whether a request came straight from this host, from a program of
// its own rather than from a web page that a browser on it is showing. A page of another
// site reaches loopback too: it can send simple requests (a POST without Content-Type
// creates a config), and through DNS rebinding, under a name of its own that now resolves
// to 127.0.0.1, read the answers and register an application whose key works from
// anywhere. So the request must name this host by a loopback name (Host), and a browser's
// Origin, when sent, must be a loopback one.
func fromLoopback(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Host", "True-Client-Ip", "Cf-Connecting-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	ip := net.ParseIP(clientIP(r))
	if ip == nil || !ip.IsLoopback() || !loopbackHost(r.Host) {
		return false
	}
	if origin, ok := r.Header["Origin"]; ok {
		u, err := url.Parse(strings.Join(origin, ""))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !loopbackHost(u.Host) {
			return false
		}
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

// loopbackHost reports whether host (with or without a port) is a loopback name: localhost
// or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// inProcessPrincipal carries, in a request's context, the principal of a request the node
// makes of itself (the smoke tests): only code of this package can set it.
type inProcessPrincipal struct{}

func principalInContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(inProcessPrincipal{}).(*Principal)
	return p
}

// writeFastAPIError writes e as FastAPI does: {"detail": message}, or for a 422 the list of
// what is wrong, each with where (loc), what (msg) and its kind (type).
func writeFastAPIError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	if e.Status != http.StatusUnprocessableEntity {
		writeJSON(w, e.Status, map[string]any{"detail": e.Message})
		return
	}
	details := e.Details
	if len(details) == 0 {
		details = []store.FieldError{{Field: "body", Message: e.Message}}
	}
	items := make([]map[string]any, len(details))
	for i, d := range details {
		typ := "value_error"
		switch {
		case strings.HasPrefix(d.Message, "is required"):
			typ = "value_error.missing"
		case strings.HasPrefix(d.Message, "must be ") && strings.Contains(d.Message, ", not "):
			typ = "type_error"
		}
		items[i] = map[string]any{"loc": fastAPILoc(d.Field), "msg": fieldMessage(d), "type": typ}
	}
	writeJSON(w, e.Status, map[string]any{"detail": items})
}

// fieldMessage is a field error as a sentence that names the field.
func fieldMessage(d store.FieldError) string {
	if d.Field == "body" || d.Field == "" {
		return "body " + d.Message
	}
	name := d.Field
	if i := strings.LastIndexAny(name, ".]"); i >= 0 && strings.HasPrefix(name, "query.") {
		name = name[i+1:]
	}
	return name + " " + d.Message
}

// fastAPILoc is a field's path as FastAPI's loc: ["body","providers",0,"module"], or
// ["query","limit"] for a field named "query.limit".
func fastAPILoc(field string) []any {
	loc := []any{"body"}
	if rest, ok := strings.CutPrefix(field, "query."); ok {
		loc[0], field = "query", rest
	}
	if field == "body" || field == "" {
		return loc
	}
	for _, part := range strings.Split(field, ".") {
		name, idx, _ := strings.Cut(part, "[")
		if name != "" {
			loc = append(loc, name)
		}
		for idx != "" {
			n, rest, _ := strings.Cut(idx, "]")
			if i, err := strconv.Atoi(n); err == nil {
				loc = append(loc, i)
			} else {
				loc = append(loc, n)
			}
			idx = strings.TrimPrefix(rest, "[")
		}
	}
	return loc
}

// errDetail is an Amplifier error of that status with FastAPI's detail message.
func errDetail(status int, msg string) *Error {
	code := codeValidation
	switch status {
	case http.StatusNotFound:
		code = codeNotFound
	case http.StatusConflict:
		code = codeConflict
	case http.StatusForbidden:
		code = codeAuthorization
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// errFields is a 422 naming each field, as pydantic reports a body it refuses.
func errFields(fields ...store.FieldError) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: codeValidation,
		Message: "Invalid request: " + fields[0].Field + " " + fields[0].Message, Details: fields}
}

// Bounds of an Amplifier page (limit, offset).
const (
	amplifierPageDefault = 50
	amplifierPageMax     = 1000
)

// amplifierPage reads limit (default 50, at most 1000) and offset, as Amplifier pages.
func amplifierPage(r *http.Request) (store.Page, error) {
	p := store.Page{Limit: amplifierPageDefault}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > amplifierPageMax {
			return p, errFields(store.FieldError{Field: "query.limit", Message: "must be an integer from 1 to " + strconv.Itoa(amplifierPageMax)})
		}
		p.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return p, errFields(store.FieldError{Field: "query.offset", Message: "must be a non-negative integer"})
		}
		p.Offset = n
	}
	return p, nil
}

var amplifierPageQuery = []param{
	{Name: "limit", Description: "Items per page, 1 to 1000 (default 50)", Integer: true},
	{Name: "offset", Description: "Items to skip (default 0)", Integer: true},
}

// keylessRateLimit is the requests a minute of keyless requests from loopback, all of them
// together: a developer's own machine, limited only against a runaway loop.
const keylessRateLimit = 100_000
