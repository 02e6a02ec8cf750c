package realtime

import (
	"errors"
	"sync"

	"github.com/coder/websocket"
)

// CloseRevoked is the close code of a socket whose credential stopped being valid while it
// was open: the key was revoked, or its user or tenant deleted. The close reason says which.
// A client must not reconnect with the same credential.
const CloseRevoked websocket.StatusCode = 4001

// TypeCredentialRevoked is the event that carries a Revocation between the nodes of a
// cluster (on the tenant topic of the revoked credential's tenant); every node ends the
// connections it matches.
const TypeCredentialRevoked = "credential.revoked"

// Reasons a credential stops being valid, sent to the client as the WebSocket close reason
// and in the final SSE error event.
const (
	ReasonKeyRevoked    = "credential revoked"
	ReasonUserDeleted   = "user deleted"
	ReasonTenantDeleted = "tenant deleted"
	ReasonTokenReused   = "refresh token reused"
)

// ErrRevoked is the end of a stream whose credential was revoked (see RevokedError).
var ErrRevoked = errors.New("realtime: credential revoked")

// RevokedError ends a connection whose credential was revoked; Reason is one of the Reason
// constants.
type RevokedError struct{ Reason string }

func (e *RevokedError) Error() string { return "realtime: " + e.Reason }
func (e *RevokedError) Unwrap() error { return ErrRevoked }

// Credential names who holds a long-lived connection: the tenant, and the key or user (with
// the refresh-token family of the user's access token) that authenticated it.
type Credential struct {
	TenantID string
	KeyID    string
	UserID   string
	FamilyID string
}

// Revocation names credentials whose connections must end. Every non-empty ID selects:
// TenantID alone ends all of the tenant's connections, KeyID a key's, UserID a user's,
// FamilyID those opened with access tokens of one refresh-token family.
type Revocation struct {
	TenantID string `json:"tenant_id"`
	KeyID    string `json:"key_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	FamilyID string `json:"family_id,omitempty"`
	Reason   string `json:"reason"`
}

// matches reports whether the revocation ends a connection of c.
func (rv Revocation) matches(c Credential) bool {
	switch {
	case rv.TenantID != "" && rv.TenantID != c.TenantID:
		return false
	case rv.KeyID != "":
		return rv.KeyID == c.KeyID
	case rv.UserID != "" || rv.FamilyID != "":
		return (rv.UserID == "" || rv.UserID == c.UserID) && (rv.FamilyID == "" || rv.FamilyID == c.FamilyID)
	}
	return rv.TenantID != ""
}

// Connections is the node's one registry of authenticated long-lived connections (event
// streams, event sockets, media-stream sockets). Each registers under its credential with
// the function that ends it; whatever revokes a credential (a key revoked, a user or
// tenant deleted, a refresh token reused), here or on another node, calls Revoke, so that no
// kind of connection can outlive its credential by being forgotten.
type Connections struct {
	mu   sync.Mutex
	live map[*registration]struct{}
}

type registration struct {
	cred Credential
	end  func(reason string)
}

// NewConnections returns an empty registry.
func NewConnections() *Connections {
	return &Connections{live: map[*registration]struct{}{}}
}

// Register records a connection of c; end is called (at most once, and must not block) when
// the credential is revoked. The connection calls the returned function when it ends.
func (cs *Connections) Register(c Credential, end func(reason string)) (unregister func()) {
	r := &registration{cred: c, end: end}
	cs.mu.Lock()
	cs.live[r] = struct{}{}
	cs.mu.Unlock()
	return func() {
		cs.mu.Lock()
		delete(cs.live, r)
		cs.mu.Unlock()
	}
}

// Revoke ends every registered connection the revocation matches and returns how many.
func (cs *Connections) Revoke(rv Revocation) int {
	var ended []*registration
	cs.mu.Lock()
	for r := range cs.live {
		if rv.matches(r.cred) {
			ended = append(ended, r)
			delete(cs.live, r)
		}
	}
	cs.mu.Unlock()
	reason := rv.Reason
	if reason == "" {
		reason = ReasonKeyRevoked
	}
	for _, r := range ended {
		r.end(reason)
	}
	return len(ended)
}

// Credentials returns the distinct credentials of the registered connections.
func (cs *Connections) Credentials() []Credential {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	seen := make(map[Credential]bool, len(cs.live))
	out := make([]Credential, 0, len(cs.live))
	for r := range cs.live {
		if !seen[r.cred] {
			seen[r.cred] = true
			out = append(out, r.cred)
		}
	}
	return out
}

// Len reports how many connections are registered.
func (cs *Connections) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.live)
}
