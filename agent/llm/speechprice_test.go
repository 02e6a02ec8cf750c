package llm_test

import (
	"errors"
	"math"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// The providers file prices a provider's speech; a negative price is refused, and the
// costs are what the prices say.
func TestProvidersFileSpeechPrices(t *testing.T) {
	getenv := func(string) string { return "" }
	cfgs, err := llm.ParseProviders([]byte("providers:\n  - name: voice\n    kind: openai\n    base_url: https://speech.example.com/v1\n"+
		"    speech_prices: {stt_per_minute: 0.006, tts_per_million_characters: 15}\n"), getenv)
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("parse: %v %v", cfgs, err)
	}
	sp := cfgs[0].SpeechPrices
	if math.Abs(sp.STTCost(90)-0.009) > 1e-12 || math.Abs(sp.TTSCost(2000)-0.03) > 1e-12 {
		t.Errorf("costs of 90 s and 2000 characters at %+v: %v, %v", sp, sp.STTCost(90), sp.TTSCost(2000))
	}
	_, err = llm.ParseProviders([]byte("providers:\n  - name: voice\n    kind: openai\n    base_url: https://speech.example.com/v1\n"+
		"    speech_prices: {stt_per_minute: -1}\n"), getenv)
	if !errors.Is(err, llm.ErrConfig) {
		t.Errorf("negative speech price: %v, want a configuration error", err)
	}
}
