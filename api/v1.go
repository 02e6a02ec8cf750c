package api

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// The /v1 surface of AmaStudio: the model gateway in OpenAI's and Anthropic's dialects,
// the models list, and AmaStudio's own key and login routes, which answer errors as
// {"error":{"message","code":<status>}}.
func (s *Server) v1Routes() []route {
	const tag = "Model gateway (/v1)"
	return append([]route{
		{Method: http.MethodPost, Path: "/v1/chat/completions", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectOpenAI, Status: http.StatusOK,
			Summary: "OpenAI-compatible chat completions (streaming, tools) over any provider: model is provider/model or agent/{id}",
			Request: oaiRequest{}, Response: oaiCompletion{}, Handle: s.serveGateway(openAIDialect)},
		{Method: http.MethodPost, Path: "/v1/messages", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectAnthropic, Status: http.StatusOK,
			Summary: "Anthropic Messages API (streaming with event: lines, tools) over any provider",
			Request: antRequest{}, Response: antMessageOut{}, Handle: s.serveGateway(anthropicDialect)},
		{Method: http.MethodGet, Path: "/v1/models", Tag: tag, Scope: store.ScopeRead, Dialect: dialectOpenAI, Status: http.StatusOK,
			Summary:  "The models this key may use: every configured provider's, and the tenant's agents as agent/{id}",
			Response: modelList{}, Handle: s.listModels},
		{Method: http.MethodPost, Path: "/v1/keys", Tag: "AmaStudio keys", Scope: store.ScopeAdmin, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "Create an amallm_ key; it is in this answer only", Request: amaKeyRequest{}, Response: amaKeyCreated{}, Handle: s.amaCreateKey},
		{Method: http.MethodGet, Path: "/v1/keys", Tag: "AmaStudio keys", Scope: store.ScopeAdmin, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "List keys (never the keys themselves)", Response: amaKeyList{}, Handle: s.amaListKeys},
		{Method: http.MethodGet, Path: "/v1/keys/validate", Tag: "AmaStudio keys", Scope: store.ScopeRead, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "Check the key of this request", Response: amaValidate{}, Handle: s.amaValidate},
		{Method: http.MethodPost, Path: "/v1/auth/login", Tag: "AmaStudio keys", Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "Sign in with email and password", Request: LoginRequest{}, Response: TokenResponse{}, Handle: s.login},
	}, s.amaSessionRoutes()...)
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request, p *Principal) error {
	out := modelList{Object: "list", Data: []modelInfo{}}
	now := s.started.Unix()
	reg, err := s.registryFor(r.Context(), p.TenantID)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, m := range reg.Models() {
		provider, _, _ := strings.Cut(m, "/")
		listed[provider] = true
		out.Data = append(out.Data, modelInfo{ID: m, Object: "model", Created: now, OwnedBy: provider})
	}
	// A provider whose configuration names no models is asked for its own list.
	for _, name := range reg.Names() {
		cfg, _ := reg.Config(name)
		if listed[name] || (cfg.KeyRequired && cfg.APIKey == "") {
			continue
		}
		for _, m := range s.upstreamModels(r.Context(), p.TenantID, name, reg) {
			out.Data = append(out.Data, modelInfo{ID: name + "/" + m, Object: "model", Created: now, OwnedBy: name})
		}
	}
	for offset := 0; ; offset += 100 {
		agents, total, err := store.List[store.Agent](r.Context(), s.store, p.TenantID, store.Page{Limit: 100, Offset: offset})
		if err != nil {
			return err
		}
		for _, a := range agents {
			out.Data = append(out.Data, modelInfo{ID: "agent/" + a.ID, Object: "model", Created: a.CreatedAt.Unix(), OwnedBy: "agent"})
		}
		if offset+len(agents) >= total || len(agents) == 0 {
			break
		}
	}
	sort.SliceStable(out.Data, func(i, j int) bool { return out.Data[i].ID < out.Data[j].ID })
	writeJSON(w, http.StatusOK, out)
	return nil
}

// upstreamModels asks a provider for its models, briefly, and remembers the answer for a
// few minutes; a provider that does not answer lists nothing.
func (s *Server) upstreamModels(ctx context.Context, tenantID, name string, reg *llm.Registry) []string {
	key := tenantID + "\x00" + name
	if v, ok := s.modelLists.Load(key); ok {
		if ml := v.(modelListing); time.Since(ml.at) < 5*time.Minute {
			return ml.models
		}
	}
	p, ok := reg.Provider(name)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	models, err := p.Models(ctx)
	if err != nil {
		s.log.Debug("provider did not list its models", "provider", name, "err", err)
		models = nil
	}
	s.modelLists.Store(key, modelListing{models: models, at: time.Now()})
	return models
}

type modelListing struct {
	models []string
	at     time.Time
}
