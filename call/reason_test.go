package call

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// TestReasonTables holds the two tables to every reason: a reason added without a SIP cause
// or a close code fails here, not on a call.
func TestReasonTables(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		c, ok := sipCauses[r]
		if !ok {
			t.Errorf("%s has no SIP cause", r)
		} else if c.Status < 400 || c.Status > 699 || c.Phrase == "" || c.Q850 <= 0 || c.Q850 > 127 {
			t.Errorf("%s: SIP cause %+v", r, c)
		} else if _, ok := q850Texts[c.Q850]; !ok {
			t.Errorf("%s: Q.850 cause %d has no text for the Reason header", r, c.Q850)
		}
		code, ok := closeCodes[r]
		if !ok {
			t.Errorf("%s has no close code", r)
		} else if code != CloseNormal && code != CloseGoingAway && (code < 4000 || code > 4999) {
			t.Errorf("%s: close code %d", r, code)
		}
	}
	if len(sipCauses) != len(Reasons) || len(closeCodes) != len(Reasons) {
		t.Errorf("%d reasons, %d SIP causes, %d close codes", len(Reasons), len(sipCauses), len(closeCodes))
	}
	// The codes clients rely on.
	for _, tc := range []struct {
		r    Reason
		sip  int
		code int
	}{
		{ReasonShutdown, 503, CloseGoingAway},
		{ReasonError, 500, CloseNormal},
		{ReasonRejected, 480, CloseNormal},
		{ReasonCredentialRevoked, 403, CloseRevoked},
		{ReasonCallerHangup, 487, CloseNormal},
		{Reason("carrier-said-so"), 480, CloseNormal},
	} {
		if got := tc.r.SIP().Status; got != tc.sip {
			t.Errorf("%s: SIP %d, want %d", tc.r, got, tc.sip)
		}
		if got := tc.r.CloseCode(); got != tc.code {
			t.Errorf("%s: close code %d, want %d", tc.r, got, tc.code)
		}
	}
}

// TestUnanswered is the one rule of a call that ends before it is answered, whatever
// carries it: given up by its caller or hung up through the API, it was canceled.
func TestUnanswered(t *testing.T) {
	for r, want := range map[Reason]string{
		ReasonCanceled:     store.CallCanceled,
		ReasonAPIHangup:    store.CallCanceled,
		ReasonCallerHangup: store.CallCanceled,
		ReasonBusy:         store.CallBusy,
		ReasonNoAnswer:     store.CallNoAnswer,
		ReasonICEFailed:    store.CallFailed,
		ReasonShutdown:     store.CallFailed,
		ReasonError:        store.CallFailed,
	} {
		if got := r.Unanswered(); got != want {
			t.Errorf("%s: %s, want %s", r, got, want)
		}
	}
	if FromStream("") != ReasonError || FromStream("closed") != ReasonError || FromStream("media-timeout") != ReasonMediaTimeout {
		t.Error("a stream's reason is not read as the call's")
	}
}

// TestLogger: every line of a call names it by Switchboard's ID, its tenant, its agent and
// its SIP Call-ID.
func TestLogger(t *testing.T) {
	var b bytes.Buffer
	agent := "agt_1"
	rec := store.Call{AgentID: &agent, SIPCallID: "abc@host"}
	rec.ID, rec.TenantID = "call_1", "ten_1"
	log := Logger(slog.New(slog.NewTextHandler(&b, nil)), rec)
	log.Info("hello")
	for _, want := range []string{"call_id=call_1", "tenant_id=ten_1", "agent_id=agt_1", "sip_call_id=abc@host"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log line %q lacks %s", b.String(), want)
		}
	}
}

// TestReasonHeader pins the RFC 3326 Reason header a BYE or CANCEL carries for the reasons
// carriers see most.
func TestReasonHeader(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		want string
	}{
		{ReasonAgentHangup, `Q.850;cause=16;text="Normal call clearing"`},
		{ReasonAPIHangup, `Q.850;cause=16;text="Normal call clearing"`},
		{ReasonShutdown, `Q.850;cause=41;text="Temporary failure"`},
		{ReasonMediaTimeout, `Q.850;cause=102;text="Recovery on timer expiry"`},
		{ReasonBusy, `Q.850;cause=17;text="User busy"`},
		{Reason("carrier-said-so"), `Q.850;cause=16;text="Normal call clearing"`},
	} {
		if got := tc.r.SIP().ReasonHeader(); got != tc.want {
			t.Errorf("%s: Reason %s, want %s", tc.r, got, tc.want)
		}
	}
	if got := (SIPCause{Q850: 99}).ReasonHeader(); got != "Q.850;cause=99" {
		t.Errorf("a cause without a text: %s", got)
	}
}
