package voice

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/media"
)

const longAnswer = "Our restaurant is open every day from eleven in the morning until ten at night. " +
	"On weekends we also serve brunch from nine, with a menu of eggs, pancakes and fresh juices. " +
	"Reservations are recommended for groups of six or more, and you can make them by phone or online. " +
	"We also have a terrace, which opens in the summer months when the weather allows it."

// talkBrain speaks longAnswer (streamed in small deltas, as a model writes), then
// listens once with a short timeout; it reports both.
// clearingStream is a stream that holds audio at the far end, as a media-stream socket does:
// on barge-in the conversation asks it to drop what it holds unplayed.
type clearingStream struct {
	media.Stream
	unheard time.Duration
	cleared atomic.Int32
}

func (s *clearingStream) Clear() time.Duration {
	s.cleared.Add(1)
	return s.unheard
}

// On barge-in, what a far end held unplayed is taken back from what counts as heard: with
// all of it unplayed, the history keeps nothing of the answer.
func TestBargeInTakesBackWhatTheFarEndHeld(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.BargeInDuringFirstMessage = true
	cs := &clearingStream{Stream: r.line.sess, unheard: time.Minute}
	r.line.stream = cs
	out := make(chan talkResult, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
	if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	r.says("Wait, stop, I have a different question about my order.")
	r.caller.sayAsync(fixture(t, "wait"))
	res := <-out
	wait()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.spoken.Interrupted || res.spoken.Text != "" || cs.cleared.Load() != 1 {
		t.Errorf("spoken %+v, cleared %d times; want an interruption with nothing heard, cleared once", res.spoken, cs.cleared.Load())
	}
}

type talkResult struct {
	spoken agent.Spoken
	input  agent.Input
	err    error
}

func talkBrain(out chan<- talkResult) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		text := make(chan string)
		go func() {
			defer close(text)
			for _, w := range strings.SplitAfter(longAnswer, " ") {
				select {
				case text <- w:
				case <-ctx.Done():
					return
				}
			}
		}()
		var res talkResult
		res.spoken, res.err = c.Speak(ctx, text)
		if res.err == nil {
			res.input, res.err = c.Listen(ctx, agent.ListenOptions{Timeout: 1500 * time.Millisecond})
		}
		out <- res
		c.Hangup("done")
		return nil
	}
}

func TestBargeIn(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.BargeInDuringFirstMessage = true
	out := make(chan talkResult, 1)
	stalls := newStallMeter(t)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
	if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	utter := fixture(t, "wait")
	r.says("Wait, stop, I have a different question about my order.")
	onset := time.Duration(onsetSample(utter, 8000)) * time.Second / 8000
	before := time.Now()
	r.caller.sayAsync(utter)
	res := <-out
	wait()

	r.caller.mu.Lock()
	said := r.caller.spoken[len(r.caller.spoken)-1].start
	r.caller.mu.Unlock()
	// The caller's first frame goes out within a frame of the queueing.
	speechAt := said.Add(onset)
	last, ok := r.caller.waitQuiet(before, 0, time.Second)
	if !ok {
		t.Fatal("the agent was never heard")
	}
	min := 250 * time.Millisecond
	heardStop := last.Sub(speechAt) - min
	ev := r.line.eventsOf(EventBargeIn)
	if len(ev) == 0 {
		t.Fatal("no barge-in event")
	}
	for _, e := range ev {
		t.Logf("barge-in %+v (at-onset %v)", e.data, e.data.(BargeIn).At.Sub(e.data.(BargeIn).Onset))
	}
	for _, tr := range r.srv.Transcriptions() {
		t.Logf("transcription of %.2f s", tr.Seconds())
	}
	b := ev[0].data.(BargeIn)
	serverStop := b.At.Sub(b.Due)
	t.Logf("agent heard stopping %v after the caller's 250 ms; server: stopped %v after the frame that made 250 ms, %v after onset+250 ms",
		heardStop.Round(time.Millisecond), serverStop.Round(time.Millisecond), (b.At.Sub(b.Onset) - min).Round(time.Millisecond))
	// The bound on what the server controls: from the frame with which the caller's speech
	// had lasted the minimum to the last frame written, plus the time a busy machine held
	// the process up meanwhile (measured: nothing on an idle one).
	held := stalls.since(before)
	if serverStop > 150*time.Millisecond+held {
		t.Errorf("playback stopped %v after the interruption was due, want ≤ 150 ms (+ %v held up)", serverStop, held)
	}
	// End to end, from the caller's side: two jitter buffers and the VAD's onset on top.
	if heardStop > 150*time.Millisecond+300*time.Millisecond+held {
		t.Errorf("the caller heard the agent %v after the interruption was due (%v held up)", heardStop, held)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.spoken.Interrupted || res.spoken.Text == "" || !strings.HasPrefix(longAnswer, res.spoken.Text) || len(res.spoken.Text) >= len(longAnswer)-5 {
		t.Errorf("spoken %+v: want an interrupted prefix", res.spoken)
	}
	if res.input.Kind != agent.InputSpeech || !strings.HasPrefix(res.input.Text, "Wait, stop") {
		t.Errorf("next input %+v, want the interruption", res.input)
	}
	// The agent stays quiet while the caller speaks.
	if n := r.caller.loudFrames(b.At.Add(200*time.Millisecond), speechAt.Add(3*time.Second)); n > 2 {
		t.Errorf("%d loud frames from the agent after it stopped", n)
	}
}

func TestBackchannelDoesNotInterrupt(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.BargeInDuringFirstMessage = true
	out := make(chan talkResult, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
	if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	r.says("Uh-huh.")
	r.caller.say(fixture(t, "uhhuh"))
	res := <-out
	wait()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.spoken.Interrupted || res.spoken.Text != longAnswer {
		t.Errorf("spoken %+v: want the whole answer", res.spoken)
	}
	if res.input.Kind != agent.InputTimeout {
		t.Errorf("next input %+v: a backchannel is no turn", res.input)
	}
	if len(r.srv.Transcriptions()) == 0 {
		t.Error("the backchannel was never transcribed")
	}
}

func TestBargeInDisabled(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.BargeInDuringFirstMessage = false // the first Speak is the first message
	out := make(chan talkResult, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
	if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	r.says("Wait, stop, I have a different question about my order.")
	r.caller.say(fixture(t, "wait"))
	res := <-out
	wait()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.spoken.Interrupted || res.spoken.Text != longAnswer {
		t.Errorf("spoken %+v: the first message is protected", res.spoken)
	}
	// What the caller said over it is still heard as the next turn.
	if res.input.Kind != agent.InputSpeech {
		t.Errorf("next input %+v", res.input)
	}
}

// TestWithoutSTT: an agent without a transcriber cannot understand speech, so speech does
// not cut it off (a keys-only menu is heard whole); a key does.
func TestWithoutSTT(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.cfg.STT = nil
	r.cfg.BargeInDuringFirstMessage = true
	out := make(chan talkResult, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
	if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	r.caller.say(fixture(t, "wait"))
	r.caller.say(fixture(t, "hello"))
	select {
	case res := <-out:
		t.Fatalf("speech ended the answer: %+v", res.spoken)
	default:
	}
	if err := r.caller.sess.SendDTMF('5', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res := <-out
	wait()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.spoken.Interrupted || !strings.HasPrefix(longAnswer, res.spoken.Text) || len(res.spoken.Text) == len(longAnswer) {
		t.Errorf("spoken %+v: want a prefix cut by the key", res.spoken)
	}
	if res.input.Kind != agent.InputDTMF || res.input.Digits != "5" {
		t.Errorf("input %+v: want the key", res.input)
	}
	if evs := r.line.eventsOf(EventBargeIn); len(evs) != 1 || !evs[0].data.(BargeIn).DTMF {
		t.Errorf("barge-in events %+v: want the key's only", evs)
	}
}
