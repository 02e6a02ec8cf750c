package sip

import (
	"runtime/debug"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// handle registers h for method behind the guard. Every request handler of the server is
// registered through here (New), so that no handler sees a request without the header
// fields RFC 3261 makes mandatory, and a panic in one never takes the node down.
func (s *Server) handle(method sip.RequestMethod, h sipgo.RequestHandler) {
	s.srv.OnRequest(method, s.guard(h))
}

// guard checks a request before h sees it and recovers h's panics.
//
// sipgo's parser drops what it cannot read (lenientHeaders keeps the fields a request
// can be answered without readable), and its transaction layer answers 400 to requests
// without Via or CSeq (it keys transactions by them); everything else reaches the
// handlers, headers missing or not: an INVITE without Call-ID once took the node down. A request that fails a check is answered here, with the
// header named in the reason phrase, or dropped when it is an ACK (RFC 3261 §17.1.1.3:
// an ACK is never answered).
func (s *Server) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer s.recoverHandler(req, tx)
		if !s.checksOff.Load() {
			if code, reason, hdrs := checkRequest(req); code != 0 {
				s.rejected.Add(1)
				if ok, left := s.guardLog.allow(time.Now()); ok {
					s.log.Info("sip request rejected", "method", string(req.Method), "status", code, "reason", reason,
						"source", req.Source(), "transport", req.Transport(), "suppressed", left)
				}
				if !req.IsAck() {
					s.reject(req, tx, code, reason, hdrs...)
				}
				return
			}
		}
		if req.Transport() != "UDP" {
			if v, ok := s.streams.Load(req.Source()); ok {
				s.conns.prove(v.(*edgeConn)) // a valid request: not evicted at the cap (connLimits)
			}
		}
		h(req, tx)
	}
}

// recoverHandler turns a handler's panic into one log line with its stack and a 500: the
// node stays up and the far end learns the request failed.
func (s *Server) recoverHandler(req *sip.Request, tx sip.ServerTransaction) {
	v := recover()
	if v == nil {
		return
	}
	s.panics.Add(1)
	s.log.Error("sip handler panicked", "method", string(req.Method), "source", req.Source(),
		"panic", v, "stack", string(debug.Stack()))
	if req.IsAck() {
		return
	}
	defer func() { _ = recover() }() // answering a request that broke a handler may break too
	s.reject(req, tx, sip.StatusInternalServerError, "Server Internal Error")
}

// reject answers req with a final response built from what the request has: the checks
// that failed may have left it without any of the headers a response copies.
func (s *Server) reject(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.SipVersion = "SIP/2.0" // a 505 speaks the version we do
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("rejection not sent", "status", code, "error", err)
	}
}

// Statuses sipgo has no names for.
const (
	statusUnsupportedURIScheme = 416
	statusBadExtension         = 420
)

// supportedExtensions are the option tags a Require may name (RFC 3261 §8.2.2.3).
var supportedExtensions = map[string]bool{"timer": true, "replaces": true}

// checkRequest is what RFC 3261 requires of every request a UAS takes (§8.1.1, §8.2): the
// version, the six mandatory header fields, once each (RFC 4475 §3.3.8), a CSeq of the
// request's method, a Contact on an INVITE (it makes a dialog, §8.1.1.8), a SIP
// Request-URI (§8.2.2.1, 416), only extensions we support in Require (§8.2.2.3, 420), and
// an INVITE's body in a type we read (§8.2.3, 415). It answers the status to reject with,
// a reason phrase naming the fault and the header fields the rejection carries, or 0.
func checkRequest(req *sip.Request) (int, string, []sip.Header) {
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return 505, "Version Not Supported", nil
	}
	var callIDs, froms, tos, cseqs, maxFwds int
	for _, h := range req.Headers() {
		switch h.(type) {
		case *sip.CallIDHeader:
			callIDs++
		case *sip.FromHeader:
			froms++
		case *sip.ToHeader:
			tos++
		case *sip.CSeqHeader:
			cseqs++
		case *sip.MaxForwardsHeader:
			maxFwds++
		}
	}
	switch {
	case req.Via() == nil:
		return sip.StatusBadRequest, "Missing or malformed Via header", nil
	case req.CallID() == nil || strings.TrimSpace(req.CallID().Value()) == "":
		return sip.StatusBadRequest, "Missing or malformed Call-ID header", nil
	case req.From() == nil:
		return sip.StatusBadRequest, "Missing or malformed From header", nil
	case req.To() == nil:
		return sip.StatusBadRequest, "Missing or malformed To header", nil
	case req.CSeq() == nil:
		return sip.StatusBadRequest, "Missing or malformed CSeq header", nil
	case !strings.EqualFold(strings.TrimSpace(string(req.CSeq().MethodName)), string(req.Method)): // sipgo upper-cases the method of the request line
		return sip.StatusBadRequest, "CSeq method does not match the request", nil
	case req.MaxForwards() == nil:
		return sip.StatusBadRequest, "Missing or malformed Max-Forwards header", nil
	case callIDs > 1:
		return sip.StatusBadRequest, "More than one Call-ID header", nil
	case froms > 1:
		return sip.StatusBadRequest, "More than one From header", nil
	case tos > 1:
		return sip.StatusBadRequest, "More than one To header", nil
	case cseqs > 1:
		return sip.StatusBadRequest, "More than one CSeq header", nil
	case maxFwds > 1:
		return sip.StatusBadRequest, "More than one Max-Forwards header", nil
	case req.IsInvite() && req.Contact() == nil:
		return sip.StatusBadRequest, "Missing or malformed Contact header", nil
	}
	if sc := strings.ToLower(req.Recipient.Scheme); sc != "sip" && sc != "sips" {
		return statusUnsupportedURIScheme, "Unsupported URI Scheme", nil
	}
	if !req.IsAck() && !req.IsCancel() {
		var unsupported []string
		for _, h := range req.GetHeaders("Require") {
			for _, tag := range strings.Split(h.Value(), ",") {
				if tag = strings.TrimSpace(tag); tag != "" && !supportedExtensions[strings.ToLower(tag)] {
					unsupported = append(unsupported, tag)
				}
			}
		}
		if len(unsupported) > 0 {
			return statusBadExtension, "Bad Extension", []sip.Header{sip.NewHeader("Unsupported", strings.Join(unsupported, ", "))}
		}
	}
	if req.IsInvite() && len(req.Body()) > 0 {
		if ct := req.ContentType(); ct != nil {
			mt, _, _ := strings.Cut(ct.Value(), ";")
			if !strings.EqualFold(strings.TrimSpace(mt), "application/sdp") {
				return sip.StatusUnsupportedMediaType, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", "application/sdp")}
			}
		}
	}
	return 0, "", nil
}
