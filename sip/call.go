package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// Handler carries an answered call: it talks over the call's Stream until the stream ends
// (ReadFrame returns media.ErrClosed) or it hangs up with Call.Hangup. When ServeCall
// returns, the call ends (the agent hung up) if it has not already.
type Handler interface {
	ServeCall(ctx context.Context, c *Call)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call)

// ServeCall calls f.
func (f HandlerFunc) ServeCall(ctx context.Context, c *Call) { f(ctx, c) }

// Agents finds the handler of calls routed to an agent: the conversation runtime.
type Agents interface {
	AgentHandler(ctx context.Context, tenantID, agentID string) (Handler, error)
}

// Call is one call carried by the server, inbound or outbound. Its owner is the goroutine
// that runs it: signalling and media report to it, and it alone ends the call.
type Call struct {
	srv      *Server
	log      *slog.Logger
	id       string
	tenantID string
	inbound  bool
	handler  Handler

	dialogID string // guarded by the registry's lock once registered
	uas      *sipgo.DialogServerSession
	uac      *sipgo.DialogClientSession
	// remoteHost is where numbers are transferred to: the trunk's or the caller's host.
	remoteHost string
	// contact is our Contact for this call's transport.
	contact sip.ContactHeader

	sdp   *localSDP
	sess  *media.RTPSession // set under mu once answered, or for early media; others than the owner use session()
	ports *rtpPorts
	// recFile is the call's recording, when calls are recorded.
	recFile *os.File

	// The record, written and published as the call goes.
	*call.Recorder

	mu      sync.Mutex
	codec   media.CodecSpec
	eventPT uint8
	dir     string         // our direction
	remote  netip.AddrPort // the far end's RTP address from its SDP
	expires time.Duration  // session refresh interval (RFC 4028); 0: none
	refresh chan struct{}
	// ackSDP receives the SDP carried by an ACK: the answer to an offer we made in a 200
	// (late offer, empty re-INVITE).
	ackSDP chan []byte

	notify chan int // final status of a transfer we asked for, from NOTIFY sipfrags

	// mediaUp is closed once the media session is set, or the call ended without one.
	mediaUp   chan struct{}
	mediaOnce sync.Once

	endOnce sync.Once
	ended   chan struct{}
	// gone is closed once the call is torn down and its record final.
	gone     chan struct{}
	goneOnce sync.Once
	reason   call.Reason
	sendBye  bool
	// canceledBy holds the caller's CANCEL of an inbound call once it came.
	canceledBy *atomic.Pointer[sip.Request]
	// inflight is an outbound call's INVITE while it waits for its answer.
	inflight atomic.Pointer[inviteInFlight]
}

func (s *Server) newCall(rec store.Call, inbound bool, h Handler) *Call {
	c := &Call{
		srv: s, id: rec.ID, tenantID: rec.TenantID, inbound: inbound, handler: h,
		refresh: make(chan struct{}, 1), ackSDP: make(chan []byte, 1), notify: make(chan int, 1),
		ended: make(chan struct{}), mediaUp: make(chan struct{}), gone: make(chan struct{}),
	}
	c.log = call.Logger(s.log, rec)
	c.Recorder = call.NewRecorder(rec, s.cfg.Store, s.cfg.Events, c.log, nil)
	return c
}

// ID is the call's ID in the store ("call_…").
func (c *Call) ID() string { return c.id }

// TenantID is the tenant the call belongs to.
func (c *Call) TenantID() string { return c.tenantID }

// session is the call's media session, nil until the call is answered: the session of
// early media is the owner's until then, not for re-INVITE, UPDATE, INFO or a transfer.
func (c *Call) session() *media.RTPSession {
	select {
	case <-c.mediaUp:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// answerWait bounds how long an in-dialog request waits for the call's media session: the
// far end may send one right after its ACK, before the call's owner has set it up.
const answerWait = 4 * time.Second

// awaitMedia waits up to d for the media session and returns it; nil when the call has none.
func (c *Call) awaitMedia(d time.Duration) *media.RTPSession {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.mediaUp:
	case <-t.C:
	}
	return c.session()
}

func (c *Call) mediaDone() { c.mediaOnce.Do(func() { close(c.mediaUp) }) }

// Stream is the call's audio: 20 ms frames, DTMF and hang-up events.
func (c *Call) Stream() media.Stream { return c.sess }

// Log is the call's logger.
func (c *Call) Log() *slog.Logger { return c.log }

// Hangup ends the call from our side with reason (agent-hangup when empty): the far end
// gets a BYE. The reason is a string, as the agent's line gives it: a brain may end a call
// with a reason of its own.
func (c *Call) Hangup(reason string) {
	if reason == "" {
		reason = string(call.ReasonAgentHangup)
	}
	c.finish(call.Reason(reason), true)
}

// SendDTMF plays digits to the far end as RFC 4733 telephone events.
func (c *Call) SendDTMF(digits string) error {
	for _, d := range digits {
		if err := c.sess.SendDTMF(d, 160*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// finish ends the call once, with the first reason given. bye says the far end must be
// told (it has not hung up itself).
func (c *Call) finish(reason call.Reason, bye bool) {
	c.endOnce.Do(func() {
		c.reason, c.sendBye = reason, bye
		close(c.ended)
	})
}

// dialogDone ends when the far end hung up (BYE) or the dialog otherwise ended.
func (c *Call) dialogDone() <-chan struct{} {
	if c.uas != nil {
		return c.uas.Context().Done()
	}
	return c.uac.Context().Done()
}

// do sends an in-dialog request and waits for its final response.
func (c *Call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if c.uas != nil {
		return c.uas.Do(ctx, req)
	}
	return c.uac.Do(ctx, req)
}

// remoteTarget is where in-dialog requests go: the far end's Contact.
func (c *Call) remoteTarget() sip.Uri {
	if c.uas != nil {
		if h := c.uas.InviteRequest.Contact(); h != nil {
			return *h.Address.Clone()
		}
		return *c.uas.InviteRequest.From().Address.Clone()
	}
	if h := c.uac.InviteResponse.Contact(); h != nil {
		return *h.Address.Clone()
	}
	return *c.uac.InviteRequest.Recipient.Clone()
}

// answered marks the call in progress once media flows.
func (c *Call) answered(ctx context.Context) {
	now := time.Now().UTC()
	c.Update(ctx, func(r *store.Call) {
		r.Status = store.CallInProgress
		r.AnsweredAt = &now
		r.Codec = c.codec.Name
	})
	c.log.Info("call answered", "codec", c.codec.Name, "rtp_port", c.ports.port)
	c.Publish(call.EventAnswered, c.Record())
}

// run carries an answered call until it ends, then tears it down: media, BYE when we end
// it, the record's final state and the call.ended event.
func (c *Call) run(ctx context.Context) {
	hctx, stopHandler := context.WithCancel(context.WithoutCancel(ctx))
	handlerDone := make(chan struct{})
	go func() {
		defer close(handlerDone)
		defer c.survive(ctx, "handler", false)
		c.handler.ServeCall(hctx, c)
		// A handler also returns because its stream ended: then that is why the call ends,
		// not the agent.
		select {
		case <-c.sess.Done():
			c.finish(call.FromStream(c.sess.Reason()), true)
		default:
			c.finish(call.ReasonAgentHangup, true)
		}
	}()

	hangupReason := call.ReasonCallerHangup
	if !c.inbound {
		hangupReason = call.ReasonCalleeHangup
	}
	var expiry <-chan time.Time
	var expTimer *time.Timer
	for done := false; !done; {
		c.mu.Lock()
		exp := c.expires
		c.mu.Unlock()
		if exp > 0 && expTimer == nil {
			expTimer = time.NewTimer(exp)
			expiry = expTimer.C
		}
		select {
		case <-c.ended:
			done = true
		case <-c.dialogDone():
			c.finish(hangupReason, false)
		case <-c.sess.Done():
			c.finish(call.FromStream(c.sess.Reason()), true)
		case <-ctx.Done():
			c.finish(call.ReasonShutdown, true)
		case <-c.refresh:
			if expTimer != nil {
				expTimer.Stop()
				expTimer = nil
			}
		case <-expiry:
			c.finish(call.ReasonSessionExpired, true)
		}
	}
	if expTimer != nil {
		expTimer.Stop()
	}

	c.sess.Hangup(string(c.reason))
	if c.sendBye {
		c.bye(ctx, c.reason)
	}
	// The one teardown rule of every call: the handler sees its stream end and returns by
	// itself, or is cancelled.
	call.AwaitHandler(handlerDone, stopHandler, c.log)
	_ = c.sess.Close()
	if c.recFile != nil {
		if err := c.recFile.Close(); err != nil {
			c.log.Warn("recording not written", "error", err)
		}
	}
	c.end(ctx, c.reason)
}

// bye tells the far end the call is over and why (the Reason header of reason's Q.850
// cause), waiting a few seconds for its answer.
func (c *Call) bye(ctx context.Context, reason call.Reason) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), call.ByeTimeout)
	defer cancel()
	var err error
	if c.uas != nil {
		err = c.uas.WriteBye(bctx, c.newBye(reason))
	} else {
		err = c.uac.WriteBye(bctx, c.newBye(reason))
	}
	if err != nil {
		c.log.Info("bye not answered", "error", err)
	}
}

// newBye is the BYE that ends the call with reason, addressed as sipgo's own Bye addresses
// it (the far end's Contact); the dialog fills in its From, To, Call-ID, CSeq and route.
func (c *Call) newBye(reason call.Reason) *sip.Request {
	var bye *sip.Request
	if c.uas != nil {
		inv := c.uas.InviteRequest
		target := inv.From().Address
		if h := inv.Contact(); h != nil {
			target = h.Address
		}
		bye = sip.NewRequest(sip.BYE, *target.Clone())
		bye.SetTransport(inv.Transport())
	} else {
		inv := c.uac.InviteRequest
		target := inv.Recipient
		if h := c.uac.InviteResponse.Contact(); h != nil {
			target = h.Address
		}
		bye = sip.NewRequest(sip.BYE, *target.Clone())
		bye.SipVersion = inv.SipVersion
		bye.SetTransport(inv.Transport())
		bye.SetSource(inv.Source())
	}
	bye.AppendHeader(reasonHeader(reason))
	return bye
}

// byeAndEnd ends a call that was answered but cannot go on (no ACK, no usable answer, no
// media): the far end gets a BYE, the record the reason.
func (c *Call) byeAndEnd(ctx context.Context, reason call.Reason) {
	c.bye(ctx, reason)
	c.end(ctx, reason)
}

// end writes the call's final state and publishes call.ended. It is used for calls that
// were answered (after run) and for those that never were.
func (c *Call) end(ctx context.Context, reason call.Reason) {
	var st media.RTPStats
	var quality *store.CallQuality
	if c.sess != nil {
		st = c.sess.Stats()
		q := store.CallQuality(c.sess.Quality())
		quality = &q
	}
	if c.canceledBy != nil {
		if r := c.canceledBy.Load(); r != nil {
			c.notePeerReason(r)
		}
	}
	c.Ended(ctx, reason, quality)
	c.mediaDone()
	if c.dialogID != "" {
		c.srv.calls.remove(c)
	}
	c.srv.calls.forget(c)
	if c.sess != nil {
		c.log.Info("call ended", "reason", reason, "rx_packets", st.PacketsReceived, "tx_packets", st.PacketsSent,
			"lost_packets", max(st.PacketsLost, 0), "late_packets", st.Late, "dropped_packets", st.Dropped, "jitter", st.Jitter)
	} else {
		c.log.Info("call ended", "reason", reason)
	}
	c.Publish(call.EventEnded, c.Record())
	c.goneOnce.Do(func() { close(c.gone) })
}

// hungUp says whether the call was ended (finish) before it was answered.
func (c *Call) hungUp() bool {
	select {
	case <-c.ended:
		return true
	default:
		return false
	}
}

// Transfer hands the far end to another party (a number or a SIP URI) with a blind REFER
// (RFC 3515). It returns once the far end accepted the REFER; the call ends with reason
// transferred when the far end reports that the new call was answered, and goes on when it
// reports a failure (a call.transfer event says which).
//
// A call not answered yet, a target that is neither, and a REFER the far end refuses are
// *CallErrors (ErrNotAnswered, ErrBadTarget, ErrTransferRefused).
func (c *Call) Transfer(ctx context.Context, to string) error {
	if c.session() == nil {
		return &CallError{Err: ErrNotAnswered, Reason: "the call is not answered yet; only an answered call can be transferred"}
	}
	target, err := c.referTarget(to)
	if err != nil {
		return &CallError{Err: ErrBadTarget, Reason: "must be an E.164 number, a SIP user or a sip: URI"}
	}
	req := sip.NewRequest(sip.REFER, c.remoteTarget())
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+target+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+c.contact.Address.String()+">"))
	req.AppendHeader(&c.contact)
	res, err := c.do(ctx, req)
	if err != nil {
		return fmt.Errorf("sip: refer: %w", err)
	}
	if !res.IsSuccess() {
		c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferRejected, SIPStatus: res.StatusCode})
		return &CallError{Err: ErrTransferRefused, Reason: fmt.Sprintf("%v: the far end answered the REFER with %d %s", ErrTransferRefused, res.StatusCode, res.Reason)}
	}
	c.log.Info("transfer accepted", "to", target)
	c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferAccepted})
	go c.awaitTransfer(target)
	return nil
}

// awaitTransfer waits for the NOTIFY that tells how the transfer went.
//
//nolint:contextcheck // the NOTIFY comes after the REFER was answered; the call's end stops the wait
func (c *Call) awaitTransfer(target string) {
	defer c.survive(context.Background(), "transfer", false)
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case code := <-c.notify:
		if code >= 200 && code < 300 {
			c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferCompleted, SIPStatus: code})
			c.finish(call.ReasonTransferred, true)
			return
		}
		c.log.Info("transfer failed", "to", target, "status", code)
		c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferFailed, SIPStatus: code})
	case <-t.C:
		c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferUnknown})
	case <-c.ended:
	}
}

// referTarget turns a number or a SIP URI into the Refer-To URI.
func (c *Call) referTarget(to string) (string, error) {
	to = strings.TrimSpace(to)
	if strings.HasPrefix(to, "sip:") || strings.HasPrefix(to, "sips:") {
		var u sip.Uri
		if err := sip.ParseUri(to, &u); err != nil || u.Host == "" {
			return "", fmt.Errorf("%w: %q is not a SIP URI", ErrBadTarget, to)
		}
		return u.String(), nil
	}
	if !validDialString(to) {
		return "", fmt.Errorf("%w: %q is neither a number nor a SIP URI", ErrBadTarget, to)
	}
	return "sip:" + to + "@" + c.remoteHost, nil
}

// validDialString accepts E.164 numbers and SIP users.
func validDialString(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == '_', r == '-', r == '~', r == '*', r == '#':
		case r == '+' && i == 0:
		default:
			return false
		}
	}
	return true
}

// applyRemote takes a new description from the far end (re-INVITE, UPDATE, or the answer
// in an ACK) and returns our answer to it. A change of address, codec or direction goes to
// the media session.
func (c *Call) applyRemote(r remoteSDP) (codec media.CodecSpec, eventPT uint8, dir string, changed bool, err error) {
	var holdEvent string
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		// Published here, in order, not under the lock: hold then resume reach the
		// tenant in the order they happened.
		if holdEvent != "" {
			c.Publish(holdEvent, call.Hold{Direction: dir})
		}
	}()
	if err := c.sdp.reaches(r); err != nil {
		return codec, 0, "", false, err
	}
	codec = r.Codecs[0]
	for _, o := range r.Codecs { // keep the current codec when it is still offered
		if strings.EqualFold(o.Name, c.codec.Name) {
			codec = o
			break
		}
	}
	dir = answerDirection(r.Direction, r.Held)
	send, recv := flow(dir)
	upd := media.RTPUpdate{Codec: &codec, EventPT: &r.EventPT, Send: send, Receive: recv}
	if !r.Held && r.RTP != c.remote {
		upd.Remote = r.RTP
	}
	if err := c.sess.Update(upd); err != nil {
		return codec, 0, "", false, err
	}
	changed = codec != c.codec || dir != c.dir || r.EventPT != c.eventPT || upd.Remote.IsValid()
	wasHeld := c.dir != dirSendRecv
	c.codec, c.eventPT, c.dir = codec, r.EventPT, dir
	if !r.Held {
		c.remote = r.RTP
	}
	if held := dir != dirSendRecv; held != wasHeld {
		holdEvent = call.EventResumed
		if held {
			holdEvent = call.EventHold
		}
	}
	c.Edit(func(r *store.Call) { r.Codec = codec.Name })
	return codec, r.EventPT, dir, changed, nil
}

// currentSDP is our description as it stands.
func (c *Call) currentSDP(bump bool) []byte {
	c.mu.Lock()
	codec, ev, dir := c.codec, c.eventPT, c.dir
	c.mu.Unlock()
	return c.sdp.marshal([]media.CodecSpec{codec}, ev, dir, bump)
}

// survive is deferred first by every goroutine that carries part of a call (its owner, its
// handler, what they start): a panic there is logged once with its stack, counted, and
// ends the call with call.ReasonError, where it would have taken the node and every other call
// down. The guard recovers a request handler's panics, but not those of the goroutines it
// starts, and a call's owner that panicked must still tear the call down: owner says that
// this goroutine is the owner.
func (c *Call) survive(ctx context.Context, where string, owner bool) {
	p := recover()
	if p == nil {
		return
	}
	c.panicked(where, p)
	c.finish(call.ReasonError, true)
	if owner {
		c.teardown(ctx)
	}
}

// panicked logs a panic of the call's code, once, with its stack, and counts it. Called
// from the deferred function that recovered it, the stack still shows where it was.
func (c *Call) panicked(where string, p any) {
	c.srv.panics.Add(1)
	c.log.Error("sip call panicked; ending the call", "in", where, "panic", p, "stack", string(debug.Stack()))
}

// teardown ends a call whose owner panicked, doing what the owner would have done at the
// end of the call. The panic left the call in a state nobody planned for: each step is
// tried on its own, so that one that fails too does not keep the others from running.
func (c *Call) teardown(ctx context.Context) {
	step := func(name string, f func()) {
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("sip call teardown step failed", "step", name, "panic", p)
			}
		}()
		f()
	}
	if c.sess != nil {
		step("media", func() { c.sess.Hangup(string(call.ReasonError)) })
	}
	switch {
	case c.uas != nil && c.uas.LoadState() == 0: // not answered yet
		step("answer", func() { _ = c.uas.Respond(sip.StatusInternalServerError, "Server Internal Error", nil) })
	case c.uas != nil && c.uas.LoadState() < sip.DialogStateEnded,
		c.uac != nil && c.uac.LoadState() > 0 && c.uac.LoadState() < sip.DialogStateEnded:
		step("bye", func() { c.bye(ctx, call.ReasonError) })
	}
	if c.sess != nil || c.ports != nil {
		step("close media", c.closeMedia)
	}
	step("record", func() { c.end(ctx, call.ReasonError) })
	// What end does last, in case it broke first: the call leaves the registry (and its
	// connection its idle timeout) and whoever waits for it is let go.
	step("forget", func() {
		c.mediaDone()
		c.srv.calls.remove(c)
		c.srv.calls.forget(c)
		c.goneOnce.Do(func() { close(c.gone) })
	})
}
