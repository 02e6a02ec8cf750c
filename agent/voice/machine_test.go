package voice

import (
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/store"
)

// machineRuntime is a runtime whose node has an "openai" speech provider (the rig's
// stand-in) beside espeak-ng, and a tenant to call for.
func machineRuntime(t *testing.T, r *rig) (*Runtime, string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Secret: []byte("switchboard-voice-test-secret-0123456")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	sp := speech.NewRegistry([]llm.ProviderConfig{{Name: "openai", Kind: llm.KindOpenAI, BaseURL: r.srv.URL}}, speech.RegistryOptions{})
	return NewRuntime(RuntimeConfig{Store: st, Providers: provider.New(provider.Config{Store: st, Speech: sp})}), ten.ID
}

// TestLeaveMessageSpeaks: the message for an answering machine is spoken over the call in
// the agent's voice, and in espeak-ng's when the agent's voice fails; LeaveMessage returns
// once it was sent.
func TestLeaveMessageSpeaks(t *testing.T) {
	for _, tt := range []struct {
		name   string
		voice  store.Voice
		failed bool // the agent's voice answers with an error
	}{
		{"agent's voice", store.Voice{Provider: "openai", Voice: "alloy", Speed: 1}, false},
		{"espeak-ng when it fails", store.Voice{Provider: "openai", Voice: "alloy", Speed: 1}, true},
		{"espeak-ng", store.Voice{Provider: "espeak", Voice: "en-us", Speed: 1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			r := newRig(t, 8000)
			if tt.failed {
				r.srv.EnqueueSpeech(speechtest.Speech{Status: 400, Message: "voice not available"})
			}
			rt, tenant := machineRuntime(t, r)
			ag := store.NewAgent()
			ag.Voice = tt.voice
			start := time.Now()
			if err := rt.LeaveMessage(ctx, r.line.sess, tenant, ag, "Hi, this is Acme about your order. Please call us back."); err != nil {
				t.Fatalf("LeaveMessage: %v", err)
			}
			took := time.Since(start)
			// A second of it at least: a message that was sent, not a click.
			if _, ok := r.caller.waitSpeech(start, time.Second, 5*time.Second); !ok {
				t.Fatal("the far end heard no message")
			}
			if took < time.Second {
				t.Errorf("LeaveMessage returned after %v, before the message was sent", took)
			}
			if got := len(r.srv.Speeches()); (tt.voice.Provider == "openai") != (got > 0) {
				t.Errorf("%d requests to the agent's voice", got)
			}
		})
	}
}

// TestTranscribeGreeting hears a greeting with the agent's transcriber, and says so when
// the agent has none.
func TestTranscribeGreeting(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	r := newRig(t, 8000)
	rt, tenant := machineRuntime(t, r)
	r.says("You've reached Sam, leave a message.")
	ag := store.NewAgent()
	greeting := make([]int16, 8000)
	text, ok, err := rt.TranscribeGreeting(ctx, tenant, ag, greeting, 8000)
	if err != nil || !ok || text != "You've reached Sam, leave a message." {
		t.Fatalf("got %q, %v, %v", text, ok, err)
	}
	ag.Transcriber.Provider = "nowhere"
	if text, ok, err := rt.TranscribeGreeting(ctx, tenant, ag, greeting, 8000); ok || err != nil || text != "" {
		t.Fatalf("without a transcriber: got %q, %v, %v; want nothing", text, ok, err)
	}
	r.srv.EnqueueTranscript(speechtest.Transcript{Status: 400, Message: "bad audio"}, speechtest.Transcript{Status: 400, Message: "bad audio"})
	ag.Transcriber.Provider = "openai"
	if _, ok, err := rt.TranscribeGreeting(ctx, tenant, ag, greeting, 8000); ok || err == nil {
		t.Fatalf("a transcriber that fails: ok %v, err %v; want the error", ok, err)
	}
}
