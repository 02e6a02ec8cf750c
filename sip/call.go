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
	// recFile is the call's recording, when calls are recorded, kept for recRetention.
	recFile      *os.File
	recRetention time.Duration
	// srtp is the call's SRTP (srtp.go); nil: plain RTP. Under mu once the call runs.
	srtp *callSRTP

	// Its lifecycle, every call's: the record, ended once with the first reason, one
	// teardown.
	call.Life

	mu      sync.Mutex
	codec   media.CodecSpec
	eventPT uint8
	dir     string         // our direction
	remote  netip.AddrPort // the far end's RTP address from its SDP
	expires time.Duration  // session refresh interval (RFC 4028); 0: none
	// expiry ends the answered call when its session interval passes without a refresh;
	// nil until the call runs, and after.
	expiry *time.Timer
	// ackSDP receives the SDP carried by an ACK: the answer to an offer we made in a 200
	// (late offer, empty re-INVITE).
	ackSDP chan []byte

	notify chan int // final status of a transfer we asked for, from NOTIFY sipfrags

	// mediaUp is closed once the media session is set, or the call ended without one.
	mediaUp   chan struct{}
	mediaOnce sync.Once

	// listed says the call is in the server's dialog and source index (registry).
	listed bool
	// canceledBy holds the caller's CANCEL of an inbound call once it came.
	canceledBy *atomic.Pointer[sip.Request]
	// inflight is an outbound call's INVITE while it waits for its answer.
	inflight atomic.Pointer[inviteInFlight]
}

func (s *Server) newCall(rec store.Call, inbound bool, h Handler) *Call {
	c := &Call{
		srv: s, id: rec.ID, tenantID: rec.TenantID, inbound: inbound, handler: h,
		ackSDP: make(chan []byte, 1), notify: make(chan int, 1), mediaUp: make(chan struct{}),
	}
	c.log = call.Logger(s.log, rec)
	c.Init(c, sipCarrier{c}, call.NewRecorder(rec, s.cfg.Store, s.cfg.Events, c.log, nil), c.log, s.calls.node)
	c.log = c.Logger() // with the call's trace id
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

// SendDTMF plays digits to the far end as RFC 4733 telephone events.
func (c *Call) SendDTMF(digits string) error {
	for _, d := range digits {
		if err := c.sess.SendDTMF(d, 160*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// dialogCtx ends when the far end hung up (BYE) or the dialog otherwise ended.
func (c *Call) dialogCtx() context.Context {
	if c.uas != nil {
		return c.uas.Context()
	}
	return c.uac.Context()
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

// answered marks the call in progress once media flows; its record says whether the media
// is encrypted, and with which suite.
func (c *Call) answered(ctx context.Context) {
	security, attrs := "none", []any{"rtp_port", c.ports.port}
	// A re-INVITE may come as soon as the media is up (a hold sent right after the ACK), and
	// changes the codec and the SRTP under mu.
	c.mu.Lock()
	cfg, codec := c.srtp.config(), c.codec.Name
	c.mu.Unlock()
	if cfg != nil {
		security, attrs = "srtp", append(attrs, "srtp", cfg.Suite)
		c.SetMetadata("srtp_suite", string(cfg.Suite))
	}
	c.Edit(func(r *store.Call) { r.MediaSecurity = security })
	c.Answered(ctx, codec, attrs...)
}

// takeSRTPAnswer checks the SRTP of the far end's answer to our offer (an outbound call's
// 200, the ACK of a late offer): the answer to an RTP/SAVP offer names one of its lines,
// and an RTP/AVP offer is not answered RTP/SAVP.
func (c *Call) takeSRTPAnswer(answer remoteSDP) error {
	if c.srtp != nil {
		return c.srtp.takeAnswer(answer)
	}
	if answer.Secure {
		return fmt.Errorf("%w: RTP/SAVP answered to our RTP/AVP offer", ErrNoCrypto)
	}
	return nil
}

// run carries an answered call until it ends, then tears it down by call's one rule. What
// only SIP has watches it meanwhile: the far end's BYE (the dialog ends) and the session
// interval (RFC 4028).
func (c *Call) run(ctx context.Context) {
	hangupReason := call.ReasonCallerHangup
	if !c.inbound {
		hangupReason = call.ReasonCalleeHangup
	}
	// The dialog's life, not ctx's, is what is watched here: its end is the far end's BYE.
	stopWatch := context.AfterFunc(c.dialogCtx(), func() { c.FarEnded(hangupReason) }) //nolint:contextcheck // see above
	defer stopWatch()
	c.mu.Lock()
	c.armExpiry()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.expiry != nil {
			c.expiry.Stop()
			c.expiry = nil
		}
	}()
	c.Run(ctx, func(hctx context.Context) {
		defer c.survive(ctx, "handler", false)
		c.handler.ServeCall(hctx, c)
	})
}

// armExpiry starts the session interval again (the session was refreshed), when the call
// has one. c.mu is held.
func (c *Call) armExpiry() {
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.expiry = nil
	if c.expires > 0 {
		c.expiry = time.AfterFunc(c.expires, func() { c.End(call.ReasonSessionExpired) })
	}
}

// sipCarrier is a SIP call's side of its lifecycle.
type sipCarrier struct{ c *Call }

// Stream is the call's media session, or nil before it has one.
func (t sipCarrier) Stream() media.Stream {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.c.sess == nil {
		return nil
	}
	return t.c.sess
}

func (t sipCarrier) Stop(reason call.Reason) { t.c.sess.Hangup(string(reason)) }

func (t sipCarrier) Tell(ctx context.Context, reason call.Reason) { t.c.bye(ctx, reason) }

func (t sipCarrier) Release() []any {
	c := t.c
	attrs := c.mediaAttrs()
	_ = c.sess.Close()
	if c.recFile != nil {
		if err := c.recFile.Close(); err != nil {
			c.log.Warn("recording not written", "error", err)
		}
		c.Edit(func(rec *store.Call) { call.KeepRecording(rec, c.recRetention, time.Now()) })
	}
	c.letGo()
	return attrs
}

func (sipCarrier) Close(call.Reason) {}

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

// end writes the final state of a call that never ran (refused, canceled, failed before
// or as it was answered) and publishes call.ended.
func (c *Call) end(ctx context.Context, reason call.Reason) {
	var q *media.Quality
	var attrs []any
	if c.sess != nil {
		sq := c.sess.Quality()
		q, attrs = &sq, c.mediaAttrs()
	}
	c.letGo()
	c.Finish(ctx, reason, q, attrs...)
}

// mediaAttrs is what the call's "call ended" line says of its media beyond its quality.
func (c *Call) mediaAttrs() []any {
	if c.sess == nil {
		return nil
	}
	return []any{"dropped_packets", c.sess.Stats().Dropped}
}

// letGo lets go of what SIP holds of an ending call: the caller's CANCEL's Reason goes into
// the record, in-dialog requests stop finding it, and whoever waits for its media is let go.
func (c *Call) letGo() {
	if c.canceledBy != nil {
		if r := c.canceledBy.Load(); r != nil {
			c.notePeerReason(r)
		}
	}
	c.mediaDone()
	c.srv.calls.remove(c)
}

// hungUp says whether the call was ended (finish) before it was answered.
func (c *Call) hungUp() bool {
	select {
	case <-c.Ending():
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
			c.End(call.ReasonTransferred)
			return
		}
		c.log.Info("transfer failed", "to", target, "status", code)
		c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferFailed, SIPStatus: code})
	case <-t.C:
		c.Publish(call.EventTransfer, call.Transfer{To: target, Status: call.TransferUnknown})
	case <-c.Ending():
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
	var (
		line   sdesCrypto
		newKey []byte
	)
	switch {
	case c.srtp != nil:
		var rekeyed bool
		var err error
		if line, rekeyed, err = c.srtp.reoffer(r); err != nil {
			return codec, 0, "", false, err
		}
		if rekeyed {
			newKey = line.Key
		}
	case r.Secure:
		return codec, 0, "", false, fmt.Errorf("%w: RTP/SAVP in a call of plain RTP", ErrNoCrypto)
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
	upd := media.RTPUpdate{Codec: &codec, EventPT: &r.EventPT, Send: send, Receive: recv, SRTPRemote: newKey}
	if !r.Held && r.RTP != c.remote {
		upd.Remote = r.RTP
	}
	if err := c.sess.Update(upd); err != nil {
		return codec, 0, "", false, err
	}
	if c.srtp != nil {
		c.srtp.keep(line)
	}
	changed = codec != c.codec || dir != c.dir || r.EventPT != c.eventPT || upd.Remote.IsValid() || newKey != nil
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
	codec, ev, dir, crypto := c.codec, c.eventPT, c.dir, c.srtp.lines()
	c.mu.Unlock()
	return c.sdp.marshalSRTP(crypto, []media.CodecSpec{codec}, ev, dir, bump)
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
	c.End(call.ReasonError)
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
		c.Forget()
	})
}
