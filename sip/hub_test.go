package sip

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/realtime"
)

// TestTenantTopicSeesEachCallEventOnce: a dashboard following the tenant's topic on the real
// hub sees a call's life cycle once an event, not once for the call's topic and again for
// the tenant's.
func TestTenantTopicSeesEachCallEventOnce(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	hub := realtime.NewHub(realtime.Options{})
	sub := hub.Subscribe(tenant)
	if err := sub.Add([]string{realtime.TenantTopic}, 0, nil); err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: hub, Node: "node-a"})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	peer.sendTone(t, parseAnswer(t, d.InviteResponse.Body()).rtp, 5)
	bye(ctx, t, d)

	seen := map[string]int{}
	for seen[call.EventEnded] == 0 {
		it, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for call.ended on the tenant topic: %v (seen %v)", err, seen)
		}
		if it.Event != nil {
			seen[it.Event.Type]++
		}
	}
	// Anything published twice is on the hub by now: the second copy of call.ended would
	// follow the first at once. Read what else comes within half a second (a subscriber
	// wakes for the context of its first Next only, so closing it ends the wait).
	stop := time.AfterFunc(500*time.Millisecond, sub.Close)
	defer stop.Stop()
	for {
		it, err := sub.Next(ctx)
		if err != nil {
			break
		}
		if it.Event != nil {
			seen[it.Event.Type]++
		}
	}
	for _, typ := range []string{call.EventCreated, call.EventRinging, call.EventAnswered, call.EventEnded} {
		if seen[typ] != 1 {
			t.Errorf("%s seen %d times on the tenant topic, want once (all: %v)", typ, seen[typ], seen)
		}
	}
}
