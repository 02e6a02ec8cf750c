package api

import (
	"context"
	"encoding/json"

	"github.com/switchboard-go/switchboard/realtime"
)

// revoke makes a credential stop working everywhere: on this node at once (its caches, and
// every long-lived connection it holds, through the one registry they all join), and on the
// other nodes as soon as the cluster's event relay brings them the revocation. Every path
// that revokes a key or deletes a user or tenant comes through here.
func (s *Server) revoke(ctx context.Context, rv realtime.Revocation) {
	n := s.applyRevocation(rv)
	s.log.Info("credential revoked", "tenant_id", rv.TenantID, "key_id", rv.KeyID, "user_id", rv.UserID,
		"family_id", rv.FamilyID, "reason", rv.Reason, "connections_closed", n)
	s.publish(ctx, rv.TenantID, realtime.TenantTopic, realtime.TypeCredentialRevoked, rv)
}

// applyRevocation acts on a revocation, this node's or another's, and returns how many of
// this node's connections it ended.
func (s *Server) applyRevocation(rv realtime.Revocation) int {
	s.auth.Revoked(rv)
	return s.conns.Revoke(rv)
}

// followRevocations acts on the revocations other nodes publish (and, harmlessly again,
// on this node's own).
func (s *Server) followRevocations(hub *realtime.Hub) {
	hub.Observe(realtime.TypeCredentialRevoked, func(ev *realtime.Event) {
		var rv realtime.Revocation
		if err := json.Unmarshal(ev.Data, &rv); err != nil {
			s.log.Warn("credential revocation not understood", "event_id", ev.ID, "err", err)
			return
		}
		// The event's tenant is the revoked credential's: a revocation never reaches past it.
		rv.TenantID = ev.TenantID
		s.applyRevocation(rv)
	})
}
