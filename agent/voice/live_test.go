package voice

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// heardAt is a caller's input as the brain got it, and when.
type heardAt struct {
	in agent.Input
	at time.Time
}

// listenOnce greets, takes one input, answers it and hangs up.
func listenOnce(heard chan<- heardAt) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		if _, err := c.Say(ctx, "Hello."); err != nil {
			return err
		}
		in, err := c.Listen(ctx, agent.ListenOptions{})
		if err != nil {
			return err
		}
		heard <- heardAt{in, time.Now()}
		if _, err := c.Say(ctx, "Thanks."); err != nil {
			return err
		}
		c.Hangup("done")
		return nil
	}
}

// playLiveTurn runs one call whose caller says phrase after the greeting, with the live
// transcriber stt, and returns the brain's input and the call's result.
func playLiveTurn(t *testing.T, ctx context.Context, r *rig, stt speech.StreamingSTT, phrase string) (heardAt, Result) {
	t.Helper()
	r.cfg.STT, r.cfg.StreamingSTT = nil, stt
	heard := make(chan heardAt, 1)
	start := time.Now()
	wait := r.run(ctx, listenOnce(heard))
	r.listening()
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	pcm, err := speechtest.LoadWAV(phrase, media.Rate8k)
	if err != nil {
		t.Fatal(err)
	}
	r.caller.say(pcm)
	var h heardAt
	select {
	case h = <-heard:
	case <-ctx.Done():
		t.Fatal("no input")
	}
	return h, wait()
}

func answerMetrics(t *testing.T, res Result) TurnMetrics {
	t.Helper()
	for _, turn := range res.Transcript {
		if turn.Metrics != nil {
			return *turn.Metrics
		}
	}
	t.Fatalf("no metrics in %+v", res.Transcript)
	return TurnMetrics{}
}

// A complete sentence in the interim transcript ends the turn at the short silence: the
// brain has it before the provider's final.
func TestLiveSTTCompleteSentenceReachesTheBrainBeforeTheFinal(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	const said = "What are your opening hours?"
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return said }, FinalDelay: 1500 * time.Millisecond})
	h, res := playLiveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "opening_hours")
	if h.in.Kind != agent.InputSpeech || h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	if !dg.Wait(ctx, func(_ []speechtest.LiveConn, f []speechtest.LiveFinal) bool { return len(f) > 0 }) {
		t.Fatal("the stand-in sent no final")
	}
	final := dg.Finals()[0]
	if !h.at.Before(final.At) {
		t.Errorf("the brain had the turn %v after the final", h.at.Sub(final.At))
	}
	m := answerMetrics(t, res)
	t.Logf("metrics %+v; brain %v before the final", m, final.At.Sub(h.at))
	if m.EndOfSpeechMS > 1000 {
		t.Errorf("end of speech after %.0f ms, want the early cut (~300)", m.EndOfSpeechMS)
	}
	// Every frame of the call went to the provider, and was counted.
	c := dg.Conns()[0]
	if c.Query.Get("sample_rate") != "16000" || !c.CloseStream {
		t.Errorf("socket %+v", c)
	}
	if res.Report.STTSeconds < 1 || res.Report.STTSeconds > c.AudioSeconds+0.5 {
		t.Errorf("report counts %.2f s of STT, the provider heard %.2f s", res.Report.STTSeconds, c.AudioSeconds)
	}
}

// A socket that drops while the caller speaks is replaced, the turn's audio replayed, and
// the turn completes with its whole transcript.
func TestLiveSTTDroppedSocketMidTurn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	const said = "I would like to speak to someone."
	srv := speechtest.NewOpenAIRealtimeSTT(t, speechtest.LiveOptions{Say: func(int) string { return said }, DropAfter: 600 * time.Millisecond})
	h, _ := playLiveTurn(t, ctx, r, speech.NewOpenAIRealtimeSTT(srv.URL, "", "gpt-4o-mini-transcribe", nil), "speak_to_someone")
	if h.in.Kind != agent.InputSpeech || h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	conns := srv.Conns()
	if len(conns) != 2 || !conns[0].Dropped {
		t.Fatalf("sockets %+v", conns)
	}
}

// A transcript that trails off in "and" waits the longer silence, even when the provider
// says the utterance ended.
func TestLiveSTTTrailingConjunctionWaitsLonger(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	const said = "I want to cancel my appointment and"
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return said }, FinalDelay: 50 * time.Millisecond})
	h, res := playLiveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "cancel_appointment")
	if h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	m := answerMetrics(t, res)
	if want := float64((defaultEndpointing + digitsExtra).Milliseconds()); m.EndOfSpeechMS < want-60 {
		t.Errorf("end of speech after %.0f ms, want the longer wait (%.0f)", m.EndOfSpeechMS, want)
	}
}

// listenUntil takes inputs and answers each until it has n answers the caller heard (an
// answer dropped because the caller went on is not one); it sends every input it got.
func listenUntil(n int, heard chan<- heardAt) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		if _, err := c.Say(ctx, "Hello."); err != nil {
			return err
		}
		for answered := 0; answered < n; {
			in, err := c.Listen(ctx, agent.ListenOptions{})
			if err != nil {
				return err
			}
			heard <- heardAt{in, time.Now()}
			sp, err := c.Say(ctx, "You said "+in.Text)
			if err != nil {
				return err
			}
			if sp.Text != "" {
				answered++
			}
		}
		c.Hangup("done")
		return nil
	}
}

// With turn.early_start_ms the brain has the turn once the interim transcript stood that
// long, and its answer sounds once the turn is over (here: the provider's final).
func TestLiveSTTEarlyStartAnswerWaitsForTheTurn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	const said = "I want to cancel my appointment"
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return said }, FinalDelay: 300 * time.Millisecond})
	r.cfg.Turn.EndpointingMS, r.cfg.Turn.STTEndpointingMS, r.cfg.Turn.EarlyStartMS = 1500, 500, 200
	h, res := playLiveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "cancel_appointment")
	if h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	m := answerMetrics(t, res)
	t.Logf("metrics %+v", m)
	if m.EndOfSpeechMS > 700 {
		t.Errorf("the brain had the turn %.0f ms after the speech, want the early start (~250)", m.EndOfSpeechMS)
	}
	// The answer sounded after the provider's final (500 ms of silence and 300 ms more),
	// before the VAD's endpointing (1500 ms).
	if m.VoiceToVoiceMS < 700 || m.VoiceToVoiceMS > 1450 {
		t.Errorf("the answer sounded %.0f ms after the speech, want after the provider's final (~800)", m.VoiceToVoiceMS)
	}
	if n := len(r.line.eventsOf(EventSpeculationDropped)); n != 0 {
		t.Errorf("%d answers dropped", n)
	}
}

// With early start on, a complete sentence in the interim transcript starts the brain at
// the first pause the provider's end of utterance would need (100 ms), without standing
// early_start_ms (set here to its longest, 5 s), and the answer still waits for the turn to
// be over: the complete sentence's 300 ms.
func TestLiveSTTEarlyStartOnACompleteSentence(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	const said = "What are your opening hours?"
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return said }, FinalDelay: 1500 * time.Millisecond})
	r.cfg.Turn.EndpointingMS, r.cfg.Turn.STTEndpointingMS, r.cfg.Turn.EarlyStartMS = 1500, 1500, 5000
	h, res := playLiveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "opening_hours")
	if h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	m := answerMetrics(t, res)
	t.Logf("metrics %+v", m)
	// Without the early start the turn ends at the complete sentence's 300 ms pause.
	if m.EndOfSpeechMS >= 270 {
		t.Errorf("the brain had the turn %.0f ms after the speech, want it at the first pause (~100)", m.EndOfSpeechMS)
	}
	if m.VoiceToVoiceMS < 290 || m.VoiceToVoiceMS > 1450 {
		t.Errorf("the answer sounded %.0f ms after the speech, want once the sentence's pause is over (300 ms and the voice)", m.VoiceToVoiceMS)
	}
	if n := len(r.line.eventsOf(EventSpeculationDropped)); n != 0 {
		t.Errorf("%d answers dropped", n)
	}
}

// A caller who goes on after the pause the brain started on: the answer is dropped unheard,
// and the brain has the rest of the caller's words as the next input.
func TestLiveSTTEarlyStartDroppedWhenTheCallerGoesOn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	r := newRig(t, media.Rate8k)
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return "I want to cancel my appointment|thank you goodbye" }})
	r.cfg.STT, r.cfg.StreamingSTT = nil, speech.NewDeepgramSTT(dg.URL, "", "", nil)
	r.cfg.Turn.EndpointingMS, r.cfg.Turn.STTEndpointingMS, r.cfg.Turn.EarlyStartMS = 1500, 1500, 200
	heard := make(chan heardAt, 4)
	start := time.Now()
	wait := r.run(ctx, listenUntil(1, heard))
	r.listening()
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	first, err := speechtest.LoadWAV("cancel_appointment", media.Rate8k)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := speechtest.LoadWAV("thank_you_goodbye", media.Rate8k)
	if err != nil {
		t.Fatal(err)
	}
	r.caller.say(first)
	var h1, h2 heardAt
	select {
	case h1 = <-heard:
	case <-ctx.Done():
		t.Fatal("no first input")
	}
	r.caller.say(rest) // the caller goes on, before the turn would have ended
	select {
	case h2 = <-heard:
	case <-ctx.Done():
		t.Fatal("no second input")
	}
	res := wait()
	if h1.in.Text != "I want to cancel my appointment" || h2.in.Text != "thank you goodbye" {
		t.Errorf("inputs %q then %q", h1.in.Text, h2.in.Text)
	}
	if n := len(r.line.eventsOf(EventSpeculationDropped)); n != 1 {
		t.Errorf("%d answers dropped, want 1", n)
	}
	for _, turn := range res.Transcript {
		if turn.Role == "assistant" && turn.Text == "You said I want to cancel my appointment" {
			t.Errorf("the dropped answer was heard: %+v", turn)
		}
	}
	if res.Report.Interruptions != 0 {
		t.Errorf("%d interruptions counted", res.Report.Interruptions)
	}
}

// Barge-in over a live transcriber is judged by its transcript: words stop the agent and
// are the next input, a backchannel lets it go on.
func TestLiveSTTBargeIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, said, fixture string
		interrupts          bool
	}{
		{"words", "Wait, stop, I have a different question.", "wait", true},
		{"backchannel", "Uh-huh.", "uhhuh", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, media.Rate8k)
			dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return tc.said }})
			r.cfg.STT, r.cfg.StreamingSTT = nil, speech.NewDeepgramSTT(dg.URL, "", "", nil)
			r.cfg.BargeInDuringFirstMessage = true
			out := make(chan talkResult, 1)
			start := time.Now()
			wait := r.run(testCtx(t, 60*time.Second), talkBrain(out))
			if _, ok := r.caller.waitSpeech(start, 1500*time.Millisecond, 20*time.Second); !ok {
				t.Fatal("the answer was not heard")
			}
			r.caller.say(fixture(t, tc.fixture))
			res := <-out
			wait()
			if res.err != nil {
				t.Fatal(res.err)
			}
			if tc.interrupts {
				if !res.spoken.Interrupted || res.input.Kind != agent.InputSpeech || res.input.Text != tc.said {
					t.Errorf("spoken %+v, next input %+v: want an interruption that is the next input", res.spoken, res.input)
				}
				return
			}
			if res.spoken.Interrupted || res.spoken.Text != longAnswer || res.input.Kind != agent.InputTimeout {
				t.Errorf("spoken %+v, next input %+v: want the whole answer, and no turn", res.spoken, res.input)
			}
		})
	}
}

// A live transcriber that fails for good (here: a message that is not JSON) is an stt
// error of the call, and a caller who speaks afterwards is asked to say it again.
func TestLiveSTTFailedTranscriberAsksTheCallerToRepeat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t, media.Rate8k)
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Raw: [][]byte{[]byte(`{"type":"Results",`)}})
	r.cfg.STT, r.cfg.StreamingSTT = nil, speech.NewDeepgramSTT(dg.URL, "", "", nil)
	heard := make(chan heardAt, 1)
	start := time.Now()
	wait := r.run(ctx, listenOnce(heard))
	r.listening()
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	spoke := time.Now()
	r.caller.say(fixture(t, "question"))
	if _, ok := r.caller.waitSpeech(spoke, 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the caller was not asked to repeat")
	}
	if _, ok := r.caller.waitQuiet(spoke, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the request to repeat did not end")
	}
	cancel()
	res := wait()
	var stt []ErrorEvent
	for _, e := range r.line.eventsOf(EventError) {
		if ev := e.data.(ErrorEvent); ev.Stage == "stt" {
			stt = append(stt, ev)
		}
	}
	if len(stt) < 2 || !strings.Contains(stt[0].Error, "not JSON") || stt[len(stt)-1].Fallback == "" {
		t.Errorf("stt errors %+v: want the failure, then the caller asked to repeat", stt)
	}
	asked := false
	for _, turn := range res.Transcript {
		asked = asked || strings.HasPrefix(turn.Text, "Sorry, I didn't")
	}
	if !asked {
		t.Errorf("transcript %+v lacks %q", res.Transcript, notUnderstood)
	}
	select {
	case h := <-heard:
		t.Errorf("the brain got %+v from a transcriber that failed", h.in)
	default:
	}
}
