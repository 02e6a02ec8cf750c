package sip

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// TestParseReasons reads what carriers and PBXs put in a Reason header, and ignores what
// says nothing usable.
func TestParseReasons(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []peerReason
	}{
		{[]string{`Q.850;cause=16;text="Normal call clearing"`}, []peerReason{{"Q.850", 16, "Normal call clearing"}}},
		{[]string{`SIP;cause=486;text="Busy Here", Q.850;cause=17;text="User busy"`},
			[]peerReason{{"SIP", 486, "Busy Here"}, {"Q.850", 17, "User busy"}}},
		{[]string{`q.850 ; cause = 31`, `sip;cause=200;text="Call completed elsewhere"`},
			[]peerReason{{"Q.850", 31, ""}, {"SIP", 200, "Call completed elsewhere"}}},
		{[]string{`Q.850;text="a, b; \"c\"";cause=21`}, []peerReason{{"Q.850", 21, `a, b; "c"`}}},
		{[]string{`X-Carrier;cause=7;text=token`}, []peerReason{{"X-Carrier", 7, "token"}}},
		{[]string{`Q.850;cause=abc`, `Q.850`, ``, `;cause=16`, `"Q.850";cause=16`, `Q.850;cause=1234`, `,,,`}, nil},
		{[]string{`Q.850;cause=16;text="unterminated`}, []peerReason{{"Q.850", 16, "unterminated"}}},
		{[]string{"Q.850;cause=16;text=\"bell\x07\xffend\""}, []peerReason{{"Q.850", 16, "bellend"}}},
	} {
		if got := parseReasons(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
	many := strings.Repeat("Q.850;cause=16,", 100)
	if got := parseReasons([]string{many}); len(got) != maxReasonValues {
		t.Errorf("%d values kept of 100, want %d", len(got), maxReasonValues)
	}
	if got := parseReasons([]string{`Q.850;cause=16;text="` + strings.Repeat("x", 10000) + `"`}); len(got) != 1 || len(got[0].Text) != maxReasonText {
		t.Errorf("a long text kept as %d bytes, want %d", len(got[0].Text), maxReasonText)
	}
}

// FuzzParseReasons holds the parser to never panic and to keep what it returns fit for a
// record, whatever a peer sends.
func FuzzParseReasons(f *testing.F) {
	for _, s := range []string{
		`Q.850;cause=16;text="Normal call clearing"`,
		`SIP;cause=486;text="Busy Here", Q.850;cause=17;text="User busy"`,
		`Q.850;text="a, b; \"c\"";cause=21`,
		`Q.850;cause=16;text="unterminated`,
		`"`, `\`, `;;;,,,==`, "Q.850;cause=16;text=\"\xff\xfe\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs := parseReasons([]string{s, s})
		if len(rs) > maxReasonValues {
			t.Fatalf("%d values", len(rs))
		}
		for _, r := range rs {
			if r.Protocol == "" || r.Cause < -1 || r.Cause > 999 || (r.Cause < 0 && r.Text == "") {
				t.Fatalf("%q: %+v", s, r)
			}
			if len(r.Text) > maxReasonText || !utf8.ValidString(r.Text) {
				t.Fatalf("%q: text %q", s, r.Text)
			}
		}
	})
}

// When the agent ends a call, the caller's BYE says it was a normal clearing.
func TestReasonOnAgentBye(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	agent := HandlerFunc(func(ctx context.Context, c *Call) { c.Hangup("") })
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: testAgents{agent}})
	agentNumber(t, st, tenant, "bye")
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "bye", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	callID := d.InviteRequest.CallID().Value()
	u.waitBye(ctx, t, callID)
	if got, want := u.byeReason(callID), `Q.850;cause=16;text="Normal call clearing"`; got != want {
		t.Errorf("BYE Reason %q, want %q", got, want)
	}
	rec := events.wait(ctx, t, call.EventEnded, sipCall(callID)).Data.(store.Call)
	if rec.EndedReason != string(call.ReasonAgentHangup) {
		t.Errorf("ended %s, want agent-hangup", rec.EndedReason)
	}
}

// A carrier's BYE that says why it cleared the call leaves its cause on the record and in
// call.ended; a BYE without one leaves nothing.
func TestPeerByeReasonRecorded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason []string
		want   map[string]any // metadata keys; nil: none of them
	}{
		{"user busy", []string{`Q.850;cause=17;text="User busy"`},
			map[string]any{"sip_reason": `Q.850;cause=17;text="User busy"`, "q850_cause": float64(17), "q850_text": "User busy"}},
		{"sip and q850", []string{`SIP;cause=200;text="Call completed elsewhere"`, `Q.850;cause=26`},
			map[string]any{"sip_reason": `SIP;cause=200;text="Call completed elsewhere", Q.850;cause=26`, "q850_cause": float64(26), "sip_reason_cause": float64(200)}},
		{"garbage", []string{`;;"=,`}, nil},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			st, tenant := newCallStore(t)
			events := newEventLog()
			_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
			u := newTestCaller(t)
			peer := newRTPPeer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
			rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
			req := sip.NewRequest(sip.BYE, d.InviteResponse.Contact().Address)
			for _, v := range tc.reason {
				req.AppendHeader(sip.NewHeader("Reason", v))
			}
			if err := d.WriteBye(ctx, req); err != nil {
				t.Fatalf("BYE: %v", err)
			}

			ended := events.wait(ctx, t, call.EventEnded, onTopic(rec.ID)).Data.(store.Call)
			got := endedCall(ctx, t, events, st, tenant, rec.ID)
			if got.EndedReason != string(call.ReasonCallerHangup) {
				t.Errorf("ended %s, want caller-hangup", got.EndedReason)
			}
			for _, k := range []string{"sip_reason", "q850_cause", "q850_text", "sip_reason_cause"} {
				want, ok := tc.want[k]
				if v, has := got.Metadata[k]; has != ok || (ok && fmt.Sprint(v) != fmt.Sprint(want)) {
					t.Errorf("record metadata %s = %v (%v), want %v (%v)", k, v, has, want, ok)
				}
				if v, has := ended.Metadata[k]; has != ok || (ok && fmt.Sprint(v) != fmt.Sprint(want)) {
					t.Errorf("call.ended metadata %s = %v (%v), want %v (%v)", k, v, has, want, ok)
				}
			}
		})
	}
}

// A caller's CANCEL that says why it gave up leaves its cause on the canceled call's record.
func TestPeerCancelReasonRecorded(t *testing.T) {
	verifyNoLeaks(t, sipgoCancelLeak)
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServerWith(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, 10*time.Second)
	u := newTestCaller(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := u.testUA.dialog.Invite(ctx, uri(t, "echo", addr), offerSDP(40000, "0"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	canceled := make(chan error, 1)
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode != 180 {
			return nil
		}
		inv := d.InviteRequest
		req := sip.NewRequest(sip.CANCEL, inv.Recipient)
		req.AppendHeader(sip.HeaderClone(inv.Via()))
		req.AppendHeader(sip.HeaderClone(inv.From()))
		req.AppendHeader(sip.HeaderClone(inv.To()))
		req.AppendHeader(sip.HeaderClone(inv.CallID()))
		req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
		req.AppendHeader(sip.NewHeader("Reason", `Q.850;cause=17;text="User busy"`))
		req.SetBody(nil)
		go func() {
			res, err := u.client.Do(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
			if err == nil && res.StatusCode != 200 {
				err = fmt.Errorf("CANCEL answered %d", res.StatusCode)
			}
			canceled <- err
		}()
		return nil
	}})
	if err == nil {
		t.Fatal("the call was answered despite the CANCEL")
	}
	if err := <-canceled; err != nil {
		t.Fatal(err)
	}
	rec := events.wait(ctx, t, call.EventRinging, sipCall(d.InviteRequest.CallID().Value())).Data.(store.Call)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCanceled || got.EndedReason != string(call.ReasonCanceled) {
		t.Fatalf("record %s/%s, want canceled", got.Status, got.EndedReason)
	}
	if fmt.Sprint(got.Metadata["q850_cause"]) != "17" || got.Metadata["sip_reason"] != `Q.850;cause=17;text="User busy"` {
		t.Errorf("metadata %v, want the CANCEL's Q.850 cause 17", got.Metadata)
	}
}

// A node that stops while an outbound call rings CANCELs it with a temporary failure, and
// the record says shutdown.
func TestShutdownCancelReason(t *testing.T) {
	verifyNoLeaks(t, sipgoCancelLeak)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, DefaultTenantID: tenant, Events: events, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, pc, l) }()
	<-s.ready

	cancelReason := make(chan string, 1)
	far := newFarEnd(t, func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
		tx.OnCancel(func(r *sip.Request) {
			v := ""
			if h := r.GetHeader("Reason"); h != nil {
				v = h.Value()
			}
			cancelReason <- v
		})
		d, err := f.dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		defer d.Close()
		_ = d.Respond(180, "Ringing", nil)
		select {
		case <-d.Context().Done():
		case <-ctx.Done():
		}
	})
	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.Destination, rec.TimeoutSeconds = tenant, "sip:far@"+far.addr, "tone", 60
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	events.wait(ctx, t, call.EventRinging, onTopic(rec.ID))
	stopServer()
	select {
	case got := <-cancelReason:
		if want := `Q.850;cause=41;text="Temporary failure"`; got != want {
			t.Errorf("CANCEL Reason %q, want %q", got, want)
		}
	case <-ctx.Done():
		t.Fatal("no CANCEL on shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("server did not stop")
	}
	ended := events.wait(ctx, t, call.EventEnded, onTopic(rec.ID)).Data.(store.Call)
	if ended.EndedReason != string(call.ReasonShutdown) {
		t.Errorf("ended %s, want shutdown", ended.EndedReason)
	}
}
