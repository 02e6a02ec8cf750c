package llm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Registry holds the named providers and resolves "provider/model". It does not change
// once built, so it is safe for concurrent use; With makes a new one.
type Registry struct {
	providers map[string]registered
	opts      []Option
}

type registered struct {
	cfg ProviderConfig
	p   Provider
}

// NewRegistry builds the providers of cfgs; a later configuration of a name replaces an
// earlier one (the providers file over the environment).
func NewRegistry(cfgs []ProviderConfig, opts ...Option) (*Registry, error) {
	r := &Registry{providers: map[string]registered{}, opts: opts}
	return r, r.add(cfgs)
}

// FromEnv builds the registry of the environment: the providers of EnvProviders, then
// those of the file SWITCHBOARD_PROVIDERS_FILE names, if any.
func FromEnv(getenv func(string) string, opts ...Option) (*Registry, error) {
	cfgs, err := Configs(getenv, getenv("SWITCHBOARD_PROVIDERS_FILE"))
	if err != nil {
		return nil, err
	}
	return NewRegistry(cfgs, opts...)
}

// Configs are the providers of the environment (EnvProviders), then those of the providers
// file at path, when there is one.
func Configs(getenv func(string) string, path string) ([]ProviderConfig, error) {
	cfgs := EnvProviders(getenv)
	if path == "" {
		return cfgs, nil
	}
	more, err := LoadProviders(path, getenv)
	if err != nil {
		return nil, err
	}
	return append(cfgs, more...), nil
}

// With is a registry of r's providers and those of cfgs, which replace r's of the same
// name: a tenant's own providers over the server's. The providers of cfgs are the tenant's:
// they connect through the tenant client (WithTenantClient; public addresses only unless
// the operator allowed more) and their errors do not relay what the upstream said or how
// the connection failed.
func (r *Registry) With(cfgs []ProviderConfig) (*Registry, error) {
	n := &Registry{providers: maps.Clone(r.providers), opts: r.opts}
	return n, n.add(cfgs, tenant)
}

func (r *Registry) add(cfgs []ProviderConfig, extra ...Option) error {
	opts := append(slices.Clip(r.opts), extra...)
	for _, c := range cfgs {
		c = c.withDefaults()
		if c.Kind.SpeechOnly() {
			// A voice or a live transcriber has no models: package speech reads it from
			// the configurations, and here its name stands for nothing else.
			if err := c.validate(); err != nil {
				return err
			}
			delete(r.providers, c.Name)
			continue
		}
		p, err := New(c, opts...)
		if err != nil {
			return err
		}
		r.providers[c.Name] = registered{cfg: c, p: p}
	}
	return nil
}

// Route is where a model name leads.
type Route struct {
	// Model is the name as asked: "groq/fast".
	Model        string
	ProviderName string
	Provider     Provider
	// Upstream is the model's name at the provider, aliases resolved: "llama-3.1-8b-instant".
	Upstream string
	// Price is nil for a model without one.
	Price *Price
	// Fallbacks are the "provider/model" names to try, in order, when this one fails before
	// answering.
	Fallbacks []string
	// TextOnly says the model takes no image input (ProviderConfig.TextOnly).
	TextOnly bool
	// Realtime says the model is a speech-to-speech model of the Realtime protocol
	// (ProviderConfig.Realtime): an agent's calls go to it as audio, not text.
	Realtime bool
}

// SplitModel splits "provider/model" at its first slash; the model part may have slashes
// of its own ("together/meta-llama/Llama-3-70b").
func SplitModel(name string) (provider, model string, err error) {
	provider, model, found := strings.Cut(name, "/")
	switch {
	case !found || provider == "":
		return "", "", fmt.Errorf("%w: %q has no provider part", ErrModelName, name)
	case model == "":
		return "", "", fmt.Errorf("%w: %q has no model part", ErrModelName, name)
	}
	return provider, model, nil
}

// Route resolves a model name. It fails with ErrModelName, ErrUnknownProvider, or ErrNoKey
// for a provider that needs a key it has not got.
func (r *Registry) Route(name string) (Route, error) {
	pname, model, err := SplitModel(name)
	if err != nil {
		return Route{}, err
	}
	reg, ok := r.providers[pname]
	if !ok {
		return Route{}, fmt.Errorf("%w: %q (configured: %s)", ErrUnknownProvider, pname, strings.Join(r.Names(), ", "))
	}
	if reg.cfg.KeyRequired && reg.cfg.APIKey == "" {
		hint := ""
		if reg.cfg.KeyEnv != "" {
			hint = ": set " + reg.cfg.KeyEnv
		}
		return Route{}, fmt.Errorf("%w: %q%s", ErrNoKey, pname, hint)
	}
	rt := Route{Model: name, ProviderName: pname, Provider: reg.p, Upstream: model}
	if up, ok := reg.cfg.Aliases[model]; ok {
		rt.Upstream = up
	}
	for _, m := range []string{model, rt.Upstream} {
		if p, ok := reg.cfg.Prices[m]; ok && rt.Price == nil {
			rt.Price = &p
		}
		if fbs, ok := reg.cfg.Fallbacks[m]; ok && rt.Fallbacks == nil {
			rt.Fallbacks = slices.Clone(fbs)
		}
		rt.TextOnly = rt.TextOnly || slices.Contains(reg.cfg.TextOnly, m)
		rt.Realtime = rt.Realtime || reg.cfg.Kind == KindOpenAI && (strings.Contains(m, "realtime") || slices.Contains(reg.cfg.Realtime, m))
	}
	return rt, nil
}

// Resolve is Route for callers that only need the provider and the upstream model name.
func (r *Registry) Resolve(name string) (Provider, string, error) {
	rt, err := r.Route(name)
	if err != nil {
		return nil, "", err
	}
	return rt.Provider, rt.Upstream, nil
}

// Cost is the dollars a request of the model cost; false when the model has no price.
func (r *Registry) Cost(name string, u Usage) (float64, bool) {
	rt, err := r.Route(name)
	if err != nil || rt.Price == nil {
		return 0, false
	}
	return rt.Price.Cost(u), true
}

// Provider is the provider of a name.
func (r *Registry) Provider(name string) (Provider, bool) {
	reg, ok := r.providers[name]
	return reg.p, ok
}

// Config is the configuration of a provider, key included: never show it.
func (r *Registry) Config(name string) (ProviderConfig, bool) {
	reg, ok := r.providers[name]
	return reg.cfg, ok
}

// Names lists the providers, sorted.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.providers))
}

// Models lists, as "provider/model", the models the configuration names (listed models,
// aliases, priced models) of every provider that can be used; it asks no upstream.
func (r *Registry) Models() []string {
	var out []string
	for name, reg := range r.providers {
		if reg.cfg.KeyRequired && reg.cfg.APIKey == "" {
			continue
		}
		seen := map[string]bool{}
		add := func(m string) {
			if !seen[m] {
				seen[m] = true
				out = append(out, name+"/"+m)
			}
		}
		for _, m := range reg.cfg.Models {
			add(m)
		}
		for m := range reg.cfg.Aliases {
			add(m)
		}
		for m := range reg.cfg.Prices {
			add(m)
		}
	}
	slices.Sort(out)
	return out
}
