package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/store"
)

// HandleWebRTCCommands lets clients that prefer one connection signal their WebRTC calls over
// the events socket (/api/v1/ws) instead of /api/v1/webrtc/sessions:
//
//	{"type":"webrtc.offer","id":"1","agent_id" or "destination":…,"sdp":…}
//	  → {"type":"ack","id":"1","action":"webrtc.offer","result":{"id","sdp","ice_servers"}}
//	{"type":"webrtc.offer","id":"4","call_id":…,"sdp":…} → the same ack: a new offer of
//	  the live call (an ICE restart after the browser's network changed); the call goes on
//	{"type":"webrtc.candidate","id":"2","call_id":…,"candidate":"a=candidate:… or an RFC 8840 fragment"} → ack
//	  (a fragment of new ICE credentials restarts ICE: the ack's result is {"candidate": the node's fragment})
//	{"type":"webrtc.hangup","id":"3","call_id":…} → ack once the call has ended (caller-hangup)
//
// The frame's id is the socket's request id, echoed in the ack or error, so the call is
// named by call_id. Each command calls the signalling service the HTTP operation calls
// (startWebRTCCall, trickleWebRTCCall, hangupWebRTCCall), so that an offer is validated and
// refused (an error frame naming sdp, an unknown agent not found) exactly as over HTTP;
// like the HTTP operations, the commands need the write scope. The call's events
// are on the topic call:{id}, which the same socket subscribes to.
func (s *Server) HandleWebRTCCommands(streams *realtime.Server) {
	streams.Handle("webrtc.offer", s.offerCommand)
	streams.Handle("webrtc.candidate", s.candidateCommand)
	streams.Handle("webrtc.hangup", s.hangupCommand)
}

// webrtcCommand is the part of a candidate or hang-up frame its handler reads.
type webrtcCommand struct {
	CallID    string `json:"call_id"`
	Candidate string `json:"candidate"`
}

func (s *Server) offerCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (any, error) {
	p, err := s.commandPrincipal(ctx, v)
	if err != nil {
		return nil, s.commandError(err)
	}
	// The body is the frame without the socket's own fields, so that anything else the
	// client sends is refused as an unknown field of the offer, as over HTTP.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil {
		return nil, s.commandError(errValidation("body", "must be a JSON object"))
	}
	delete(fields, "type")
	delete(fields, "id")
	if _, reoffer := fields["call_id"]; reoffer {
		return s.reofferCommand(ctx, p, fields)
	}
	body, _ := json.Marshal(fields)
	var req WebRTCSessionRequest
	if err := decodeInto(body, &req, false); err != nil {
		return nil, s.commandError(err)
	}
	// A browser's call is from the socket's client.
	call, err := s.startWebRTCCall(ctx, p, req, remoteHost(v.RemoteAddr))
	if err != nil {
		return nil, s.commandError(err)
	}
	return WebRTCSession{ID: call.ID, SDP: call.Answer, ICEServers: s.iceServers()}, nil
}

// webrtcReoffer is a new offer of a live call.
type webrtcReoffer struct {
	CallID string `json:"call_id"`
	SDP    string `json:"sdp"`
}

// reofferCommand answers a new offer of a live call (webrtc.offer with its call_id).
func (s *Server) reofferCommand(ctx context.Context, p *Principal, fields map[string]json.RawMessage) (any, error) {
	body, _ := json.Marshal(fields)
	var req webrtcReoffer
	if err := decodeInto(body, &req, false); err != nil {
		return nil, s.commandError(err)
	}
	if req.CallID = strings.TrimSpace(req.CallID); req.CallID == "" {
		return nil, s.commandError(errValidation("call_id", "is required: the id webrtc.offer answered with"))
	}
	answer, err := s.renegotiateWebRTCCall(ctx, p, req.CallID, req.SDP)
	if err != nil {
		return nil, s.commandError(err)
	}
	return WebRTCSession{ID: req.CallID, SDP: answer, ICEServers: s.iceServers()}, nil
}

func (s *Server) candidateCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (any, error) {
	p, cmd, err := s.callCommand(ctx, v, msg)
	if err != nil {
		return nil, err
	}
	frag := strings.TrimSpace(cmd.Candidate)
	if frag == "" {
		return nil, s.commandError(errValidation("candidate", "is required: an a=candidate line or an RFC 8840 fragment"))
	}
	// A browser's RTCIceCandidate.candidate has no a= of its own.
	if strings.HasPrefix(frag, "candidate:") {
		frag = "a=" + frag
	}
	answer, err := s.trickleWebRTCCall(ctx, p, cmd.CallID, []byte(frag+"\r\n"))
	if errors.Is(err, rtc.ErrCandidate) {
		// Over HTTP the fragment is the body; here it is the candidate field.
		return nil, realtime.CommandError(http.StatusUnprocessableEntity, codeValidation, "Invalid request: candidate "+err.Error(),
			realtime.CommandFieldError{Field: "candidate", Message: err.Error()})
	}
	if err != nil || answer == nil {
		return nil, s.commandError(err)
	}
	// A fragment that restarted ICE is answered with the node's.
	return map[string]string{"candidate": string(answer)}, nil
}

func (s *Server) hangupCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (any, error) {
	p, cmd, err := s.callCommand(ctx, v, msg)
	if err != nil {
		return nil, err
	}
	return nil, s.commandError(s.hangupWebRTCCall(ctx, p, cmd.CallID))
}

// callCommand reads a command about a call: its principal, and the call it names.
func (s *Server) callCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (*Principal, webrtcCommand, error) {
	var cmd webrtcCommand
	p, err := s.commandPrincipal(ctx, v)
	if err != nil {
		return nil, cmd, s.commandError(err)
	}
	if err := json.Unmarshal(msg, &cmd); err != nil {
		return nil, cmd, s.commandError(errValidation("call_id", "must be a string: the call's id"))
	}
	if cmd.CallID = strings.TrimSpace(cmd.CallID); cmd.CallID == "" {
		return nil, cmd, s.commandError(errValidation("call_id", "is required: the id webrtc.offer answered with"))
	}
	return p, cmd, nil
}

// commandPrincipal is the socket's credential as it stands now: the socket itself needs
// only the read scope, and a key may have been revoked since it opened.
func (s *Server) commandPrincipal(ctx context.Context, v realtime.Viewer) (*Principal, error) {
	// The family is the socket's: a call it starts ends with the refresh-token family.
	p := &Principal{TenantID: v.TenantID, FamilyID: v.Credential.FamilyID}
	k, err := store.Get[store.APIKey](ctx, s.store, v.TenantID, v.Key)
	switch {
	case err == nil:
		if !k.Usable(time.Now()) {
			return nil, errUnauthenticated
		}
		p.KeyID, p.Scopes = k.ID, k.Scopes
	case errors.Is(err, store.ErrNotFound):
		u, err := store.Get[store.User](ctx, s.store, v.TenantID, v.Key)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, errUnauthenticated
			}
			return nil, err
		}
		p.UserID, p.Scopes = u.ID, u.Scopes
	default:
		return nil, err
	}
	if !p.Has(store.ScopeWrite) {
		return nil, errForbidden(store.ScopeWrite)
	}
	return p, nil
}

// commandError is err as the socket's error frame carries it: the canonical error an HTTP
// client of the same operation gets.
func (s *Server) commandError(err error) error {
	if err == nil {
		return nil
	}
	e := asError(err)
	if e.Status >= http.StatusInternalServerError {
		s.log.Error("webrtc command failed", "err", err)
	}
	details := make([]realtime.CommandFieldError, 0, len(e.Details))
	for _, d := range e.Details {
		details = append(details, realtime.CommandFieldError{Field: d.Field, Message: d.Message})
	}
	return realtime.CommandError(e.Status, e.Code, e.Message, details...)
}
