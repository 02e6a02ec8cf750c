package sip

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// These tests pin the bugs that real softphones (baresip, linphone) showed, each against a
// real peer: SIPp, or a sipgo UA with its own RTP socket.

// TestSIPpHangupAtAnswer has SIPp hang up each call the moment it is answered: the ACK and
// the BYE leave back to back, and the server may read the BYE first (sipgo reads each
// request on a goroutine of its own; UDP may reorder them), which the second scenario makes
// certain. Every call was answered, so every record must say completed, caller-hangup, with
// its answer time and its codec, never canceled.
func TestSIPpHangupAtAnswer(t *testing.T) {
	verifyNoLeaks(t)
	const calls = 16
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Node: "node-a"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, scenario := range []string{"uac_quick_bye.xml", "uac_bye_before_ack.xml"} {
		newSIPp(t, scenario, addr, 30*time.Second,
			"-s", "echo", "-m", strconv.Itoa(calls/2), "-r", "20", "-l", "4").run()
	}

	ended := events.waitN(ctx, t, calls, call.EventEnded, nil)
	for _, e := range ended {
		id := e.Data.(store.Call).ID
		got, err := store.Get[store.Call](ctx, st, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCallerHangup) ||
			got.AnsweredAt == nil || got.Codec != "PCMA" {
			t.Errorf("call %s recorded %s/%s answered_at %v codec %q; want completed/caller-hangup, answered, PCMA",
				id, got.Status, got.EndedReason, got.AnsweredAt, got.Codec)
		}
	}
}
