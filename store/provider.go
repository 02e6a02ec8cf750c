package store

import (
	"context"
	"net/url"
	"regexp"

	"github.com/uptrace/bun"
)

// ModelProvider is an upstream of the model gateway that a tenant configured: a name that
// models are called by ("groq" in "groq/llama-3.1-8b-instant"), a kind (openai: any
// OpenAI-compatible server; anthropic; deepgram: live speech-to-text only), a base URL and
// a key. The key is write-only: it is
// sealed with the server secret and never shown.
type ModelProvider struct {
	bun.BaseModel `bun:"table:providers"`
	Row

	Name    string `bun:"name,notnull" json:"name"`
	Kind    string `bun:"kind,notnull" json:"kind"`
	BaseURL string `bun:"base_url,notnull" json:"base_url"`
	// APIKey is write-only (see Trunk's passwords); HasAPIKey tells whether one is set.
	APIKey    string              `bun:"-" json:"api_key,omitempty"`
	HasAPIKey bool                `bun:"-" json:"has_api_key"`
	APIKeyEnc string              `bun:"api_key_enc,notnull" json:"-"`
	Models    []string            `bun:"models,type:json" json:"models"`
	Aliases   map[string]string   `bun:"aliases,type:json" json:"aliases"`
	Prices    map[string]Price    `bun:"prices,type:json" json:"prices"`
	Fallbacks map[string][]string `bun:"fallbacks,type:json" json:"fallbacks"`
	// SpeechPrices price the provider's speech to text and text to speech, for the cost of
	// calls whose agents listen or speak through it.
	SpeechPrices SpeechPrice `bun:"speech_prices,type:json" json:"speech_prices"`
}

// Price is dollars per million tokens of a model.
type Price struct {
	InputPerMTok  float64 `json:"input_per_mtok"`
	OutputPerMTok float64 `json:"output_per_mtok"`
}

var reProviderName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// NewModelProvider returns a provider with the defaults a created one starts from.
func NewModelProvider() *ModelProvider {
	return &ModelProvider{Kind: "openai", Models: []string{}, Aliases: map[string]string{}, Prices: map[string]Price{}, Fallbacks: map[string][]string{}}
}

func (*ModelProvider) idPrefix() string { return "prv_" }

func (p *ModelProvider) prepare(s *Store) error {
	if p.APIKey != "" {
		if s.sealer == nil {
			return ErrNoSecret
		}
		p.APIKeyEnc, p.APIKey = s.sealer.Seal(p.APIKey), ""
	}
	p.HasAPIKey = p.APIKeyEnc != ""
	return nil
}

// AfterScanRow tells clients whether a key is set.
func (p *ModelProvider) AfterScanRow(context.Context) error {
	p.HasAPIKey = p.APIKeyEnc != ""
	return nil
}

// Key opens the provider's sealed key.
func (p *ModelProvider) Key(s *Store) (string, error) {
	if p.APIKeyEnc == "" {
		return "", nil
	}
	if s.sealer == nil {
		return "", ErrNoSecret
	}
	return s.sealer.Open(p.APIKeyEnc)
}

// Validate checks the name, kind and URL.
func (p *ModelProvider) Validate() error {
	var fe fieldErrors
	switch {
	case !reProviderName.MatchString(p.Name):
		fe.add("name", "must be 1 to 32 lower-case letters, digits, _ or -")
	case p.Name == "agent":
		fe.add("name", "agent is reserved for agent/{id} models")
	}
	fe.oneOf("kind", p.Kind, "openai", "anthropic", "deepgram", "elevenlabs", "cartesia")
	if u, err := url.Parse(p.BaseURL); p.BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		fe.add("base_url", "must be an absolute http or https URL")
	}
	if p.BaseURL == "" {
		fe.add("base_url", "is required")
	}
	if p.Models == nil {
		p.Models = []string{}
	}
	if p.Aliases == nil {
		p.Aliases = map[string]string{}
	}
	if p.Prices == nil {
		p.Prices = map[string]Price{}
	}
	if p.Fallbacks == nil {
		p.Fallbacks = map[string][]string{}
	}
	for m, pr := range p.Prices {
		if pr.InputPerMTok < 0 || pr.OutputPerMTok < 0 {
			fe.add("prices."+m, "must not be negative")
		}
	}
	p.SpeechPrices.validate(&fe, "speech_prices")
	return fe.err()
}
