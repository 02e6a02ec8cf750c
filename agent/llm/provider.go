package llm

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/internal/netguard"
)

// Provider is an upstream that answers requests in the neutral model.
type Provider interface {
	// Complete asks for a whole answer.
	Complete(ctx context.Context, req *Request) (*Response, error)
	// Stream asks for an answer as it is written. Failures before the answer starts are
	// returned here rather than by the stream; cancelling ctx ends the upstream request.
	Stream(ctx context.Context, req *Request) (Stream, error)
	// Models lists the models the upstream offers, by its own names.
	Models(ctx context.Context) ([]string, error)
}

// Kind is the dialect a provider speaks.
type Kind string

const (
	// KindOpenAI is any OpenAI-compatible chat completions server.
	KindOpenAI Kind = "openai"
	// KindAnthropic is Anthropic's messages API.
	KindAnthropic Kind = "anthropic"
	// KindElevenLabs is ElevenLabs' speech API (voices only: no models to chat with).
	KindElevenLabs Kind = "elevenlabs"
	// KindCartesia is Cartesia's speech API (voices only: no models to chat with).
	KindCartesia Kind = "cartesia"
	// KindDeepgram is Deepgram's live transcription API (package speech): a speech
	// provider only, which the model registry keeps no model of.
	KindDeepgram Kind = "deepgram"
)

// SpeechOnly reports a kind that speaks or listens but has no chat models: the model
// registry leaves its providers to the speech registry.
func (k Kind) SpeechOnly() bool { return k == KindElevenLabs || k == KindCartesia || k == KindDeepgram }

// Defaults of a provider.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com/v1"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultElevenLabsURL    = "https://api.elevenlabs.io"
	DefaultCartesiaURL      = "https://api.cartesia.ai"
	DefaultDeepgramBaseURL  = "https://api.deepgram.com/v1"
	// DefaultStallTimeout is the longest a stream may stay silent.
	DefaultStallTimeout = 60 * time.Second
	// DefaultTimeout bounds a complete (non-streamed) request.
	DefaultTimeout = 10 * time.Minute
	// DefaultAnthropicMaxTokens is the max_tokens sent to Anthropic, which requires one,
	// when the request leaves it open. Every current Claude model can write this many.
	DefaultAnthropicMaxTokens = 4096
)

// options are the settings of providers that do not belong in their configuration.
type options struct {
	client *http.Client
	stall  time.Duration
	// tenantClient carries the requests of the providers tenants configure (Registry.With).
	tenantClient *http.Client
	// opaque hides from errors what an upstream said and how a connection failed: set for
	// tenants' providers, whose errors reach the tenant (see opaqueProvider).
	opaque bool
}

// Option changes how providers are built.
type Option func(*options)

// WithHTTPClient sends upstream requests through c (by default, a client whose pool keeps
// enough idle connections per upstream for many concurrent streams). c must not have a
// Timeout: it would cut long streams; stalls are watched separately.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithTenantClient sets the client of the providers that tenants configure (those that
// Registry.With adds): the operator's netguard.NewTenantClient. Without it, they get
// netguard.NewTenantClient(false), which connects to public addresses only.
func WithTenantClient(c *http.Client) Option { return func(o *options) { o.tenantClient = c } }

// tenant makes the providers being built tenants': carried by the tenant client, with
// opaque errors. Registry.With applies it last, so no other option can undo it.
func tenant(o *options) {
	o.client = o.tenantClient
	if o.client == nil {
		o.client = strictTenantClient()
	}
	o.opaque = true
}

// strictTenantClient is the tenant client of a registry built without WithTenantClient.
var strictTenantClient = sync.OnceValue(func() *http.Client { return netguard.NewTenantClient(false) })

// WithStallTimeout sets the stall timeout of providers whose configuration sets none.
func WithStallTimeout(d time.Duration) Option { return func(o *options) { o.stall = d } }

func buildOptions(opts []Option) options {
	o := options{client: defaultClient, stall: DefaultStallTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// defaultClient keeps many idle connections per upstream: a gateway talks to few hosts,
// many times at once, and http.DefaultTransport keeps two.
var defaultClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr}
}()

// New builds the provider a configuration describes.
func New(cfg ProviderConfig, opts ...Option) (Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	var p Provider
	switch cfg.Kind {
	case KindOpenAI:
		p = newOpenAI(cfg, o)
	case KindAnthropic:
		p = newAnthropic(cfg, o)
	default:
		return nil, fmt.Errorf("%w: provider %q: unknown kind %q", ErrConfig, cfg.Name, cfg.Kind)
	}
	if o.opaque {
		p = opaqueProvider{p}
	}
	return p, nil
}

func (o options) transport(cfg ProviderConfig, header http.Header) *transport {
	t := &transport{provider: cfg.Name, client: o.client, header: header, stall: o.stall, timeout: DefaultTimeout}
	if cfg.StallTimeout > 0 {
		t.stall = cfg.StallTimeout
	}
	if cfg.Timeout > 0 {
		t.timeout = cfg.Timeout
	}
	header.Set("User-Agent", "switchboard")
	for k, v := range cfg.Headers {
		header.Set(k, v)
	}
	return t
}
