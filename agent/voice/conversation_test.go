package voice

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
)

// echoBrain greets, listens once, says what it heard, and hangs up.
func echoBrain(heard chan<- agent.Input) brainFunc {
	return func(ctx context.Context, c agent.Conversation) error {
		if _, err := c.Say(ctx, "Hello, this is Switchboard."); err != nil {
			return err
		}
		in, err := c.Listen(ctx, agent.ListenOptions{})
		if err != nil {
			return err
		}
		heard <- in
		if _, err := c.Say(ctx, "You said: "+in.Text); err != nil {
			return err
		}
		c.Hangup("done")
		return nil
	}
}

func TestConversationEcho(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	prom := metrics.New()
	r.cfg.Turns = prom.Turns()
	r.says("I would like to book a table for two")
	heard := make(chan agent.Input, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), echoBrain(heard))

	// The greeting arrives, then the caller speaks once it is over.
	if _, ok := r.caller.waitSpeech(start, 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("no greeting heard")
	}
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	utter := fixture(t, "hello")
	spoke := time.Now()
	r.caller.say(utter)
	var in agent.Input
	select {
	case in = <-heard:
	case <-time.After(30 * time.Second):
		t.Fatal("no input")
	}
	if in.Kind != agent.InputSpeech || in.Text != "I would like to book a table for two" {
		t.Fatalf("input %+v", in)
	}
	if _, ok := r.caller.waitSpeech(spoke.Add(time.Duration(len(utter))*time.Second/8000), 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the answer was not heard")
	}
	res := wait()
	if res.Reason != "done" || r.line.hungUp() != "done" {
		t.Errorf("reason %q, line hung up with %q", res.Reason, r.line.hungUp())
	}

	// STT got the caller's utterance as audio: about its length, speech throughout.
	trs := r.srv.Transcriptions()
	if len(trs) == 0 {
		t.Fatal("no transcription request")
	}
	last := trs[len(trs)-1]
	want := float64(len(utter)) / 8000
	if got := last.Seconds(); got < want-0.6 || got > want+1.2 {
		t.Errorf("STT heard %.2f s, the caller said %.2f s", got, want)
	}
	if share := speechShare(last.Samples, last.Rate); share < 0.4 {
		t.Errorf("STT audio is speech for %.0f%% of frames", share*100)
	}
	// Endpointing: the turn ended about 600 ms after the caller's last voiced frame.
	var answer *Turn
	for i := range res.Transcript {
		if res.Transcript[i].Role == "assistant" && res.Transcript[i].Metrics != nil {
			answer = &res.Transcript[i]
		}
	}
	if answer == nil {
		t.Fatalf("no answer with metrics in %+v", res.Transcript)
	}
	m := answer.Metrics
	t.Logf("metrics %+v", *m)
	if m.EndOfSpeechMS < 560 || m.EndOfSpeechMS > 1000 {
		t.Errorf("end of speech after %.0f ms, want about 600", m.EndOfSpeechMS)
	}
	if m.VoiceToVoiceMS < m.EndOfSpeechMS || m.TTSFirstAudioMS <= 0 {
		t.Errorf("metrics out of order: %+v", *m)
	}
	if !strings.HasPrefix(answer.Text, "You said: I would like") {
		t.Errorf("answer %q", answer.Text)
	}
	if len(r.line.eventsOf(EventTranscript)) != 1 || len(r.line.eventsOf(EventAgentSpeech)) != 2 ||
		len(r.line.eventsOf(EventMetrics)) != 1 || len(r.line.eventsOf(EventReport)) != 1 {
		t.Errorf("events: %d transcript, %d agent speech, %d metrics, %d report",
			len(r.line.eventsOf(EventTranscript)), len(r.line.eventsOf(EventAgentSpeech)),
			len(r.line.eventsOf(EventMetrics)), len(r.line.eventsOf(EventReport)))
	}
	if res.Report.Turns != 1 || res.Report.TTSCharacters == 0 || res.Report.STTSeconds < want-0.6 || res.Report.LatencyP50MS == nil || *res.Report.LatencyP50MS != m.VoiceToVoiceMS {
		t.Errorf("report %+v", res.Report)
	}
	// The answer is counted for /metrics: its latency, and each stage that ran.
	counts := map[string]uint64{}
	families, err := prom.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			name := f.GetName()
			for _, l := range s.GetLabel() {
				name += "/" + l.GetValue()
			}
			if h := s.GetHistogram(); h != nil {
				counts[name] = h.GetSampleCount()
			}
		}
	}
	for _, series := range []string{"switchboard_turn_latency_seconds", "switchboard_turn_stage_seconds/end_of_speech",
		"switchboard_turn_stage_seconds/stt", "switchboard_turn_stage_seconds/tts_first_audio"} {
		if counts[series] != 1 {
			t.Errorf("%s counted %d answers, want 1 (%v)", series, counts[series], counts)
		}
	}
}

func TestConversationEarlyEndOfSentence(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.says("What time do you open tomorrow?")
	heard := make(chan agent.Input, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), echoBrain(heard))
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	r.caller.say(fixture(t, "question"))
	select {
	case <-heard:
	case <-time.After(30 * time.Second):
		t.Fatal("no input")
	}
	res := wait()
	for _, turn := range res.Transcript {
		if turn.Metrics != nil {
			t.Logf("metrics %+v", *turn.Metrics)
			// A finished sentence ends the turn at the short silence, not at 600 ms.
			if turn.Metrics.EndOfSpeechMS > 550 {
				t.Errorf("end of speech after %.0f ms, want the early cut (~300)", turn.Metrics.EndOfSpeechMS)
			}
			return
		}
	}
	t.Fatalf("no metrics in %+v", res.Transcript)
}

func TestConversationCallerHangsUp(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	listening := make(chan struct{})
	var listenErr error
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		close(listening)
		_, listenErr = c.Listen(ctx, agent.ListenOptions{})
		return listenErr
	})
	wait := r.run(testCtx(t, 30*time.Second), brain)
	<-listening
	r.listening()
	r.caller.sess.Hangup("bye")
	// RTP carries no BYE: the agent's side hears it from signalling, as sip does.
	r.line.sess.Deliver(media.Event{Kind: media.EventHangup, Reason: "caller-hangup"})
	res := wait()
	if !errors.Is(listenErr, agent.ErrHangup) {
		t.Errorf("Listen returned %v, want ErrHangup", listenErr)
	}
	if res.Reason != "caller-hangup" {
		t.Errorf("reason %q", res.Reason)
	}
}

func TestConversationContextEnds(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		_, err := c.Listen(ctx, agent.ListenOptions{})
		return err
	})
	wait := r.run(ctx, brain)
	r.listening()
	cancel()
	res := wait()
	if res.Reason != string(call.ReasonShutdown) || r.line.hungUp() != string(call.ReasonShutdown) {
		t.Errorf("reason %q, line %q", res.Reason, r.line.hungUp())
	}
}

func TestSpeakPlaysBeforeTheTextEnds(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	gate := make(chan struct{})
	out := make(chan talkResult, 1)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		text := make(chan string)
		go func() {
			defer close(text)
			for _, d := range []string{"Let me check ", "that for you. ", "Your table "} {
				text <- d
			}
			// The rest comes only once the caller heard the first sentence.
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
			text <- "is booked for eight."
		}()
		var res talkResult
		res.spoken, res.err = c.Speak(ctx, text)
		out <- res
		c.Hangup("done")
		return nil
	})
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), brain)
	if _, ok := r.caller.waitSpeech(start, 300*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the first sentence was not played while the answer was still being written")
	}
	close(gate)
	res := <-out
	wait()
	if res.err != nil || res.spoken.Text != "Let me check that for you. Your table is booked for eight." {
		t.Errorf("spoken %+v, %v", res.spoken, res.err)
	}
	if reqs := r.srv.Speeches(); len(reqs) != 2 || reqs[0].Input != "Let me check that for you." {
		t.Errorf("speech requests %+v: want one per sentence", reqs)
	}
}

func TestToolsTransferAndUsage(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		c.ToolCall(agent.ToolRecord{Name: "lookup_order", Arguments: `{"id":"42"}`, Result: `{"status":"shipped"}`, Duration: 30 * time.Millisecond})
		c.Usage(llmUsage(120, 30))
		c.Usage(llmUsage(80, 20))
		c.Event("agent.custom", map[string]string{"k": "v"})
		if err := c.SendDTMF("12#"); err != nil {
			return err
		}
		return c.Transfer(ctx, "sip:desk@example.com")
	})
	res := r.run(testCtx(t, 30*time.Second), brain)()
	if res.Reason != "transferred" {
		t.Errorf("reason %q", res.Reason)
	}
	if res.Report.Usage.InputTokens != 200 || res.Report.Usage.OutputTokens != 50 {
		t.Errorf("usage %+v", res.Report.Usage)
	}
	if len(res.Transcript) != 1 || res.Transcript[0].Role != "tool" || res.Transcript[0].Tool.Name != "lookup_order" {
		t.Errorf("transcript %+v", res.Transcript)
	}
	r.line.mu.Lock()
	defer r.line.mu.Unlock()
	if r.line.dtmf != "12#" || len(r.line.transfers) != 1 || r.line.transfers[0] != "sip:desk@example.com" {
		t.Errorf("line: dtmf %q, transfers %q", r.line.dtmf, r.line.transfers)
	}
	types := map[string]int{}
	for _, e := range r.line.events {
		types[e.typ]++
	}
	if types[EventToolCall] != 1 || types["agent.custom"] != 1 || types[EventReport] != 1 {
		t.Errorf("events %v", types)
	}
}

func llmUsage(in, out int) llm.Usage { return llm.Usage{InputTokens: in, OutputTokens: out} }

func TestEndpointingWaitsLongerForDigits(t *testing.T) {
	t.Parallel()
	r := newRig(t, media.Rate8k)
	r.says("My number is four one five, two three nine")
	heard := make(chan agent.Input, 1)
	start := time.Now()
	wait := r.run(testCtx(t, 60*time.Second), echoBrain(heard))
	if _, ok := r.caller.waitQuiet(start, 400*time.Millisecond, 20*time.Second); !ok {
		t.Fatal("the greeting did not end")
	}
	r.caller.say(fixture(t, "digits"))
	select {
	case <-heard:
	case <-time.After(30 * time.Second):
		t.Fatal("no input")
	}
	res := wait()
	for _, turn := range res.Transcript {
		if m := turn.Metrics; m != nil {
			t.Logf("metrics %+v", *m)
			want := ms64(defaultEndpointing + digitsExtra)
			if m.EndOfSpeechMS < want-40 || m.EndOfSpeechMS > want+400 {
				t.Errorf("end of speech after %.0f ms, want about %.0f while digits are read out", m.EndOfSpeechMS, want)
			}
			return
		}
	}
	t.Fatalf("no metrics in %+v", res.Transcript)
}
