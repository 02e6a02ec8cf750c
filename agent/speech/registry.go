package speech

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/internal/netguard"
)

// EspeakProvider is the name of the built-in offline voice.
const EspeakProvider = "espeak"

// RegistryOptions are what the registry's providers share.
type RegistryOptions struct {
	// Espeak configures the built-in voice, started on first use.
	Espeak EspeakOptions
	// Client carries the requests of the operator's HTTP providers (those of NewRegistry);
	// nil is http.DefaultClient.
	Client *http.Client
	// TenantClient carries the requests of the providers a tenant configures (those With
	// adds): the operator's netguard.NewTenantClient. Nil is netguard.NewTenantClient(false),
	// which connects to public addresses only.
	TenantClient *http.Client
}

// Registry resolves the speech providers an agent names: its transcriber {provider,
// model} and its voice {provider, voice, speed}. The providers are those of the model
// registry (llm.ProviderConfig: the environment's "openai" from OPENAI_BASE_URL and
// OPENAI_API_KEY, and the providers file), of which the openai kind speaks OpenAI's audio
// API, plus the built-in "espeak" voice. It does not change once built and is safe for
// concurrent use.
type Registry struct {
	providers map[string]llm.ProviderConfig
	// tenants are the names whose provider a tenant configured (With).
	tenants map[string]bool
	opts    RegistryOptions
	espeak  *lazyEspeak
}

type lazyEspeak struct {
	once sync.Once
	e    *Espeak
	err  error
}

// NewRegistry is a registry of cfgs (a later configuration of a name replaces an earlier
// one) and espeak.
func NewRegistry(cfgs []llm.ProviderConfig, opts RegistryOptions) *Registry {
	r := &Registry{providers: map[string]llm.ProviderConfig{}, opts: opts, espeak: &lazyEspeak{}}
	r.add(cfgs)
	return r
}

// FromEnv is the registry of the environment, as llm.FromEnv reads it: the providers of
// llm.EnvProviders, then those of the file SWITCHBOARD_PROVIDERS_FILE names.
func FromEnv(getenv func(string) string, opts RegistryOptions) (*Registry, error) {
	cfgs, err := llm.Configs(getenv, getenv("SWITCHBOARD_PROVIDERS_FILE"))
	if err != nil {
		return nil, err
	}
	return NewRegistry(cfgs, opts), nil
}

// With is a registry of r's providers and those of cfgs, which replace r's of the same
// name: a tenant's own providers over the server's, which connect through the tenant
// client (RegistryOptions.TenantClient). The espeak voice, and its cache, are shared.
func (r *Registry) With(cfgs []llm.ProviderConfig) *Registry {
	n := &Registry{providers: maps.Clone(r.providers), tenants: maps.Clone(r.tenants), opts: r.opts, espeak: r.espeak}
	if n.tenants == nil {
		n.tenants = map[string]bool{}
	}
	n.add(cfgs)
	for _, c := range cfgs {
		n.tenants[c.Name] = true
	}
	return n
}

// client is the HTTP client of the provider of name.
func (r *Registry) client(name string) *http.Client {
	if !r.tenants[name] {
		return r.opts.Client
	}
	if r.opts.TenantClient != nil {
		return r.opts.TenantClient
	}
	return strictTenantClient()
}

// strictTenantClient is the tenant client of a registry built without one.
var strictTenantClient = sync.OnceValue(func() *http.Client { return netguard.NewTenantClient(false) })

func (r *Registry) add(cfgs []llm.ProviderConfig) {
	for _, c := range cfgs {
		r.providers[c.Name] = c
	}
}

// speaks reports a kind with voices: OpenAI's audio API, ElevenLabs and Cartesia.
func speaks(k llm.Kind) bool {
	return k == llm.KindOpenAI || k == llm.KindElevenLabs || k == llm.KindCartesia
}

// Names lists the providers that can speak or listen: espeak, and the openai-, deepgram-,
// elevenlabs- and cartesia-kind providers that have what they need, sorted.
func (r *Registry) Names() []string {
	out := []string{EspeakProvider}
	for name, c := range r.providers {
		if name != EspeakProvider && (c.Kind == llm.KindOpenAI || c.Kind.SpeechOnly()) && (!c.KeyRequired || c.APIKey != "") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TTS is the voice of provider: "espeak", or a configured openai-, elevenlabs- or
// cartesia-kind provider, as "name" (the kind's default model) or "name/model"
// ("openai/gpt-4o-mini-tts", "elevenlabs/eleven_turbo_v2_5"). The ElevenLabs and Cartesia
// voices are StreamingTTS. A name that nothing is configured for, or that cannot speak,
// fails with ErrNotConfigured.
func (r *Registry) TTS(provider string) (TTS, error) {
	name, model, _ := strings.Cut(provider, "/")
	if name == EspeakProvider {
		r.espeak.once.Do(func() { r.espeak.e, r.espeak.err = NewEspeak(r.opts.Espeak) })
		if r.espeak.err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotConfigured, name, r.espeak.err)
		}
		return r.espeak.e, nil
	}
	c, err := r.voice(name)
	if err != nil {
		return nil, err
	}
	switch c.Kind {
	case llm.KindElevenLabs, llm.KindCartesia:
		var st StreamingTTS
		if c.Kind == llm.KindElevenLabs {
			st = NewElevenLabs(c.BaseURL, c.APIKey, model, r.client(name))
		} else {
			st = NewCartesia(c.BaseURL, c.APIKey, model, r.client(name))
		}
		if r.tenants[name] {
			return opaqueStreamingTTS{st}, nil
		}
		return st, nil
	}
	t := NewOpenAITTS(c.BaseURL, c.APIKey, model, r.client(name))
	t.c.header = headers(c)
	if r.tenants[name] {
		return opaqueTTS{t}, nil
	}
	return t, nil
}

// STT is the transcriber of provider: a configured openai-kind provider, as "name"
// (model DefaultSTTModel) or "name/model" ("groq/whisper-large-v3-turbo"). A name that
// nothing is configured for, or that cannot listen (espeak only speaks), fails with
// ErrNotConfigured.
func (r *Registry) STT(provider string) (STT, error) {
	name, model, _ := strings.Cut(provider, "/")
	if name == EspeakProvider {
		return nil, fmt.Errorf("%w: %q speaks but does not transcribe", ErrNotConfigured, name)
	}
	c, err := r.http(name)
	if err != nil {
		return nil, err
	}
	s := NewOpenAISTT(c.BaseURL, c.APIKey, model, r.client(name))
	s.c.header = headers(c)
	if r.tenants[name] {
		return opaqueSTT{s}, nil
	}
	return s, nil
}

// StreamingSTT is the live transcriber of an agent's transcriber, provider "name" or
// "name/model" with model the agent's transcriber model (used when provider names none):
// a deepgram-kind provider always (model DefaultDeepgramModel when none), an openai-kind one
// when its model is a realtime transcription model (IsRealtimeSTTModel). It is nil, with no
// error, for a transcriber that transcribes whole utterances (STT). A deepgram-kind
// provider without its key fails with ErrNotConfigured and says what to set.
func (r *Registry) StreamingSTT(provider, model string) (StreamingSTT, error) {
	name, m, ok := strings.Cut(provider, "/")
	if !ok {
		m = model
	}
	c, found := r.providers[name]
	if !found || (c.Kind == llm.KindOpenAI && !IsRealtimeSTTModel(m)) || (c.Kind != llm.KindOpenAI && c.Kind != llm.KindDeepgram) {
		return nil, nil
	}
	if c.KeyRequired && c.APIKey == "" {
		hint := ""
		if c.KeyEnv != "" {
			hint = ": set " + c.KeyEnv
		}
		return nil, fmt.Errorf("%w: %q has no API key%s", ErrNotConfigured, name, hint)
	}
	tenant := r.tenants[name]
	if c.Kind == llm.KindDeepgram {
		d := NewDeepgramSTT(c.BaseURL, c.APIKey, m, r.client(name))
		d.header, d.opaque = headers(c), tenant
		return d, nil
	}
	o := NewOpenAIRealtimeSTT(c.BaseURL, c.APIKey, m, r.client(name))
	o.header, o.opaque = headers(c), tenant
	return o, nil
}

// Transcriber resolves an agent's transcriber {provider, model}: its live transcriber when
// it streams (StreamingSTT), else its batch one (STT, which takes the model from provider
// "name/model"). When err is nil exactly one of the two is set; a name nothing is
// configured for, or one that cannot listen, fails with ErrNotConfigured.
func (r *Registry) Transcriber(provider, model string) (STT, StreamingSTT, error) {
	live, err := r.StreamingSTT(provider, model)
	if err != nil || live != nil {
		return nil, live, err
	}
	stt, err := r.STT(provider)
	return stt, nil, err
}

// Price is the speech price of provider ("name" or "name/model"): zero for espeak, which
// runs on the node, and for a name nothing is configured for.
func (r *Registry) Price(provider string) llm.SpeechPrice {
	name, _, _ := strings.Cut(provider, "/")
	return r.providers[name].SpeechPrices
}

// http is the configuration of an openai-kind provider that can be used: one that
// transcribes.
func (r *Registry) http(name string) (llm.ProviderConfig, error) {
	c, err := r.voice(name)
	if err == nil && c.Kind != llm.KindOpenAI {
		err = fmt.Errorf("%w: %q is of kind %s, which speaks but does not transcribe", ErrNotConfigured, name, c.Kind)
	}
	return c, err
}

// voice is the configuration of a provider that can speak and be used.
func (r *Registry) voice(name string) (llm.ProviderConfig, error) {
	c, ok := r.providers[name]
	switch {
	case name == "":
		return c, fmt.Errorf("%w: no provider named", ErrNotConfigured)
	case !ok:
		return c, fmt.Errorf("%w: %q (configured: %s)", ErrNotConfigured, name, strings.Join(r.Names(), ", "))
	case c.Kind == llm.KindDeepgram:
		return c, fmt.Errorf("%w: %q is of kind %s, which transcribes but does not speak", ErrNotConfigured, name, c.Kind)
	case !speaks(c.Kind):
		return c, fmt.Errorf("%w: %q is of kind %s, which has no audio API", ErrNotConfigured, name, c.Kind)
	case c.KeyRequired && c.APIKey == "":
		hint := ""
		if c.KeyEnv != "" {
			hint = ": set " + c.KeyEnv
		}
		return c, fmt.Errorf("%w: %q has no API key%s", ErrNotConfigured, name, hint)
	}
	if c.BaseURL == "" && c.Kind == llm.KindOpenAI {
		c.BaseURL = DefaultOpenAIBaseURL
	}
	return c, nil
}

func headers(c llm.ProviderConfig) http.Header {
	if len(c.Headers) == 0 {
		return nil
	}
	h := http.Header{}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	return h
}

// CheckVoice reports whether provider ("name" or "name/model") can speak for an agent,
// without connecting to it: nil, or ErrNotConfigured saying why and what to set.
func (r *Registry) CheckVoice(provider string) error {
	name, _, _ := strings.Cut(provider, "/")
	if name == EspeakProvider {
		return nil
	}
	_, err := r.voice(name)
	return err
}

// CheckTranscriber reports whether provider can transcribe for an agent, as CheckVoice.
func (r *Registry) CheckTranscriber(provider string) error {
	name, _, _ := strings.Cut(provider, "/")
	if name == EspeakProvider {
		return fmt.Errorf("%w: %q speaks but does not transcribe", ErrNotConfigured, name)
	}
	// A live transcriber is resolved as a call would (no connection is made); otherwise
	// the provider must take whole utterances.
	if live, err := r.StreamingSTT(provider, ""); err != nil || live != nil {
		return err
	}
	_, err := r.http(name)
	return err
}
