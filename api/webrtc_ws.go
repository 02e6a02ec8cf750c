package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// HandleWebRTCCommands lets clients that prefer one connection signal their WebRTC calls over
// the events socket (/api/v1/ws) instead of /api/v1/webrtc/sessions:
//
//	{"type":"webrtc.offer","id":"1","agent_id" or "destination":…,"sdp":…}
//	  → {"type":"ack","id":"1","action":"webrtc.offer","result":{"id","sdp","ice_servers"}}
//	{"type":"webrtc.candidate","id":"2","call_id":…,"candidate":"a=candidate:… or an RFC 8840 fragment"} → ack
//	{"type":"webrtc.hangup","id":"3","call_id":…} → ack once the call has ended (caller-hangup)
//
// The frame's id is the socket's request id, echoed in the ack or error, so the call is
// named by call_id. Each command runs the HTTP operation's own handler, so that an offer is
// validated and refused (an error frame naming sdp, an unknown agent not found) exactly as
// over HTTP; like the HTTP operations, the commands need the write scope. The call's events
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
	body, _ := json.Marshal(fields)
	out, err := s.runCommand(ctx, p, v, http.MethodPost, "/api/v1/webrtc/sessions", "", "application/json", body, s.createWebRTCSession)
	if err != nil {
		return nil, s.commandError(err)
	}
	return json.RawMessage(bytes.TrimSpace(out)), nil
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
	_, err = s.runCommand(ctx, p, v, http.MethodPatch, "/api/v1/webrtc/sessions/"+cmd.CallID, cmd.CallID, contentSDPFrag, []byte(frag+"\r\n"), s.trickleWebRTCSession)
	if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusBadRequest {
		// Over HTTP the fragment is the body; here it is the candidate field.
		return nil, realtime.CommandError(http.StatusUnprocessableEntity, e.Code, "Invalid request: candidate "+e.Message,
			realtime.CommandFieldError{Field: "candidate", Message: e.Message})
	}
	return nil, s.commandError(err)
}

func (s *Server) hangupCommand(ctx context.Context, v realtime.Viewer, msg json.RawMessage) (any, error) {
	p, cmd, err := s.callCommand(ctx, v, msg)
	if err != nil {
		return nil, err
	}
	_, err = s.runCommand(ctx, p, v, http.MethodDelete, "/api/v1/webrtc/sessions/"+cmd.CallID, cmd.CallID, "", nil, s.deleteWebRTCSession)
	return nil, s.commandError(err)
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

// runCommand runs an HTTP operation's handler for a command and returns the body it
// answered with; a refusal is the handler's error, or the error it wrote.
func (s *Server) runCommand(ctx context.Context, p *Principal, v realtime.Viewer, method, path, id, contentType string, body []byte,
	h func(http.ResponseWriter, *http.Request, *Principal) error) ([]byte, error) {
	r, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.RemoteAddr = v.RemoteAddr // the socket's client: a browser's call is from it
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if id != "" {
		r.SetPathValue("id", id)
	}
	w := &commandResponse{header: http.Header{}}
	if err := h(w, r, p); err != nil {
		return nil, err
	}
	if w.status >= http.StatusBadRequest {
		var eb errorBody
		_ = json.Unmarshal(w.body.Bytes(), &eb)
		return nil, &Error{Status: w.status, Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
	}
	return w.body.Bytes(), nil
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

// commandResponse keeps what an HTTP handler answered a command with.
type commandResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *commandResponse) Header() http.Header { return w.header }

func (w *commandResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *commandResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
