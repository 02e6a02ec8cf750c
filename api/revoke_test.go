package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/realtime"
)

// revokeBound is the promise: a revoked credential's streams end within a second of the
// revocation's answer.
const revokeBound = time.Second

// liveStreams are an event stream and an events socket opened with one credential, both
// watching the tenant topic.
type liveStreams struct {
	t   *testing.T
	sse *sseConn
	ws  *wsPeer
}

// openLive opens both streams with the header h and checks an event reaches each.
func (ss *streamServer) openLive(t *testing.T, tenantID string, h http.Header) *liveStreams {
	t.Helper()
	c, r := ss.openSSE(t, "topics=tenant", h)
	if r.Status != http.StatusOK {
		t.Fatalf("open the event stream: %d %s", r.Status, r.Body)
	}
	if m := c.next(); m.Retry == "" {
		t.Fatalf("the stream does not begin with a retry hint: %+v", m)
	}
	p, _, err := ss.dialWS(t, "", h, nil)
	if err != nil {
		t.Fatalf("dial the events socket: %v", err)
	}
	p.startReading()
	p.subscribe("1", "tenant")
	if err := ss.Hub.Publish(tenantID, "tenant", "test.before", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if ev := c.nextEvent(); ev.Type != "test.before" {
		t.Fatalf("SSE event %s, want test.before", ev.Type)
	}
	if ev := p.nextEvent(); ev.Type != "test.before" {
		t.Fatalf("socket event %s, want test.before", ev.Type)
	}
	return &liveStreams{t: t, sse: c, ws: p}
}

// wantRevoked waits for both streams to end as revoked for reason, within revokeBound of
// since, with no event after the revocation (test.before and test.alive are published
// before it): the event stream with a final error event naming the reason, the socket with
// close code 4001 and the reason.
func (l *liveStreams) wantRevoked(reason string, since time.Time) {
	t := l.t
	t.Helper()
	var last sseMsg
	for m := range l.sse.msgs {
		if m.Data == "" && len(m.Comments) > 0 || m.Event == "test.before" || m.Event == "test.alive" {
			continue // a heartbeat, or an event published before the revocation
		}
		if m.Event != "error" {
			t.Fatalf("message on the event stream of a revoked credential: %+v", m)
		}
		last = m
	}
	sseEnd := time.Since(since)
	if !errors.Is(l.sse.err, io.EOF) {
		t.Fatalf("the event stream ended with %v, want the end of the body", l.sse.err)
	}
	var e wireError
	if err := json.Unmarshal([]byte(last.Data), &e); err != nil || last.Event != "error" || e.Code != "credential_revoked" || !strings.Contains(e.Message, reason) {
		t.Fatalf("last message of the event stream %+v, want an error event credential_revoked naming %q", last, reason)
	}
	for f := range l.ws.frames {
		if f.Event != nil && (f.Event.Type == "test.before" || f.Event.Type == "test.alive") {
			continue
		}
		t.Fatalf("frame on the socket of a revoked credential: %s", f.Raw)
	}
	wsEnd := time.Since(since)
	var ce websocket.CloseError
	if !errors.As(l.ws.err, &ce) || ce.Code != realtime.CloseRevoked || ce.Reason != reason {
		t.Fatalf("socket ended with %v, want close %d %q", l.ws.err, realtime.CloseRevoked, reason)
	}
	if sseEnd > revokeBound || wsEnd > revokeBound {
		t.Fatalf("streams ended %v (SSE) and %v (WebSocket) after the revocation, want within %v", sseEnd, wsEnd, revokeBound)
	}
	t.Logf("revoked (%s): SSE ended after %v, WebSocket after %v", reason, sseEnd, wsEnd)
}

// wantAlive checks both streams still deliver.
func (l *liveStreams) wantAlive(ss *streamServer, tenantID string) {
	l.t.Helper()
	if err := ss.Hub.Publish(tenantID, "tenant", "test.alive", map[string]any{}); err != nil {
		l.t.Fatal(err)
	}
	for _, next := range []func() wireEvent{l.sse.nextEvent, l.ws.nextEvent} {
		for {
			ev := next()
			switch ev.Type {
			case realtime.TypeCredentialRevoked, "test.before", "test.after":
				continue // another credential's revocation, seen by the tenant, or earlier events
			}
			if ev.Type != "test.alive" {
				l.t.Fatalf("event %s, want test.alive", ev.Type)
			}
			break
		}
	}
}

// login signs a user in and returns the access and refresh tokens.
func (ts *testServer) login(t *testing.T, email, password string) (access, refresh string) {
	t.Helper()
	r := ts.do(http.MethodPost, "/api/v1/auth/login", "", obj{"email": email, "password": password})
	wantStatus(t, r, http.StatusOK, "login")
	m := r.JSON(t)
	return m["access_token"].(string), m["refresh_token"].(string)
}

// TestRevokeKeyEndsStreams: revoking a key ends its open event stream and socket within a
// second (an error event; close 4001), and nothing after; another key's streams go on.
func TestRevokeKeyEndsStreams(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	admin := ss.newKey("acme", "admin", 0, "admin")
	tenant := ss.get("/api/v1/auth/me", admin)["tenant_id"].(string)
	created := ss.create("/api/v1/keys", admin, obj{"name": "dashboard", "scopes": arr{"read"}})
	key, keyID := created["key"].(string), created["id"].(string)

	doomed := ss.openLive(t, tenant, hdr("X-API-Key", key))
	other := ss.openLive(t, tenant, hdr("X-API-Key", admin))

	wantStatus(t, ss.do(http.MethodDelete, "/api/v1/keys/"+keyID, admin, nil), http.StatusNoContent, "revoke the key")
	revoked := time.Now()
	if err := ss.Hub.Publish(tenant, "tenant", "test.after", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	doomed.wantRevoked(realtime.ReasonKeyRevoked, revoked)
	other.wantAlive(ss, tenant)
	wantError(t, ss.do(http.MethodGet, "/api/v1/agents", key, nil), http.StatusUnauthorized, "authentication_error", "")
	ss.waitOpen(t, 2)

	// A revoked key cannot open a stream again.
	_, r := ss.openSSE(t, "topics=tenant", hdr("X-API-Key", key))
	wantError(t, r, http.StatusUnauthorized, "authentication_error", "")
}

// TestDeleteUserEndsStreams: deleting a user ends the streams its access token opened and
// the token stops working at once.
func TestDeleteUserEndsStreams(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	userID := ss.createID("/api/v1/users", ss.Key, obj{"email": "ops@example.com", "password": "correct horse battery", "scopes": arr{"read"}})
	access, _ := ss.login(t, "ops@example.com", "correct horse battery")
	wantStatus(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(access)), http.StatusOK, "the user's token")

	doomed := ss.openLive(t, ss.Default.ID, bearer(access))
	other := ss.openLive(t, ss.Default.ID, hdr("X-API-Key", ss.Key))

	wantStatus(t, ss.do(http.MethodDelete, "/api/v1/users/"+userID, ss.Key, nil), http.StatusNoContent, "delete the user")
	doomed.wantRevoked(realtime.ReasonUserDeleted, time.Now())
	other.wantAlive(ss, ss.Default.ID)
	wantError(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(access)), http.StatusUnauthorized, "authentication_error", "")
}

// TestDeleteTenantEndsStreams: deleting a tenant ends the streams of its keys and users, and
// their credentials stop working at once; the operator's streams go on.
func TestDeleteTenantEndsStreams(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	tenant := ss.createID("/api/v1/tenants", ss.Key, obj{"slug": "doomed"})
	admin := ss.newKey("doomed", "admin", 0, "admin")
	ss.create("/api/v1/users", admin, obj{"email": "owner@example.com", "password": "correct horse battery", "scopes": arr{"read"}})
	access, _ := ss.login(t, "owner@example.com", "correct horse battery")

	byKey := ss.openLive(t, tenant, hdr("X-API-Key", admin))
	byUser := ss.openLive(t, tenant, bearer(access))
	other := ss.openLive(t, ss.Default.ID, hdr("X-API-Key", ss.Key))

	wantStatus(t, ss.do(http.MethodDelete, "/api/v1/tenants/"+tenant, ss.Key, nil), http.StatusNoContent, "delete the tenant")
	deleted := time.Now()
	byKey.wantRevoked(realtime.ReasonTenantDeleted, deleted)
	byUser.wantRevoked(realtime.ReasonTenantDeleted, deleted)
	other.wantAlive(ss, ss.Default.ID)
	wantError(t, ss.do(http.MethodGet, "/api/v1/agents", admin, nil), http.StatusUnauthorized, "authentication_error", "")
	wantError(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(access)), http.StatusUnauthorized, "authentication_error", "")
}

// TestRefreshTokenReuse: a refresh token used a second time revokes its whole family: the
// token it was traded for, the family's access tokens and their streams. Another login of
// the same user (another family) goes on.
func TestRefreshTokenReuse(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	ss.create("/api/v1/users", ss.Key, obj{"email": "ops@example.com", "password": "correct horse battery", "scopes": arr{"read"}})
	access1, refresh1 := ss.login(t, "ops@example.com", "correct horse battery")
	otherAccess, otherRefresh := ss.login(t, "ops@example.com", "correct horse battery")
	refreshWith := func(rt string) response {
		return ss.do(http.MethodPost, "/api/v1/auth/refresh", "", obj{"refresh_token": rt})
	}
	r := refreshWith(refresh1)
	wantStatus(t, r, http.StatusOK, "refresh")
	access2, refresh2 := r.JSON(t)["access_token"].(string), r.JSON(t)["refresh_token"].(string)
	for _, tok := range []string{access1, access2} {
		wantStatus(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(tok)), http.StatusOK, "an access token of the family")
	}
	doomed := ss.openLive(t, ss.Default.ID, bearer(access2))
	other := ss.openLive(t, ss.Default.ID, bearer(otherAccess))

	wantError(t, refreshWith(refresh1), http.StatusUnauthorized, "authentication_error", "")
	doomed.wantRevoked(realtime.ReasonTokenReused, time.Now())
	other.wantAlive(ss, ss.Default.ID)
	for _, tok := range []string{access1, access2} {
		wantError(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(tok)), http.StatusUnauthorized, "authentication_error", "")
	}
	wantError(t, refreshWith(refresh2), http.StatusUnauthorized, "authentication_error", "")
	// The other family is untouched.
	wantStatus(t, ss.request(http.MethodGet, "/api/v1/agents", nil, bearer(otherAccess)), http.StatusOK, "another login's token")
	wantStatus(t, refreshWith(otherRefresh), http.StatusOK, "another login's refresh token")
}

// TestRevalidateEndsStreams: a revocation this node never heard of (written by another
// node whose event was lost) still ends the key's streams at the next revalidation; streams
// of valid credentials stay.
func TestRevalidateEndsStreams(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	admin := ss.newKey("acme", "admin", 0, "admin")
	tenant := ss.tenantID(admin)
	created := ss.create("/api/v1/keys", admin, obj{"name": "dashboard", "scopes": arr{"read"}})
	doomed := ss.openLive(t, tenant, hdr("X-API-Key", created["key"].(string)))
	other := ss.openLive(t, tenant, hdr("X-API-Key", admin))

	if _, err := ss.Store.RevokeAPIKey(context.Background(), tenant, created["id"].(string)); err != nil {
		t.Fatal(err)
	}
	other.wantAlive(ss, tenant) // nothing told this node yet
	ss.API.Revalidate(context.Background())
	doomed.wantRevoked(realtime.ReasonKeyRevoked, time.Now())
	other.wantAlive(ss, tenant)
}
