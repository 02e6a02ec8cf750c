package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// maxAuthRounds bounds the digest challenges answered for one outbound INVITE.
const maxAuthRounds = 2

// Dial places an outbound call: rec (validated, direction outbound) says where to and what
// talks on our side. The record is stored queued and the INVITE leaves in the background;
// the record and the call's events follow it through ringing to its outcome (answered,
// busy, no-answer, failed).
func (s *Server) Dial(ctx context.Context, rec *store.Call) error {
	select {
	case <-s.ready:
	default:
		return &DialError{Err: ErrNotServing, Reason: "the server is not serving yet"}
	}
	trunk, err := s.dialTrunk(ctx, rec)
	if err != nil {
		return err
	}
	target, err := dialTarget(rec.To, trunk)
	if err != nil {
		return &DialError{Err: ErrBadCallee, Reason: err.Error()}
	}
	if mode := srtpMode(trunk); mode != store.TrunkSRTPOff && !overTLS(targetTransport(target)) {
		return &DialError{Err: ErrSRTPNeedsTLS, Reason: fmt.Sprintf(
			"the trunk's srtp is %q, and SRTP keys travel only over SIP TLS: set its outbound.transport to tls (the callee %s is not reached over TLS)", mode, target.String())}
	}
	h, err := s.dialHandler(ctx, rec)
	if err != nil {
		return err
	}
	if rec.AMD != nil {
		h = amdHandler{next: h, cfg: *rec.AMD}
	}
	slot, err := s.cfg.Calls.Acquire(rec.TenantID) //nolint:contextcheck // a call's place outlives the request that placed it
	if err != nil {
		return err
	}
	slot = sync.OnceFunc(slot)
	if _, ok := s.admit(); !ok {
		slot()
		return &DialError{Err: ErrNodeFull, Reason: "this node is at its call limit or shutting down"}
	}
	rec.Direction = store.CallOutbound
	rec.Status = store.CallQueued
	rec.Node = s.cfg.Node
	if rec.From == "" && trunk != nil {
		rec.From = trunk.Outbound.CallerID
	}
	if rec.From == "" {
		// The record says who the callee sees calling: the From of our INVITE.
		u := s.fromURI("")
		rec.From = u.String()
	}
	if rec.TimeoutSeconds == 0 {
		rec.TimeoutSeconds = store.DefaultCallTimeout
	}
	rec.SIPCallID = sip.GenerateTagN(32) + "@" + s.host
	if err := s.createRecord(ctx, rec); err != nil {
		s.release()
		slot()
		return err
	}
	c := s.newCall(*rec, false, h)
	c.remoteHost = target.Host
	if target.Port != 0 {
		c.remoteHost = target.HostPort()
	}
	c.Hold(slot)
	s.calls.add(c)
	c.Publish(call.EventCreated, c.Record())
	go func() {
		defer s.release()
		defer slot()
		defer c.survive(s.ctx, "call", true)
		s.dial(c, target, trunk)
	}()
	return nil
}

// dialTrunk is the trunk a call goes out through (nil for a SIP URI dialled directly): the
// tenant's, taking outbound calls, with an address unless the callee is a SIP URI.
func (s *Server) dialTrunk(ctx context.Context, rec *store.Call) (*store.Trunk, error) {
	if rec.TrunkID == nil {
		return nil, nil
	}
	t, err := store.Get[store.Trunk](ctx, s.cfg.Store, rec.TenantID, *rec.TrunkID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &DialError{Err: ErrTrunkNotFound, Reason: "no such trunk"}
	}
	if err != nil {
		return nil, err
	}
	if t.Direction == "inbound" {
		return nil, &DialError{Err: ErrTrunkInboundOnly, Reason: "the trunk takes inbound calls only; set its direction to outbound or both"}
	}
	if t.Outbound.Address == "" && !hasScheme(rec.To) {
		return nil, &DialError{Err: ErrTrunkNoAddress, Reason: "the trunk has no outbound address"}
	}
	return t, nil
}

// dialHandler is what talks on our side of an outbound call: the call's agent, or a
// built-in destination.
func (s *Server) dialHandler(ctx context.Context, rec *store.Call) (Handler, error) {
	if rec.AgentID != nil {
		if s.cfg.Agents == nil {
			return nil, &DialError{Err: ErrAgentUnavailable, Reason: "agents cannot take calls on this node"}
		}
		h, err := s.cfg.Agents.AgentHandler(ctx, rec.TenantID, *rec.AgentID)
		if err != nil {
			return nil, &DialError{Err: ErrAgentUnavailable, Reason: err.Error()}
		}
		return h, nil
	}
	if h := builtin(rec.Destination); h != nil {
		return h, nil
	}
	return nil, &DialError{Err: ErrUnknownDestination, Reason: "unknown built-in destination"}
}

func hasScheme(to string) bool {
	l := strings.ToLower(to)
	return strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:")
}

// dialTarget is the request URI of an outbound call: a SIP URI as given, or the number or
// user at the trunk's address (with its transport, and TLS's port 5061 when the address has
// none). A trunk over TLS is reached at sip:…;transport=tls, as carriers and PBXs take it:
// a sips: URI would ask for TLS on every hop beyond the trunk too, and phones such as
// baresip 1.0 cannot send their requests back to one.
func dialTarget(to string, trunk *store.Trunk) (sip.Uri, error) {
	var u sip.Uri
	if hasScheme(to) {
		if err := sip.ParseUri(to, &u); err != nil || u.Host == "" {
			return u, fmt.Errorf("%q is not a SIP URI", to)
		}
		return u, nil
	}
	addr := trunk.Outbound.Address
	if !strings.Contains(addr, ":") || strings.HasSuffix(addr, "]") {
		if strings.EqualFold(trunk.Outbound.Transport, "tls") {
			addr += ":5061"
		} else {
			addr += ":5060"
		}
	}
	if err := sip.ParseUri("sip:"+to+"@"+addr, &u); err != nil {
		return u, fmt.Errorf("%q at trunk address %q does not make a SIP URI", to, trunk.Outbound.Address)
	}
	if t := strings.ToLower(trunk.Outbound.Transport); t == "tcp" || t == "tls" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", t)
	}
	return u, nil
}

// targetTransport is the transport a request to target leaves over: its transport
// parameter, else TLS for a sips: URI and UDP for a sip: one.
func targetTransport(target sip.Uri) string {
	if target.UriParams != nil {
		if t, ok := target.UriParams.Get("transport"); ok {
			return strings.ToLower(t)
		}
	}
	if strings.EqualFold(target.Scheme, "sips") {
		return "tls"
	}
	return "udp"
}

// dial runs an outbound call from INVITE to its end, in phases: open its media, build the
// INVITE, send it (answering digest challenges) and wait while it rings, take the answer,
// and run the call. A call not answered ends with the outcome of its INVITE.
//
//nolint:contextcheck // a dialled call outlives the request that placed it; the server's context ends it
func (s *Server) dial(c *Call, target sip.Uri, trunk *store.Trunk) {
	ctx := s.ctx
	log := c.log.With("to", target.String())
	dst, reason := s.openDialMedia(ctx, c, target, log)
	if reason != "" {
		c.failDial(ctx, reason)
		return
	}
	inv, reason := s.newOutboundInvite(c, target, dst, trunk, log)
	if reason != "" {
		c.ports.close()
		c.failDial(ctx, reason)
		return
	}

	ringCtx, cancel := context.WithTimeout(ctx, time.Duration(c.Record().TimeoutSeconds)*time.Second)
	defer cancel()
	// The INVITE waits on waitCtx, which only the canceller ends, forced, when the far end
	// never answers its CANCEL: a hang-up while it rings (Server.Hangup), the call's timeout
	// and a shutdown are the canceller's, and its CANCEL says which (sipgo's would not).
	waitCtx, force := context.WithCancelCause(context.WithoutCancel(ctx))
	defer force(nil)
	waitDone := make(chan struct{})
	cancellerDone := make(chan struct{})
	go func() {
		defer close(cancellerDone)
		select {
		case <-c.Ending():
			c.cancelInvite(waitCtx, c.Reason(), waitDone, force)
		case <-ringCtx.Done():
			reason := call.ReasonNoAnswer
			if ctx.Err() != nil {
				reason = call.ReasonShutdown
			}
			c.cancelInvite(waitCtx, reason, waitDone, force)
		case <-waitDone:
		}
	}()
	dlg, err := s.sendInvite(ctx, waitCtx, c, inv, log)
	close(waitDone)
	<-cancellerDone
	if dlg == nil {
		log.Info("call failed", "reason", "invite not sent", "error", err)
		c.ports.close()
		c.failDial(ctx, call.ReasonError)
		return
	}
	if err != nil {
		c.ports.close()
		_ = dlg.Close()
		c.failDial(ctx, c.unanswered(ctx, ringCtx, err, log))
		return
	}
	c.dialogID = dlg.ID
	s.calls.setDialog(c, dlg.ID)
	defer dlg.Close()

	if !c.takeAnswer(ctx, dlg, log) {
		return
	}
	c.answered(ctx)
	c.run(ctx)
}

// failDial ends an outbound call that was not answered with reason, or with the API's reason
// when Server.Hangup came first, whatever it interrupted.
func (c *Call) failDial(ctx context.Context, reason call.Reason) {
	if c.hungUp() {
		reason = c.Reason()
	}
	c.end(ctx, reason)
}

// openDialMedia resolves the callee's host and opens the call's RTP ports on the local
// address that reaches it; it returns the callee's address, or the call's ended reason
// when it cannot.
func (s *Server) openDialMedia(ctx context.Context, c *Call, target sip.Uri, log *slog.Logger) (netip.Addr, call.Reason) {
	dst := netip.Addr{}
	if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", target.Host); err == nil && len(ips) > 0 {
		dst = ips[0].Unmap()
	}
	if !dst.IsValid() {
		log.Info("call failed", "reason", "destination host does not resolve")
		return dst, call.ReasonError
	}
	ip := s.localIP(dst)
	ports, err := s.listenRTP(ip)
	if err != nil {
		log.Error("rtp socket", "error", err)
		return dst, call.ReasonError
	}
	c.ports = ports
	c.sdp = newLocalSDP(ip, ports.port)
	return dst, ""
}

// fromURI is the From of an outbound call placed as from: a SIP URI as given, a number or
// user at our host, or our own identity ("switchboard") when the call names none.
func (s *Server) fromURI(from string) sip.Uri {
	if from == "" {
		from = "switchboard"
	}
	u := sip.Uri{Scheme: "sip", User: strings.TrimPrefix(from, "sip:"), Host: s.host}
	if hasScheme(from) {
		_ = sip.ParseUri(from, &u)
	}
	return u
}

// outboundInvite is what each INVITE of an outbound call is built from; a digest challenge
// sends it again with credentials.
type outboundInvite struct {
	target    sip.Uri
	transport string // "udp", "tcp" or "tls"
	// user and password answer digest challenges: the trunk's outbound credentials.
	user, password string
	from           *sip.FromHeader
	to             *sip.ToHeader
	callID         sip.CallIDHeader
	offer          []byte
	// plainOffer is the offer of RTP/AVP made when the far end refuses our RTP/SAVP 488
	// under a trunk that offers SRTP without requiring it; nil: no second offer.
	plainOffer []byte
}

// newOutboundInvite builds what the call's INVITE says: transport and Contact (the node's
// address as the callee at dst reaches it), the trunk's credentials, From and To, and our
// offer. It returns the call's ended reason when the trunk's password cannot be read.
func (s *Server) newOutboundInvite(c *Call, target sip.Uri, dst netip.Addr, trunk *store.Trunk, log *slog.Logger) (*outboundInvite, call.Reason) {
	inv := &outboundInvite{target: target, transport: targetTransport(target)}
	c.contact = s.contactFor(inv.transport, s.advertised(dst))
	if !strings.EqualFold(target.Scheme, "sips") {
		c.contact.Address.Scheme = "sip" // a SIPS Contact only for a SIPS request (RFC 3261 §8.1.1.8)
	}

	if trunk != nil && trunk.Outbound.Username != "" && trunk.OutboundPasswordEnc != "" {
		inv.user = trunk.Outbound.Username
		var err error
		if inv.password, err = trunk.OutboundPassword(s.cfg.Store); err != nil {
			log.Error("trunk password not readable", "error", err)
			return nil, call.ReasonError
		}
	}

	rec := c.Record()
	inv.from = &sip.FromHeader{Address: s.fromURI(rec.From), Params: sip.NewParams()}
	inv.from.Params.Add("tag", sip.GenerateTagN(16))
	inv.to = &sip.ToHeader{Address: sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}}
	inv.callID = sip.CallIDHeader(rec.SIPCallID)
	inv.offer = c.sdp.marshal(ourCodecs, defaultEventPT, dirSendRecv, false)
	if mode := srtpMode(trunk); mode != store.TrunkSRTPOff && overTLS(inv.transport) {
		c.srtp = newSRTPOffer()
		if mode == store.TrunkSRTPOffer {
			inv.plainOffer = inv.offer
		}
		inv.offer = c.sdp.marshalSRTP(c.srtp.lines(), ourCodecs, defaultEventPT, dirSendRecv, false)
	}
	return inv, ""
}

// sendInvite sends the call's INVITE and waits, ringing, for its final response until
// ringCtx ends; a 401 or 407 is answered with the trunk's credentials (maxAuthRounds at
// most). A nil dialog means the INVITE could not be sent; a dialog with an error, that it
// was not answered.
func (s *Server) sendInvite(ctx, ringCtx context.Context, c *Call, inv *outboundInvite, log *slog.Logger) (*sipgo.DialogClientSession, error) {
	cseq := uint32(1)
	var dlg *sipgo.DialogClientSession
	var authHdr sip.Header
	var err error
	ringing, early := false, false
	for round := 0; ; round++ {
		req := sip.NewRequest(sip.INVITE, inv.target)
		req.AppendHeader(inv.from)
		req.AppendHeader(inv.to)
		req.AppendHeader(&inv.callID)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.INVITE})
		req.AppendHeader(&c.contact)
		if s.proxyRoute != nil {
			req.AppendHeader(s.proxyRoute.Clone())
		}
		req.AppendHeader(allowHeader)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		if authHdr != nil {
			req.AppendHeader(authHdr)
		}
		req.SetBody(inv.offer)
		if inv.transport != "udp" {
			req.SetTransport(strings.ToUpper(inv.transport))
		}
		c.Update(ctx, func(r *store.Call) { now := time.Now().UTC(); r.StartedAt = &now })
		dlg, err = s.dialogUA.WriteInvite(ringCtx, req)
		if err != nil {
			return nil, err
		}
		c.uac = dlg
		fl := &inviteInFlight{req: req, provisional: make(chan struct{})}
		c.inflight.Store(fl)
		err = dlg.WaitAnswer(ringCtx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			if res.IsProvisional() {
				fl.once.Do(func() { close(fl.provisional) })
			}
			if (res.StatusCode == 180 || res.StatusCode == 183) && !ringing {
				ringing = true
				c.Update(ctx, func(r *store.Call) { r.Status = store.CallRinging })
				c.Publish(call.EventRinging, c.Record())
			}
			if !early && res.IsProvisional() && res.StatusCode != 100 {
				early = c.earlyAnswer(res)
			}
			return nil
		}})
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) && (de.Res.StatusCode == 401 || de.Res.StatusCode == 407) && inv.password != "" && round < maxAuthRounds {
			hdrName, authName := "WWW-Authenticate", "Authorization"
			if de.Res.StatusCode == 407 {
				hdrName, authName = "Proxy-Authenticate", "Proxy-Authorization"
			}
			ch := de.Res.GetHeader(hdrName)
			if ch == nil {
				break
			}
			v, aerr := authorization(req, ch.Value(), inv.user, inv.password)
			if aerr != nil {
				log.Info("challenge not answered", "error", aerr)
				break
			}
			authHdr = sip.NewHeader(authName, v)
			cseq++
			_ = dlg.Close()
			continue
		}
		if errors.As(err, &de) && de.Res.StatusCode == sip.StatusNotAcceptableHere && inv.plainOffer != nil {
			// The far end does not take SRTP, and the trunk only offers it: the call goes on
			// in the clear, offered anew (the offer of a refused INVITE is void).
			log.Info("srtp refused by the far end; offering plain RTP", "warning", headerValue(de.Res, "Warning"))
			c.srtp, inv.offer, inv.plainOffer = nil, inv.plainOffer, nil
			cseq++
			_ = dlg.Close()
			continue
		}
		break
	}
	return dlg, err
}

// earlyAnswer publishes call.early_media, as an inbound call's early media does, when a
// provisional response carries the callee's description (a 183 with its ringback or
// announcement); it reports whether it did.
func (c *Call) earlyAnswer(res *sip.Response) bool {
	if len(res.Body()) == 0 {
		return false
	}
	if ct := res.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), "application/sdp") {
		return false
	}
	answer, err := parseSDP(res.Body())
	if err != nil {
		c.log.Info("early media not usable", "status", res.StatusCode, "error", err)
		return false
	}
	c.log.Info("early media", "status", res.StatusCode, "codec", answer.Codecs[0].Name)
	c.Publish(call.EventEarlyTone, call.EarlyMedia{Codec: answer.Codecs[0].Name})
	return true
}

// unanswered is the ended reason of a call whose INVITE failed with err: the API's hang-up,
// the far end's refusal (its status kept in the record's metadata), no answer before the
// call's timeout, the server's shutdown, or an error.
func (c *Call) unanswered(ctx, ringCtx context.Context, err error, log *slog.Logger) call.Reason {
	var de *sipgo.ErrDialogResponse
	switch {
	case c.hungUp(): // its CANCEL's 487 is no refusal of the far end
		log.Info("call hung up before answer", "reason", c.Reason())
		return c.Reason()
	case errors.As(err, &de) && ringCtx.Err() == nil: // not the 487 of our CANCEL at the timeout
		reason := outcome(de.Res.StatusCode)
		log.Info("call not answered", "status", de.Res.StatusCode, "outcome", reason)
		c.Update(ctx, func(r *store.Call) { r.Metadata = withSIPStatus(r.Metadata, de.Res.StatusCode) })
		return reason
	case ringCtx.Err() != nil && ctx.Err() == nil:
		log.Info("call not answered", "outcome", "no-answer")
		return call.ReasonNoAnswer
	case ctx.Err() != nil:
		return call.ReasonShutdown
	default:
		log.Info("call failed", "error", err)
		return call.ReasonError
	}
}

// takeAnswer acknowledges the far end's 200 and starts the media on the codec and address
// of its answer; false when the call ended instead (an unusable answer, no media session).
func (c *Call) takeAnswer(ctx context.Context, dlg *sipgo.DialogClientSession, log *slog.Logger) bool {
	answer, perr := parseSDP(dlg.InviteResponse.Body())
	if perr == nil {
		perr = c.sdp.reaches(answer)
	}
	if perr == nil {
		perr = c.takeSRTPAnswer(answer)
	}
	if err := dlg.Ack(ctx); err != nil {
		log.Info("ack failed", "error", err)
	}
	if perr != nil {
		log.Info("answer not usable", "error", perr)
		c.ports.close()
		c.byeAndEnd(ctx, call.ReasonError)
		return false
	}
	c.codec, c.eventPT, c.remote = answer.Codecs[0], answer.EventPT, answer.RTP
	c.dir = answerDirection(answer.Direction, answer.Held)
	if err := c.startMedia(); err != nil {
		log.Error("media session", "error", err)
		c.ports.close()
		c.byeAndEnd(ctx, call.ReasonError)
		return false
	}
	return true
}

// outcome is the ended reason of a call refused with code.
func outcome(code int) call.Reason {
	switch code {
	case 486, 600, 603:
		return call.ReasonBusy
	case 408, 480, 487:
		return call.ReasonNoAnswer
	}
	return call.ReasonRejected
}

func withSIPStatus(m map[string]any, code int) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m["sip_status"] = code
	return m
}

// inviteInFlight is the INVITE of an outbound call that waits for its answer: what its
// CANCEL is built from, once a provisional response allows one (RFC 3261 §9.1).
type inviteInFlight struct {
	req         *sip.Request
	provisional chan struct{}
	once        sync.Once
}

// cancelTimeout is how long the canceller waits for the final response of a canceled INVITE
// (64*T1, RFC 3261 §9.1) before it gives the INVITE up without one.
const cancelTimeout = 32 * time.Second

// cancelInvite gives up the call's ringing INVITE with a CANCEL whose Reason header says
// why (the Q.850 cause of reason): sipgo's own CANCEL carries none, and a carrier that
// gets one can tell a caller who gave up from a timeout. The INVITE then ends with the
// far end's 487 (or its 200, when the answer crossed the CANCEL: the call then runs, sees
// it has ended and sends a BYE); force ends the wait when neither comes.
func (c *Call) cancelInvite(ctx context.Context, reason call.Reason, waitDone <-chan struct{}, force context.CancelCauseFunc) {
	poll := time.NewTicker(20 * time.Millisecond) // an authentication round changes the INVITE
	defer poll.Stop()
	var fl *inviteInFlight
	for fl == nil {
		cur := c.inflight.Load()
		var prov <-chan struct{}
		if cur != nil {
			prov = cur.provisional
		}
		select {
		case <-prov:
			fl = cur
		case <-poll.C:
		case <-waitDone:
			return
		case <-ctx.Done():
			return
		}
	}
	req := fl.req
	cancelReq := sip.NewRequest(sip.CANCEL, req.Recipient)
	cancelReq.SipVersion = req.SipVersion
	cancelReq.AppendHeader(sip.HeaderClone(req.Via())) // the INVITE's top Via: the CANCEL matches its transaction
	cancelReq.AppendHeader(sip.HeaderClone(req.From()))
	cancelReq.AppendHeader(sip.HeaderClone(req.To()))
	cancelReq.AppendHeader(sip.HeaderClone(req.CallID()))
	cancelReq.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.CANCEL})
	sip.CopyHeaders("Route", req, cancelReq)
	maxFwd := sip.MaxForwardsHeader(70)
	cancelReq.AppendHeader(&maxFwd)
	cancelReq.AppendHeader(reasonHeader(reason))
	cancelReq.SetBody(nil)
	cancelReq.SetTransport(req.Transport())
	cancelReq.SetSource(req.Source())
	cancelReq.Laddr = req.Laddr
	asBuilt := func(*sipgo.Client, *sip.Request) error { return nil } // keep the INVITE's Via
	tx, err := c.srv.dialogUA.Client.TransactionRequest(ctx, cancelReq, asBuilt)
	if err != nil {
		c.log.Info("cancel not sent", "error", err)
		force(sipgo.WaitAnswerForceCancelErr)
		return
	}
	defer tx.Terminate()
	c.log.Info("invite canceled", "reason", reason)
	t := time.NewTimer(cancelTimeout)
	defer t.Stop()
	responses, txDone := tx.Responses(), tx.Done() // read, or the transaction layer waits on us
	for {
		select {
		case res := <-responses:
			if !res.IsProvisional() {
				responses = nil
				if res.StatusCode != sip.StatusOK {
					c.log.Info("cancel refused", "status", res.StatusCode)
				}
			}
		case <-txDone:
			responses, txDone = nil, nil
		case <-waitDone:
			return
		case <-t.C:
			force(sipgo.WaitAnswerForceCancelErr)
			return
		case <-ctx.Done():
			return
		}
	}
}
