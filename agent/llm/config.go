package llm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ProviderConfig describes one named upstream. The YAML names of the providers file are
// given by the tags.
type ProviderConfig struct {
	// Name is the "provider" of "provider/model": letters, digits, '.', '_' and '-'.
	Name string `yaml:"name"`
	Kind Kind   `yaml:"kind"`
	// BaseURL is where the API lives: https://api.openai.com/v1 (requests go to
	// {BaseURL}/chat/completions) or https://api.anthropic.com ({BaseURL}/v1/messages).
	// Empty means the kind's default.
	BaseURL string `yaml:"base_url"`
	// APIKey is sent as a Bearer token (openai) or x-api-key (anthropic); empty sends none.
	APIKey string `yaml:"api_key"`
	// KeyRequired makes Resolve fail with ErrNoKey while APIKey is empty. A providers file
	// sets it for an api_key that names an unset variable; the environment's providers set
	// it for their default (hosted) base URLs.
	KeyRequired bool `yaml:"key_required"`
	// KeyEnv names the variable the key comes from, to say what to set.
	KeyEnv string `yaml:"-"`
	// Models are the models to list, by upstream name, beside aliases and priced models.
	Models []string `yaml:"models"`
	// Aliases maps a model name clients may use to the upstream's name.
	Aliases map[string]string `yaml:"aliases"`
	// Prices are by model, as asked or by upstream name.
	Prices map[string]Price `yaml:"prices"`
	// SpeechPrices price the provider's speech to text and text to speech, for the cost
	// of agents' calls that listen or speak through it.
	SpeechPrices SpeechPrice `yaml:"speech_prices"`
	// Fallbacks lists, by model, the "provider/model" names to try when it fails before
	// answering.
	Fallbacks map[string][]string `yaml:"fallbacks"`
	// Headers are sent with every request (OpenRouter's, an organization…).
	Headers map[string]string `yaml:"headers"`
	// TextOnly lists the models (as asked or by upstream name) that take text alone: an
	// image for one of them is refused by the surfaces that know it (a 422 naming the part)
	// rather than sent for the provider to fail on. Other models are taken to accept images,
	// which both dialects carry.
	TextOnly []string `yaml:"text_only"`
	// Realtime lists the models (as asked or by upstream name) that are speech-to-speech
	// models over OpenAI's Realtime WebSocket protocol ({BaseURL}/realtime), for a server
	// whose names do not say so: an openai-kind model whose name contains "realtime"
	// (gpt-realtime, gpt-4o-realtime-preview) is one without being listed.
	Realtime []string `yaml:"realtime"`
	// StallTimeout is the longest a stream may stay silent; 0 is the registry's default.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// Timeout bounds a complete (non-streamed) request; 0 is DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// MaxTokensParam is the field the openai kind sends Request.MaxTokens in: max_tokens,
	// which every compatible server knows, or max_completion_tokens, which OpenAI's newer
	// models require. Empty picks max_completion_tokens for api.openai.com, else max_tokens.
	MaxTokensParam string `yaml:"max_tokens_param"`
	// DefaultMaxTokens is sent to the anthropic kind when the request has none; 0 is
	// DefaultAnthropicMaxTokens.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// AnthropicVersion is the anthropic-version header; empty is 2023-06-01.
	AnthropicVersion string `yaml:"anthropic_version"`
}

// Price is what a model costs, in dollars per million tokens.
type Price struct {
	InputPerMTok  float64 `yaml:"input_per_mtok"`
	OutputPerMTok float64 `yaml:"output_per_mtok"`
}

// Cost is the dollars the usage costs at this price.
func (p Price) Cost(u Usage) float64 {
	return (float64(u.InputTokens)*p.InputPerMTok + float64(u.OutputTokens)*p.OutputPerMTok) / 1e6
}

// SpeechPrice is what a provider's speech costs, in dollars.
type SpeechPrice struct {
	// STTPerMinute is a minute of audio transcribed.
	STTPerMinute float64 `yaml:"stt_per_minute"`
	// TTSPerMillionCharacters is a million characters spoken.
	TTSPerMillionCharacters float64 `yaml:"tts_per_million_characters"`
}

// STTCost is the dollars seconds of transcribed audio cost at this price.
func (p SpeechPrice) STTCost(seconds float64) float64 { return seconds / 60 * p.STTPerMinute }

// TTSCost is the dollars characters spoken cost at this price.
func (p SpeechPrice) TTSCost(chars int) float64 {
	return float64(chars) / 1e6 * p.TTSPerMillionCharacters
}

var providerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// reservedProviders are names that mean something else before the slash: "agent/{id}" is
// one of the tenant's agents.
var reservedProviders = map[string]bool{"agent": true}

// withDefaults fills what the configuration leaves to the kind.
func (c ProviderConfig) withDefaults() ProviderConfig {
	if c.BaseURL == "" {
		switch c.Kind {
		case KindOpenAI:
			c.BaseURL = DefaultOpenAIBaseURL
		case KindAnthropic:
			c.BaseURL = DefaultAnthropicBaseURL
		case KindElevenLabs:
			c.BaseURL = DefaultElevenLabsURL
		case KindCartesia:
			c.BaseURL = DefaultCartesiaURL
		case KindDeepgram:
			c.BaseURL = DefaultDeepgramBaseURL
		}
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}

func (c ProviderConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: provider %q: %s", ErrConfig, c.Name, fmt.Sprintf(format, args...))
	}
	if !providerName.MatchString(c.Name) {
		return bad("name must be letters, digits, '.', '_' or '-'")
	}
	if reservedProviders[c.Name] {
		return bad("name is reserved")
	}
	if c.Kind != KindOpenAI && c.Kind != KindAnthropic && !c.Kind.SpeechOnly() {
		return bad("kind must be openai, anthropic, deepgram, elevenlabs or cartesia, not %q", c.Kind)
	}
	u, err := url.Parse(c.withDefaults().BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("base_url %q is not an http(s) URL", c.BaseURL)
	}
	switch c.MaxTokensParam {
	case "", "max_tokens", "max_completion_tokens":
	default:
		return bad("max_tokens_param must be max_tokens or max_completion_tokens")
	}
	if c.StallTimeout < 0 || c.Timeout < 0 || c.DefaultMaxTokens < 0 {
		return bad("timeouts and default_max_tokens cannot be negative")
	}
	for m, p := range c.Prices {
		if p.InputPerMTok < 0 || p.OutputPerMTok < 0 {
			return bad("price of %q cannot be negative", m)
		}
	}
	if sp := c.SpeechPrices; sp.STTPerMinute < 0 || sp.TTSPerMillionCharacters < 0 {
		return bad("speech_prices cannot be negative")
	}
	for m, fbs := range c.Fallbacks {
		for _, fb := range fbs {
			if _, _, err := SplitModel(fb); err != nil {
				return bad("fallback %q of %q must be named provider/model", fb, m)
			}
		}
	}
	return nil
}

// EnvProviders are the providers the environment configures: "openai" from OPENAI_API_KEY
// and OPENAI_BASE_URL, "anthropic" from ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL, the live
// transcriber "deepgram" (DEEPGRAM_API_KEY, DEEPGRAM_BASE_URL), and the voices "elevenlabs"
// (ELEVENLABS_API_KEY, ELEVENLABS_BASE_URL) and "cartesia" (CARTESIA_API_KEY,
// CARTESIA_BASE_URL). All are always there, so that a model, transcriber or voice of a
// provider without a key fails with ErrNoKey and says what to set; a base URL of one's own
// (a local server) needs no key.
func EnvProviders(getenv func(string) string) []ProviderConfig {
	env := func(kind Kind, name, keyVar, urlVar, def string) ProviderConfig {
		c := ProviderConfig{Name: name, Kind: kind, BaseURL: getenv(urlVar), APIKey: getenv(keyVar), KeyEnv: keyVar}
		c.KeyRequired = c.BaseURL == "" || strings.TrimRight(c.BaseURL, "/") == def
		return c.withDefaults()
	}
	return []ProviderConfig{
		env(KindOpenAI, "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", DefaultOpenAIBaseURL),
		env(KindAnthropic, "anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", DefaultAnthropicBaseURL),
		env(KindElevenLabs, "elevenlabs", "ELEVENLABS_API_KEY", "ELEVENLABS_BASE_URL", DefaultElevenLabsURL),
		env(KindCartesia, "cartesia", "CARTESIA_API_KEY", "CARTESIA_BASE_URL", DefaultCartesiaURL),
		env(KindDeepgram, "deepgram", "DEEPGRAM_API_KEY", "DEEPGRAM_BASE_URL", DefaultDeepgramBaseURL),
	}
}

// providersFile is the shape of SWITCHBOARD_PROVIDERS_FILE.
type providersFile struct {
	Providers []ProviderConfig `yaml:"providers"`
}

// LoadProviders reads a providers file; see ParseProviders.
func LoadProviders(path string, getenv func(string) string) ([]ProviderConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfgs, err := ParseProviders(b, getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfgs, nil
}

// ParseProviders reads the YAML of a providers file:
//
//	providers:
//	  - name: groq
//	    kind: openai
//	    base_url: https://api.groq.com/openai/v1
//	    api_key: ${GROQ_API_KEY}
//	    aliases: {fast: llama-3.1-8b-instant}
//	    prices: {llama-3.1-8b-instant: {input_per_mtok: 0.05, output_per_mtok: 0.08}}
//	    speech_prices: {stt_per_minute: 0.006, tts_per_million_characters: 15}
//	    fallbacks: {compound: [openai/gpt-4o-mini]}
//
// ${NAME} and ${NAME:-default} in api_key, base_url and headers are taken from getenv. An
// api_key that is set but comes out empty makes the provider's models fail with ErrNoKey.
// Unknown fields are errors, so that a misspelt one is not silently ignored.
func ParseProviders(data []byte, getenv func(string) string) ([]ProviderConfig, error) {
	var f providersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	seen := map[string]bool{}
	for i := range f.Providers {
		c := &f.Providers[i]
		if seen[c.Name] {
			return nil, fmt.Errorf("%w: provider %q is listed twice", ErrConfig, c.Name)
		}
		seen[c.Name] = true
		var err error
		if c.APIKey != "" {
			c.KeyRequired = true
			if c.APIKey, c.KeyEnv, err = expandEnv(c.APIKey, getenv); err != nil {
				return nil, fmt.Errorf("%w: provider %q: api_key: %w", ErrConfig, c.Name, err)
			}
		}
		if c.BaseURL, _, err = expandEnv(c.BaseURL, getenv); err != nil {
			return nil, fmt.Errorf("%w: provider %q: base_url: %w", ErrConfig, c.Name, err)
		}
		for k, v := range c.Headers {
			if c.Headers[k], _, err = expandEnv(v, getenv); err != nil {
				return nil, fmt.Errorf("%w: provider %q: header %s: %w", ErrConfig, c.Name, k, err)
			}
		}
		*c = c.withDefaults()
		if err := c.validate(); err != nil {
			return nil, err
		}
	}
	return f.Providers, nil
}

// expandEnv replaces ${NAME} and ${NAME:-default}; it reports the first name it met.
func expandEnv(s string, getenv func(string) string) (out, first string, err error) {
	if !strings.Contains(s, "${") {
		return s, "", nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), first, nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", "", fmt.Errorf("unterminated ${ in %q", s)
		}
		name, def, _ := strings.Cut(s[i+2:i+j], ":-")
		if name == "" {
			return "", "", errors.New("empty ${} in value")
		}
		if first == "" {
			first = name
		}
		v := getenv(name)
		if v == "" {
			v = def
		}
		b.WriteString(v)
		s = s[i+j+1:]
	}
}
