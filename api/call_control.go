package api

import (
	"context"
	"errors"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// NodeCalls is the CallControl of a node: it steers the node's live calls of every
// transport through live, the node's registry; a call not live here goes to the SIP server,
// which says why (ended, carried by another node) and places the outbound ones.
func NodeCalls(sipSrv *sip.Server, live *callpkg.Registry) CallControl {
	return nodeCalls{sip: sipSrv, live: live}
}

type nodeCalls struct {
	sip  *sip.Server
	live *callpkg.Registry
}

// TrunksChanged has the SIP server follow a trunk written through the API at once: its
// registration starts, restarts or stops.
func (n nodeCalls) TrunksChanged() { n.sip.TrunksChanged() }

// Dial implements CallControl.
func (n nodeCalls) Dial(ctx context.Context, c *store.Call) error { return n.sip.Dial(ctx, c) }

// Hangup implements CallControl: a live call ends as api-hangup (canceled while it rings,
// whatever carries it), and Hangup returns once its record is final.
func (n nodeCalls) Hangup(ctx context.Context, tenantID, callID string) error {
	if c := n.live.Get(tenantID, callID); c != nil {
		c.HangUp(ctx, callpkg.ReasonAPIHangup)
		return nil
	}
	return n.sip.Hangup(ctx, tenantID, callID)
}

// Record implements CallControl.
func (n nodeCalls) Record(ctx context.Context, tenantID, callID string) (store.Call, bool) {
	if c := n.live.Get(tenantID, callID); c != nil {
		return callpkg.LiveRecord(ctx, c)
	}
	return store.Call{}, false
}

// Transfer implements CallControl; a web call is not transferred.
func (n nodeCalls) Transfer(ctx context.Context, tenantID, callID, to string) error {
	c := n.live.Get(tenantID, callID)
	if c == nil {
		return n.sip.Transfer(ctx, tenantID, callID, to)
	}
	err := c.Transfer(ctx, to)
	if errors.Is(err, callpkg.ErrNoTransfer) {
		return &store.ConflictError{Field: "id", Message: err.Error()}
	}
	return err
}
