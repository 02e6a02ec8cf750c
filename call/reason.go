package call

import (
	"strconv"

	"github.com/switchboard-go/switchboard/store"
)

// Reason is why a call ended, as written to its record (store.Call.EndedReason) and
// published with call.ended. The strings are the store's (store.Ended…): they are what
// dashboards, webhooks and queries have always read, and the store's own queries write some
// of them (restart, node-lost) without a call in memory.
type Reason string

// The reasons Switchboard ends calls with.
const (
	ReasonCallerHangup      Reason = store.EndedCallerHangup      // the caller hung up (BYE, a browser's hang-up, a socket's stop)
	ReasonCalleeHangup      Reason = store.EndedCalleeHangup      // the party we called hung up
	ReasonAgentHangup       Reason = store.EndedAgentHangup       // the agent or workflow ended the call
	ReasonAPIHangup         Reason = store.EndedAPIHangup         // POST /api/v1/calls/{id}/hangup on an answered call
	ReasonTransferred       Reason = store.EndedTransferred       // the call was handed to another party
	ReasonMediaTimeout      Reason = store.EndedMediaTimeout      // no media for too long
	ReasonSessionExpired    Reason = store.EndedSessionExpired    // a SIP session timer ran out (RFC 4028)
	ReasonNoAck             Reason = store.EndedNoAck             // the caller never acknowledged our answer
	ReasonShutdown          Reason = store.EndedShutdown          // the node was stopped while carrying the call
	ReasonCanceled          Reason = store.EndedCanceled          // given up before it was answered, by the caller or through the API
	ReasonRejected          Reason = store.EndedRejected          // refused before answer (no route, not allowed)
	ReasonBusy              Reason = store.EndedBusy              // the callee was busy
	ReasonNoAnswer          Reason = store.EndedNoAnswer          // the callee did not answer in time
	ReasonError             Reason = store.EndedError             // Switchboard failed
	ReasonRestart           Reason = store.EndedRestart           // the node died while carrying the call
	ReasonNodeLost          Reason = store.EndedNodeLost          // the node carrying the call stopped beating
	ReasonCredentialRevoked Reason = store.EndedCredentialRevoked // the key that started a web call was revoked
	ReasonIdleTimeout       Reason = store.EndedIdleTimeout       // the caller said nothing for too long
	ReasonMaxDuration       Reason = store.EndedMaxDuration       // the call reached its agent's longest duration
	ReasonAgentError        Reason = store.EndedAgentError        // the agent's brain or speech failed
	ReasonICEFailed         Reason = store.EndedICEFailed         // a browser's ICE did not connect in time, or failed
	ReasonPeerDisconnected  Reason = store.EndedPeerDisconnected  // a browser closed its connection or went silent
	ReasonVoicemail         Reason = store.EndedVoicemail         // an answering machine answered; the call's message was left
)

// Reasons is every reason, in the order above.
var Reasons = []Reason{
	ReasonCallerHangup, ReasonCalleeHangup, ReasonAgentHangup, ReasonAPIHangup, ReasonTransferred,
	ReasonMediaTimeout, ReasonSessionExpired, ReasonNoAck, ReasonShutdown, ReasonCanceled, ReasonRejected,
	ReasonBusy, ReasonNoAnswer, ReasonError, ReasonRestart, ReasonNodeLost, ReasonCredentialRevoked,
	ReasonIdleTimeout, ReasonMaxDuration, ReasonAgentError, ReasonICEFailed, ReasonPeerDisconnected,
	ReasonVoicemail,
}

// FromStream is the reason of a call whose media stream ended by itself, given the stream's
// Reason: a stream closed without saying why ("" or "closed") failed.
func FromStream(r string) Reason {
	if r == "" || r == "closed" {
		return ReasonError
	}
	return Reason(r)
}

// Unanswered is the status of a call that ended with r before it was answered. A call given
// up by the side that started it, or hung up through the API while it rang, was canceled,
// whatever carries it; one the callee refused says how.
func (r Reason) Unanswered() string {
	switch r {
	case ReasonCanceled, ReasonAPIHangup, ReasonCallerHangup:
		return store.CallCanceled
	case ReasonBusy:
		return store.CallBusy
	case ReasonNoAnswer:
		return store.CallNoAnswer
	}
	return store.CallFailed
}

// SIPCause is how a SIP call ending with a reason says so: Status and Phrase answer an
// INVITE that is refused or given up with it, Q850 is the cause of the RFC 3326 Reason
// header (Q.850) of a BYE or CANCEL.
type SIPCause struct {
	Status int
	Phrase string
	Q850   int
}

// sipCauses is the one table of SIP causes: every reason has one (a test holds it to that).
var sipCauses = map[Reason]SIPCause{
	ReasonCallerHangup:      {487, "Request Terminated", 16},
	ReasonCalleeHangup:      {487, "Request Terminated", 16},
	ReasonAgentHangup:       {480, "Temporarily Unavailable", 16},
	ReasonAPIHangup:         {487, "Request Terminated", 16},
	ReasonTransferred:       {487, "Request Terminated", 16},
	ReasonMediaTimeout:      {408, "Request Timeout", 102},
	ReasonSessionExpired:    {408, "Request Timeout", 102},
	ReasonNoAck:             {408, "Request Timeout", 102},
	ReasonShutdown:          {503, "Service Unavailable", 41},
	ReasonCanceled:          {487, "Request Terminated", 16},
	ReasonRejected:          {480, "Temporarily Unavailable", 21},
	ReasonBusy:              {486, "Busy Here", 17},
	ReasonNoAnswer:          {480, "Temporarily Unavailable", 19},
	ReasonError:             {500, "Server Internal Error", 41},
	ReasonRestart:           {503, "Service Unavailable", 41},
	ReasonNodeLost:          {503, "Service Unavailable", 41},
	ReasonCredentialRevoked: {403, "Forbidden", 21},
	ReasonIdleTimeout:       {408, "Request Timeout", 102},
	ReasonMaxDuration:       {480, "Temporarily Unavailable", 16},
	ReasonAgentError:        {500, "Server Internal Error", 41},
	ReasonICEFailed:         {480, "Temporarily Unavailable", 41},
	ReasonPeerDisconnected:  {487, "Request Terminated", 16},
	ReasonVoicemail:         {480, "Temporarily Unavailable", 16},
}

// SIP is the reason's SIP cause; a reason Switchboard does not know (a carrier's own)
// is a normal clearing refused as 480.
func (r Reason) SIP() SIPCause {
	if c, ok := sipCauses[r]; ok {
		return c
	}
	return SIPCause{480, "Temporarily Unavailable", 16}
}

// WebSocket close codes (RFC 6455 and Switchboard's own, 4000–4999) a call's socket closes
// with.
const (
	CloseNormal    = 1000
	CloseGoingAway = 1001
	// CloseRevoked is the code of a socket whose credential was revoked while it was open:
	// the same on the events socket and a media-stream socket, so that a client reads one
	// code whichever it holds.
	CloseRevoked = 4001
)

// closeCodes is the one table of close codes: every reason has one (a test holds it to
// that). A node that stops says it is going away, so that clients reconnect elsewhere.
var closeCodes = map[Reason]int{
	ReasonCallerHangup:      CloseNormal,
	ReasonCalleeHangup:      CloseNormal,
	ReasonAgentHangup:       CloseNormal,
	ReasonAPIHangup:         CloseNormal,
	ReasonTransferred:       CloseNormal,
	ReasonMediaTimeout:      CloseNormal,
	ReasonSessionExpired:    CloseNormal,
	ReasonNoAck:             CloseNormal,
	ReasonShutdown:          CloseGoingAway,
	ReasonCanceled:          CloseNormal,
	ReasonRejected:          CloseNormal,
	ReasonBusy:              CloseNormal,
	ReasonNoAnswer:          CloseNormal,
	ReasonError:             CloseNormal,
	ReasonRestart:           CloseGoingAway,
	ReasonNodeLost:          CloseGoingAway,
	ReasonCredentialRevoked: CloseRevoked,
	ReasonIdleTimeout:       CloseNormal,
	ReasonMaxDuration:       CloseNormal,
	ReasonAgentError:        CloseNormal,
	ReasonICEFailed:         CloseNormal,
	ReasonPeerDisconnected:  CloseNormal,
	ReasonVoicemail:         CloseNormal,
}

// CloseCode is the WebSocket close code of a call's socket that ends with r (the close
// text is the reason itself); a reason Switchboard does not know closes normally.
func (r Reason) CloseCode() int {
	if c, ok := closeCodes[r]; ok {
		return c
	}
	return CloseNormal
}

// q850Texts are the ITU-T Q.850 names of the causes in sipCauses, the text of a Reason
// header: a carrier's log shows them beside the number.
var q850Texts = map[int]string{
	16:  "Normal call clearing",
	17:  "User busy",
	19:  "No answer from user",
	21:  "Call rejected",
	41:  "Temporary failure",
	102: "Recovery on timer expiry",
}

// ReasonHeader is the value of the RFC 3326 Reason header of a BYE or CANCEL that ends a
// call with this cause: `Q.850;cause=16;text="Normal call clearing"`, so that the far end
// (a carrier's switch, a PBX) logs and bills it as the cause it is rather than as an
// unexplained hang-up.
func (c SIPCause) ReasonHeader() string {
	v := "Q.850;cause=" + strconv.Itoa(c.Q850)
	if t, ok := q850Texts[c.Q850]; ok {
		v += `;text="` + t + `"`
	}
	return v
}
