package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/store"
)

// WebRTCCalls answers browsers' calls over WebRTC; the node's web calls implement it.
type WebRTCCalls interface {
	// StartWebRTCCall answers the offer of req with a new peer and runs the call in the
	// background; it returns the call. An offer that cannot be answered is a
	// *rtc.OfferError, an unknown agent wraps store.ErrNotFound, a bad target is a
	// *store.ValidationError.
	StartWebRTCCall(ctx context.Context, tenantID string, req WebRTCSessionRequest, from string) (*StartedWebRTCCall, error)
	// HasWebRTCCall says whether id is a live WebRTC call of the tenant on this node.
	HasWebRTCCall(tenantID, id string) bool
	// TrickleWebRTCCall adds the candidates of an RFC 8840 fragment (rtc.ErrCandidate
	// when it is not one; store.ErrNotFound when the call is not live). A fragment with
	// new ICE credentials restarts ICE (WHIP, RFC 9725): it returns the node's new
	// credentials and candidates as a fragment, and nil otherwise.
	TrickleWebRTCCall(ctx context.Context, tenantID, id string, frag []byte) ([]byte, error)
	// RenegotiateWebRTCCall answers a new offer of a live call, such as a browser's ICE
	// restart, and returns the answer; the call goes on (a *rtc.OfferError when the offer
	// cannot be answered, store.ErrNotFound when the call is not live).
	RenegotiateWebRTCCall(ctx context.Context, tenantID, id, offer string) (string, error)
	// HangupWebRTCCall ends the call as the caller's hang-up (store.ErrNotFound when it is
	// not live).
	HangupWebRTCCall(ctx context.Context, tenantID, id string) error
	// ICEServers are the STUN and TURN servers browsers should use.
	ICEServers() []rtc.ICEServer
}

// StartedWebRTCCall is a WebRTC call just answered.
type StartedWebRTCCall struct {
	ID     string
	Answer string // the SDP answer
	// Done is closed once the call has ended.
	Done <-chan struct{}
	// End ends the call with reason; it does not block.
	End func(reason callpkg.Reason)
}

// WebRTCSessionRequest starts a browser's call: its SDP offer and who answers it.
type WebRTCSessionRequest struct {
	// AgentID or Destination (a built-in destination: echo or tone); exactly one.
	AgentID     string `json:"agent_id,omitempty"`
	Destination string `json:"destination,omitempty"`
	// SDP is the browser's offer, with an audio section offering Opus; its candidates may
	// be in it or trickled afterwards (PATCH).
	SDP string `json:"sdp"`
	// Metadata is kept with the call.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// WebRTCSession is the node's answer to a browser's offer.
type WebRTCSession struct {
	// ID is the call's id: the session's URL is /api/v1/webrtc/sessions/{id}.
	ID string `json:"id"`
	// SDP is the answer, with every candidate of the node in it.
	SDP        string          `json:"sdp"`
	ICEServers []rtc.ICEServer `json:"ice_servers"`
}

// WebRTCConfig is what a browser needs before it offers.
type WebRTCConfig struct {
	ICEServers []rtc.ICEServer `json:"ice_servers"`
}

const (
	contentSDP     = "application/sdp"
	contentSDPFrag = "application/trickle-ice-sdpfrag"
	// maxSDPBytes bounds an offer or a fragment: a browser's offer is a few kilobytes.
	maxSDPBytes = 64 << 10
)

var errNoWebRTC = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "WebRTC is not enabled on this node"}

func (s *Server) webrtcRoutes() []route {
	const tag = "WebRTC"
	target := []param{
		{Name: "agent_id", Description: "WHIP: the agent that answers the call"},
		{Name: "destination", Description: "WHIP: or a built-in destination (echo, tone)"},
		{Name: "token", Description: "API key or access token, for browsers"},
	}
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/webrtc/sessions", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusCreated, QueryToken: true, Raw: true,
			Summary: "Call an agent or a built-in destination from a browser: a JSON body with the SDP offer answered with the SDP answer, the call's id and the ICE servers; " +
				"or WHIP (Content-Type: application/sdp, the target in the query) answered with the SDP answer and its Location. " +
				"Open a data channel named events to receive the call's events as {type, data}",
			Query: target, Request: WebRTCSessionRequest{}, Response: WebRTCSession{}, Handle: s.createWebRTCSession},
		{Method: http.MethodPatch, Path: "/api/v1/webrtc/sessions/{id}", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusNoContent, QueryToken: true, Raw: true,
			ContentType: contentSDPFrag,
			Summary: "Trickle ICE: add the browser's candidates, an RFC 8840 fragment (Content-Type: application/trickle-ice-sdpfrag) of a=candidate lines and a=end-of-candidates, answered 204 " +
				"(with a new a=ice-ufrag and a=ice-pwd, a WHIP ICE restart, answered 200 with the node's new credentials and candidates as a fragment); " +
				"or renegotiate: a new SDP offer of the session (Content-Type: application/sdp), such as an ICE restart after the browser's network changed, answered 200 with the SDP answer. The call goes on, one call with one record",
			Query: target[2:], Handle: s.trickleWebRTCSession},
		{Method: http.MethodDelete, Path: "/api/v1/webrtc/sessions/{id}", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusNoContent, QueryToken: true, Raw: true,
			ContentType: "text/plain",
			Summary:     "Hang up a browser's call (its ended reason is caller-hangup)",
			Query:       target[2:], Handle: s.deleteWebRTCSession},
		{Method: http.MethodGet, Path: "/api/v1/webrtc/config", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK, QueryToken: true,
			Summary: "The STUN and TURN servers a browser gives its RTCPeerConnection", Query: target[2:],
			Response: WebRTCConfig{}, Handle: s.webrtcConfig},
	}
}

func (s *Server) iceServers() []rtc.ICEServer {
	if s.cfg.WebRTC == nil {
		return []rtc.ICEServer{}
	}
	return s.cfg.WebRTC.ICEServers()
}

func (s *Server) webrtcConfig(w http.ResponseWriter, r *http.Request, p *Principal) error {
	writeJSON(w, http.StatusOK, WebRTCConfig{ICEServers: s.iceServers()})
	return nil
}

// createWebRTCSession answers an offer, in JSON or as WHIP.
func (s *Server) createWebRTCSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	whip := mediaType(r) == contentSDP
	var req WebRTCSessionRequest
	if whip {
		body, err := readSDP(w, r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		req = WebRTCSessionRequest{SDP: string(body), AgentID: strings.TrimSpace(q.Get("agent_id")), Destination: strings.TrimSpace(q.Get("destination"))}
	} else {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		if err := decodeInto(body, &req, false); err != nil {
			return err
		}
	}
	call, err := s.startWebRTCCall(r.Context(), p, req, clientIP(r))
	if err != nil {
		return err
	}
	id, answer := call.ID, call.Answer
	location := "/api/v1/webrtc/sessions/" + id
	w.Header().Set("Location", location)
	if whip {
		// WHIP hands the ICE servers over as Link headers (RFC 9725).
		for _, srv := range s.iceServers() {
			for _, u := range srv.URLs {
				link := "<" + u + `>; rel="ice-server"`
				if srv.Username != "" {
					link += "; username=" + strconv.Quote(srv.Username) + "; credential=" + strconv.Quote(srv.Credential) + `; credential-type="password"`
				}
				w.Header().Add("Link", link)
			}
		}
		w.Header().Set("Content-Type", contentSDP)
		w.Header().Set("ETag", strconv.Quote(id))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
		return nil
	}
	writeJSON(w, http.StatusCreated, WebRTCSession{ID: id, SDP: answer, ICEServers: s.iceServers()})
	return nil
}

func (s *Server) trickleWebRTCSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	id := r.PathValue("id")
	if err := s.liveWebRTCCall(p, id); err != nil {
		return err
	}
	switch mediaType(r) {
	case contentSDPFrag:
	case contentSDP:
		return s.reofferWebRTCSession(w, r, p, id)
	default:
		return &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupported,
			Message: "Content-Type must be " + contentSDPFrag + " (candidates) or " + contentSDP + " (a new offer), not " + strconv.Quote(r.Header.Get("Content-Type"))}
	}
	frag, err := readSDP(w, r)
	if err != nil {
		return err
	}
	answer, err := s.trickleWebRTCCall(r.Context(), p, id, frag)
	if err != nil {
		if errors.Is(err, rtc.ErrCandidate) {
			// Over HTTP the fragment is the body.
			return &Error{Status: http.StatusBadRequest, Code: codeValidation, Message: err.Error(),
				Details: []store.FieldError{{Field: "body", Message: err.Error()}}}
		}
		return err
	}
	if answer != nil {
		w.Header().Set("Content-Type", contentSDPFrag)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(answer)
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reofferWebRTCSession answers a new offer of a live session (an ICE restart) with the SDP
// answer.
func (s *Server) reofferWebRTCSession(w http.ResponseWriter, r *http.Request, p *Principal, id string) error {
	offer, err := readSDP(w, r)
	if err != nil {
		return err
	}
	answer, err := s.renegotiateWebRTCCall(r.Context(), p, id, string(offer))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentSDP)
	w.Header().Set("ETag", strconv.Quote(id))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, answer)
	return nil
}

func (s *Server) deleteWebRTCSession(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := s.hangupWebRTCCall(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// The WebRTC signalling service. HTTP (/api/v1/webrtc/sessions) and the events socket's
// webrtc.* commands both call these, so that a call is started, trickled and hung up under
// one set of rules and refused with one set of errors: an *Error each surface writes in its
// own frame, or rtc.ErrCandidate, which each surface names by its own field (the body over
// HTTP, candidate on the socket).

// startWebRTCCall checks a browser's offer and who it calls, answers it with a call that
// runs in the background, and has the call spend for p's credential as long as it lasts.
func (s *Server) startWebRTCCall(ctx context.Context, p *Principal, req WebRTCSessionRequest, from string) (*StartedWebRTCCall, error) {
	switch {
	case strings.TrimSpace(req.SDP) == "":
		return nil, errValidation("sdp", "is required: the browser's SDP offer")
	case req.AgentID == "" && req.Destination == "":
		return nil, errValidation("agent_id", "is required: the agent that answers (or a built-in destination)")
	case req.AgentID != "" && req.Destination != "":
		return nil, errValidation("destination", "a call goes to an agent or to a built-in destination, not both")
	}
	if s.cfg.WebRTC == nil {
		return nil, errNoWebRTC
	}
	call, err := s.cfg.WebRTC.StartWebRTCCall(ctx, p.TenantID, req, from)
	if err != nil {
		var oe *rtc.OfferError
		switch {
		case errors.As(err, &oe):
			return nil, errValidation("sdp", "%s", oe.Reason)
		case errors.Is(err, store.ErrNotFound):
			return nil, errNotFound("Agent")
		}
		return nil, err
	}
	// Revoking the key, or deleting the user or tenant, hangs the call up.
	unregister := s.conns.Register(p.credential(), func(string) { call.End(callpkg.ReasonCredentialRevoked) })
	go func() { <-call.Done; unregister() }()
	return call, nil
}

// liveWebRTCCall is nil when id is a live WebRTC call of p's tenant on this node, and the
// session's 404 otherwise (another tenant's call included).
func (s *Server) liveWebRTCCall(p *Principal, id string) error {
	if s.cfg.WebRTC == nil || !s.cfg.WebRTC.HasWebRTCCall(p.TenantID, id) {
		return errNotFound("WebRTC session")
	}
	return nil
}

// trickleWebRTCCall adds the candidates of an RFC 8840 fragment to a live call; a fragment
// that restarts ICE is answered with the node's fragment.
func (s *Server) trickleWebRTCCall(ctx context.Context, p *Principal, id string, frag []byte) ([]byte, error) {
	if err := s.liveWebRTCCall(p, id); err != nil {
		return nil, err
	}
	answer, err := s.cfg.WebRTC.TrickleWebRTCCall(ctx, p.TenantID, id, frag)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("WebRTC session")
	}
	return answer, err
}

// renegotiateWebRTCCall answers a new offer of a live call (an ICE restart): the call, its
// record and its credential's hold on it go on.
func (s *Server) renegotiateWebRTCCall(ctx context.Context, p *Principal, id, offer string) (string, error) {
	if err := s.liveWebRTCCall(p, id); err != nil {
		return "", err
	}
	if strings.TrimSpace(offer) == "" {
		return "", errValidation("sdp", "is required: the browser's new SDP offer")
	}
	answer, err := s.cfg.WebRTC.RenegotiateWebRTCCall(ctx, p.TenantID, id, offer)
	var oe *rtc.OfferError
	switch {
	case errors.As(err, &oe):
		return "", errValidation("sdp", "%s", oe.Reason)
	case errors.Is(err, store.ErrNotFound):
		return "", errNotFound("WebRTC session")
	}
	return answer, err
}

// hangupWebRTCCall ends a live call as the caller's hang-up, once it has ended.
func (s *Server) hangupWebRTCCall(ctx context.Context, p *Principal, id string) error {
	if s.cfg.WebRTC == nil {
		return errNotFound("WebRTC session")
	}
	if err := s.cfg.WebRTC.HangupWebRTCCall(ctx, p.TenantID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.hangupWebRTCElsewhere(ctx, p, id)
		}
		return err
	}
	return nil
}

// hangupWebRTCElsewhere ends, as the caller's hang-up, a browser's call that another node of
// the cluster carries (the load balancer sent its DELETE here); anything else is the
// session's 404.
func (s *Server) hangupWebRTCElsewhere(ctx context.Context, p *Principal, id string) error {
	cc, ok := s.cfg.Calls.(interface {
		HangupAs(ctx context.Context, tenantID, callID string, reason callpkg.Reason) error
	})
	if !ok {
		return errNotFound("WebRTC session")
	}
	if c, err := s.storedCall(ctx, p.TenantID, id); err != nil || c.Direction != store.CallWeb || c.EndedAt != nil {
		return errNotFound("WebRTC session")
	}
	if err := cc.HangupAs(ctx, p.TenantID, id, callpkg.ReasonCallerHangup); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return errNotFound("WebRTC session")
	}
	return nil
}

// mediaType is the request's media type, lower case, without parameters.
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// readSDP reads an SDP body (an offer or a fragment) of at most maxSDPBytes.
func readSDP(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readLimited(w, r, maxSDPBytes)
}
