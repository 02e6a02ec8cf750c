package voice

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// sayBrain says text once and reports what was heard of it.
func sayBrain(text string, out chan<- talkResult) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		var res talkResult
		res.spoken, res.err = c.Say(ctx, text)
		out <- res
		c.Hangup("done")
		return nil
	}
}

// longestGap is the longest run of quiet frames between the first and last loud frame
// the caller heard after since.
func longestGap(frames []heardFrame) time.Duration {
	var first, last int = -1, -1
	for i, f := range frames {
		if f.level > speechDB {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var gap, run time.Duration
	for i := first; i >= 0 && i <= last; i++ {
		if frames[i].level > speechDB {
			run = 0
			continue
		}
		run += media.FrameDuration
		gap = max(gap, run)
	}
	return gap
}

// timedTTS records when each synthesis began, gave its first audio and ended: the time
// the caller waits on the voices themselves, which a busy machine stretches.
type timedTTS struct {
	speech.TTS
	mu    sync.Mutex
	calls []*synthesis
}

type synthesis struct {
	start, first, end time.Time
}

func (s *timedTTS) Synthesize(ctx context.Context, text, voice string, speed float64) (speech.Audio, error) {
	syn := &synthesis{start: time.Now()}
	s.mu.Lock()
	s.calls = append(s.calls, syn)
	s.mu.Unlock()
	a, err := s.TTS.Synthesize(ctx, text, voice, speed)
	if err != nil {
		s.mu.Lock()
		syn.end = time.Now()
		s.mu.Unlock()
		return nil, err
	}
	return &timedAudio{Audio: a, tts: s, syn: syn}, nil
}

func (s *timedTTS) synthesis(i int) (synthesis, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.calls) {
		return synthesis{}, false
	}
	return *s.calls[i], true
}

type timedAudio struct {
	speech.Audio
	tts *timedTTS
	syn *synthesis
}

func (a *timedAudio) Read(p []int16) (int, error) {
	n, err := a.Audio.Read(p)
	a.tts.mu.Lock()
	if n > 0 && a.syn.first.IsZero() {
		a.syn.first = time.Now()
	}
	if err != nil && a.syn.end.IsZero() {
		a.syn.end = time.Now()
	}
	a.tts.mu.Unlock()
	return n, err
}

func TestTTSFailsMidStreamFallsBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	fallback, err := speech.NewEspeak(speech.EspeakOptions{})
	if err != nil {
		t.Fatal(err)
	}
	voice := &timedTTS{TTS: r.cfg.TTS}
	timedFallback := &timedTTS{TTS: fallback}
	r.cfg.TTS, r.cfg.FallbackTTS = voice, timedFallback
	// The voice breaks after 0.4 s of the first sentence, and again on the retry.
	cut := speechtest.Speech{CutAfter: speech.OpenAIPCMRate * 4 / 10}
	r.srv.EnqueueSpeech(cut, cut)
	out := make(chan talkResult, 1)
	stalls := newStallMeter(t)
	start := time.Now()
	text := "Thank you for calling the restaurant. We are open every day until ten at night."
	wait := r.run(testCtx(t, 60*time.Second), sayBrain(text, out))
	res := <-out
	wait()
	if res.err != nil {
		t.Fatalf("Say: %v", res.err)
	}
	if res.spoken.Text != text || res.spoken.Interrupted {
		t.Errorf("spoken %+v", res.spoken)
	}
	evs := r.line.eventsOf(EventError)
	if len(evs) != 1 {
		t.Fatalf("%d agent.error events, want 1", len(evs))
	}
	if e := evs[0].data.(ErrorEvent); e.Stage != "tts" || e.Fallback == "" {
		t.Errorf("error event %+v", e)
	}
	if n := len(r.srv.Speeches()); n < 3 {
		t.Errorf("%d speech requests: want the voice, its retry, and the next sentence", n)
	}
	// No dead air: the caller hears speech throughout, with only the pauses of speech and
	// the time the voices themselves take to answer (the retry of the broken voice and the
	// fallback voice's first audio) and the time the process was held up. Those are
	// measured, since a busy machine stretches them; any wait of the conversation's own
	// shows beyond them.
	retry, ok1 := voice.synthesis(1)
	fb, ok2 := timedFallback.synthesis(0)
	if !ok1 || !ok2 || retry.end.IsZero() || fb.first.IsZero() {
		t.Fatalf("want a retry and the fallback's audio: retry %+v, fallback %+v", retry, fb)
	}
	voices := retry.end.Sub(retry.start) + fb.first.Sub(fb.start)
	frames := r.caller.heardSince(start)
	gap := longestGap(frames)
	held := stalls.since(start)
	t.Logf("longest gap %v; the voices took %v (retry %v, fallback's first audio %v); held up %v", gap, voices,
		retry.end.Sub(retry.start), fb.first.Sub(fb.start), held)
	if gap > 500*time.Millisecond+voices+held {
		t.Errorf("%v of silence inside the answer, where the voices took %v and the process was held up %v", gap, voices, held)
	}
	if loud := r.caller.loudFrames(start, time.Now()); loud < 100 {
		t.Errorf("%d loud frames heard", loud)
	}
}

func TestTTSFailsWithoutFallback(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	fail := speechtest.Speech{Status: 400, Message: "voice not available"}
	r.srv.EnqueueSpeech(fail, fail)
	out := make(chan talkResult, 1)
	wait := r.run(testCtx(t, 60*time.Second), sayBrain("Hello there, welcome.", out))
	res := <-out
	wait()
	if !errors.Is(res.err, ErrTTS) {
		t.Errorf("Say returned %v, want ErrTTS", res.err)
	}
	evs := r.line.eventsOf(EventError)
	if len(evs) != 1 || evs[0].data.(ErrorEvent).Stage != "tts" {
		t.Errorf("error events %+v", evs)
	}
}

func TestSTTFailsAsksAgain(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.says("I would like to book a table")
	// Two failures: the transcription and its retry.
	r.srv.EnqueueTranscript(speechtest.Transcript{Status: 400, Message: "bad audio"}, speechtest.Transcript{Status: 400, Message: "bad audio"})
	inputs := make(chan agent.Input, 1)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		in, err := c.Listen(ctx, agent.ListenOptions{})
		if err != nil {
			return err
		}
		inputs <- in
		c.Hangup("done")
		return nil
	})
	wait := r.run(testCtx(t, 60*time.Second), brain)
	r.listening()
	start := time.Now()
	r.caller.say(fixture(t, "hello"))
	// The apology, then the caller says it again.
	if _, ok := r.caller.waitSpeech(start, 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("no apology heard")
	}
	if _, ok := r.caller.waitQuiet(start, 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the apology did not end")
	}
	select {
	case in := <-inputs:
		t.Fatalf("input %+v before the caller repeated", in)
	default:
	}
	r.caller.say(fixture(t, "hello"))
	var in agent.Input
	select {
	case in = <-inputs:
	case <-time.After(30 * time.Second):
		t.Fatal("no input")
	}
	res := wait()
	if in.Text != "I would like to book a table" {
		t.Errorf("input %+v", in)
	}
	evs := r.line.eventsOf(EventError)
	if len(evs) != 1 || evs[0].data.(ErrorEvent).Stage != "stt" {
		t.Errorf("error events %+v", evs)
	}
	var said []string
	for _, turn := range res.Transcript {
		if turn.Role == "assistant" {
			said = append(said, turn.Text)
		}
	}
	if len(said) != 1 || said[0] != notUnderstood {
		t.Errorf("agent said %q", said)
	}
}

func TestConversationAt48kHz(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate48k)
	r.says("I would like to book a table.")
	heard := make(chan agent.Input, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), echoBrain(heard))
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	r.caller.say(fixture(t, "hello"))
	select {
	case in := <-heard:
		if !strings.HasPrefix(in.Text, "I would like") {
			t.Errorf("input %+v", in)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no input")
	}
	wait()
	trs := r.srv.Transcriptions()
	if len(trs) == 0 || trs[0].Rate != 16000 || speechShare(trs[0].Samples, trs[0].Rate) < 0.4 {
		t.Errorf("STT got %d requests; the first at %d Hz", len(trs), trs[0].Rate)
	}
}
