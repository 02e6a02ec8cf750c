package mediastream

import (
	"context"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// Media-stream sockets are web calls: a CPaaS hands a phone call over a WebSocket, and the
// call is recorded inbound, from the caller it names. Calls runs them over a node's calls;
// it is what the API is given to start them (api.MediaStreamCalls).
type Calls struct{ node *call.Node }

// NewCalls runs media-stream sockets as calls of node.
func NewCalls(node *call.Node) Calls { return Calls{node: node} }

// spec reads the ?agent= of a media-stream socket: a built-in destination's name, or else
// an agent's id.
func spec(tenantID, target string) call.Spec {
	if call.Destination(target) != nil {
		return call.Spec{TenantID: tenantID, Destination: target, Transport: "mediastream"}
	}
	return call.Spec{TenantID: tenantID, AgentID: target, Transport: "mediastream"}
}

// CheckMediaStreamTarget says whether target takes calls of the tenant, and whether the
// node and the tenant have room for one more (so that a socket is refused before it is
// upgraded, in the common case).
func (m Calls) CheckMediaStreamTarget(ctx context.Context, tenantID, target string) error {
	if _, err := m.node.Route(ctx, spec(tenantID, target)); err != nil {
		return err
	}
	return m.node.Check(tenantID)
}

// StartMediaStreamCall records the call of s and runs it in the background; it returns the
// call's id. The caller is the start's From custom parameter (what Twilio's
// <Parameter name="From"> passes), else its call SID. The far end drops the audio it holds
// when the caller barges in.
func (m Calls) StartMediaStreamCall(ctx context.Context, tenantID, target string, s *Socket) (string, error) {
	st := s.Start()
	from := st.CustomParameters["From"]
	if from == "" {
		from = st.CallSid
	}
	md := map[string]any{"callSid": st.CallSid, "streamSid": st.StreamSid, "accountSid": st.AccountSid}
	if len(st.CustomParameters) > 0 {
		md["customParameters"] = st.CustomParameters
	}
	cs := spec(tenantID, target)
	cs.Direction, cs.From, cs.To, cs.Codec, cs.Metadata = store.CallInbound, from, st.CustomParameters["To"], "PCMU", md
	cs.Stream, cs.Hangup = s, s.Hangup
	c, err := m.node.Start(ctx, cs)
	if err != nil {
		return "", err
	}
	s.SetPublisher(c.Publish)
	return c.ID(), nil
}
