package main

import (
	"context"

	"github.com/switchboard-go/switchboard/mediastream"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// Media-stream sockets (the protocol of Twilio Media Streams) are web calls: a CPaaS hands
// a phone call over a WebSocket, and the call is recorded inbound, from the caller it names.

// mediaStreamTarget reads the ?agent= of a media-stream socket: a built-in destination's
// name, or else an agent's id.
func mediaStreamTarget(target string) WebTarget {
	if sip.Builtin(target) != nil {
		return WebTarget{Destination: target}
	}
	return WebTarget{AgentID: target}
}

// CheckMediaStreamTarget implements api.MediaStreamCalls: the target must take calls of the
// tenant, and the node and the tenant must have room for one more (so that a socket is
// refused before it is upgraded, in the common case).
func (w *webCalls) CheckMediaStreamTarget(ctx context.Context, tenantID, target string) error {
	if _, _, err := w.route(ctx, webCallSpec{TenantID: tenantID, Target: mediaStreamTarget(target)}); err != nil {
		return err
	}
	return w.calls.Check(tenantID)
}

// StartMediaStreamCall implements api.MediaStreamCalls. The caller is the start's From
// custom parameter (what Twilio's <Parameter name="From"> passes), else its call SID. The
// far end drops the audio it holds when the caller barges in.
func (w *webCalls) StartMediaStreamCall(ctx context.Context, tenantID, target string, s *mediastream.Socket) (string, error) {
	st := s.Start()
	from := st.CustomParameters["From"]
	if from == "" {
		from = st.CallSid
	}
	md := map[string]any{"callSid": st.CallSid, "streamSid": st.StreamSid, "accountSid": st.AccountSid}
	if len(st.CustomParameters) > 0 {
		md["customParameters"] = st.CustomParameters
	}
	c, err := w.start(ctx, webCallSpec{TenantID: tenantID, Target: mediaStreamTarget(target), Direction: store.CallInbound,
		From: from, To: st.CustomParameters["To"], Codec: "PCMU", Metadata: md, Stream: s, Hangup: s.Hangup})
	if err != nil {
		return "", err
	}
	s.SetPublisher(c.Publish)
	return c.ID(), nil
}
