package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// TestStreamingVoiceCall calls, over real SIP and RTP, an agent that speaks through the
// ElevenLabs protocol and one that speaks through Cartesia's, both stand-ins taking the
// time the real ones take (first audio 150 ms): the caller hears the answer while the model
// is still writing it, the provider was asked for audio at the line's 8 kHz, and a key
// pressed over the answer cancels the synthesis upstream at once (the voice package's test
// pins the 100 ms from the barge-in itself; here the key's own 200 ms and the loopback are
// inside a wider bound).
func TestStreamingVoiceCall(t *testing.T) {
	t.Parallel()
	model := llmtest.NewOpenAI(t)
	ears := speechtest.NewOpenAI(t)
	el := speechtest.NewElevenLabs(t, speechtest.StreamOptions{Key: "xi-test"})
	ca := speechtest.NewCartesia(t, speechtest.StreamOptions{Key: "sk_car_test"})

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: ears\n    kind: openai\n    base_url: "+ears.URL+"\n    api_key: sk-ears\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"ELEVENLABS_BASE_URL=" + el.URL, "ELEVENLABS_API_KEY=xi-test",
		"CARTESIA_BASE_URL=" + ca.URL, "CARTESIA_API_KEY=sk_car_test"}
	key := createKey(t, env, "--name", "streaming")
	n := startServe(t, env)

	ears.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: "Where is my order?"}
	})
	// The model writes its answer a word every 40 ms, as a model streams: about 2.5 s.
	const perWord = 40 * time.Millisecond
	answer := strings.Repeat("Your order left our warehouse this morning and should reach you by tomorrow evening. ", 4)
	words := len(strings.Fields(answer))
	var mu sync.Mutex
	var asked time.Time
	model.Respond(func(llmtest.Request) llmtest.Reply {
		mu.Lock()
		asked = time.Now()
		mu.Unlock()
		return llmtest.Reply{Text: answer, Delay: perWord}
	})
	clip := readWAV8k(t, "../../testdata/speech/where_is_my_order.wav")

	voices := []struct {
		provider, voice, number string
		stand                   interface {
			Sessions() []speechtest.StreamSession
			Cancels() <-chan speechtest.StreamSession
		}
	}{
		{"elevenlabs", "21m00Tcm4TlvDq8ikWAM", "+15550201", el},
		{"cartesia", "694f9389-aac1-45b6-b726-9d9369183238", "+15550202", ca},
	}
	for _, v := range voices {
		status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"`+v.provider+`","model":"openai/gpt-test",`+
			`"instructions":"You answer questions about orders.","first_message":"Hello.",`+
			`"transcriber":{"provider":"ears","model":"whisper-1"},"voice":{"provider":"`+v.provider+`","voice":"`+v.voice+`","speed":1}}`)
		if status != http.StatusCreated {
			t.Fatalf("POST agent: %d %v", status, ag)
		}
		if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"`+v.number+`","name":"x","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
			t.Fatalf("POST phone number: %d %v", status, pn)
		}

		p := dialPhone(t, "sip:"+v.number+"@"+n.sipAddr())
		p.waitSpeech(10, 15*time.Second, v.provider+" greeting")
		p.waitQuiet(400*time.Millisecond, 15*time.Second)
		p.speak(clip)
		p.waitSpeech(10, 20*time.Second, v.provider+" answer")
		heard := time.Now()
		mu.Lock()
		written := asked.Add(time.Duration(words) * perWord)
		mu.Unlock()
		t.Logf("%s: the answer heard %v before the model finished writing it", v.provider, written.Sub(heard))
		if !heard.Before(written) {
			t.Errorf("%s: the answer was heard %v after the model finished writing it; want while it was written", v.provider, heard.Sub(written))
		}

		p.press("5")
		pressed := time.Now()
		select {
		case c := <-v.stand.Cancels():
			t.Logf("%s: cancelled upstream %v after the key was queued", v.provider, c.Cancelled.Sub(pressed))
			// The phone's key is a 200 ms RFC 4733 event, told when it ends; the rest is
			// the barge-in (100 ms at most, pinned by the voice package) and a wide margin
			// for a busy machine.
			if d := c.Cancelled.Sub(pressed); d > 200*time.Millisecond+300*time.Millisecond {
				t.Errorf("%s: the synthesis was cancelled upstream %v after the key was pressed", v.provider, d)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: the barge-in did not cancel the synthesis upstream", v.provider)
		}
		p.hangup()
		p.close()

		ss := v.stand.Sessions()
		if len(ss) < 2 {
			t.Fatalf("%s: %d syntheses, want the greeting's and the answer's", v.provider, len(ss))
		}
		for _, s := range ss {
			if s.Rate != 8000 {
				t.Errorf("%s: audio asked at %d Hz, want the line's 8000", v.provider, s.Rate)
			}
		}
		if last := ss[len(ss)-1]; !strings.HasPrefix(answer, strings.Join(last.Texts, "")) || len(last.Texts) < 3 {
			t.Errorf("%s: the answer was sent as %d texts %q; want it pushed as written", v.provider, len(last.Texts), last.Texts)
		}
	}
}
