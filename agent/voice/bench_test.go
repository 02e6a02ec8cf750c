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

// BenchmarkTurnLatency measures what the server adds to a turn: from the caller's last
// voiced frame to the agent's first audio frame written, beyond the endpointing silence
// the turn waited for, with providers that answer at once (the stand-in's STT, and a
// stand-in voice sending a prepared 100 ms reply in one piece). One op is one turn over
// loopback RTP in real time; run it with -benchtime=100x.
//
// "endpoint" turns end at the 600 ms silence (the transcript is no finished sentence);
// "early" turns end at the 300 ms speculative transcript of a finished sentence.
func BenchmarkTurnLatency(b *testing.B) {
	for _, bc := range []struct {
		name, text string
		silence    time.Duration
	}{
		{"endpoint", "yes I would", defaultEndpointing},
		{"early", "Yes.", speculativeSilence},
	} {
		b.Run(bc.name, func(b *testing.B) { benchTurns(b, bc.text, bc.silence) })
	}
}

func benchTurns(b *testing.B, text string, silence time.Duration) {
	r := newRig(b, media.Rate8k)
	r.says(text)
	reply := make([]int16, speech.OpenAIPCMRate/10)
	media.NewTone(300, speech.OpenAIPCMRate, 8000).Fill(reply)
	utter := fixture(b, "yes")
	// The fixture without its trailing silence.
	for len(utter) > 0 && utter[len(utter)-1] > -200 && utter[len(utter)-1] < 200 {
		utter = utter[:len(utter)-1]
	}
	utter = append(utter, make([]int16, 400)...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	brain := brainFunc(func(ctx context.Context, c agent.Conversation) error {
		for {
			if _, err := c.Listen(ctx, agent.ListenOptions{Timeout: time.Minute}); err != nil {
				return err
			}
			r.srv.EnqueueSpeech(speechtest.Speech{Audio: reply, ChunkSamples: len(reply), ChunkDelay: -1})
			if _, err := c.Say(ctx, "OK."); err != nil {
				return err
			}
		}
	})
	wait := r.run(ctx, brain)
	r.listening()
	b.ResetTimer()
	for range b.N {
		since := time.Now()
		r.caller.say(utter)
		if _, ok := r.caller.waitSpeech(since, 60*time.Millisecond, 10*time.Second); !ok {
			b.Fatal("no reply")
		}
		if _, ok := r.caller.waitQuiet(since, 200*time.Millisecond, 10*time.Second); !ok {
			b.Fatal("the reply did not end")
		}
	}
	b.StopTimer()
	cancel()
	res := wait()
	var added, detect []float64
	for _, t := range res.Transcript {
		if m := t.Metrics; m != nil {
			added = append(added, m.VoiceToVoiceMS-ms64(silence))
			detect = append(detect, m.EndOfSpeechMS-ms64(silence))
		}
	}
	if len(added) < b.N {
		b.Fatalf("%d answers with metrics for %d turns", len(added), b.N)
	}
	b.ReportMetric(*percentile(added, 50), "added-p50-ms")
	b.ReportMetric(*percentile(added, 99), "added-p99-ms")
	b.ReportMetric(*percentile(detect, 50), "endpoint-p50-ms")
}
