package sip

import "errors"

var (
	// ErrSDP is an offer that does not parse or has no usable audio stream; it is answered 488.
	ErrSDP = errors.New("sip: unusable SDP offer")
	// ErrNoCodec is an offer with no codec in common with us; it is answered 488.
	ErrNoCodec = errors.New("sip: no common codec")
	// ErrNoPort is a port range with no free RTP port left; the call is answered 503.
	ErrNoPort = errors.New("sip: no free RTP port")
	// ErrBadTarget is a transfer target that is neither a number nor a SIP URI.
	ErrBadTarget = errors.New("sip: bad transfer target")
	// ErrTransferRefused is a REFER the far end did not accept.
	ErrTransferRefused = errors.New("sip: transfer refused")
)
