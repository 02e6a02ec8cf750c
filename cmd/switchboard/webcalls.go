package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// Web calls are the calls that reach Switchboard over something other than SIP: a browser
// over WebRTC, a media-stream socket. Their transport hands a media.Stream to the node's
// call.Node, which gives it the life of a call; what is here adapts the transports and the
// API to it.

// webrtcCalls answers browsers' calls: an rtc.Peer carried by the web-call lifecycle.
// It implements api.WebRTCCalls.
type webrtcCalls struct {
	calls  *call.Node
	engine *rtc.Engine
	log    *slog.Logger

	mu    sync.Mutex
	peers map[string]*rtc.Peer
}

func newWebRTCCalls(calls *call.Node, engine *rtc.Engine, log *slog.Logger) *webrtcCalls {
	return &webrtcCalls{calls: calls, engine: engine, log: log, peers: map[string]*rtc.Peer{}}
}

// StartWebRTCCall implements api.WebRTCCalls.
func (w *webrtcCalls) StartWebRTCCall(ctx context.Context, tenantID string, req api.WebRTCSessionRequest, from string) (*api.StartedWebRTCCall, error) {
	spec := call.Spec{TenantID: tenantID, AgentID: req.AgentID, Destination: req.Destination,
		From: from, Codec: "opus", Metadata: req.Metadata}
	// A call that cannot go where it is asked to costs no peer.
	routed, err := w.calls.Route(ctx, spec)
	if err != nil {
		return nil, err
	}
	peer, err := w.engine.Answer(ctx, req.SDP, w.log.With("tenant_id", tenantID, "from", from))
	if err != nil {
		return nil, err
	}
	spec.Stream, spec.Hangup, spec.Ready, spec.OnEvent = peer, peer.Hangup, peer.Connected(), peer.SendEvent
	c, err := routed.Start(ctx, spec)
	if err != nil {
		peer.Hangup(string(call.ReasonError))
		return nil, err
	}
	w.mu.Lock()
	w.peers[c.ID()] = peer
	w.mu.Unlock()
	go func() {
		<-c.Done()
		w.mu.Lock()
		delete(w.peers, c.ID())
		w.mu.Unlock()
	}()
	return &api.StartedWebRTCCall{ID: c.ID(), Answer: peer.Answer(), Done: c.Done(), End: c.End}, nil
}

// peer is the peer of a live WebRTC call of the tenant.
func (w *webrtcCalls) peer(tenantID, id string) (*call.Call, *rtc.Peer) {
	c := w.calls.Get(tenantID, id)
	if c == nil {
		return nil, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.peers[id]
	if p == nil {
		return nil, nil
	}
	return c, p
}

// HasWebRTCCall implements api.WebRTCCalls.
func (w *webrtcCalls) HasWebRTCCall(tenantID, id string) bool {
	_, p := w.peer(tenantID, id)
	return p != nil
}

// TrickleWebRTCCall implements api.WebRTCCalls.
func (w *webrtcCalls) TrickleWebRTCCall(ctx context.Context, tenantID, id string, frag []byte) error {
	_, p := w.peer(tenantID, id)
	if p == nil {
		return store.ErrNotFound
	}
	return p.AddICECandidates(frag)
}

// HangupWebRTCCall implements api.WebRTCCalls: the call ends as the caller's hang-up, and
// it returns once the call's record is final.
func (w *webrtcCalls) HangupWebRTCCall(ctx context.Context, tenantID, id string) error {
	c, _ := w.peer(tenantID, id)
	if c == nil {
		return store.ErrNotFound
	}
	c.End(call.ReasonCallerHangup)
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	return nil
}

// ICEServers implements api.WebRTCCalls.
func (w *webrtcCalls) ICEServers() []rtc.ICEServer { return w.engine.ICEServers() }

// nodeCalls steers the node's live calls for the API (hang up, transfer): those of every
// transport through the node's registry; a call not live here through the SIP server, which
// says why (ended, carried by another node) and places the outbound ones.
type nodeCalls struct {
	sip  *sip.Server
	live *call.Registry
}

// Dial implements api.CallControl.
func (n nodeCalls) Dial(ctx context.Context, c *store.Call) error { return n.sip.Dial(ctx, c) }

// Hangup implements api.CallControl: a live call ends as api-hangup (canceled while it
// rings, whatever carries it), and Hangup returns once its record is final.
func (n nodeCalls) Hangup(ctx context.Context, tenantID, callID string) error {
	if c := n.live.Get(tenantID, callID); c != nil {
		c.HangUp(ctx, call.ReasonAPIHangup)
		return nil
	}
	return n.sip.Hangup(ctx, tenantID, callID)
}

// Transfer implements api.CallControl; a web call is not transferred.
func (n nodeCalls) Transfer(ctx context.Context, tenantID, callID, to string) error {
	c := n.live.Get(tenantID, callID)
	if c == nil {
		return n.sip.Transfer(ctx, tenantID, callID, to)
	}
	err := c.Transfer(ctx, to)
	if errors.Is(err, call.ErrNoTransfer) {
		return &store.ConflictError{Field: "id", Message: err.Error()}
	}
	return err
}
