package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// TestSIPRefusals: every refusal of the SIP server is answered exactly as it was when the
// server returned the REST API's own errors (field names and all): the same status, headers
// and body, byte for byte. The field names now live here alone.
func TestSIPRefusals(t *testing.T) {
	t.Parallel()
	fe := func(field, msg string) error {
		return &store.ValidationError{Fields: []store.FieldError{{Field: field, Message: msg}}}
	}
	refused := fmt.Errorf("%w: the far end answered the REFER with 603 Decline", sip.ErrTransferRefused)
	tested := map[error]bool{}
	for _, tt := range []struct {
		name   string
		got    error // what the SIP server returns now
		was    error // what it returned before
		status int
		field  string
	}{
		{"no such trunk", &sip.DialError{Err: sip.ErrTrunkNotFound, Reason: "no such trunk"},
			fe("trunk_id", "no such trunk"), 422, "trunk_id"},
		{"inbound trunk", &sip.DialError{Err: sip.ErrTrunkInboundOnly, Reason: "the trunk takes inbound calls only; set its direction to outbound or both"},
			fe("trunk_id", "the trunk takes inbound calls only; set its direction to outbound or both"), 422, "trunk_id"},
		{"trunk without address", &sip.DialError{Err: sip.ErrTrunkNoAddress, Reason: "the trunk has no outbound address"},
			fe("trunk_id", "the trunk has no outbound address"), 422, "trunk_id"},
		{"srtp without tls", &sip.DialError{Err: sip.ErrSRTPNeedsTLS, Reason: "the trunk's srtp is \"required\", and SRTP keys travel only over SIP TLS"},
			fe("trunk_id", "the trunk's srtp is \"required\", and SRTP keys travel only over SIP TLS"), 422, "trunk_id"},
		{"bad callee", &sip.DialError{Err: sip.ErrBadCallee, Reason: `"a b" at trunk address "x" does not make a SIP URI`},
			fe("to", `"a b" at trunk address "x" does not make a SIP URI`), 422, "to"},
		{"unknown destination", &sip.DialError{Err: sip.ErrUnknownDestination, Reason: "unknown built-in destination"},
			fe("destination", "unknown built-in destination"), 422, "destination"},
		{"no agents", &sip.DialError{Err: sip.ErrAgentUnavailable, Reason: "agents cannot take calls on this node"},
			&store.ConflictError{Field: "agent_id", Message: "agents cannot take calls on this node"}, 409, "agent_id"},
		{"agent gone", &sip.DialError{Err: sip.ErrAgentUnavailable, Reason: "agent agt_x: " + store.ErrNotFound.Error()},
			&store.ConflictError{Field: "agent_id", Message: "agent agt_x: " + store.ErrNotFound.Error()}, 409, "agent_id"},
		{"node full", &sip.DialError{Err: sip.ErrNodeFull, Reason: "this node is at its call limit or shutting down"},
			&store.ConflictError{Field: "to", Message: "this node is at its call limit or shutting down"}, 409, "to"},
		{"not serving", &sip.DialError{Err: sip.ErrNotServing, Reason: "the server is not serving yet"},
			errors.New("sip: the server is not serving yet"), 500, ""},
		{"no such call", sip.ErrCallNotFound, store.ErrNotFound, 404, ""},
		{"ended", &sip.CallError{Err: sip.ErrCallEnded, Reason: "the call has ended (completed)"},
			&store.ConflictError{Field: "id", Message: "the call has ended (completed)"}, 409, "id"},
		{"elsewhere", &sip.CallError{Err: sip.ErrCallElsewhere, Reason: `the call is carried by node "b", not this one`},
			&store.ConflictError{Field: "id", Message: `the call is carried by node "b", not this one`}, 409, "id"},
		{"not answered", &sip.CallError{Err: sip.ErrNotAnswered, Reason: "the call is not answered yet; only an answered call can be transferred"},
			&store.ConflictError{Field: "id", Message: "the call is not answered yet; only an answered call can be transferred"}, 409, "id"},
		{"bad target", &sip.CallError{Err: sip.ErrBadTarget, Reason: "must be an E.164 number, a SIP user or a sip: URI"},
			fe("to", "must be an E.164 number, a SIP user or a sip: URI"), 422, "to"},
		{"transfer refused", &sip.CallError{Err: sip.ErrTransferRefused, Reason: refused.Error()},
			&store.ConflictError{Field: "to", Message: refused.Error()}, 409, "to"},
	} {
		if u := errors.Unwrap(tt.got); u != nil {
			tested[u] = true
		}
		t.Run(tt.name, func(t *testing.T) {
			answer := func(err error) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				writeError(w, asError(callError(err)))
				return w
			}
			got, was := answer(tt.got), answer(tt.was)
			if got.Code != tt.status || got.Code != was.Code || got.Body.String() != was.Body.String() ||
				fmt.Sprint(got.Header()) != fmt.Sprint(was.Header()) {
				t.Fatalf("answer %d %v %s, want %d %v %s", got.Code, got.Header(), got.Body, was.Code, was.Header(), was.Body)
			}
			if e := asError(tt.got); tt.field != "" && (len(e.Details) != 1 || e.Details[0].Field != tt.field) {
				t.Fatalf("details %v, want the field %s", e.Details, tt.field)
			}
			if tt.status == http.StatusInternalServerError && sipError(tt.got) != nil {
				t.Fatalf("%v is mapped, want it left to the default", tt.got)
			}
		})
	}
	// A refusal added to the map is added above too.
	for _, r := range sipRefusals {
		if !tested[r.err] {
			t.Errorf("%v is mapped but not tested here", r.err)
		}
	}
}
