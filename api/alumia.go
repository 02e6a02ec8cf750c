package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Alumia's surface (seed document 004): its clients call the canonical /api/v1 routes with
// an alm_live_/alm_test_ key and an X-Alumia-Org header naming the organisation (tenant) by
// slug, stream answers from POST /api/v1/chat as the AI SDK's UI message stream, and read
// errors as {"error":{"code":"UNAUTHORIZED",…}}.
//
// A request is Alumia's when it carries X-Alumia-Org or presents an alm_ key: it then gets
// Alumia's error codes on every route and its message shape from the session routes. Any
// other request of /api/v1 is the canonical surface's.

// alumiaOrgHeader names the tenant of an Alumia request by its slug.
const alumiaOrgHeader = "X-Alumia-Org"

// alumiaKeyPrefix starts both kinds of Alumia key (alm_live_, alm_test_).
const alumiaKeyPrefix = "alm_"

// isAlumia reports whether a request is Alumia's (see above). It costs no lookup, so that an
// error before authentication (a missing key) is already in Alumia's shape.
func isAlumia(r *http.Request) bool {
	if r.Header.Get(alumiaOrgHeader) != "" {
		return true
	}
	return strings.HasPrefix(credential(r, false), alumiaKeyPrefix)
}

// alumiaCodes are Alumia's names of the statuses its clients see (the document's
// "401 UNAUTHORIZED", "402 PAYMENT_REQUIRED", "429 TOO_MANY_REQUESTS", and the rest in the
// same vocabulary).
var alumiaCodes = map[int]string{
	http.StatusBadRequest:            "BAD_REQUEST",
	http.StatusUnauthorized:          "UNAUTHORIZED",
	http.StatusPaymentRequired:       "PAYMENT_REQUIRED",
	http.StatusForbidden:             "FORBIDDEN",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusMethodNotAllowed:      "METHOD_NOT_SUPPORTED",
	http.StatusConflict:              "CONFLICT",
	http.StatusRequestEntityTooLarge: "PAYLOAD_TOO_LARGE",
	http.StatusUnsupportedMediaType:  "UNSUPPORTED_MEDIA_TYPE",
	http.StatusUnprocessableEntity:   "UNPROCESSABLE_CONTENT",
	http.StatusTooManyRequests:       "TOO_MANY_REQUESTS",
	http.StatusInternalServerError:   "INTERNAL_SERVER_ERROR",
	http.StatusBadGateway:            "BAD_GATEWAY",
	http.StatusServiceUnavailable:    "SERVICE_UNAVAILABLE",
	http.StatusGatewayTimeout:        "GATEWAY_TIMEOUT",
}

// alumiaCode is the code of a status in Alumia's vocabulary.
func alumiaCode(status int) string {
	if c, ok := alumiaCodes[status]; ok {
		return c
	}
	if status >= 500 {
		return "INTERNAL_SERVER_ERROR"
	}
	return "BAD_REQUEST"
}

// writeAlumiaError answers in the canonical envelope with Alumia's code:
// {"error":{"code":"UNAUTHORIZED","message","details":[{"field","message"}]}}.
func writeAlumiaError(w http.ResponseWriter, e *Error) {
	c := *e
	c.Code = alumiaCode(e.Status)
	writeError(w, &c)
}

// orgTTL bounds how long a slug is trusted to name the tenant it named: a rename or
// deletion on another node is seen within it (this node's own at once).
const orgTTL = 30 * time.Second

// alumiaOrgs caches tenants by slug, so that X-Alumia-Org costs no query per request.
type alumiaOrgs struct {
	mu    sync.RWMutex
	bySlg map[string]orgEntry
}

type orgEntry struct {
	tenantID string
	fetched  time.Time
}

// forgetOrgs drops the slugs and balances known, after a tenant was changed or deleted on
// this node.
func (s *Server) forgetOrgs() {
	s.orgs.mu.Lock()
	clear(s.orgs.bySlg)
	s.orgs.mu.Unlock()
	s.balances.Clear()
}

// orgTenant returns the ID of the tenant of a slug.
func (s *Server) orgTenant(ctx context.Context, slug string) (string, error) {
	now := time.Now()
	s.orgs.mu.RLock()
	e, ok := s.orgs.bySlg[slug]
	s.orgs.mu.RUnlock()
	if ok && now.Sub(e.fetched) < orgTTL {
		return e.tenantID, nil
	}
	t, err := s.store.TenantBySlug(ctx, slug)
	if err != nil {
		return "", err
	}
	s.orgs.mu.Lock()
	if s.orgs.bySlg == nil || len(s.orgs.bySlg) >= 10_000 {
		s.orgs.bySlg = map[string]orgEntry{}
	}
	s.orgs.bySlg[slug] = orgEntry{tenantID: t.ID, fetched: now}
	s.orgs.mu.Unlock()
	return t.ID, nil
}

// applyOrg makes the principal act in the tenant X-Alumia-Org names. A key or user of
// another tenant than the one named is answered 404, as an unknown slug is, so that a slug
// reveals nothing; an operator may name any tenant. Without the header the principal
// stays in its own tenant.
func (s *Server) applyOrg(r *http.Request, p *Principal) error {
	slug := strings.TrimSpace(r.Header.Get(alumiaOrgHeader))
	if slug == "" {
		return nil
	}
	notFound := &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "Organization " + strconv.Quote(slug) + " not found",
		Details: []store.FieldError{{Field: alumiaOrgHeader, Message: "names no organization this key belongs to"}}}
	if len(slug) > 63 {
		return notFound
	}
	id, err := s.orgTenant(r.Context(), slug)
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if id != p.TenantID {
		if !p.Operator {
			return notFound
		}
		p.TenantID = id
	}
	return nil
}
