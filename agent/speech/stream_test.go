package speech_test

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/netguard"
)

// toneShare is the share of pcm's energy at freq (Goertzel), to tell a stand-in's tone
// from noise and from the other stand-in's.
func toneShare(pcm []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	var s1, s2, total float64
	for _, x := range pcm {
		v := float64(x)
		s := v + 2*math.Cos(w)*s1 - s2
		s2, s1 = s1, s
		total += v * v
	}
	power := s1*s1 + s2*s2 - 2*math.Cos(w)*s1*s2
	if total == 0 {
		return 0
	}
	return power / (total * float64(len(pcm)) / 2)
}

type streamCase struct {
	name string
	tone float64
	open func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, streamRecord)
}

type streamRecord interface {
	Sessions() []speechtest.StreamSession
	Cancels() <-chan speechtest.StreamSession
}

var streamCases = []streamCase{
	{"elevenlabs", 440, func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, streamRecord) {
		opts.Key = "xi-test"
		srv := speechtest.NewElevenLabs(t, opts)
		return speech.NewElevenLabs(srv.URL, "xi-test", "", nil), srv
	}},
	{"cartesia", 660, func(t *testing.T, opts speechtest.StreamOptions) (speech.StreamingTTS, streamRecord) {
		opts.Key = "sk_car_test"
		srv := speechtest.NewCartesia(t, opts)
		return speech.NewCartesia(srv.URL, "sk_car_test", "", nil), srv
	}},
}

// TestStreamingTTS pushes an answer word by word to each streaming protocol's stand-in: the
// audio comes at the asked rate, sounds like the stand-in's tone, and starts before the
// text is all sent; the stand-in saw the protocol's messages.
func TestStreamingTTS(t *testing.T) {
	t.Parallel()
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			tts, rec := tc.open(t, speechtest.StreamOptions{FirstAudio: 20 * time.Millisecond})
			s, err := tts.Stream(ctx, "", 1, 8000)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.SampleRate() != 8000 {
				t.Fatalf("rate %d, want the call's 8000", s.SampleRate())
			}
			if err := s.Push("Hello there. "); err != nil {
				t.Fatal(err)
			}
			// Audio of the first words comes while the answer is still being written.
			buf := make([]int16, 160)
			n, err := s.Read(buf)
			if err != nil || n == 0 {
				t.Fatalf("first read before the text ended: %d, %v", n, err)
			}
			pcm := append([]int16(nil), buf[:n]...)
			for _, w := range []string{"How ", "can ", "I ", "help?"} {
				if err := s.Push(w); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.End(); err != nil {
				t.Fatal(err)
			}
			for {
				n, err := s.Read(buf)
				pcm = append(pcm, buf[:n]...)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			text := "Hello there. How can I help?"
			want := float64(len(text)) * 0.060
			if got := float64(len(pcm)) / 8000; math.Abs(got-want) > 0.1 {
				t.Errorf("%.2f s of audio, want %.2f", got, want)
			}
			if share := toneShare(pcm, tc.tone, 8000); share < 0.5 {
				t.Errorf("%.0f Hz holds %.2f of the audio's energy; want the stand-in's tone", tc.tone, share)
			}
			ss := rec.Sessions()
			if len(ss) != 1 || strings.Join(ss[0].Texts, "") != text || ss[0].Rate != 8000 || ss[0].Ended.IsZero() {
				t.Fatalf("sessions %+v", ss)
			}
		})
	}
}

// TestStreamingTTSCancel closes a synthesis in the middle (a barge-in): the stand-in sees
// the cancel within 100 ms, and Read then says the audio was closed.
func TestStreamingTTSCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			tts, rec := tc.open(t, speechtest.StreamOptions{FirstAudio: 10 * time.Millisecond, Speedup: 1})
			s, err := tts.Stream(ctx, "voice-1", 1, 16000)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Push(strings.Repeat("A long answer that goes on. ", 10)); err != nil {
				t.Fatal(err)
			}
			buf := make([]int16, 320)
			if _, err := s.Read(buf); err != nil {
				t.Fatal(err)
			}
			closed := time.Now()
			_ = s.Close()
			select {
			case c := <-rec.Cancels():
				if d := c.Cancelled.Sub(closed); d > 100*time.Millisecond {
					t.Errorf("the cancel reached the provider %v after Close", d)
				}
			case <-ctx.Done():
				t.Fatal("the provider saw no cancel")
			}
			if _, err := s.Read(buf); !errors.Is(err, speech.ErrClosed) {
				t.Errorf("read after close: %v, want ErrClosed", err)
			}
			_ = s.Close() // idempotent
		})
	}
}

// TestStreamingTTSFaults: what a broken or hostile provider sends is a clean error, never
// a panic nor audio made of it.
func TestStreamingTTSFaults(t *testing.T) {
	t.Parallel()
	faults := []struct {
		name string
		opts speechtest.StreamOptions
		want func(error) bool
	}{
		{"not json", speechtest.StreamOptions{Hostile: "<html>oops</html>"}, func(err error) bool { return errors.Is(err, speech.ErrBadFrame) }},
		{"bad base64", speechtest.StreamOptions{Hostile: `{"audio":"%%%","type":"chunk","data":"%%%"}`}, func(err error) bool { return errors.Is(err, speech.ErrBadFrame) }},
		{"odd bytes", speechtest.StreamOptions{Hostile: `{"audio":"AAAA","type":"chunk","data":"AAAA"}`}, func(err error) bool { return errors.Is(err, speech.ErrBadFrame) }},
		{"binary", speechtest.StreamOptions{HostileBinary: true}, func(err error) bool { return errors.Is(err, speech.ErrBadFrame) }},
		{"provider error", speechtest.StreamOptions{ErrorMessage: "quota exceeded"}, func(err error) bool {
			var pe *speech.ProviderError
			return errors.As(err, &pe) && strings.Contains(pe.Error(), "quota exceeded")
		}},
	}
	for _, tc := range streamCases {
		for _, f := range faults {
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				ctx := testCtx(t)
				tts, _ := tc.open(t, f.opts)
				a, err := tts.Synthesize(ctx, "Hello.", "", 1)
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				buf := make([]int16, 160)
				for {
					_, err = a.Read(buf)
					if err != nil {
						break
					}
				}
				if !f.want(err) {
					t.Errorf("error %v", err)
				}
			})
		}
	}
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		srv := speechtest.NewElevenLabs(t, speechtest.StreamOptions{Key: "right"})
		_, err := speech.NewElevenLabs(srv.URL, "wrong", "", nil).Stream(testCtx(t), "", 1, 8000)
		var pe *speech.ProviderError
		if !errors.As(err, &pe) || pe.Status != 401 {
			t.Errorf("error %v, want the provider's 401", err)
		}
	})
}

// TestRegistryStreamingVoices resolves the elevenlabs and cartesia kinds, and lists their
// voices; a kind that cannot transcribe is not a transcriber.
func TestRegistryStreamingVoices(t *testing.T) {
	t.Parallel()
	el := speechtest.NewElevenLabs(t, speechtest.StreamOptions{Key: "xi"})
	ca := speechtest.NewCartesia(t, speechtest.StreamOptions{Key: "ck"})
	down := speechtest.NewCartesia(t, speechtest.StreamOptions{VoicesStatus: 503})
	env := map[string]string{"ELEVENLABS_BASE_URL": el.URL, "ELEVENLABS_API_KEY": "xi"}
	cfgs := append(llm.EnvProviders(func(k string) string { return env[k] }),
		llm.ProviderConfig{Name: "sonic", Kind: llm.KindCartesia, BaseURL: ca.URL, APIKey: "ck"},
		llm.ProviderConfig{Name: "down", Kind: llm.KindCartesia, BaseURL: down.URL})
	r := speech.NewRegistry(cfgs, speech.RegistryOptions{})
	for _, name := range []string{"elevenlabs", "sonic/sonic-2"} {
		tts, err := r.TTS(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := tts.(speech.StreamingTTS); !ok {
			t.Errorf("%s is not a streaming voice", name)
		}
		if err := r.CheckTranscriber(name); !errors.Is(err, speech.ErrNotConfigured) {
			t.Errorf("%s as a transcriber: %v", name, err)
		}
	}
	if err := r.CheckVoice("cartesia"); !errors.Is(err, speech.ErrNotConfigured) || !strings.Contains(err.Error(), "CARTESIA_API_KEY") {
		t.Errorf("cartesia without a key: %v, want what to set", err)
	}
	if err := r.CheckVoice("anthropic"); !errors.Is(err, speech.ErrNotConfigured) {
		t.Errorf("anthropic as a voice: %v", err)
	}
	ctx := testCtx(t)
	vs, err := r.Voices(ctx, "elevenlabs")
	if err != nil || len(vs) != 2 || vs[0].ID != "21m00Tcm4TlvDq8ikWAM" || vs[0].Language != "en" || vs[0].PreviewURL == "" || vs[1].Language != "en" {
		t.Errorf("elevenlabs voices %+v, %v", vs, err)
	}
	vs, err = r.Voices(ctx, "sonic")
	if err != nil || len(vs) != 2 || vs[0].Provider != "sonic" || vs[1].Name != "Sarah" {
		t.Errorf("cartesia voices %+v, %v", vs, err)
	}
	var pe *speech.ProviderError
	if _, err := r.Voices(ctx, "down"); !errors.As(err, &pe) || pe.Status != 503 {
		t.Errorf("a failing provider's voices: %v", err)
	}
	if vs, err := r.Voices(ctx, "espeak"); err == nil && len(vs) == 0 {
		t.Errorf("espeak lists no voices")
	}
}

// TestTenantStreamingVoiceIsOpaque: a tenant's streaming voice connects through the tenant
// client, and its failures say no more than a tenant's batch voice's: not what the
// provider answered.
func TestTenantStreamingVoiceIsOpaque(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewCartesia(t, speechtest.StreamOptions{ErrorMessage: "secret upstream words"})
	tenantHTTP := netguard.NewTenantClient(true)
	t.Cleanup(tenantHTTP.CloseIdleConnections)
	r := speech.NewRegistry(nil, speech.RegistryOptions{TenantClient: tenantHTTP}).
		With([]llm.ProviderConfig{{Name: "mine", Kind: llm.KindCartesia, BaseURL: srv.URL, APIKey: "k"}})
	tts, err := r.TTS("mine")
	if err != nil {
		t.Fatal(err)
	}
	st, ok := tts.(speech.StreamingTTS)
	if !ok {
		t.Fatal("a tenant's Cartesia voice is not a streaming voice")
	}
	s, err := st.Stream(testCtx(t), "", 1, 8000)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Push("Hello."); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(make([]int16, 160))
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "the provider answered 502") {
		t.Errorf("error %v, want the status alone", err)
	}
	// Refused by the strict tenant client: a loopback provider.
	strict := speech.NewRegistry(nil, speech.RegistryOptions{}).With([]llm.ProviderConfig{{Name: "mine", Kind: llm.KindCartesia, BaseURL: srv.URL}})
	tts, _ = strict.TTS("mine")
	if _, err := tts.(speech.StreamingTTS).Stream(testCtx(t), "", 1, 8000); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("a loopback tenant provider through the strict client: %v", err)
	}
}
