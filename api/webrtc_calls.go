package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/store"
)

// webrtcCalls answers browsers' calls: an rtc.Peer carried by the node's call.Node, which
// gives it the life of a call (the same as a media-stream socket's).
type webrtcCalls struct {
	calls  *callpkg.Node
	engine *rtc.Engine
	log    *slog.Logger

	mu    sync.Mutex
	peers map[string]*rtc.Peer
}

// NewWebRTCCalls is the WebRTCCalls of a node: browsers' peers, answered by engine, run as
// calls of calls.
func NewWebRTCCalls(calls *callpkg.Node, engine *rtc.Engine, log *slog.Logger) WebRTCCalls {
	return &webrtcCalls{calls: calls, engine: engine, log: log, peers: map[string]*rtc.Peer{}}
}

// StartWebRTCCall implements WebRTCCalls.
func (w *webrtcCalls) StartWebRTCCall(ctx context.Context, tenantID string, req WebRTCSessionRequest, from string) (*StartedWebRTCCall, error) {
	spec := callpkg.Spec{TenantID: tenantID, AgentID: req.AgentID, Destination: req.Destination, Transport: "webrtc",
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
		peer.Hangup(string(callpkg.ReasonError))
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
	return &StartedWebRTCCall{ID: c.ID(), Answer: peer.Answer(), Done: c.Done(), End: c.End}, nil
}

// peer is the peer of a live WebRTC call of the tenant.
func (w *webrtcCalls) peer(tenantID, id string) (*callpkg.Call, *rtc.Peer) {
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

// HasWebRTCCall implements WebRTCCalls.
func (w *webrtcCalls) HasWebRTCCall(tenantID, id string) bool {
	_, p := w.peer(tenantID, id)
	return p != nil
}

// TrickleWebRTCCall implements WebRTCCalls.
func (w *webrtcCalls) TrickleWebRTCCall(ctx context.Context, tenantID, id string, frag []byte) ([]byte, error) {
	c, p := w.peer(tenantID, id)
	if p == nil {
		return nil, store.ErrNotFound
	}
	answer, err := p.AddICECandidates(ctx, frag)
	if answer != nil {
		noteRestarts(c, p)
	}
	return answer, err
}

// noteRestarts keeps on the call's record how many times its browser restarted ICE.
func noteRestarts(c *callpkg.Call, p *rtc.Peer) {
	if n := p.Restarts(); n > 0 {
		c.SetMetadata("ice_restarts", n)
	}
}

// RenegotiateWebRTCCall implements WebRTCCalls.
func (w *webrtcCalls) RenegotiateWebRTCCall(ctx context.Context, tenantID, id, offer string) (string, error) {
	c, p := w.peer(tenantID, id)
	if p == nil {
		return "", store.ErrNotFound
	}
	answer, err := p.Renegotiate(ctx, offer)
	if errors.Is(err, rtc.ErrEnded) {
		return "", store.ErrNotFound
	}
	if err == nil {
		noteRestarts(c, p)
	}
	return answer, err
}

// HangupWebRTCCall implements WebRTCCalls: the call ends as the caller's hang-up, and it
// returns once the call's record is final.
func (w *webrtcCalls) HangupWebRTCCall(ctx context.Context, tenantID, id string) error {
	c, _ := w.peer(tenantID, id)
	if c == nil {
		return store.ErrNotFound
	}
	c.End(callpkg.ReasonCallerHangup)
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	return nil
}

// ICEServers implements WebRTCCalls.
func (w *webrtcCalls) ICEServers() []rtc.ICEServer { return w.engine.ICEServers() }
