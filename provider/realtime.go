package provider

import (
	"context"
	"net/http"

	"github.com/switchboard-go/switchboard/agent/s2s"
)

// Realtime resolves a tenant's agent model that is a speech-to-speech model of the Realtime
// protocol (llm.Route.Realtime): where its sessions connect, with the provider's key and
// headers, through the tenant client when the tenant configured the provider itself. ok is
// false for a model that is not one; err is a model that cannot be used at all.
func (r *Registry) Realtime(ctx context.Context, tenantID, model string) (cfg s2s.Config, ok bool, err error) {
	reg, err := r.Models(ctx, tenantID)
	if err != nil {
		return s2s.Config{}, false, err
	}
	rt, err := reg.Route(model)
	if err != nil {
		return s2s.Config{}, false, err
	}
	if !rt.Realtime {
		return s2s.Config{}, false, nil
	}
	pc, _ := reg.Config(rt.ProviderName)
	cfg = s2s.Config{BaseURL: pc.BaseURL, APIKey: pc.APIKey, Model: rt.Upstream}
	if len(pc.Headers) > 0 {
		cfg.Header = http.Header{}
		for k, v := range pc.Headers {
			cfg.Header.Set(k, v)
		}
	}
	// A provider of the node keeps its base URL; one the tenant configured (or replaced)
	// connects only where the tenant client lets it.
	if node, isNode := r.cfg.Models.Config(rt.ProviderName); !isNode || node.BaseURL != pc.BaseURL {
		cfg.Client = r.cfg.TenantClient
	}
	return cfg, true, nil
}
