package call

import "github.com/switchboard-go/switchboard/store"

// The events a call publishes on its topic (call:{id}), which the hub carries to its
// tenant's topic too. Created, ringing, answered and ended carry the call's record
// (store.Call); the others carry the payloads below.
const (
	EventCreated   = "call.created"
	EventRinging   = "call.ringing"
	EventAnswered  = "call.answered"
	EventDTMF      = "call.dtmf"     // DTMF
	EventHold      = "call.hold"     // Hold
	EventResumed   = "call.resumed"  // Hold
	EventTransfer  = "call.transfer" // Transfer
	EventEnded     = "call.ended"
	EventEarlyTone = "call.early_media" // EarlyMedia
	// EventAMD says who answered an outbound call that asked for answering-machine
	// detection (store.CallAMD: result, confidence, decision time, beep), once decided.
	EventAMD = "call.amd"
)

// DTMF is a key the far end pressed.
type DTMF struct {
	Digit      string `json:"digit"`
	DurationMS int64  `json:"duration_ms"`
}

// Hold is the media direction a call was held or resumed with (sendonly, recvonly, …).
type Hold struct {
	Direction string `json:"direction"`
}

// The states of a transfer (Transfer.Status).
const (
	TransferRejected  = "rejected"
	TransferAccepted  = "accepted"
	TransferCompleted = "completed"
	TransferFailed    = "failed"
	TransferUnknown   = "unknown"
)

// Transfer is how a transfer the call asked for goes. SIPStatus is the far end's answer
// to the REFER (rejected) or its NOTIFY's (completed, failed).
type Transfer struct {
	To        string `json:"to"`
	Status    string `json:"status"`
	SIPStatus int    `json:"sip_status,omitempty"`
}

// EarlyMedia says a call plays audio to its caller before it is answered.
type EarlyMedia struct {
	Codec string `json:"codec"`
}

// Publisher receives call events for the realtime hub; *realtime.Hub is one.
type Publisher interface {
	Publish(tenantID, topic, typ string, data any) error
}

// Topic is the topic of a call's events.
func Topic(id string) string { return "call:" + id }

// PublishEnded publishes call.ended for a call that ended without its carrier: a call of a
// lost node, failed by the node that noticed (store.Heartbeat's OnLost). Subscribers see it
// on the same topics as any other call's end, and the call's history in st keeps it.
func PublishEnded(events Publisher, st *store.Store, rec store.Call) error {
	store.RecordCallEvent(st, rec.TenantID, rec.ID, EventEnded, rec)
	return events.Publish(rec.TenantID, Topic(rec.ID), EventEnded, rec)
}
