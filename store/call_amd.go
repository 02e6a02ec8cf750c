package store

import "unicode/utf8"

// Modes of answering-machine detection on an outbound call (CallAMD.Mode).
const (
	// AMDDetect reports who answered (call.amd, the record) and lets the call go on as it
	// would: the agent speaks first once the detection decided, whatever it decided.
	AMDDetect = "detect"
	// AMDDetectThenMessage also leaves Message, in the agent's voice, on a machine: after its
	// beep or the end of its greeting; then it hangs up (ended reason voicemail).
	AMDDetectThenMessage = "detect_then_message"
)

// AMD results (CallAMD.Result).
const (
	AMDHuman   = "human"
	AMDMachine = "machine"
	AMDUnknown = "unknown"
)

// Bounds of answering-machine detection.
const (
	DefaultAMDTimeout = 10
	MinAMDTimeout     = 2
	MaxAMDTimeout     = 60
	maxAMDMessage     = 2000
)

// CallAMD is answering-machine detection on an outbound call: what the client asked for
// (mode, message, timeout) and, once decided, what it found.
type CallAMD struct {
	Mode    string `json:"mode"`
	Message string `json:"message,omitempty"`
	// TimeoutSeconds bounds the detection: undecided by then is unknown.
	TimeoutSeconds int `json:"timeout_seconds"`

	// Result is human, machine or unknown; "" until decided.
	Result string `json:"result,omitempty"`
	// Confidence is how sure the result is, 0 to 1.
	Confidence float64 `json:"confidence"`
	// DecisionMS is the time from the answer to the decision.
	DecisionMS int64 `json:"decision_ms"`
	// Reason is the signal that decided: short-greeting, long-greeting, beep, transcript
	// or timeout.
	Reason string `json:"reason,omitempty"`
	// Beep says a voicemail beep was heard.
	Beep bool `json:"beep"`
	// Transcript is the greeting as the agent's transcriber heard it, when it has one.
	Transcript string `json:"transcript,omitempty"`
	// MessageLeft says the message was spoken to the machine in full.
	MessageLeft bool `json:"message_left"`
}

// validate checks the request half of a call's AMD (the rest is Switchboard's to write),
// naming each field as amd.<field>; a zero timeout takes DefaultAMDTimeout. agent says the
// call has an agent to speak a message.
func (a *CallAMD) validate(fe *fieldErrors, agent bool) {
	fe.oneOf("amd.mode", a.Mode, AMDDetect, AMDDetectThenMessage)
	if a.TimeoutSeconds == 0 {
		a.TimeoutSeconds = DefaultAMDTimeout
	}
	fe.rangeInt("amd.timeout_seconds", a.TimeoutSeconds, MinAMDTimeout, MaxAMDTimeout)
	switch {
	case a.Mode == AMDDetectThenMessage && isBlank(a.Message):
		fe.add("amd.message", "is required with mode detect_then_message: what the agent says to the answering machine")
	case a.Mode == AMDDetect && a.Message != "":
		fe.add("amd.message", "is only spoken with mode detect_then_message")
	case utf8.RuneCountInString(a.Message) > maxAMDMessage:
		fe.add("amd.message", "must be at most %d characters", maxAMDMessage)
	}
	if a.Mode == AMDDetectThenMessage && !agent {
		fe.add("amd.mode", "detect_then_message needs agent_id: the message is spoken in the agent's voice")
	}
}

func isBlank(s string) bool {
	for _, r := range s {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}
