package speech_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/netguard"
)

// TestTenantSpeechProvidersArePublicOnly: a speech provider a tenant configured (With)
// connects to public addresses only, unless the operator allowed more; the operator's own
// providers on loopback keep working.
func TestTenantSpeechProvidersArePublicOnly(t *testing.T) {
	t.Parallel()
	op := speechtest.NewOpenAI(t)
	inner := speechtest.NewOpenAI(t)
	base := speech.NewRegistry([]llm.ProviderConfig{{Name: "local", Kind: llm.KindOpenAI, BaseURL: op.URL}}, speech.RegistryOptions{})
	ctx := testCtx(t)
	for _, u := range []string{inner.URL, strings.Replace(inner.URL, "127.0.0.1", "localhost", 1), "http://169.254.169.254/v1", "http://[::ffff:127.0.0.1]:1/v1"} {
		r := base.With([]llm.ProviderConfig{{Name: "mine", Kind: llm.KindOpenAI, BaseURL: u}})
		stt, err := r.STT("mine")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stt.Transcribe(ctx, tone(8000, 200, 0.3), 8000, ""); !errors.Is(err, netguard.ErrPrivateAddress) || err.Error() != "speech: transcribe: the provider did not answer" {
			t.Errorf("%s: %v, want the private address refused", u, err)
		}
		tts, _ := r.TTS("mine")
		if _, err := tts.Synthesize(ctx, "Hi.", "", 1); !errors.Is(err, netguard.ErrPrivateAddress) {
			t.Errorf("%s: synthesize: %v, want the private address refused", u, err)
		}
	}
	if n := len(inner.Transcriptions()) + len(inner.Speeches()); n != 0 {
		t.Fatalf("the tenant's inward provider was reached %d times", n)
	}
	// The operator's provider on loopback is trusted; so is the tenant's with the switch on.
	op.Enqueue("operator")
	stt, _ := base.STT("local")
	if text, err := stt.Transcribe(ctx, tone(8000, 200, 0.3), 8000, ""); err != nil || text != "operator" {
		t.Errorf("operator STT: %q, %v", text, err)
	}
	client := netguard.NewTenantClient(true)
	defer client.CloseIdleConnections()
	allowed := speech.NewRegistry(nil, speech.RegistryOptions{TenantClient: client}).
		With([]llm.ProviderConfig{{Name: "mine", Kind: llm.KindOpenAI, BaseURL: inner.URL}})
	inner.Enqueue("tenant")
	stt, _ = allowed.STT("mine")
	if text, err := stt.Transcribe(ctx, tone(8000, 200, 0.3), 8000, ""); err != nil || text != "tenant" {
		t.Errorf("allowed tenant STT: %q, %v", text, err)
	}
	// Its error answers are not relayed, nor are they retried differently.
	inner.EnqueueTranscript(speechtest.Transcript{Status: 403, Message: "metadata token AKIA-SECRET"}, speechtest.Transcript{Status: 403, Message: "metadata token AKIA-SECRET"})
	_, err := stt.Transcribe(ctx, tone(8000, 200, 0.3), 8000, "")
	if err == nil || strings.Contains(err.Error(), "AKIA") || err.Error() != "speech: transcribe: the provider answered 403 Forbidden" {
		t.Errorf("tenant STT error: %v", err)
	}
	inner.EnqueueSpeech(speechtest.Speech{Status: 500, Message: "stack trace at /srv/secret"}, speechtest.Speech{Status: 500, Message: "stack trace at /srv/secret"})
	tts, _ := allowed.TTS("mine")
	if _, err := tts.Synthesize(ctx, "Hi.", "", 1); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("tenant TTS error: %v", err)
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRegistryResolves(t *testing.T) {
	t.Parallel()
	srv := speechtest.NewOpenAI(t)
	srv.RequireKey("sk-env")
	groq := speechtest.NewOpenAI(t)
	// The tenant's groq is on loopback, as the stand-in is: the operator allows it.
	r, err := speech.FromEnv(env(map[string]string{"OPENAI_BASE_URL": srv.URL, "OPENAI_API_KEY": "sk-env"}),
		speech.RegistryOptions{TenantClient: netguard.NewTenantClient(true)})
	if err != nil {
		t.Fatal(err)
	}
	r = r.With([]llm.ProviderConfig{{Name: "groq", Kind: llm.KindOpenAI, BaseURL: groq.URL, Headers: map[string]string{"X-Tenant": "t1"}}})
	if got := strings.Join(r.Names(), ","); got != "espeak,groq,openai" {
		t.Errorf("Names = %s", got)
	}

	ctx := testCtx(t)
	stt, err := r.STT("openai")
	if err != nil {
		t.Fatal(err)
	}
	srv.Enqueue("from openai")
	if text, err := stt.Transcribe(ctx, tone(8000, 500, 0.3), 8000, ""); err != nil || text != "from openai" {
		t.Errorf("openai STT: %q, %v", text, err)
	}
	if m := srv.Transcriptions()[0].Model; m != speech.DefaultSTTModel {
		t.Errorf("model %q, want the default", m)
	}

	stt, err = r.STT("groq/whisper-large-v3-turbo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stt.Transcribe(ctx, tone(8000, 500, 0.3), 8000, "de"); err != nil {
		t.Fatal(err)
	}
	g := groq.Transcriptions()[0]
	if g.Model != "whisper-large-v3-turbo" || g.Language != "de" || g.Header.Get("X-Tenant") != "t1" {
		t.Errorf("groq request %+v", g)
	}

	tts, err := r.TTS("openai/gpt-4o-mini-tts")
	if err != nil {
		t.Fatal(err)
	}
	a, err := tts.Synthesize(ctx, "Hi.", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, a)
	if s := srv.Speeches()[0]; s.Model != "gpt-4o-mini-tts" || s.Header.Get("Authorization") != "Bearer sk-env" {
		t.Errorf("speech request %+v", s)
	}

	e1, err := r.TTS("espeak")
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := r.TTS("espeak")
	if e1 != e2 {
		t.Error("two espeak voices: the phrase cache is not shared")
	}
	if _, ok := e1.(*speech.Espeak); !ok {
		t.Errorf("espeak is a %T", e1)
	}
}

func TestRegistryNotConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(file, []byte("providers:\n  - name: local\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n    api_key: ${LOCAL_KEY}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No OPENAI_API_KEY and the hosted default URL: openai is there but unusable.
	r, err := speech.FromEnv(env(map[string]string{"SWITCHBOARD_PROVIDERS_FILE": file}), speech.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, provider, want string
		stt                  bool
	}{
		{"unknown tts", "elevenlabs", `"elevenlabs"`, false},
		{"unknown stt", "deepgram/nova-3", `"deepgram"`, true},
		{"openai without key", "openai", "OPENAI_API_KEY", true},
		{"openai tts without key", "openai/tts-1", "OPENAI_API_KEY", false},
		{"file key unset", "local", "LOCAL_KEY", true},
		{"anthropic has no audio", "anthropic", "no audio API", false},
		{"espeak does not listen", "espeak", "does not transcribe", true},
		{"empty", "", "no provider", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.stt {
				_, err = r.STT(tt.provider)
			} else {
				_, err = r.TTS(tt.provider)
			}
			if !errors.Is(err, speech.ErrNotConfigured) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrNotConfigured naming %s", err, tt.want)
			}
		})
	}
	if got := strings.Join(r.Names(), ","); got != "espeak" {
		t.Errorf("Names = %s", got)
	}
}
