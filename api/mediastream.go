package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/switchboard-go/switchboard/mediastream"
	"github.com/switchboard-go/switchboard/store"
)

// MediaStreamCalls runs the calls that arrive over media-stream sockets (the protocol of
// Twilio Media Streams); the node's web calls implement it.
type MediaStreamCalls interface {
	// CheckMediaStreamTarget says, before the upgrade, whether target (an agent's id or a
	// built-in destination such as echo) takes calls of the tenant: nil, an error wrapping
	// store.ErrNotFound, or a *store.ValidationError.
	CheckMediaStreamTarget(ctx context.Context, tenantID, target string) error
	// StartMediaStreamCall records the call and runs it over s in the background until it
	// ends; it returns the call's id.
	StartMediaStreamCall(ctx context.Context, tenantID, target string, s *mediastream.Socket) (string, error)
}

func (s *Server) mediaStreamRoutes() []route {
	return []route{{Method: http.MethodGet, Path: "/api/v1/media-stream", Tag: "Calls", Scope: store.ScopeWrite, QueryToken: true, Raw: true,
		Status: http.StatusSwitchingProtocols, ContentType: "application/json",
		Summary: "WebSocket speaking the Twilio Media Streams protocol: a CPaaS streams a phone call (connected, start, media of 8 kHz μ-law, dtmf, mark, stop) and the agent or built-in destination answers with media, mark and clear; the call is recorded as inbound (the key may come as ?token=)",
		Query: []param{
			{Name: "agent", Description: "The agent's id, or a built-in destination (echo, tone), that answers the call"},
			{Name: "token", Description: "API key or access token, for CPaaS that cannot set headers"},
		},
		Handle: s.serveMediaStream}}
}

// serveMediaStream checks the request, upgrades it, waits for the stream's start and hands
// the stream to the call runtime.
func (s *Server) serveMediaStream(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		return &Error{Status: http.StatusUpgradeRequired, Code: codeValidation, Message: "This route is a WebSocket: send Upgrade: websocket"}
	}
	target := strings.TrimSpace(r.URL.Query().Get("agent"))
	if target == "" {
		return errValidation("agent", "is required: an agent's id or a built-in destination (echo, tone)")
	}
	calls := s.cfg.MediaStreams
	if calls == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "Media streams are not served on this node"}
	}
	if err := calls.CheckMediaStreamTarget(r.Context(), p.TenantID, target); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Agent")
		}
		return err
	}
	log := s.log.With("tenant_id", p.TenantID, "target", target)
	ms, err := mediastream.Accept(w, r, mediastream.Options{Log: log})
	if err != nil {
		log.Info("media stream not started", "error", err)
		return nil // the upgrade answered, or the socket is closed with its reason
	}
	// The socket lives as long as the call: revoking its key ends both.
	unregister := s.conns.Register(p.credential(), ms.Revoke)
	go func() { <-ms.Done(); unregister() }()
	id, err := calls.StartMediaStreamCall(context.WithoutCancel(r.Context()), p.TenantID, target, ms)
	if err != nil {
		if e := asError(err); e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
			log.Info("media stream call refused", "error", err)
			ms.Refuse(e.Message)
			return nil
		}
		log.Warn("media stream call not started", "error", err)
		ms.Hangup("error")
		return nil
	}
	log.Info("media stream call started", "call", id, "stream_sid", ms.Start().StreamSid, "call_sid", ms.Start().CallSid)
	return nil
}
