package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/oklog/ulid/v2"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/callcap"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// minSE is the smallest session interval we accept (RFC 4028 §4).
const minSE = 90

// refusal is a SIP final response to an INVITE we will not take.
type refusal struct {
	code   int
	reason string
	why    string
	hdrs   []sip.Header
}

func (r *refusal) Error() string { return fmt.Sprintf("%d %s: %s", r.code, r.reason, r.why) }

// sessionExpires reads RFC 4028's Session-Expires of an INVITE; 0 when there is none.
func sessionExpires(req *sip.Request) (time.Duration, *refusal) {
	h := req.GetHeader("Session-Expires")
	if h == nil {
		if h = req.GetHeader("x"); h == nil { // the compact form
			return 0, nil
		}
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, &refusal{code: sip.StatusBadRequest, reason: "Bad Request", why: "Session-Expires " + h.Value()}
	}
	if n < minSE {
		return 0, &refusal{code: 422, reason: "Session Interval Too Small", why: "Session-Expires " + h.Value(),
			hdrs: []sip.Header{sip.NewHeader("Min-SE", strconv.Itoa(minSE))}}
	}
	return time.Duration(n) * time.Second, nil
}

func supports(req *sip.Request, ext string) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, v := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), ext) {
				return true
			}
		}
	}
	return false
}

// onInvite takes a new call in phases: guard (capacity, source), route (who calls, to whom,
// within which limits), read the offer, ring, answer with our media, and run the call. A
// re-INVITE goes to the dialog's handler.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok {
			s.onReInvite(req, tx)
			return
		}
	}
	log := s.log.With("call_id", req.CallID().Value(), "source", req.Source())
	if code, ok := s.admit(); !ok {
		s.refused.Add(1)
		respond(log, req, tx, code, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	// carried: the answered call went on to a goroutine of its own (below), which lets go of
	// what the deferred calls here would have.
	carried := false
	defer func() {
		if !carried {
			s.release()
		}
	}()
	ctx := s.ctx

	src, proxy, err := s.callerSource(req)
	if err != nil {
		reason := "Bad Request"
		if errors.Is(err, errSourceHeader) {
			reason += " (" + SourceHeader + ")"
		}
		log.Info("call refused", "status", sip.StatusBadRequest, "reason", err.Error())
		respond(log, req, tx, sip.StatusBadRequest, reason)
		return
	}
	if proxy.IsValid() {
		log = log.With("caller_source", src.String())
	}
	refuse := func(r *refusal) {
		s.refused.Add(1)
		log.Info("call refused", "status", r.code, "reason", r.why)
		respond(log, req, tx, r.code, r.reason, r.hdrs...)
	}
	who, h, rec, ref := s.routeInvite(ctx, req, src.Addr())
	if ref != nil {
		refuse(ref)
		return
	}
	slot, ref := s.acquireSlot(who.tenantID)
	if ref != nil {
		refuse(ref)
		return
	}
	defer func() {
		if !carried {
			slot()
		}
	}()
	in := &invite{req: req, log: log}
	if ref := in.readOffer(); ref != nil {
		refuse(ref)
		return
	}
	if ref := s.checkSRTP(in, who.trunk); ref != nil {
		refuse(ref)
		return
	}
	if ref := s.chooseMediaIP(in, src.Addr()); ref != nil {
		refuse(ref)
		return
	}
	// The caller's CANCEL, kept for its Reason header: registered before the dialog's own
	// hook, which ends the call, so that the record has it when it is written.
	var canceledBy atomic.Pointer[sip.Request]
	tx.OnCancel(func(r *sip.Request) { canceledBy.Store(r) })
	dlg, err := s.dialogUA.ReadInvite(req, tx)
	if err != nil {
		refuse(&refusal{code: sip.StatusBadRequest, reason: "Bad Request", why: err.Error()})
		return
	}
	defer func() {
		if !carried {
			_ = dlg.Close()
		}
	}()

	c, err := s.newInboundCall(ctx, dlg, who, h, rec)
	if err != nil {
		log.Error("call record not written", "error", err)
		_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	c.canceledBy = &canceledBy
	c.Hold(slot)
	defer c.survive(ctx, "call", true)
	s.calls.add(c)
	c.Publish(call.EventCreated, c.Record())
	if !c.ring(ctx, dlg) {
		return
	}
	body, ok := c.openAnswer(ctx, dlg, in)
	if !ok {
		return
	}
	if !c.answerInvite(ctx, dlg, h, in, body) {
		return
	}
	c.answered(ctx)
	// The call is carried on a goroutine of its own: the INVITE's, whose stack grew deep
	// taking the call (parsing, routing, the record, the answer), goes back to sipgo, and
	// what stays for the length of the call is small (BENCHMARKS.md, memory per call).
	carried = true
	go func() {
		defer s.release()
		defer slot()
		defer func() { _ = dlg.Close() }()
		defer c.survive(ctx, "call", true)
		c.run(ctx)
	}()
}

// invite is a new INVITE being taken, and what it asks of the session: its offer (none for
// a late offer, which comes in the ACK) and the session interval (RFC 4028).
type invite struct {
	req       *sip.Request
	log       *slog.Logger // the INVITE's, with its source
	offer     remoteSDP
	lateOffer bool
	expires   time.Duration
	// mediaIP is the address our media answers from (chooseMediaIP).
	mediaIP netip.Addr
	// srtp is the call's SRTP as the offer and the trunk decide it (checkSRTP); nil: RTP.
	srtp *callSRTP
}

// routeInvite decides who calls, whether they may, and what answers: the caller's tenant and
// trunk, the handler, and the call's record as far as routing fills it in.
func (s *Server) routeInvite(ctx context.Context, req *sip.Request, src netip.Addr) (caller, Handler, store.Call, *refusal) {
	who, ref := s.authenticate(ctx, req, src)
	if ref != nil {
		return who, nil, store.Call{}, ref
	}
	h, rec, ref := s.route(ctx, who)
	return who, h, rec, ref
}

// acquireSlot takes a place for the call within the node's and the tenant's limits: a
// tenant at its limit is busy (486), a full node unavailable (503).
func (s *Server) acquireSlot(tenantID string) (func(), *refusal) {
	slot, err := s.cfg.Calls.Acquire(tenantID)
	if err == nil {
		return sync.OnceFunc(slot), nil
	}
	if errors.Is(err, callcap.ErrTenantFull) {
		return nil, &refusal{code: sip.StatusBusyHere, reason: "Busy Here", why: err.Error()}
	}
	return nil, &refusal{code: sip.StatusServiceUnavailable, reason: "Service Unavailable", why: err.Error(),
		hdrs: []sip.Header{sip.NewHeader("Retry-After", "5")}}
}

// readOffer reads the session interval and the offer of the INVITE; one we cannot take is
// refused (422 for too short an interval, 488 for an unusable offer).
func (in *invite) readOffer() *refusal {
	var ref *refusal
	if in.expires, ref = sessionExpires(in.req); ref != nil {
		return ref
	}
	in.lateOffer = len(in.req.Body()) == 0
	if !in.lateOffer {
		offer, err := parseSDP(in.req.Body())
		if err != nil {
			return &refusal{code: sip.StatusNotAcceptableHere, reason: "Not Acceptable Here", why: err.Error()}
		}
		in.offer = offer
	}
	return nil
}

// chooseMediaIP chooses the address our media answers the INVITE from: the node's address
// as the caller sees it (SWITCHBOARD_PUBLIC_IP, or the route to the caller), unless the
// offer's media is of the other family (a phone offering IPv6 media over IPv4 signalling),
// when it is our address on the route to that media. A socket of one family cannot send to
// the other: an offer we cannot answer from its own family is refused with 488 and a
// Warning saying why, never answered from the other and then silent.
func (s *Server) chooseMediaIP(in *invite, src netip.Addr) *refusal {
	ip := s.localIP(src)
	if in.lateOffer || in.offer.Held || in.offer.RTP.Addr().Is4() == ip.Is4() {
		in.mediaIP = ip
		return nil
	}
	dst := in.offer.RTP.Addr()
	ip, err := routeFrom(dst)
	if err != nil {
		why := fmt.Sprintf("Incompatible network protocol: no %s address of this node reaches the offered media at %s", family(dst), dst)
		return &refusal{code: sip.StatusNotAcceptableHere, reason: "Not Acceptable Here", why: why,
			hdrs: []sip.Header{sip.NewHeader("Warning", fmt.Sprintf("300 %s %q", s.host, why))}}
	}
	in.mediaIP = ip
	return nil
}

// routeFrom is our address on the route to dst, of dst's family; an error when the node
// has no such route (no IPv6, a link-local address without its interface).
func routeFrom(dst netip.Addr) (netip.Addr, error) {
	if dst.IsLoopback() {
		return dst, nil
	}
	// A UDP "connection" sends nothing; it only asks the routing table for our address.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	ip := addrIP(conn.LocalAddr().(*net.UDPAddr).IP)
	if ip.Is4() != dst.Is4() {
		return netip.Addr{}, fmt.Errorf("%w: %s routed from %s", ErrMediaFamily, dst, ip)
	}
	return ip, nil
}

// newInboundCall writes the call's record (ringing) and makes the call of its dialog; the
// caller registers it, so that in-dialog requests and the API find it.
func (s *Server) newInboundCall(ctx context.Context, dlg *sipgo.DialogServerSession, who caller, h Handler, rec store.Call) (*Call, error) {
	req := dlg.InviteRequest
	now := time.Now().UTC()
	rec.Direction = store.CallInbound
	rec.From = req.From().Address.String()
	rec.To = req.Recipient.String()
	rec.SIPCallID = req.CallID().Value()
	rec.Status = store.CallRinging
	rec.Node = s.cfg.Node
	rec.StartedAt = &now
	if who.trunk != nil {
		rec.TrunkID = &who.trunk.ID
	}
	rec.Metadata = map[string]any{}
	rec.TenantID = who.tenantID
	if err := s.queueRecord(&rec); err != nil {
		return nil, err
	}
	c := s.newCall(rec, true, h)
	c.uas = dlg
	c.contact = s.contactFor(req.Transport(), s.advertisedFor(ctx, req.Source()))
	if !sipsRequested(req) {
		// RFC 3261 §12.1.1: the answer's Contact is a SIPS URI only when the INVITE asked
		// for one; a phone that calls sip:…;transport=tls may not take a sips: Contact
		// (baresip 1.0 ends the call on it, without its ACK).
		c.contact.Address.Scheme = "sip"
	}
	c.remoteHost = req.From().Address.Host
	if who.trunk != nil && who.trunk.Outbound.Address != "" {
		c.remoteHost = who.trunk.Outbound.Address
	}
	c.dialogID = dlg.ID
	return c, nil
}

// sipsRequested says whether an INVITE asked for SIPS: its Request-URI, or the top
// Record-Route when it has one, is a sips: URI.
func sipsRequested(req *sip.Request) bool {
	if rr := req.RecordRoute(); rr != nil {
		return strings.EqualFold(rr.Address.Scheme, "sips")
	}
	return strings.EqualFold(req.Recipient.Scheme, "sips")
}

// ring sends 100 and 180 and, when the server is set to, holds the call ringing; false when
// the call ended meanwhile (a CANCEL, a shutdown, a response that could not be sent).
func (c *Call) ring(ctx context.Context, dlg *sipgo.DialogServerSession) bool {
	if err := dlg.Respond(sip.StatusTrying, "Trying", nil); err != nil {
		c.end(ctx, call.ReasonError)
		return false
	}
	if err := dlg.Respond(sip.StatusRinging, "Ringing", nil, &c.contact); err != nil {
		c.end(ctx, call.ReasonError)
		return false
	}
	c.Publish(call.EventRinging, c.Record())
	if d := c.srv.ringDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-dlg.Context().Done(): // CANCEL: the transaction layer sent 200 and 487
			c.end(ctx, call.ReasonCanceled)
			return false
		case <-ctx.Done():
			_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
			c.end(ctx, call.ReasonShutdown)
			return false
		}
	}
	return true
}

// openAnswer opens the call's RTP ports and writes our description: the answer to the
// INVITE's offer, or, for a late offer, our own offer. False when the call ended for want
// of a port.
func (c *Call) openAnswer(ctx context.Context, dlg *sipgo.DialogServerSession, in *invite) ([]byte, bool) {
	ip := in.mediaIP
	ports, err := c.srv.listenRTP(ip)
	if err != nil {
		in.log.Error("rtp socket", "error", err)
		_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		c.end(ctx, call.ReasonError)
		return nil, false
	}
	c.ports = ports
	c.sdp = newLocalSDP(ip, ports.port)
	c.srtp = in.srtp
	if in.lateOffer {
		// No offer in the INVITE: ours goes in the 200 and the answer comes in the ACK.
		return c.sdp.marshalSRTP(c.srtp.lines(), ourCodecs, defaultEventPT, dirSendRecv, false), true
	}
	c.codec, c.eventPT, c.remote = in.offer.Codecs[0], in.offer.EventPT, in.offer.RTP
	c.dir = answerDirection(in.offer.Direction, in.offer.Held)
	return c.sdp.marshalSRTP(c.srtp.lines(), []media.CodecSpec{c.codec}, c.eventPT, c.dir, false), true
}

// answerInvite answers the call with body (after early media, when the handler plays
// some), waits for the ACK, takes a late offer's answer from it, and starts the media.
// False when the call ended instead: canceled, never acknowledged, or without usable media.
func (c *Call) answerInvite(ctx context.Context, dlg *sipgo.DialogServerSession, h Handler, in *invite, body []byte) bool {
	log := in.log
	res := sip.NewSDPResponseFromRequest(dlg.InviteRequest, body)
	res.AppendHeader(&c.contact)
	res.AppendHeader(allowHeader)
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	if in.expires > 0 && supports(in.req, "timer") {
		c.expires = in.expires
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(in.expires/time.Second))+";refresher=uac"))
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
	if em, ok := h.(EarlyMedia); ok && !in.lateOffer {
		// The same description goes in the 183 and in the 200: one answer to one offer.
		if !c.earlyMedia(ctx, em, body) {
			return false
		}
	}
	if err := dlg.WriteResponse(res); err != nil {
		c.closeMedia()
		c.answerFailed(ctx, dlg, err, log)
		return false
	}
	if in.lateOffer {
		var ack []byte
		select {
		case ack = <-c.ackSDP:
		default:
		}
		answer, err := parseSDP(ack)
		if err == nil {
			err = c.sdp.reaches(answer)
		}
		if err == nil {
			err = c.takeSRTPAnswer(answer)
		}
		if err != nil {
			log.Info("no usable answer in the ACK", "error", err)
			c.closeMedia()
			c.byeAndEnd(ctx, call.ReasonRejected)
			return false
		}
		c.codec, c.eventPT, c.remote = answer.Codecs[0], answer.EventPT, answer.RTP
		c.dir = answerDirection(answer.Direction, answer.Held)
	}
	if c.sess != nil { // started for the early media
		c.answerEarly()
	} else if err := c.startMedia(); err != nil {
		log.Error("media session", "error", err)
		c.ports.close()
		c.byeAndEnd(ctx, call.ReasonError)
		return false
	}
	return true
}

// answerFailed ends a call whose 200 was not acknowledged as sipgo expects. The dialog
// ending meanwhile is the caller's CANCEL only when a CANCEL came: a caller that hangs up
// at once sends its BYE right after its ACK, and sipgo, which reads each request on a
// goroutine of its own, may end the dialog on the BYE before it confirms it on the ACK.
// That call was answered, and the caller hung up: its record says so, with its answer time
// and codec.
func (c *Call) answerFailed(ctx context.Context, dlg *sipgo.DialogServerSession, err error, log *slog.Logger) {
	switch {
	case c.canceled(err):
		c.end(ctx, call.ReasonCanceled)
	case dlg.Context().Err() != nil:
		log.Info("caller hung up as the call was answered")
		c.answered(ctx)
		c.end(ctx, call.ReasonCallerHangup)
	default:
		// A 200 never acknowledged: RFC 3261 §13.3.1.4 says end the session with a BYE.
		log.Info("answer not acknowledged", "error", err)
		c.byeAndEnd(ctx, call.ReasonNoAck)
	}
}

// canceled says whether the caller's CANCEL ended the INVITE of an inbound call: its hook
// saw it (it runs before the dialog's own, which ends the dialog for it), or the
// transaction reports it (err).
func (c *Call) canceled(err error) bool {
	return (c.canceledBy != nil && c.canceledBy.Load() != nil) || errors.Is(err, sip.ErrTransactionCanceled)
}

// queueRecord gives a new inbound call its ID and hands its record to the store's call
// writer, which inserts it behind the call (batched with other calls' states): the INVITE
// is answered from memory, and its setup never waits for the database. Without a store the
// call still gets an ID.
func (s *Server) queueRecord(rec *store.Call) error {
	if s.cfg.Store == nil || rec.TenantID == "" {
		rec.ID = "call_" + strings.ToLower(ulid.Make().String())
		return nil
	}
	w, err := store.QueueCallCreate(s.cfg.Store, rec.TenantID, rec)
	if err != nil {
		return err
	}
	if s.recordsInline.Load() {
		return w.Wait(s.ctx)
	}
	w.Behind()
	return nil
}

// createRecord writes a new call's record, when the server keeps them; without a store the
// call still gets an ID.
func (s *Server) createRecord(ctx context.Context, rec *store.Call) error {
	if s.cfg.Store == nil || rec.TenantID == "" {
		rec.ID = "call_" + strings.ToLower(ulid.Make().String())
		return nil
	}
	return store.Create[store.Call](ctx, s.cfg.Store, rec.TenantID, rec)
}

// startMedia opens the call's media session on its negotiated codec and addresses, and
// tells the signalling handlers waiting for it.
func (c *Call) startMedia() error {
	if err := c.openMedia(); err != nil {
		return err
	}
	c.mediaDone()
	return nil
}

// streamRate is the rate of a call's frames: G.711's 8 kHz, and 16 kHz for Opus, whose RTP
// clock is 48 kHz whatever it carries. A phone call is at most wideband speech (our encoder
// is capped there, and agents hear at 16 kHz), and Opus decoding and encoding at 16 kHz
// costs about half of what it does at 48 kHz, with no resampling on the way to an agent.
func streamRate(codec media.CodecSpec) int {
	if strings.EqualFold(codec.Name, "opus") {
		return media.Rate16k
	}
	return codec.ClockRate
}

// openMedia opens the call's media session. Until mediaDone, only the call's owner and its
// handler use it: an early media session is not yet the answered call's.
func (c *Call) openMedia() error {
	send, recv := c.flows()
	cfg := media.RTPConfig{
		Log: c.log, Conn: c.ports.rtp, RTCP: c.ports.rtcp, Remote: c.remote,
		Codec: c.codec, EventPT: c.eventPT, Rate: streamRate(c.codec), MediaTimeout: c.srv.cfg.MediaTimeout,
		OpusComplexity: c.srv.cfg.OpusComplexity,
		// Silence while the handler listens: relays and NATs drop a call that carries no RTP.
		FillSilence: true,
		SRTP:        c.srtp.config(),
	}
	rec := c.srv.cfg.Recordings
	if rec.Dir == "" && c.srv.cfg.RecordDir != "" {
		rec = call.Recordings{Dir: c.srv.cfg.RecordDir, All: true}
	}
	if channels, retention, ok := rec.Plan(AgentOf(c.handler)); ok {
		f, err := os.Create(filepath.Join(rec.Dir, c.id+".wav"))
		if err != nil {
			return fmt.Errorf("recording: %w", err)
		}
		c.recFile, cfg.Record, cfg.RecordChannels, c.recRetention = f, f, channels, retention
	}
	sess, err := media.NewRTPSession(cfg)
	if err != nil {
		c.dropRecording()
		return err
	}
	if !send || !recv {
		_ = sess.Update(media.RTPUpdate{Send: send, Receive: recv})
	}
	c.mu.Lock() // signalling handlers look for it from their own goroutines
	c.sess = sess
	c.mu.Unlock()
	return nil
}
