package main

import (
	"context"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/mediastream"
	"github.com/switchboard-go/switchboard/store"
)

// Media-stream sockets (the protocol of Twilio Media Streams) are web calls: a CPaaS hands
// a phone call over a WebSocket, and the call is recorded inbound, from the caller it names.
// mediaStreamCalls implements api.MediaStreamCalls over the node's calls.
type mediaStreamCalls struct{ calls *call.Node }

// mediaStreamSpec reads the ?agent= of a media-stream socket: a built-in destination's
// name, or else an agent's id.
func mediaStreamSpec(tenantID, target string) call.Spec {
	if call.Destination(target) != nil {
		return call.Spec{TenantID: tenantID, Destination: target}
	}
	return call.Spec{TenantID: tenantID, AgentID: target}
}

// CheckMediaStreamTarget implements api.MediaStreamCalls: the target must take calls of the
// tenant, and the node and the tenant must have room for one more (so that a socket is
// refused before it is upgraded, in the common case).
func (m mediaStreamCalls) CheckMediaStreamTarget(ctx context.Context, tenantID, target string) error {
	if _, err := m.calls.Route(ctx, mediaStreamSpec(tenantID, target)); err != nil {
		return err
	}
	return m.calls.Check(tenantID)
}

// StartMediaStreamCall implements api.MediaStreamCalls. The caller is the start's From
// custom parameter (what Twilio's <Parameter name="From"> passes), else its call SID. The
// far end drops the audio it holds when the caller barges in.
func (m mediaStreamCalls) StartMediaStreamCall(ctx context.Context, tenantID, target string, s *mediastream.Socket) (string, error) {
	st := s.Start()
	from := st.CustomParameters["From"]
	if from == "" {
		from = st.CallSid
	}
	md := map[string]any{"callSid": st.CallSid, "streamSid": st.StreamSid, "accountSid": st.AccountSid}
	if len(st.CustomParameters) > 0 {
		md["customParameters"] = st.CustomParameters
	}
	spec := mediaStreamSpec(tenantID, target)
	spec.Direction, spec.From, spec.To, spec.Codec, spec.Metadata = store.CallInbound, from, st.CustomParameters["To"], "PCMU", md
	spec.Stream, spec.Hangup = s, s.Hangup
	c, err := m.calls.Start(ctx, spec)
	if err != nil {
		return "", err
	}
	s.SetPublisher(c.Publish)
	return c.ID(), nil
}
