package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
)

func TestTextConversationListen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := agent.NewTextConversation()
	// Nothing within the time allowed is a timeout input.
	in, err := c.Listen(ctx, agent.ListenOptions{Timeout: 20 * time.Millisecond})
	if err != nil || in.Kind != agent.InputTimeout {
		t.Fatalf("%+v %v", in, err)
	}
	// Waiting for keys drops speech; keys stop at the terminator.
	c.SendText("hello")
	c.SendDigits("42#7")
	in, err = c.Listen(ctx, agent.ListenOptions{DTMF: true})
	if err != nil || in.Kind != agent.InputDTMF || in.Digits != "42" {
		t.Fatalf("%+v %v", in, err)
	}
	c.SendDigits("123")
	if in, _ := c.Listen(ctx, agent.ListenOptions{MaxDigits: 1}); in.Digits != "1" {
		t.Fatalf("%+v", in)
	}
	// A Listen that waits wakes up for input sent later, and for the caller leaving.
	go func() { time.Sleep(20 * time.Millisecond); c.SendText("later") }()
	if in, err := c.Listen(ctx, agent.ListenOptions{}); err != nil || in.Text != "later" {
		t.Fatalf("%+v %v", in, err)
	}
	go func() { time.Sleep(20 * time.Millisecond); c.Close() }()
	if _, err := c.Listen(ctx, agent.ListenOptions{}); !errors.Is(err, agent.ErrHangup) {
		t.Fatalf("after close: %v", err)
	}
	if _, err := c.Say(ctx, "anyone?"); !errors.Is(err, agent.ErrHangup) {
		t.Fatalf("say after close: %v", err)
	}
}

func TestTextConversationSpeakInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := agent.NewTextConversation()
	c.InterruptNext(2, agent.Input{Kind: agent.InputSpeech, Text: "stop"})
	text := make(chan string)
	go func() {
		defer close(text)
		for _, d := range []string{"one ", "two ", "three ", "four"} {
			text <- d // drained after the interruption: never blocks for good
		}
	}()
	sp, err := c.Speak(ctx, text)
	if err != nil || !sp.Interrupted || sp.Text != "one two" {
		t.Fatalf("%+v %v", sp, err)
	}
	if in, err := c.Listen(ctx, agent.ListenOptions{}); err != nil || in.Text != "stop" {
		t.Fatalf("the interruption is not the next input: %+v %v", in, err)
	}
	tr := c.Transcript()
	if len(tr.Lines) != 2 || tr.Lines[0] != (agent.TextLine{Role: "agent", Text: "one two"}) || tr.Lines[1].Role != "caller" {
		t.Fatalf("lines %+v", tr.Lines)
	}
}
