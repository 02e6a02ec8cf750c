package sip

import (
	"context"
	"errors"
	"strconv"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// Hangup ends a live call from the API: the far end gets a BYE.
func (s *Server) Hangup(ctx context.Context, tenantID, callID string) error {
	c, err := s.live(ctx, tenantID, callID)
	if err != nil {
		return err
	}
	c.HangUp(ctx, call.ReasonAPIHangup)
	return nil
}

// Record is the record of a call of the tenant this server carries, as it holds it (the
// store's copy is written behind the call); false when it carries no such call, or the
// call has ended (see call.LiveRecord).
func (s *Server) Record(ctx context.Context, tenantID, callID string) (store.Call, bool) {
	if c, ok := s.calls.node.Get(tenantID, callID).(*Call); ok && c.srv == s {
		return call.LiveRecord(ctx, c)
	}
	return store.Call{}, false
}

// Transfer hands a live call's far end to another party (blind transfer).
func (s *Server) Transfer(ctx context.Context, tenantID, callID, to string) error {
	c, err := s.live(ctx, tenantID, callID)
	if err != nil {
		return err
	}
	return c.Transfer(ctx, to)
}

// live finds a call this node carries; a call of the tenant that has ended, or that
// another node carries, is an ErrCallEnded or ErrCallElsewhere; anything else is not found.
func (s *Server) live(ctx context.Context, tenantID, callID string) (*Call, error) {
	if c, ok := s.calls.node.Get(tenantID, callID).(*Call); ok && c.srv == s {
		return c, nil
	}
	if s.cfg.Store == nil {
		return nil, ErrCallNotFound
	}
	rec, err := store.Get[store.Call](ctx, s.cfg.Store, tenantID, callID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrCallNotFound
	}
	if err != nil {
		return nil, err
	}
	if rec.EndedAt != nil {
		return nil, &CallError{Err: ErrCallEnded, Reason: "the call has ended (" + rec.Status + ")"}
	}
	return nil, &CallError{Err: ErrCallElsewhere, Reason: "the call is carried by node " + strconv.Quote(rec.Node) + ", not this one", Node: rec.Node}
}
