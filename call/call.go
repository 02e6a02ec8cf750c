package call

import (
	"context"
	"errors"
	"log/slog"
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
	// Transport names what carries the call on its trace: webrtc, mediastream ("web" when
	// empty).
	Transport string
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
// to it with End and Hangup, and it alone writes the final record. Its lifecycle (Life) is
// every call's: ringing until media flows, answered, ended once with the first reason given.
type Call struct {
	Life
	node     *Node
	id       string
	tenantID string
	log      *slog.Logger
	spec     Spec
	// stream is what talks on the call reads and writes: spec.Stream, through the
	// recording when the call is recorded.
	stream media.Stream
	// recording is the call's recording, when it is recorded.
	recording *callRecording
}

// ID is the call's ID in the store ("call_…").
func (c *Call) ID() string { return c.id }

// TenantID is the tenant the call belongs to.
func (c *Call) TenantID() string { return c.tenantID }

// Log is the call's logger.
func (c *Call) Log() *slog.Logger { return c.log }

// Stream is the call's audio.
func (c *Call) Stream() media.Stream { return c.stream }

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
	if c.spec.Ready != nil {
		select {
		case <-c.spec.Ready:
			c.Answered(base, c.spec.Codec)
		case <-c.Ending():
		case <-c.spec.Stream.Done():
			c.End(FromStream(c.spec.Stream.Reason()))
		case <-base.Done():
			c.End(ReasonShutdown)
		}
	}
	if c.Record().AnsweredAt != nil {
		c.Run(base, func(ctx context.Context) { handler(ctx, c) })
		return
	}
	c.Teardown(base, nil, nil)
}

// webCarrier is a web call's side of its lifecycle: closing its stream stops it, and the far
// end is told (its peer or socket closed) last, once call.ended reached it.
type webCarrier struct{ c *Call }

func (l webCarrier) Stream() media.Stream { return l.c.spec.Stream }
func (l webCarrier) Transport() string {
	if l.c.spec.Transport == "" {
		return "web"
	}
	return l.c.spec.Transport
}
func (l webCarrier) Stop(Reason)                  { _ = l.c.spec.Stream.Close() }
func (l webCarrier) Tell(context.Context, Reason) {}

// Release finishes the call's recording, when it has one, and links it from the record.
func (l webCarrier) Release() []any {
	r := l.c.recording
	if r == nil {
		return nil
	}
	d := r.finish(l.c.log)
	if d == 0 {
		return nil
	}
	l.c.Edit(func(rec *store.Call) { KeepRecording(rec, r.plan.retention, time.Now()) })
	return []any{"recording_seconds", d.Seconds()}
}
func (l webCarrier) Close(reason Reason) {
	if l.c.spec.Hangup != nil {
		l.c.spec.Hangup(string(reason))
	}
}
