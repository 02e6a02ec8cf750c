package api

import (
	"context"
	"errors"
	"log/slog"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// NodeCalls is the CallControl of a node: it steers the node's live calls of every
// transport through live, the node's registry; a call not live here goes to the SIP server,
// which says why (ended, carried by another node) and places the outbound ones. When hub
// joins nodes (Clustered), a call another node carries is steered there (call_cluster.go):
// node is this node's name, as call records give it.
func NodeCalls(sipSrv *sip.Server, live *callpkg.Registry, hub *realtime.Hub, node string, log *slog.Logger) CallControl {
	n := &nodeCalls{sip: sipSrv, live: live}
	n.cluster = newCluster(hub, node, n, log)
	return n
}

type nodeCalls struct {
	sip     *sip.Server
	live    *callpkg.Registry
	cluster *cluster
}

// TrunksChanged has the SIP server follow a trunk written through the API at once: its
// registration starts, restarts or stops.
func (n *nodeCalls) TrunksChanged() { n.sip.TrunksChanged() }

// Dial implements CallControl.
func (n *nodeCalls) Dial(ctx context.Context, c *store.Call) error { return n.sip.Dial(ctx, c) }

// Hangup implements CallControl: a live call ends as api-hangup (canceled while it rings,
// whatever carries it), on whichever node carries it, and Hangup returns once its record
// is final.
func (n *nodeCalls) Hangup(ctx context.Context, tenantID, callID string) error {
	return n.HangupAs(ctx, tenantID, callID, callpkg.ReasonAPIHangup)
}

// HangupAs ends a live call with reason wherever it is carried (a browser's DELETE reaching
// another node than its call's ends it as the caller's hang-up).
func (n *nodeCalls) HangupAs(ctx context.Context, tenantID, callID string, reason callpkg.Reason) error {
	err := n.hangup(ctx, tenantID, callID, reason)
	if node := elsewhere(err); node != "" && n.cluster != nil {
		return n.cluster.send(ctx, tenantID, callCommand{Node: node, CallID: callID, Action: "hangup", Reason: string(reason)})
	}
	return err
}

// hangup ends a call this node carries.
func (n *nodeCalls) hangup(ctx context.Context, tenantID, callID string, reason callpkg.Reason) error {
	if c := n.live.Get(tenantID, callID); c != nil {
		c.HangUp(ctx, reason)
		return nil
	}
	// Not here: the SIP server says whether it has ended, is elsewhere or is unknown.
	return n.sip.Hangup(ctx, tenantID, callID)
}

// Record implements CallControl.
func (n *nodeCalls) Record(ctx context.Context, tenantID, callID string) (store.Call, bool) {
	if c := n.live.Get(tenantID, callID); c != nil {
		return callpkg.LiveRecord(ctx, c)
	}
	return store.Call{}, false
}

// Transfer implements CallControl, on whichever node carries the call; a web call is not
// transferred.
func (n *nodeCalls) Transfer(ctx context.Context, tenantID, callID, to string) error {
	err := n.transfer(ctx, tenantID, callID, to)
	if node := elsewhere(err); node != "" && n.cluster != nil {
		return n.cluster.send(ctx, tenantID, callCommand{Node: node, CallID: callID, Action: "transfer", To: to})
	}
	return err
}

// transfer transfers a call this node carries.
func (n *nodeCalls) transfer(ctx context.Context, tenantID, callID, to string) error {
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
