package llm_test

import (
	"errors"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// The voice kinds (elevenlabs, cartesia) are read from the providers file and the
// environment like the others, but are no models: the model registry leaves them to the
// speech registry, and a model named after one is an unknown provider.
func TestSpeechOnlyKinds(t *testing.T) {
	cfgs, err := llm.ParseProviders([]byte("providers:\n  - name: voices\n    kind: elevenlabs\n    api_key: ${XI}\n  - name: sonic\n    kind: cartesia\n"),
		func(k string) string { return map[string]string{"XI": "xi-key"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[0].BaseURL != llm.DefaultElevenLabsURL || cfgs[0].APIKey != "xi-key" || cfgs[1].BaseURL != llm.DefaultCartesiaURL {
		t.Errorf("configs %+v", cfgs)
	}
	if _, err := llm.ParseProviders([]byte("providers:\n  - name: x\n    kind: deepgrm\n"), func(string) string { return "" }); !errors.Is(err, llm.ErrConfig) {
		t.Errorf("an unknown kind: %v", err)
	}
	env := llm.EnvProviders(func(k string) string { return map[string]string{"CARTESIA_API_KEY": "ck"}[k] })
	byName := map[string]llm.ProviderConfig{}
	for _, c := range env {
		byName[c.Name] = c
	}
	if c := byName["elevenlabs"]; c.Kind != llm.KindElevenLabs || !c.KeyRequired || c.KeyEnv != "ELEVENLABS_API_KEY" {
		t.Errorf("elevenlabs from the environment: %+v", c)
	}
	if c := byName["cartesia"]; c.Kind != llm.KindCartesia || c.APIKey != "ck" {
		t.Errorf("cartesia from the environment: %+v", c)
	}
	reg, err := llm.NewRegistry(append(env, cfgs...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Route("voices/eleven_flash_v2_5"); !errors.Is(err, llm.ErrUnknownProvider) {
		t.Errorf("a voice as a model: %v", err)
	}
	if _, err := reg.Route("openai/gpt-4o-mini"); !errors.Is(err, llm.ErrNoKey) {
		t.Errorf("openai without a key: %v", err)
	}
}
