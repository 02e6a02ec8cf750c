package sip

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
)

// onOptions answers a keep-alive or a proxy's probe (Kamailio's dispatcher): 200 with what
// we support, or 503 with Retry-After once the node is draining, so that the proxy sends
// new calls to other nodes while this one's calls end.
func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if s.cfg.Calls.Draining() {
		respond(s.log, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(allowHeader)
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag"))
	res.AppendHeader(sip.NewHeader("Supported", "timer, replaces"))
	if err := tx.Respond(res); err != nil {
		s.log.Warn("respond failed", "error", err)
	}
}

func (s *Server) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	respond(s.log, req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed", allowHeader)
}

func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	// The transaction layer answers a CANCEL that matches a pending INVITE (200, then 487);
	// what reaches us matched nothing.
	respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

// onReInvite handles an INVITE inside a dialog: hold and resume, a new address or codec, a
// session refresh, or an empty INVITE asking for our description.
func (s *Server) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	// Before the dialog reads it: a re-INVITE read ahead of the ACK of our 200 would make
	// that ACK's CSeq stale, and the call would hang until the 200 timed out.
	if c.awaitMedia(answerWait) == nil {
		// Our 200 is not acknowledged yet, or the call is still ringing (RFC 3261 §14.2).
		respond(c.log, req, tx, sip.StatusInternalServerError, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return
	}
	if err := c.readRequest(req, tx); err != nil {
		respond(c.log, req, tx, sip.StatusInternalServerError, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return
	}
	c.refreshed()
	var body []byte
	if len(req.Body()) == 0 {
		// Our current description is the offer; the answer comes in the ACK.
		body = c.currentSDP(false)
	} else {
		r, err := parseSDP(req.Body())
		if err != nil {
			c.log.Info("re-INVITE refused", "error", err)
			respond(c.log, req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		_, _, dir, changed, err := c.applyRemote(r)
		if err != nil {
			respond(c.log, req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		c.log.Info("re-INVITE", "direction", dir, "changed", changed)
		body = c.currentSDP(changed)
	}
	res := sip.NewSDPResponseFromRequest(req, body)
	res.AppendHeader(&c.contact)
	if exp, _ := sessionExpires(req); exp > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(exp/time.Second))+";refresher=uac"))
		c.mu.Lock()
		c.expires = exp
		c.mu.Unlock()
	}
	if err := tx.Respond(res); err != nil {
		c.log.Warn("re-INVITE answer failed", "error", err)
	}
}

// onUpdate handles UPDATE (RFC 3311): a session refresh, or a new offer.
func (s *Server) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if err := c.readRequest(req, tx); err != nil {
		respond(c.log, req, tx, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	c.refreshed()
	if len(req.Body()) == 0 || c.session() == nil {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(&c.contact)
		_ = tx.Respond(res)
		return
	}
	r, err := parseSDP(req.Body())
	if err != nil {
		respond(c.log, req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
		return
	}
	_, _, _, changed, err := c.applyRemote(r)
	if err != nil {
		respond(c.log, req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
		return
	}
	res := sip.NewSDPResponseFromRequest(req, c.currentSDP(changed))
	res.AppendHeader(&c.contact)
	_ = tx.Respond(res)
}

// readRequest checks an in-dialog request's CSeq against the dialog's.
func (c *Call) readRequest(req *sip.Request, tx sip.ServerTransaction) error {
	if c.uas != nil {
		return c.uas.ReadRequest(req, tx)
	}
	return c.uac.ReadRequest(req, tx)
}

// refreshed starts the session interval of a running call again: it was refreshed.
func (c *Call) refreshed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.armExpiry()
	}
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		return // an ACK outside a dialog is dropped
	}
	if body := req.Body(); len(body) > 0 {
		if c.session() == nil {
			select { // the answer to the offer of our 200 (late offer)
			case c.ackSDP <- body:
			default:
			}
		} else if r, err := parseSDP(body); err == nil { // the answer to an empty re-INVITE
			if _, _, _, _, err := c.applyRemote(r); err != nil {
				c.log.Info("answer in ACK not applied", "error", err)
			}
		} else {
			c.log.Info("answer in ACK not usable", "error", err)
		}
	}
	if c.uas != nil {
		_ = c.uas.ReadAck(req, tx)
	}
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	// Before the dialog ends on it: the call's end writes the record as soon as it has.
	c.notePeerReason(req)
	var err error
	if c.uas != nil {
		err = c.uas.ReadBye(req, tx)
	} else {
		err = c.uac.ReadBye(req, tx)
	}
	if err != nil {
		c.log.Info("bye refused", "error", err)
		respond(c.log, req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	if c.inbound {
		c.FarEnded(call.ReasonCallerHangup)
	} else {
		c.FarEnded(call.ReasonCalleeHangup)
	}
}

// onInfo takes DTMF sent as SIP INFO (application/dtmf-relay, application/dtmf).
func (s *Server) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	sess := c.awaitMedia(answerWait) // a key pressed right after the ACK, as for re-INVITE
	if err := c.readRequest(req, tx); err != nil {
		respond(c.log, req, tx, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	}
	switch ct {
	case "application/dtmf-relay", "application/dtmf":
	case "":
		respond(c.log, req, tx, sip.StatusOK, "OK") // an empty INFO is a keep-alive
		return
	default:
		respond(c.log, req, tx, sip.StatusUnsupportedMediaType, "Unsupported Media Type",
			sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	}
	ev, err := media.ParseDTMFInfo(ct, req.Body())
	if err != nil {
		c.log.Info("INFO DTMF refused", "error", err)
		respond(c.log, req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	respond(c.log, req, tx, sip.StatusOK, "OK")
	if sess != nil {
		sess.Deliver(ev)
	}
}

// onNotify takes the progress of a transfer we asked for (RFC 3515 §2.4.5): a sipfrag
// status line; a final one decides the transfer.
func (s *Server) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := s.calls.match(req)
	if c == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if err := c.readRequest(req, tx); err != nil {
		respond(c.log, req, tx, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	ev := req.GetHeader("Event")
	if ev == nil || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ev.Value())), "refer") {
		respond(c.log, req, tx, 489, "Bad Event")
		return
	}
	code, ok := sipfragStatus(req.Body())
	if !ok {
		respond(c.log, req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	respond(c.log, req, tx, sip.StatusOK, "OK")
	c.log.Info("transfer progress", "status", code)
	if code >= 200 {
		select {
		case c.notify <- code:
		default:
		}
	}
}

// sipfragStatus reads the status code of a message/sipfrag body ("SIP/2.0 200 OK").
func sipfragStatus(body []byte) (int, bool) {
	line, _, _ := strings.Cut(string(body), "\n")
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0, false
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 699 {
		return 0, false
	}
	return code, true
}

// onRefer declines transfers asked of us: Switchboard transfers its callers itself.
func (s *Server) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	if s.calls.match(req) == nil {
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	respond(s.log, req, tx, 603, "Decline")
}
