package webhook

import (
	"encoding/json"
	"maps"
	"strings"
	"time"
)

// Payload is the body of a delivery: the event, when it happened, its call, and what the
// event adds (the report of call.ended, the turn of call.transcript).
type Payload struct {
	// ID is the delivery's: the same on every attempt, so that a receiver can tell a retry
	// from a new event.
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	TenantID  string    `json:"tenant_id"`
	CallID    string    `json:"call_id"`
	// Call is the call's record as the event carried it, every field of it (cost and any
	// other a later version records too).
	Call json.RawMessage `json:"call,omitempty"`
	// Report is call.ended's end-of-call report.
	Report map[string]any `json:"report,omitempty"`
	// Turn is call.transcript's turn: who spoke (role user or assistant) and what.
	Turn json.RawMessage `json:"turn,omitempty"`
}

// endedReport is the end-of-call report of call.ended: the report the agent's conversation
// left on the record (latencies, turns, usage…), with the record's end (reason, duration),
// any cost figure the record carries at its top level, the transcript (a JSON array; empty
// when none was kept) and the recording's link ("" when the call was not recorded).
func endedReport(record json.RawMessage, transcript json.RawMessage, recordingURL string) map[string]any {
	var rec map[string]any
	_ = json.Unmarshal(record, &rec)
	report, _ := rec["report"].(map[string]any)
	out := maps.Clone(report)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range rec {
		if strings.HasPrefix(k, "cost") {
			out[k] = v
		}
	}
	out["ended_reason"] = rec["ended_reason"]
	out["duration_seconds"] = rec["duration_seconds"]
	out["status"] = rec["status"]
	if len(transcript) == 0 {
		transcript = json.RawMessage("[]")
	}
	out["transcript"] = transcript
	if recordingURL != "" {
		out["recording_url"] = recordingURL
	} else {
		out["recording_url"] = nil
	}
	return out
}
