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

// streamingVoice is a streaming voice and its stand-in's record.
type streamingVoice struct {
	name string
	open func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, interface {
		Sessions() []speechtest.StreamSession
		Cancels() <-chan speechtest.StreamSession
	})
}

var streamingVoices = []streamingVoice{
	{"elevenlabs", func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, interface {
		Sessions() []speechtest.StreamSession
		Cancels() <-chan speechtest.StreamSession
	}) {
		srv := speechtest.NewElevenLabs(t, opts)
		return speech.NewElevenLabs(srv.URL, "", "", nil), srv
	}},
	{"cartesia", func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, interface {
		Sessions() []speechtest.StreamSession
		Cancels() <-chan speechtest.StreamSession
	}) {
		srv := speechtest.NewCartesia(t, opts)
		return speech.NewCartesia(srv.URL, "", "", nil), srv
	}},
}

// slowBrain writes longAnswer a word every perWord, as a model streams it, and reports
// when it wrote the last word; then it listens once and hangs up.
func slowBrain(perWord time.Duration, wrote chan<- time.Time, out chan<- talkResult) brainFunc {
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
				select {
				case <-time.After(perWord): // the model's pace, not a wait of the test
				case <-ctx.Done():
					return
				}
			}
			wrote <- time.Now()
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

// TestStreamingVoiceSpeaksBeforeTheAnswerIsWritten: with a streaming voice, the caller
// hears the answer while the model is still writing it, at the line's own rate (no
// resampling), and a key pressed over it cancels the synthesis upstream within 100 ms.
func TestStreamingVoiceSpeaksBeforeTheAnswerIsWritten(t *testing.T) {
	t.Parallel()
	for _, v := range streamingVoices {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, media.Rate8k)
			r.cfg.BargeInDuringFirstMessage = true
			tts, rec := v.open(t, speechtest.StreamOptions{Speedup: 1.5})
			r.cfg.TTS = tts
			wrote := make(chan time.Time, 1)
			out := make(chan talkResult, 1)
			start := time.Now()
			// About 70 words at 40 ms: the answer takes nearly 3 s to write.
			wait := r.run(testCtx(t, 60*time.Second), slowBrain(40*time.Millisecond, wrote, out))
			heard, ok := r.caller.waitSpeech(start, 300*time.Millisecond, 20*time.Second)
			if !ok {
				t.Fatal("the answer was not heard")
			}
			select {
			case w := <-wrote:
				t.Fatalf("the answer was written %v before it was heard", heard.Sub(w))
			default:
			}
			if ss := rec.Sessions(); len(ss) != 1 || ss[0].Rate != 8000 {
				t.Fatalf("sessions %+v; want one at the line's 8 kHz", ss)
			}
			if err := r.caller.sess.SendDTMF('5', 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			var cancelled speechtest.StreamSession
			select {
			case cancelled = <-rec.Cancels():
			case <-time.After(20 * time.Second):
				t.Fatal("the barge-in did not cancel the synthesis upstream")
			}
			res := <-out
			wait()
			if !res.spoken.Interrupted {
				t.Errorf("spoken %+v, want interrupted", res.spoken)
			}
			ev := r.line.eventsOf(EventBargeIn)
			if len(ev) != 1 {
				t.Fatalf("barge-in events %v", ev)
			}
			at := ev[0].data.(BargeIn).At
			if d := cancelled.Cancelled.Sub(at); d > 100*time.Millisecond || d < -5*time.Millisecond {
				t.Errorf("the provider saw the cancel %v after playback stopped; want within 100 ms", d)
			}
			if res.spoken.Text == "" || !strings.HasPrefix(longAnswer, strings.Fields(res.spoken.Text)[0]) {
				t.Errorf("spoken text %q, want the start of the answer", res.spoken.Text)
			}
		})
	}
}

// TestStreamingVoiceFallsBack: a streaming provider that answers with frames that are not
// its protocol, or with an error, is an agent.error event and the answer is spoken by the
// fallback voice (espeak-ng), whole.
func TestStreamingVoiceFallsBack(t *testing.T) {
	t.Parallel()
	for _, v := range streamingVoices {
		for i, opts := range []speechtest.StreamOptions{{Hostile: "\x00garbage{"}, {HostileBinary: true},
			{Hostile: `{"audio":"not base64!","type":"chunk","data":"not base64!"}`}, {ErrorMessage: "voice_not_found"}} {
			t.Run(v.name+"/"+string(rune('a'+i)), func(t *testing.T) {
				t.Parallel()
				r := newRig(t, media.Rate8k)
				tts, _ := v.open(t, opts)
				r.cfg.TTS = tts
				fallback, err := speech.NewEspeak(speech.EspeakOptions{})
				if err != nil {
					t.Fatal(err)
				}
				r.cfg.FallbackTTS = fallback
				out := make(chan talkResult, 1)
				wait := r.run(testCtx(t, 60*time.Second), brainFunc(func(ctx context.Context, c agent.Conversation) error {
					var res talkResult
					res.spoken, res.err = c.Say(ctx, "Hello. This is the fallback voice speaking.")
					out <- res
					c.Hangup("done")
					return nil
				}))
				res := <-out
				wait()
				if res.err != nil || res.spoken.Text != "Hello. This is the fallback voice speaking." {
					t.Errorf("spoken %+v, %v; want the whole text by the fallback voice", res.spoken, res.err)
				}
				evs := r.line.eventsOf(EventError)
				if len(evs) == 0 || evs[0].data.(ErrorEvent).Fallback == "" || evs[0].data.(ErrorEvent).Stage != "tts" {
					t.Errorf("error events %+v", evs)
				}
				if n := len(r.srv.Speeches()); n != 0 {
					t.Errorf("%d speeches asked of the OpenAI voice; want espeak-ng's alone", n)
				}
			})
		}
	}
}
