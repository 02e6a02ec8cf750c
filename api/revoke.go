package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// revoke makes a credential stop working everywhere: on this node at once (its caches, and
// every long-lived connection it holds, through the one registry they all join), and on the
// other nodes as soon as the cluster's event relay brings them the revocation. Every path
// that revokes a key or deletes a user or tenant comes through here.
// Several credentials revoked together (a key and the keys it made) all end their
// connections before any revocation is published, so that none of them sees another's.
func (s *Server) revoke(ctx context.Context, rvs ...realtime.Revocation) {
	for _, rv := range rvs {
		n := s.applyRevocation(rv)
		s.log.Info("credential revoked", "tenant_id", rv.TenantID, "key_id", rv.KeyID, "user_id", rv.UserID,
			"family_id", rv.FamilyID, "reason", rv.Reason, "connections_closed", n)
	}
	for _, rv := range rvs {
		s.publish(ctx, rv.TenantID, realtime.TenantTopic, realtime.TypeCredentialRevoked, rv)
	}
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

// RevalidateEvery is how often RunRevalidation checks the credentials of open connections.
const RevalidateEvery = 15 * time.Second

// RunRevalidation checks, every interval until ctx ends, the credential of every open
// long-lived connection against the database, and ends those no longer valid: a key that
// expired, or a revocation this node never heard of (its event lost with the relay's
// database connection). It bounds how long a connection can outlive its credential whatever
// happens to the cluster's messages; revocations normally arrive within milliseconds.
func (s *Server) RunRevalidation(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Revalidate(ctx)
		}
	}
}

// Revalidate checks the credential of every open connection once (see RunRevalidation).
func (s *Server) Revalidate(ctx context.Context) {
	now := time.Now()
	for _, c := range s.conns.Credentials() {
		rv, err := s.stillValid(ctx, c, now)
		if err != nil {
			// The database is away: the connections stay until it can be asked.
			s.log.Warn("credentials of open streams not checked", "err", err)
			return
		}
		if rv != nil {
			s.log.Info("open streams of a credential no longer valid ended", "tenant_id", rv.TenantID, "key_id", rv.KeyID,
				"user_id", rv.UserID, "reason", rv.Reason, "connections_closed", s.applyRevocation(*rv))
		}
	}
}

// stillValid answers the revocation that c calls for, or nil while it is valid.
func (s *Server) stillValid(ctx context.Context, c realtime.Credential, now time.Time) (*realtime.Revocation, error) {
	switch {
	case c.KeyID != "":
		k, err := store.Get[store.APIKey](ctx, s.store, c.TenantID, c.KeyID)
		if errors.Is(err, store.ErrNotFound) || err == nil && !k.Usable(now) {
			return &realtime.Revocation{TenantID: c.TenantID, KeyID: c.KeyID, Reason: realtime.ReasonKeyRevoked}, nil
		}
		if err != nil {
			return nil, err
		}
		// A key made by a key is no better than its makers: one of them expired ends it too.
		makers, err := s.store.APIKeyMakers(ctx, k)
		if errors.Is(err, store.ErrKeyTooDeep) {
			return &realtime.Revocation{TenantID: c.TenantID, KeyID: c.KeyID, Reason: realtime.ReasonKeyRevoked}, nil
		}
		if err != nil {
			return nil, err
		}
		for _, m := range makers {
			if !m.Usable(now) {
				return &realtime.Revocation{TenantID: c.TenantID, KeyID: c.KeyID, Reason: realtime.ReasonKeyRevoked}, nil
			}
		}
		return nil, nil
	case c.UserID != "":
		err := s.store.CheckUserSession(ctx, c.TenantID, c.UserID, c.FamilyID)
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		reason := realtime.ReasonUserDeleted
		if c.FamilyID != "" && s.store.CheckUserSession(ctx, c.TenantID, c.UserID, "") == nil {
			reason = realtime.ReasonTokenReused
		}
		return &realtime.Revocation{TenantID: c.TenantID, UserID: c.UserID, FamilyID: c.FamilyID, Reason: reason}, nil
	}
	return nil, nil
}
