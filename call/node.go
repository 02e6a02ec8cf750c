package call

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// ErrClosing refuses a call to a node that is stopping.
var ErrClosing = &store.ConflictError{Field: "node", Message: "this node is shutting down; call another"}

// The messages of a call that names no valid target.
const (
	msgNoTarget           = "a call goes to an agent (agent_id) or a built-in destination (destination), exactly one"
	msgUnknownDestination = "unknown built-in destination"
)

// NodeConfig is what a Node is built with.
type NodeConfig struct {
	Store *store.Store
	// Events receives the calls' events; nil: none.
	Events Publisher
	// Calls is the node's registry of live calls, shared with its SIP calls: it bounds them
	// and finds them for the API. Nil: a registry of the node's own, without limits.
	Calls *Registry
	// Node is the node's name, kept in each call's record.
	Node string
	Log  *slog.Logger
	// Agent talks on a call routed to an agent (the conversation runtime).
	Agent func(ctx context.Context, c *Call, ag *store.Agent)
	// Recordings says which calls are recorded, where, and for how long.
	Recordings Recordings
}

// Node runs a node's calls whose transport hands over a media.Stream (WebRTC peers,
// media-stream sockets): it gives each the life of a call (the record in the store, the
// call.* events, the agent or built-in destination that talks on it, the final record) and
// finds the live ones for the API.
type Node struct {
	cfg NodeConfig
	// base is the node's life: when it ends, every call ends with reason shutdown.
	base context.Context

	calls *Registry

	mu sync.Mutex
	// wg counts the calls running; once closing is set (under mu) no call is added, so
	// that Wait's Wait never races an Add.
	wg      sync.WaitGroup
	closing bool
}

// NewNode returns the calls of a node whose life is base.
func NewNode(base context.Context, cfg NodeConfig) *Node {
	n := &Node{cfg: cfg, base: base, calls: cfg.Calls}
	if n.calls == nil {
		n.calls = NewRegistry(nil)
	}
	return n
}

// Start creates the call's record and runs the call in the background until it ends. ctx
// bounds only the start (the record's creation); the call lives until its stream ends, its
// handler hangs up, End is called, or the node stops. An unknown agent is
// store.ErrNotFound; a bad target is a *store.ValidationError; a call over the node's or its
// tenant's limit is a *callcap.LimitError; a stopping node's refusal is ErrClosing.
func (n *Node) Start(ctx context.Context, spec Spec) (*Call, error) {
	r, err := n.Route(ctx, spec)
	if err != nil {
		return nil, err
	}
	return r.Start(ctx, spec)
}

// Routed is a call whose target was checked, not started yet: a transport routes a call
// before it spends anything on it (a WebRTC peer), then starts it.
type Routed struct {
	n       *Node
	handler Handler
	rec     *store.Call
	// record says how the call is recorded, when it is.
	record *recordingPlan
}

// Route checks the call's target and prepares its record: what Start does first.
func (n *Node) Route(ctx context.Context, spec Spec) (*Routed, error) {
	rec := &store.Call{Direction: spec.Direction, From: spec.From, To: spec.To, Codec: spec.Codec, Node: n.cfg.Node,
		Metadata: maps.Clone(spec.Metadata), Report: map[string]any{}}
	if rec.Direction == "" {
		rec.Direction = store.CallWeb
	}
	if rec.Metadata == nil {
		rec.Metadata = map[string]any{}
	}
	switch {
	case (spec.AgentID == "") == (spec.Destination == ""):
		return nil, &store.ValidationError{Fields: []store.FieldError{{Field: "agent_id", Message: msgNoTarget}}}
	case spec.AgentID != "":
		ag, err := store.Get[store.Agent](ctx, n.cfg.Store, spec.TenantID, spec.AgentID)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", spec.AgentID, err)
		}
		rec.AgentID = &ag.ID
		if rec.To == "" {
			rec.To = ag.ID
		}
		serve := n.cfg.Agent
		return &Routed{n: n, rec: rec, record: n.recordingPlan(ag), handler: func(ctx context.Context, c *Call) {
			if serve != nil {
				serve(ctx, c, ag)
			}
		}}, nil
	}
	serve := Destination(spec.Destination)
	if serve == nil {
		return nil, &store.ValidationError{Fields: []store.FieldError{{Field: "destination",
			Message: fmt.Sprintf("%s %q (want echo or tone)", msgUnknownDestination, spec.Destination)}}}
	}
	rec.Destination = spec.Destination
	if rec.To == "" {
		rec.To = spec.Destination
	}
	return &Routed{n: n, rec: rec, record: n.recordingPlan(nil), handler: func(ctx context.Context, c *Call) { serve(ctx, c) }}, nil
}

// recordingPlan is how a call ag (nil: a built-in destination) talks on is recorded; nil:
// it is not.
func (n *Node) recordingPlan(ag *store.Agent) *recordingPlan {
	if p, ok := n.cfg.Recordings.plan(ag); ok {
		return &p
	}
	return nil
}

// Check says whether the node and the tenant have room for one more call now.
func (n *Node) Check(tenantID string) error { return n.calls.Check(tenantID) }

// Start starts the routed call with spec (the one it was routed with, its Stream and
// Hangup now set).
func (r *Routed) Start(ctx context.Context, spec Spec) (*Call, error) {
	n := r.n
	slot, err := n.calls.Acquire(spec.TenantID) //nolint:contextcheck // a call's place outlives the request that started it
	if err != nil {
		return nil, err
	}
	slot = sync.OnceFunc(slot)
	n.mu.Lock()
	if n.closing || n.base.Err() != nil {
		n.mu.Unlock()
		slot()
		return nil, ErrClosing
	}
	n.wg.Add(1) // given back below if the call does not start
	n.mu.Unlock()
	started := false
	defer func() {
		if !started {
			n.wg.Done()
			slot()
		}
	}()
	rec := *r.rec
	now := time.Now().UTC()
	rec.Status = store.CallRinging
	if spec.Ready == nil {
		rec.Status, rec.AnsweredAt = store.CallInProgress, &now
	}
	rec.StartedAt = &now
	if err := store.Create[store.Call](ctx, n.cfg.Store, spec.TenantID, &rec); err != nil {
		return nil, err
	}
	c := &Call{node: n, id: rec.ID, tenantID: rec.TenantID, spec: spec, stream: spec.Stream}
	c.log = Logger(n.cfg.Log, rec).With("direction", rec.Direction)
	if r.record != nil {
		// What talks on the call reads and writes through the recording; the lifecycle
		// still ends and measures the transport's own stream.
		if c.recording = startRecording(n.cfg.Recordings.Dir, rec.ID, spec.Stream.SampleRate(), *r.record, c.log); c.recording != nil {
			c.stream = media.Recorded(spec.Stream, c.recording.rec)
		}
	}
	c.Init(c, webCarrier{c}, NewRecorder(rec, n.cfg.Store, n.cfg.Events, c.log, spec.OnEvent), c.log, n.calls)
	c.log = c.Logger() // with the call's trace id
	c.Hold(slot)
	n.calls.Add(c)
	started = true
	c.Publish(EventCreated, c.Record())
	if spec.Ready == nil {
		c.log.Info("call answered", "codec", rec.Codec)
		c.Publish(EventAnswered, c.Record())
	} else {
		c.Publish(EventRinging, c.Record())
	}
	go func() {
		defer n.wg.Done()
		defer slot()
		c.run(r.handler)
	}()
	return c, nil
}

// Get is a live call of the tenant that the node started, or nil: another tenant's call
// is not found.
func (n *Node) Get(tenantID, id string) *Call {
	c, _ := n.calls.Get(tenantID, id).(*Call)
	if c == nil || c.node != n {
		return nil
	}
	return c
}

// Wait refuses new calls and waits for every call to end (they end once the node's base
// context has) or for ctx.
func (n *Node) Wait(ctx context.Context) error {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
