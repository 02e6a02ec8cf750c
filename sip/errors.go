package sip

import "errors"

var (
	// ErrSDP is an offer that does not parse or has no usable audio stream; it is answered 488.
	ErrSDP = errors.New("sip: unusable SDP offer")
	// ErrNoCodec is an offer with no codec in common with us; it is answered 488.
	ErrNoCodec = errors.New("sip: no common codec")
	// ErrNoCrypto is an RTP/SAVP description without a crypto suite we carry, or a
	// description that drops the SRTP a call agreed; an offer is answered 488.
	ErrNoCrypto = errors.New("sip: no SRTP crypto suite in common")
	// ErrMediaFamily is media at an address of a family (IPv4, IPv6) the call's media
	// cannot reach: an offer is answered 488, an answer or re-offer refused.
	ErrMediaFamily = errors.New("sip: media address family not reachable")
	// ErrNoPort is a port range with no free RTP port left; the call is answered 503.
	ErrNoPort = errors.New("sip: no free RTP port")
	// ErrBadTarget is a transfer target that is neither a number nor a SIP URI.
	ErrBadTarget = errors.New("sip: bad transfer target")
	// ErrTransferRefused is a REFER the far end did not accept.
	ErrTransferRefused = errors.New("sip: transfer refused")
)

// Why Dial placed no call. Each comes wrapped in a *DialError that says what exactly; a
// caller classifies it with errors.Is. The SIP server says what is wrong in its own terms;
// which field of which request that was is the caller's to say (the REST API maps them in
// api/errors.go).
var (
	// ErrNotServing is a Dial before Serve has taken its listeners.
	ErrNotServing = errors.New("sip: the server is not serving yet")
	// ErrTrunkNotFound is a trunk the tenant does not have.
	ErrTrunkNotFound = errors.New("sip: no such trunk")
	// ErrTrunkInboundOnly is a trunk that takes inbound calls only.
	ErrTrunkInboundOnly = errors.New("sip: the trunk takes inbound calls only")
	// ErrTrunkNoAddress is a trunk without an outbound address, asked to reach a number or
	// user rather than a SIP URI.
	ErrTrunkNoAddress = errors.New("sip: the trunk has no outbound address")
	// ErrBadCallee is a callee that makes no SIP request URI.
	ErrBadCallee = errors.New("sip: the callee makes no SIP URI")
	// ErrAgentUnavailable is an agent that cannot take the call on this node.
	ErrAgentUnavailable = errors.New("sip: the agent cannot take the call")
	// ErrUnknownDestination is a built-in destination that does not exist.
	ErrUnknownDestination = errors.New("sip: unknown built-in destination")
	// ErrSRTPNeedsTLS is a trunk that offers or requires SRTP, asked to reach a callee other
	// than over SIP TLS: the keys would travel in the clear.
	ErrSRTPNeedsTLS = errors.New("sip: SRTP needs SIP TLS")
	// ErrNodeFull is a server at its limit of calls (Config.MaxCalls) or shutting down.
	ErrNodeFull = errors.New("sip: the server is at its call limit or shutting down")
)

// DialError is why Dial placed no call: Err is the sentinel that classifies it (ErrTrunkNotFound,
// ErrBadCallee, …), Reason says what exactly, in words for whoever asked for the call.
type DialError struct {
	Err    error
	Reason string
}

func (e *DialError) Error() string { return "sip: call not placed: " + e.Reason }
func (e *DialError) Unwrap() error { return e.Err }

// Why Hangup or Transfer did not act on a live call. Each but ErrCallNotFound comes wrapped in
// a *CallError that says what exactly; a caller classifies it with errors.Is. ErrBadTarget and
// ErrTransferRefused (above) come the same way from Transfer.
var (
	// ErrCallNotFound is a call the tenant does not have.
	ErrCallNotFound = errors.New("sip: no such call")
	// ErrCallEnded is a call that has ended.
	ErrCallEnded = errors.New("sip: the call has ended")
	// ErrCallElsewhere is a live call that another node carries.
	ErrCallElsewhere = errors.New("sip: another node carries the call")
	// ErrNotAnswered is a call not answered yet, asked to be transferred.
	ErrNotAnswered = errors.New("sip: the call is not answered yet")
)

// CallError is why Hangup or Transfer did not act on a live call: Err is the sentinel that
// classifies it (ErrCallEnded, ErrBadTarget, …), Reason says what exactly, in words for
// whoever asked.
type CallError struct {
	Err    error
	Reason string
	// Node is the node that carries the call, for ErrCallElsewhere.
	Node string
}

func (e *CallError) Error() string { return "sip: " + e.Reason }
func (e *CallError) Unwrap() error { return e.Err }

// RefusalReason is what a *DialError or *CallError in err's chain says for whoever asked,
// or err's own text when there is none.
func RefusalReason(err error) string {
	var de *DialError
	if errors.As(err, &de) {
		return de.Reason
	}
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return err.Error()
}
