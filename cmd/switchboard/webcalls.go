package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// Web calls are the calls that reach Switchboard over something other than SIP: a browser
// over WebRTC, a media-stream socket. Their transport hands over a media.Stream; webCalls
// gives it the life of a call: the record in the store, the call.* events on call:{id} and
// the tenant topic, the agent or built-in destination that talks on it, and the record's
// final state (status, reason, duration, quality, report) when it ends.

// WebTarget is what talks on Switchboard's side of a web call: an agent or a built-in
// destination (echo, tone); exactly one.
type WebTarget struct {
	AgentID     string
	Destination string
}

// errNoTarget is a web call with neither or both of an agent and a destination.
var errNoTarget = errors.New("a call goes to an agent (agent_id) or a built-in destination (destination), exactly one")

// errUnknownDestination is a destination that is not a built-in one.
var errUnknownDestination = errors.New("unknown built-in destination")

// errNoTransfer: a web call has no telephone network to be transferred through.
var errNoTransfer = errors.New("a web call cannot be transferred")

// webCallSpec says what a transport hands to webCalls.start.
type webCallSpec struct {
	TenantID  string
	Target    WebTarget
	Direction string // store.CallWeb unless said otherwise
	// From and To are kept in the record: who called (a browser's address, a stream's
	// caller) and what was called (defaults to the agent or destination).
	From, To string
	Codec    string
	Metadata map[string]any
	// Stream is the call's audio: its ending ends the call with its reason, and its
	// quality is written when the call ends.
	Stream media.Stream
	// Hangup tells the far end that the call ended with reason and releases the transport.
	// It is called once, last: after Stream was closed, the agent stopped, the record was
	// made final and call.ended was published (so OnEvent can still deliver call.ended).
	Hangup func(reason string)
	// Ready, when set, is closed once media flows (ICE connected): until then the call rings
	// and the agent does not speak. Nil: the call is answered at once.
	Ready <-chan struct{}
	// OnEvent, when set, sees every event the call publishes (a WebRTC data channel
	// forwards them to the browser). It must not block.
	OnEvent func(typ string, data any)
}

// webCalls runs the node's web calls.
type webCalls struct {
	st     *store.Store
	agents *agentCalls
	events sip.Publisher // nil: no events
	node   string
	log    *slog.Logger
	// calls bounds the node's calls and each tenant's, with its SIP calls.
	calls *callcap.Limiter

	// base is the node's life: when it ends, every call ends with reason shutdown.
	base context.Context
	mu   sync.Mutex
	live map[string]*webCall
	// wg counts the calls running; once closing is set (under mu) no call is added, so
	// that wait's Wait never races an Add.
	wg      sync.WaitGroup
	closing bool
}

// errClosing refuses a call to a node that is stopping.
var errClosing = &store.ConflictError{Field: "node", Message: "this node is shutting down; call another"}

func newWebCalls(base context.Context, st *store.Store, agents *agentCalls, events sip.Publisher, calls *callcap.Limiter, node string, log *slog.Logger) *webCalls {
	return &webCalls{st: st, agents: agents, events: events, calls: calls, node: node, log: log, base: base, live: map[string]*webCall{}}
}

// start creates the call's record and runs the call in the background until it ends. ctx
// bounds only the start (the record's creation); the call lives until its stream ends, its
// agent hangs up, Hangup or End is called, or the node stops. An unknown agent is
// store.ErrNotFound; a bad target is a *store.ValidationError; a call over the node's or its
// tenant's limit is a *callcap.LimitError.
func (w *webCalls) start(ctx context.Context, spec webCallSpec) (*webCall, error) {
	handler, rec, err := w.route(ctx, spec)
	if err != nil {
		return nil, err
	}
	return w.begin(ctx, spec, handler, rec)
}

// begin is start once spec is routed to handler and its record rec.
func (w *webCalls) begin(ctx context.Context, spec webCallSpec, handler func(ctx context.Context, c *webCall), rec *store.Call) (*webCall, error) {
	slot, err := w.calls.Acquire(spec.TenantID)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.closing || w.base.Err() != nil {
		w.mu.Unlock()
		slot()
		return nil, errClosing
	}
	w.wg.Add(1) // given back below if the call does not start
	w.mu.Unlock()
	started := false
	defer func() {
		if !started {
			w.wg.Done()
			slot()
		}
	}()
	now := time.Now().UTC()
	rec.Status = store.CallRinging
	if spec.Ready == nil {
		rec.Status, rec.AnsweredAt = store.CallInProgress, &now
	}
	rec.StartedAt = &now
	if err := store.Create[store.Call](ctx, w.st, spec.TenantID, rec); err != nil {
		return nil, err
	}
	c := &webCall{w: w, id: rec.ID, tenantID: rec.TenantID, spec: spec,
		ended: make(chan struct{}), done: make(chan struct{})}
	c.log = w.log.With("call", rec.ID, "tenant_id", rec.TenantID, "direction", rec.Direction)
	if spec.Target.AgentID != "" {
		c.log = c.log.With("agent_id", spec.Target.AgentID)
	}
	c.CallRecord = sip.NewCallRecord(*rec, w.st, w.events, c.log, spec.OnEvent)
	w.mu.Lock()
	w.live[c.id] = c
	w.mu.Unlock()
	started = true
	c.Publish(sip.EventCallCreated, c.Record())
	if spec.Ready == nil {
		c.log.Info("web call answered", "codec", rec.Codec)
		c.Publish(sip.EventCallAnswered, c.Record())
	}
	go func() {
		defer w.wg.Done()
		defer slot()
		c.run(handler)
	}()
	return c, nil
}

// route validates the target and returns what will talk on the call and its record.
func (w *webCalls) route(ctx context.Context, spec webCallSpec) (func(ctx context.Context, c *webCall), *store.Call, error) {
	t := spec.Target
	rec := &store.Call{Direction: spec.Direction, From: spec.From, To: spec.To, Codec: spec.Codec, Node: w.node,
		Metadata: maps.Clone(spec.Metadata), Report: map[string]any{}}
	if rec.Direction == "" {
		rec.Direction = store.CallWeb
	}
	if rec.Metadata == nil {
		rec.Metadata = map[string]any{}
	}
	switch {
	case (t.AgentID == "") == (t.Destination == ""):
		return nil, nil, &store.ValidationError{Fields: []store.FieldError{{Field: "agent_id", Message: errNoTarget.Error()}}}
	case t.AgentID != "":
		ag, err := store.Get[store.Agent](ctx, w.st, spec.TenantID, t.AgentID)
		if err != nil {
			return nil, nil, fmt.Errorf("agent %s: %w", t.AgentID, err)
		}
		rec.AgentID = &ag.ID
		if rec.To == "" {
			rec.To = ag.ID
		}
		return func(ctx context.Context, c *webCall) { w.agents.serve(ctx, c, ag) }, rec, nil
	}
	serve := sip.Builtin(t.Destination)
	if serve == nil {
		return nil, nil, &store.ValidationError{Fields: []store.FieldError{{Field: "destination",
			Message: fmt.Sprintf("%s %q (want echo or tone)", errUnknownDestination, t.Destination)}}}
	}
	rec.Destination = t.Destination
	if rec.To == "" {
		rec.To = t.Destination
	}
	return func(ctx context.Context, c *webCall) { serve(ctx, c) }, rec, nil
}

// get is a live call of the tenant.
func (w *webCalls) get(tenantID, id string) *webCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.live[id]
	if c == nil || c.tenantID != tenantID {
		return nil
	}
	return c
}

// wait waits for every call to end (after the node's base context ended) or ctx.
func (w *webCalls) wait(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open is how many web calls are live.
func (w *webCalls) Open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.live)
}

// webCall is one web call. Its owner is the goroutine that runs it (run): the transport
// and the agent report to it with End and Hangup, and it alone writes the final record.
type webCall struct {
	w        *webCalls
	id       string
	tenantID string
	log      *slog.Logger
	spec     webCallSpec

	// The record, written and published as the call goes.
	*sip.CallRecord

	mu sync.Mutex // guards reason

	endOnce sync.Once
	ended   chan struct{}
	reason  string
	// done is closed once the call's record is final, call.ended published and the
	// transport hung up.
	done chan struct{}
}

// ID is the call's ID in the store ("call_…").
func (c *webCall) ID() string { return c.id }

// TenantID is the tenant the call belongs to.
func (c *webCall) TenantID() string { return c.tenantID }

// Log is the call's logger.
func (c *webCall) Log() *slog.Logger { return c.log }

// Stream is the call's audio.
func (c *webCall) Stream() media.Stream { return c.spec.Stream }

// Done is closed once the call ended, its record is final and its transport released.
func (c *webCall) Done() <-chan struct{} { return c.done }

// Hangup ends the call from Switchboard's side (the agent, the API) with reason
// (agent-hangup when empty).
func (c *webCall) Hangup(reason string) {
	if reason == "" {
		reason = sip.ReasonAgentHangup
	}
	// An agent that hangs up on a stream the far end has already ended does so because it
	// ended (its conversation may learn of it a moment after the stream did): the far end's
	// reason is why the call ended.
	select {
	case <-c.spec.Stream.Done():
		if r := c.spec.Stream.Reason(); r != "" && r != "closed" {
			reason = r
		}
	default:
	}
	c.End(reason)
}

// End ends the call with reason, the first given winning: the transport calls it when the
// far end hung up or vanished.
func (c *webCall) End(reason string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.reason = reason
		c.mu.Unlock()
		close(c.ended)
	})
}

// Transfer is refused: a browser has no number to be handed to.
func (c *webCall) Transfer(ctx context.Context, to string) error { return errNoTransfer }

// SendDTMF plays digits to the far end, when the transport can.
func (c *webCall) SendDTMF(digits string) error {
	ds, ok := c.spec.Stream.(media.DTMFSender)
	if !ok {
		return errors.New("this call's transport carries no keys")
	}
	for _, d := range digits {
		if err := ds.SendDTMF(d, 160*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// run carries the call: it waits for media, runs the handler, and tears the call down once
// it ends, whoever ended it.
//
//nolint:contextcheck // a call outlives the request that began it; the node's web context ends it
func (c *webCall) run(handler func(ctx context.Context, c *webCall)) {
	base := c.w.base
	streamDone := c.spec.Stream.Done()
	streamEnded := func() {
		r := c.spec.Stream.Reason()
		if r == "" || r == "closed" {
			r = sip.ReasonError
		}
		c.End(r)
	}
	if c.spec.Ready != nil {
		select {
		case <-c.spec.Ready:
			c.answered()
		case <-c.ended:
		case <-streamDone:
			streamEnded()
		case <-base.Done():
			c.End(sip.ReasonShutdown)
		}
	}

	hctx, stopHandler := context.WithCancel(context.WithoutCancel(base))
	defer stopHandler()
	handlerDone := make(chan struct{})
	if c.answeredAt() != nil {
		go func() {
			defer close(handlerDone)
			defer func() {
				if p := recover(); p != nil {
					c.log.Error("call handler panicked", "panic", p)
					c.End(sip.ReasonError)
				}
			}()
			handler(hctx, c)
			// A handler also returns because the stream ended: then that is why.
			select {
			case <-streamDone:
				streamEnded()
			default:
				c.End(sip.ReasonAgentHangup)
			}
		}()
	} else {
		close(handlerDone)
	}

	select {
	case <-c.ended:
	case <-streamDone:
		streamEnded()
	case <-base.Done():
		c.End(sip.ReasonShutdown)
	}
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	_ = c.spec.Stream.Close()
	// The handler sees its stream end and says why in its report; only one that does not
	// stop by itself has its context cancelled (which it would take for a shutdown).
	select {
	case <-handlerDone:
	case <-time.After(2 * time.Second):
		stopHandler()
		select {
		case <-handlerDone:
		case <-time.After(5 * time.Second):
			c.log.Warn("call handler still running after the call ended")
		}
	}
	stopHandler()
	c.finish(reason)
	if c.spec.Hangup != nil {
		c.spec.Hangup(reason)
	}
	close(c.done)
}

func (c *webCall) answeredAt() *time.Time { return c.Record().AnsweredAt }

// answered marks the call in progress once media flows.
func (c *webCall) answered() {
	now := time.Now().UTC()
	c.Update(c.w.base, func(r *store.Call) {
		r.Status = store.CallInProgress
		r.AnsweredAt = &now
	})
	c.log.Info("web call answered", "codec", c.spec.Codec)
	c.Publish(sip.EventCallAnswered, c.Record())
}

// finish writes the call's final state and publishes call.ended.
func (c *webCall) finish(reason string) {
	q := store.CallQuality(c.spec.Stream.Quality())
	unanswered := store.CallFailed
	if reason == sip.ReasonCallerHangup {
		unanswered = store.CallCanceled
	}
	c.Ended(c.w.base, reason, unanswered, &q)
	c.w.mu.Lock()
	delete(c.w.live, c.id)
	c.w.mu.Unlock()
	rec := c.Record()
	c.log.Info("web call ended", "reason", reason, "status", rec.Status, "duration_seconds", rec.DurationSeconds,
		"rx_packets", rec.Quality.PacketsReceived, "tx_packets", rec.Quality.PacketsSent, "lost_packets", rec.Quality.PacketsLost)
	c.Publish(sip.EventCallEnded, rec)
}

// webrtcCalls answers browsers' calls: an rtc.Peer carried by the web-call lifecycle.
// It implements api.WebRTCCalls.
type webrtcCalls struct {
	calls  *webCalls
	engine *rtc.Engine

	mu    sync.Mutex
	peers map[string]*rtc.Peer
}

func newWebRTCCalls(calls *webCalls, engine *rtc.Engine) *webrtcCalls {
	return &webrtcCalls{calls: calls, engine: engine, peers: map[string]*rtc.Peer{}}
}

// StartWebRTCCall implements api.WebRTCCalls.
func (w *webrtcCalls) StartWebRTCCall(ctx context.Context, tenantID string, req api.WebRTCSessionRequest, from string) (*api.StartedWebRTCCall, error) {
	spec := webCallSpec{TenantID: tenantID, Target: WebTarget{AgentID: req.AgentID, Destination: req.Destination},
		From: from, Codec: "opus", Metadata: req.Metadata}
	// A call that cannot go where it is asked to costs no peer.
	handler, rec, err := w.calls.route(ctx, spec)
	if err != nil {
		return nil, err
	}
	log := w.calls.log.With("tenant_id", tenantID, "from", from)
	peer, err := w.engine.Answer(ctx, req.SDP, log)
	if err != nil {
		return nil, err
	}
	spec.Stream, spec.Hangup, spec.Ready, spec.OnEvent = peer, peer.Hangup, peer.Connected(), peer.SendEvent
	c, err := w.calls.begin(ctx, spec, handler, rec)
	if err != nil {
		peer.Hangup(sip.ReasonError)
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
func (w *webrtcCalls) peer(tenantID, id string) (*webCall, *rtc.Peer) {
	c := w.calls.get(tenantID, id)
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
	c.End(sip.ReasonCallerHangup)
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	return nil
}

// ICEServers implements api.WebRTCCalls.
func (w *webrtcCalls) ICEServers() []rtc.ICEServer { return w.engine.ICEServers() }

// nodeCalls steers the node's live calls for the API (hang up, transfer): its web calls
// here, the others through the SIP server, which places the outbound ones.
type nodeCalls struct {
	sip *sip.Server
	web *webCalls
}

// Dial implements api.CallControl.
func (n nodeCalls) Dial(ctx context.Context, c *store.Call) error { return n.sip.Dial(ctx, c) }

// Hangup implements api.CallControl: a web call ends as api-hangup, and Hangup returns once
// its record is final.
func (n nodeCalls) Hangup(ctx context.Context, tenantID, callID string) error {
	c := n.web.get(tenantID, callID)
	if c == nil {
		return n.sip.Hangup(ctx, tenantID, callID)
	}
	c.End(store.EndedAPIHangup)
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	return nil
}

// Transfer implements api.CallControl; a web call is not transferred.
func (n nodeCalls) Transfer(ctx context.Context, tenantID, callID, to string) error {
	if n.web.get(tenantID, callID) != nil {
		return &store.ConflictError{Field: "id", Message: errNoTransfer.Error()}
	}
	return n.sip.Transfer(ctx, tenantID, callID, to)
}
