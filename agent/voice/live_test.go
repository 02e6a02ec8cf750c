package voice

import (
	"context"
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

// liveTurn runs one call whose caller says phrase after the greeting, with the live
// transcriber stt, and returns the brain's input and the call's result.
func liveTurn(t *testing.T, ctx context.Context, r *rig, stt speech.StreamingSTT, phrase string) (heardAt, Result) {
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
	h, res := liveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "opening_hours")
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
	h, _ := liveTurn(t, ctx, r, speech.NewOpenAIRealtimeSTT(srv.URL, "", "gpt-4o-mini-transcribe", nil), "speak_to_someone")
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
	h, res := liveTurn(t, ctx, r, speech.NewDeepgramSTT(dg.URL, "", "", nil), "cancel_appointment")
	if h.in.Text != said {
		t.Fatalf("input %+v", h.in)
	}
	m := answerMetrics(t, res)
	if want := float64((defaultEndpointing + digitsExtra).Milliseconds()); m.EndOfSpeechMS < want-60 {
		t.Errorf("end of speech after %.0f ms, want the longer wait (%.0f)", m.EndOfSpeechMS, want)
	}
}
