package sip

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// panickyEvents is the eventLog with a bug: its first Publish of typ panics, as a broken
// part of a call's path would, in whichever goroutine publishes it.
type panickyEvents struct {
	*eventLog
	typ   string
	fired atomic.Bool
}

func (p *panickyEvents) Publish(tenantID, topic, typ string, data any) error {
	if typ == p.typ && p.fired.CompareAndSwap(false, true) {
		panic("injected: publishing " + typ + " broke")
	}
	return p.eventLog.Publish(tenantID, topic, typ, data)
}

// panickyAgents hands the first call to a handler that panics, the others to h.
type panickyAgents struct {
	h     Handler
	fired atomic.Bool
}

func (a *panickyAgents) AgentHandler(context.Context, string, string) (Handler, error) {
	if a.fired.CompareAndSwap(false, true) {
		return HandlerFunc(func(context.Context, *Call) { panic("injected: the agent broke") }), nil
	}
	return a.h, nil
}

// panicLines counts the log lines about a call's panic, and checks each has its stack.
func panicLines(t *testing.T, logs *logBuffer) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "sip call panicked") {
			n++
			if !strings.Contains(l, "goroutine ") || !strings.Contains(l, "injected") {
				t.Errorf("a panic's line without its value or stack: %.300s", l)
			}
		}
	}
	return n
}

// A call whose agent panics, or whose owner does (its events' publisher breaking as it
// is answered), ends with reason error and a BYE to the caller, logged once with the
// stack; the node goes on taking calls.
func TestInboundCallPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events func(*eventLog) call.Publisher
		agents func(calls chan<- *Call) Agents
	}{
		{"handler", func(l *eventLog) call.Publisher { return l },
			func(calls chan<- *Call) Agents { return &panickyAgents{h: listeningAgent(calls)} }},
		{"owner", func(l *eventLog) call.Publisher { return &panickyEvents{eventLog: l, typ: call.EventAnswered} },
			func(calls chan<- *Call) Agents { return testAgents{listeningAgent(calls)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			agentNumber(t, st, tenant, "agent")
			events := newEventLog()
			calls := make(chan *Call, 2)
			logs := &logBuffer{t: t}
			s, addr := startCallServer(t, Config{Log: logs.logger(), Store: st, DefaultTenantID: tenant,
				Events: tc.events(events), Agents: tc.agents(calls)})
			u := newTestCaller(t)
			peer := newRTPPeer(t)

			d := u.call(ctx, t, uri(t, "agent", addr), offerSDP(peer.port(), "0"), sipgo.AnswerOptions{})
			callID := d.InviteRequest.CallID().Value()
			u.waitBye(ctx, t, callID)
			rec := events.wait(ctx, t, call.EventEnded, sipCall(callID)).Data.(store.Call)
			got := endedCall(ctx, t, events, st, tenant, rec.ID)
			if got.EndedReason != string(call.ReasonError) {
				t.Errorf("call ended %s/%s, want reason %s", got.Status, got.EndedReason, call.ReasonError)
			}
			if s.panics.Load() != 1 || panicLines(t, logs) != 1 {
				t.Errorf("%d panics counted, %d logged; want 1 and 1", s.panics.Load(), panicLines(t, logs))
			}

			// The next call is answered, reaches its agent, and ends as usual.
			d2 := u.call(ctx, t, uri(t, "agent", addr), offerSDP(peer.port(), "0"), sipgo.AnswerOptions{})
			select {
			case <-calls:
			case <-ctx.Done():
				t.Fatal("the agent got no second call")
			}
			bye(ctx, t, d2)
			rec2 := events.wait(ctx, t, call.EventEnded, sipCall(d2.InviteRequest.CallID().Value())).Data.(store.Call)
			if got := endedCall(ctx, t, events, st, tenant, rec2.ID); got.EndedReason != string(call.ReasonCallerHangup) {
				t.Errorf("second call ended %s, want %s", got.EndedReason, call.ReasonCallerHangup)
			}
			waitFor(t, func() bool { return s.Active() == 0 })
		})
	}
}

// An outbound call's owner runs in a goroutine of its own: a panic there once took the node
// down. The call ends with reason error and a BYE to the far end, and the node dials on.
func TestOutboundCallPanics(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant,
		Events: &panickyEvents{eventLog: events, typ: call.EventAnswered}})
	peer := newRTPPeer(t)
	answered := make(chan *sipgo.DialogServerSession, 2)
	invites := make(chan *sip.Request, 8)
	far := newFarEnd(t, answerWith(peer, answered, invites))

	for i, want := range []call.Reason{call.ReasonError, call.ReasonCalleeHangup} {
		rec := store.NewOutboundCall()
		rec.TenantID, rec.To, rec.Destination = tenant, "sip:far@"+far.addr, "tone"
		if err := s.Dial(ctx, rec); err != nil {
			t.Fatal(err)
		}
		var d *sipgo.DialogServerSession
		select {
		case d = <-answered:
		case <-ctx.Done():
			t.Fatalf("call %d: the far end's answer was not acknowledged", i+1)
		}
		if i == 1 {
			checkTone(t, decodeG711(peer.first(50, 10*time.Second, 0)), 0.9)
			if err := d.Bye(ctx); err != nil {
				t.Fatalf("far end BYE: %v", err)
			}
		}
		select {
		case <-d.Context().Done(): // our BYE, or the far end's
		case <-ctx.Done():
			t.Fatalf("call %d: no BYE from the node", i+1)
		}
		_ = d.Close()
		if got := endedCall(ctx, t, events, st, tenant, rec.ID); call.Reason(got.EndedReason) != want {
			t.Errorf("call %d ended %s/%s, want reason %s", i+1, got.Status, got.EndedReason, want)
		}
	}
	if s.panics.Load() != 1 {
		t.Errorf("%d panics counted, want 1", s.panics.Load())
	}
	waitFor(t, func() bool { return s.Active() == 0 })
}
