package provider

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// DefaultTTL bounds how long another node's change to a tenant's providers takes to be
// seen here; a change on this node is seen at once (Invalidate).
const DefaultTTL = 30 * time.Second

// Config is what a Registry is built from.
type Config struct {
	// Store holds the tenants' providers; nil: tenants have none of their own.
	Store *store.Store
	// Models are the node's model providers; nil: none (every model is unknown).
	Models *llm.Registry
	// Speech are the node's speech providers; nil: only the built-in espeak voice.
	Speech *speech.Registry
	// TenantClient carries the embedding requests of providers a tenant configured (the
	// operator's netguard.NewTenantClient); nil: public addresses only. NodeClient carries
	// those of the node's providers; nil: a client with a 60 s timeout.
	TenantClient, NodeClient *http.Client
	// TTL is how long a tenant's registry is kept (zero: DefaultTTL).
	TTL time.Duration
}

// Registry resolves a tenant's providers: the node's, with the tenant's own of the same
// name replacing them (a tenant's "openai" replaces the server's). Each tenant's registry
// is built once and kept for TTL or until Invalidate. It is safe for concurrent use.
type Registry struct {
	cfg     Config
	tenants sync.Map // tenant ID → *tenantEntry
}

// tenantEntry is a tenant's registries and when they were built.
type tenantEntry struct {
	cfgs   []llm.ProviderConfig
	models *llm.Registry
	// modelsErr is the tenant's providers not being usable as models; speech still has
	// them.
	modelsErr error
	speech    *speech.Registry
	built     time.Time
}

// New is the registry of cfg.
func New(cfg Config) *Registry {
	if cfg.Models == nil {
		cfg.Models, _ = llm.NewRegistry(nil)
	}
	if cfg.Speech == nil {
		cfg.Speech = speech.NewRegistry(nil, speech.RegistryOptions{})
	}
	if cfg.TenantClient == nil {
		cfg.TenantClient = netguard.NewTenantClient(false)
	}
	if cfg.NodeClient == nil {
		cfg.NodeClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	return &Registry{cfg: cfg}
}

// FromEnv builds the node's providers: openai and anthropic from their usual variables,
// then those of the providers file at file (SWITCHBOARD_PROVIDERS_FILE; "" for none). The
// providers tenants add later connect through tenantClient.
func FromEnv(getenv func(string) string, file string, tenantClient *http.Client) (*llm.Registry, *speech.Registry, error) {
	cfgs, err := llm.Configs(getenv, file)
	if err != nil {
		return nil, nil, fmt.Errorf("providers file: %w", err)
	}
	models, err := llm.NewRegistry(cfgs, llm.WithTenantClient(tenantClient))
	if err != nil {
		return nil, nil, err
	}
	return models, speech.NewRegistry(cfgs, speech.RegistryOptions{TenantClient: tenantClient}), nil
}

// Node is the node's model registry, without any tenant's providers.
func (r *Registry) Node() *llm.Registry { return r.cfg.Models }

// NodeSpeech is the node's speech registry, without any tenant's providers.
func (r *Registry) NodeSpeech() *speech.Registry { return r.cfg.Speech }

// Models is the registry a tenant's models resolve in. A tenant whose stored providers
// cannot be built is ErrUnusable.
func (r *Registry) Models(ctx context.Context, tenantID string) (*llm.Registry, error) {
	e, err := r.entry(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if e.modelsErr != nil {
		return nil, e.modelsErr
	}
	return e.models, nil
}

// Speech is the registry a tenant's agents' voices and transcribers resolve in.
func (r *Registry) Speech(ctx context.Context, tenantID string) (*speech.Registry, error) {
	e, err := r.entry(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return e.speech, nil
}

// Tenant is the tenant's own providers (keys unsealed), as the model and speech registries
// take them.
func (r *Registry) Tenant(ctx context.Context, tenantID string) ([]llm.ProviderConfig, error) {
	e, err := r.entry(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return e.cfgs, nil
}

// Invalidate forgets a tenant's registry: the next request reads its providers again. The
// API calls it whenever a tenant's provider is created, changed or deleted.
func (r *Registry) Invalidate(tenantID string) { r.tenants.Delete(tenantID) }

// EmbeddingEndpoint resolves a tenant's embedding provider by name: its URL and key, and
// the tenant client for a provider the tenant configured itself (which refuses private
// addresses unless the operator allows them). knowledge.EmbeddingsClient takes it as its
// Resolve.
func (r *Registry) EmbeddingEndpoint(ctx context.Context, tenantID, name string) (knowledge.EmbeddingEndpoint, error) {
	reg, err := r.Models(ctx, tenantID)
	if err != nil {
		return knowledge.EmbeddingEndpoint{}, err
	}
	cfg, ok := reg.Config(name)
	if !ok {
		return knowledge.EmbeddingEndpoint{}, fmt.Errorf("provider %q is not configured", name)
	}
	if cfg.Kind != llm.KindOpenAI {
		return knowledge.EmbeddingEndpoint{}, fmt.Errorf("provider %q is not OpenAI-compatible", name)
	}
	client := r.cfg.NodeClient
	if node, ok := r.cfg.Models.Config(name); !ok || node.BaseURL != cfg.BaseURL {
		client = r.cfg.TenantClient
	}
	return knowledge.EmbeddingEndpoint{BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, Header: cfg.Headers, Client: client}, nil
}

// entry is the tenant's registries, built again once older than the TTL. A failure to read
// the tenant's providers is not kept: the next request tries again.
func (r *Registry) entry(ctx context.Context, tenantID string) (*tenantEntry, error) {
	if v, ok := r.tenants.Load(tenantID); ok {
		if e := v.(*tenantEntry); time.Since(e.built) < r.cfg.TTL {
			return e, nil
		}
	}
	cfgs, err := r.read(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	e := &tenantEntry{cfgs: cfgs, models: r.cfg.Models, speech: r.cfg.Speech, built: time.Now()}
	if len(cfgs) > 0 {
		e.speech = r.cfg.Speech.With(cfgs)
		if e.models, err = r.cfg.Models.With(cfgs); err != nil {
			e.models, e.modelsErr = nil, fmt.Errorf("%w: %w", ErrUnusable, err)
		}
	}
	r.tenants.Store(tenantID, e)
	return e, nil
}

// read reads the tenant's stored providers, keys unsealed.
func (r *Registry) read(ctx context.Context, tenantID string) ([]llm.ProviderConfig, error) {
	if r.cfg.Store == nil {
		return nil, nil
	}
	var cfgs []llm.ProviderConfig
	for offset := 0; ; offset += 100 {
		ps, total, err := store.List[store.ModelProvider](ctx, r.cfg.Store, tenantID, store.Page{Limit: 100, Offset: offset})
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			key, err := p.Key(r.cfg.Store)
			if err != nil {
				return nil, err
			}
			cfg := llm.ProviderConfig{Name: p.Name, Kind: llm.Kind(p.Kind), BaseURL: p.BaseURL, APIKey: key,
				Models: p.Models, Aliases: p.Aliases, Fallbacks: p.Fallbacks, Prices: map[string]llm.Price{},
				SpeechPrices: llm.SpeechPrice(p.SpeechPrices)}
			for m, pr := range p.Prices {
				cfg.Prices[m] = llm.Price{InputPerMTok: pr.InputPerMTok, OutputPerMTok: pr.OutputPerMTok}
			}
			cfgs = append(cfgs, cfg)
		}
		if offset+len(ps) >= total || len(ps) == 0 {
			break
		}
	}
	return cfgs, nil
}
