package call

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// ErrNoTransfer refuses to transfer a call whose transport has no telephone network to
// hand it to (a browser, a media-stream socket).
var ErrNoTransfer = errors.New("a web call cannot be transferred")

// errNoKeys refuses to send DTMF on a transport that carries no keys.
var errNoKeys = errors.New("this call's transport carries no keys")

// Spec says what a transport hands over when it starts a call on a Node.
type Spec struct {
	TenantID string
	// AgentID or Destination (a built-in one: echo, tone) talks on Switchboard's side of
	// the call; exactly one.
	AgentID     string
	Destination string
	// Direction is store.CallWeb unless said otherwise.
	Direction string
	// From and To are kept in the record: who called (a browser's address, a stream's
	// caller) and what was called (defaults to the agent or destination).
	From, To string
	Codec    string
	Metadata map[string]any
	// Stream is the call's audio: its ending ends the call with its reason, and its
	// quality is written when the call ends.
	Stream media.Stream
	// Hangup tells the far end that the call ended with reason and releases the transport.
	// It is called once, last: after Stream was closed, the handler stopped, the record was
	// made final and call.ended was published (so OnEvent can still deliver call.ended).
	Hangup func(reason string)
	// Ready, when set, is closed once media flows (ICE connected): until then the call rings
	// and its handler does not start. Nil: the call is answered at once.
	Ready <-chan struct{}
	// OnEvent, when set, sees every event the call publishes (a WebRTC data channel
	// forwards them to the browser). It must not block.
	OnEvent func(typ string, data any)
}

// Handler talks on an answered call until its stream ends or it hangs up.
type Handler func(ctx context.Context, c *Call)

// Call is one call of a transport that hands over a media.Stream (a browser, a media-stream
// socket). Its owner is the goroutine that runs it: the transport and the handler report
// to it with End and Hangup, and it alone writes the final record. Its lifecycle is every
// call's: ringing until media flows, answered, ended once with the first reason given.
type Call struct {
	node     *Node
	id       string
	tenantID string
	log      *slog.Logger
	spec     Spec

	// The record, written and published as the call goes.
	*Recorder

	mu sync.Mutex // guards reason

	endOnce sync.Once
	ended   chan struct{}
	reason  Reason
	// done is closed once the call's record is final, call.ended published and the
	// transport hung up.
	done chan struct{}
}

// ID is the call's ID in the store ("call_…").
func (c *Call) ID() string { return c.id }

// TenantID is the tenant the call belongs to.
func (c *Call) TenantID() string { return c.tenantID }

// Log is the call's logger.
func (c *Call) Log() *slog.Logger { return c.log }

// Stream is the call's audio.
func (c *Call) Stream() media.Stream { return c.spec.Stream }

// Done is closed once the call ended, its record is final and its transport released.
func (c *Call) Done() <-chan struct{} { return c.done }

// Hangup ends the call from Switchboard's side (the agent) with reason (agent-hangup when
// empty). The reason is a string, as the agent's line gives it: a brain may end a call with
// a reason of its own.
func (c *Call) Hangup(reason string) {
	r := Reason(reason)
	if r == "" {
		r = ReasonAgentHangup
	}
	// An agent that hangs up on a stream the far end has already ended does so because it
	// ended (its conversation may learn of it a moment after the stream did): the far end's
	// reason is why the call ended.
	select {
	case <-c.spec.Stream.Done():
		if sr := c.spec.Stream.Reason(); sr != "" && sr != "closed" {
			r = Reason(sr)
		}
	default:
	}
	c.End(r)
}

// End ends the call with reason, the first given winning: the transport calls it when the
// far end hung up or vanished, the API when it hangs the call up.
func (c *Call) End(reason Reason) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.reason = reason
		c.mu.Unlock()
		close(c.ended)
	})
}

// HangUp implements Live: the call ends with reason, and HangUp returns once its record
// is final or ctx ends.
func (c *Call) HangUp(ctx context.Context, reason Reason) {
	c.End(reason)
	select {
	case <-c.done:
	case <-ctx.Done():
	}
}

// Transfer is refused: a web call has no number to be handed to.
func (c *Call) Transfer(ctx context.Context, to string) error { return ErrNoTransfer }

// SendDTMF plays digits to the far end, when the transport can.
func (c *Call) SendDTMF(digits string) error {
	ds, ok := c.spec.Stream.(media.DTMFSender)
	if !ok {
		return errNoKeys
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
//nolint:contextcheck // a call outlives the request that started it; the node's base context ends it
func (c *Call) run(handler Handler) {
	base := c.node.base
	streamDone := c.spec.Stream.Done()
	streamEnded := func() { c.End(FromStream(c.spec.Stream.Reason())) }
	if c.spec.Ready != nil {
		select {
		case <-c.spec.Ready:
			c.answered()
		case <-c.ended:
		case <-streamDone:
			streamEnded()
		case <-base.Done():
			c.End(ReasonShutdown)
		}
	}

	hctx, stopHandler := context.WithCancel(context.WithoutCancel(base))
	defer stopHandler()
	handlerDone := make(chan struct{})
	if c.Record().AnsweredAt != nil {
		go func() {
			defer close(handlerDone)
			defer func() {
				if p := recover(); p != nil {
					c.log.Error("call handler panicked; ending the call", "panic", p, "stack", string(debug.Stack()))
					c.End(ReasonError)
				}
			}()
			handler(hctx, c)
			// A handler also returns because the stream ended: then that is why.
			select {
			case <-streamDone:
				streamEnded()
			default:
				c.End(ReasonAgentHangup)
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
		c.End(ReasonShutdown)
	}
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	_ = c.spec.Stream.Close()
	AwaitHandler(handlerDone, stopHandler, c.log)
	c.finish(reason)
	if c.spec.Hangup != nil {
		c.spec.Hangup(string(reason))
	}
	close(c.done)
}

// answered marks the call in progress once media flows.
func (c *Call) answered() {
	now := time.Now().UTC()
	c.Update(c.node.base, func(r *store.Call) {
		r.Status = store.CallInProgress
		r.AnsweredAt = &now
	})
	c.log.Info("call answered", "codec", c.spec.Codec)
	c.Publish(EventAnswered, c.Record())
}

// finish writes the call's final state and publishes call.ended.
func (c *Call) finish(reason Reason) {
	q := store.CallQuality(c.spec.Stream.Quality())
	c.Ended(c.node.base, reason, &q)
	c.node.calls.Remove(c)
	rec := c.Record()
	c.log.Info("call ended", "reason", reason, "status", rec.Status, "duration_seconds", rec.DurationSeconds,
		"rx_packets", rec.Quality.PacketsReceived, "tx_packets", rec.Quality.PacketsSent, "lost_packets", rec.Quality.PacketsLost,
		"late_packets", rec.Quality.PacketsLate)
	c.Publish(EventEnded, rec)
}
