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
	c.finish(call.ReasonAPIHangup, true)
	// Until the record is final: the API answers with it.
	select {
	case <-c.gone:
	case <-ctx.Done():
	}
	return nil
}

// Transfer hands a live call's far end to another party (blind transfer).
func (s *Server) Transfer(ctx context.Context, tenantID, callID, to string) error {
	c, err := s.live(ctx, tenantID, callID)
	if err != nil {
		return err
	}
	if c.session() == nil {
		return &CallError{Err: ErrNotAnswered, Reason: "the call is not answered yet; only an answered call can be transferred"}
	}
	if err := c.Transfer(ctx, to); err != nil {
		if errors.Is(err, ErrBadTarget) {
			return &CallError{Err: ErrBadTarget, Reason: "must be an E.164 number, a SIP user or a sip: URI"}
		}
		if errors.Is(err, ErrTransferRefused) {
			return &CallError{Err: ErrTransferRefused, Reason: err.Error()}
		}
		return err
	}
	return nil
}

// live finds a call this node carries; a call of the tenant that has ended, or that
// another node carries, is an ErrCallEnded or ErrCallElsewhere; anything else is not found.
func (s *Server) live(ctx context.Context, tenantID, callID string) (*Call, error) {
	if c := s.calls.get(callID); c != nil && c.tenantID == tenantID {
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
	return nil, &CallError{Err: ErrCallElsewhere, Reason: "the call is carried by node " + strconv.Quote(rec.Node) + ", not this one"}
}
