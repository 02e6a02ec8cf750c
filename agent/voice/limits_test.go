package voice

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

func TestIdleReminderAndHangup(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.Limits = store.CallLimits{IdleTimeoutS: 2}
	var listenErr error
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		if _, err := c.Say(ctx, "Hi."); err != nil {
			return err
		}
		_, listenErr = c.Listen(ctx, agent.ListenOptions{})
		return listenErr
	})
	start := time.Now()
	res := r.run(testCtx(t, 60*time.Second), brain)()
	took := time.Since(start)
	if !errors.Is(listenErr, agent.ErrHangup) {
		t.Errorf("Listen returned %v", listenErr)
	}
	if res.Reason != string(call.ReasonIdleTimeout) || r.line.hungUp() != string(call.ReasonIdleTimeout) {
		t.Errorf("reason %q, line %q", res.Reason, r.line.hungUp())
	}
	if n := len(r.line.eventsOf(EventIdle)); n != 1 {
		t.Errorf("%d idle reminders, want 1", n)
	}
	var said []string
	for _, turn := range res.Transcript {
		if turn.Role == "assistant" {
			said = append(said, turn.Text)
		}
	}
	if len(said) != 3 || said[1] != defaultIdleReminder || said[2] != idleGoodbye {
		t.Errorf("agent said %q", said)
	}
	// Greeting, 1 s, reminder, 1 s, goodbye: all of it heard by the caller.
	if took < 2*time.Second || took > 25*time.Second {
		t.Errorf("the call lasted %v", took)
	}
	if n := r.caller.loudFrames(start, time.Now()); n < 50 {
		t.Errorf("the caller heard %d loud frames: reminder and goodbye missing", n)
	}
}

func TestMaxDuration(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.Limits = store.CallLimits{MaxDurationS: 2, IdleTimeoutS: 60}
	var listenErr error
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		for {
			if _, listenErr = c.Listen(ctx, agent.ListenOptions{}); listenErr != nil {
				return listenErr
			}
		}
	})
	start := time.Now()
	res := r.run(testCtx(t, 60*time.Second), brain)()
	if res.Reason != string(call.ReasonMaxDuration) || r.line.hungUp() != string(call.ReasonMaxDuration) {
		t.Errorf("reason %q, line %q", res.Reason, r.line.hungUp())
	}
	if !errors.Is(listenErr, agent.ErrHangup) {
		t.Errorf("Listen returned %v", listenErr)
	}
	if d := res.Report.DurationSeconds; d < 2 {
		t.Errorf("the call lasted %.1f s", d)
	}
	// The goodbye was heard after the limit.
	if n := r.caller.loudFrames(start.Add(2*time.Second), time.Now()); n < 25 {
		t.Errorf("the caller heard %d loud frames of goodbye", n)
	}
}

func TestDTMFInput(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	inputs := make(chan agent.Input, 2)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{DTMF: true})
		if err != nil {
			return err
		}
		inputs <- in
		in, err = c.Listen(ctx, agent.ListenOptions{DTMF: true, MaxDigits: 1})
		if err != nil {
			return err
		}
		inputs <- in
		c.Hangup("done")
		return nil
	})
	wait := r.run(testCtx(t, 60*time.Second), brain)
	r.listening()
	for _, d := range "123#" {
		if err := r.caller.sess.SendDTMF(d, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	in := <-inputs
	if in.Kind != agent.InputDTMF || in.Digits != "123" {
		t.Errorf("first input %+v, want 123 (the # ends it)", in)
	}
	if err := r.caller.sess.SendDTMF('5', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	in = <-inputs
	if in.Kind != agent.InputDTMF || in.Digits != "5" {
		t.Errorf("second input %+v, want 5", in)
	}
	res := wait()
	var keys []string
	for _, turn := range res.Transcript {
		if turn.Role == "user" {
			keys = append(keys, turn.DTMF)
		}
	}
	if len(keys) != 2 || keys[0] != "123" || keys[1] != "5" {
		t.Errorf("transcript keys %q", keys)
	}
}

func TestDTMFInterDigitTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	inputs := make(chan agent.Input, 1)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{DTMF: true, InterDigit: 500 * time.Millisecond})
		inputs <- in
		return err
	})
	wait := r.run(testCtx(t, 60*time.Second), brain)
	r.listening()
	for _, d := range "42" {
		if err := r.caller.sess.SendDTMF(d, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	in := <-inputs
	wait()
	if in.Kind != agent.InputDTMF || in.Digits != "42" {
		t.Errorf("input %+v, want 42 after the inter-digit pause", in)
	}
}

func TestListenTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	inputs := make(chan agent.Input, 1)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{Timeout: 700 * time.Millisecond})
		inputs <- in
		return err
	})
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), brain)
	in := <-inputs
	took := time.Since(start)
	wait()
	if in.Kind != agent.InputTimeout || took < 700*time.Millisecond || took > 5*time.Second {
		t.Errorf("input %+v after %v", in, took)
	}
}

// TestListenTimeoutAfterTalk: a wait for input counts its timeout from the caller's last
// words, not from its start: speech that turned out to be nothing (an empty transcript)
// does not eat the time the caller has to answer.
func TestListenTimeoutAfterTalk(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.says("")
	const timeout = 2 * time.Second
	inputs := make(chan agent.Input, 1)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{Timeout: timeout})
		inputs <- in
		return err
	})
	wait := r.run(testCtx(t, 60*time.Second), brain)
	time.Sleep(800 * time.Millisecond)
	r.caller.say(fixture(t, "hello"))
	spoke := time.Now()
	in := <-inputs
	wait()
	if in.Kind != agent.InputTimeout {
		t.Fatalf("input %+v, want a timeout", in)
	}
	// The fixture ends in a little silence, and the wait ended without the fix at the end of
	// the caller's turn (600 ms of silence): half a second of slack tells the two apart.
	if after := time.Since(spoke); after < timeout-500*time.Millisecond {
		t.Errorf("timed out %v after the caller's words, want the whole %v", after, timeout)
	}
}
