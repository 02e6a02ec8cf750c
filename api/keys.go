package api

import (
	"net/http"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// KeyCreateRequest makes an API key.
type KeyCreateRequest struct {
	Name string `json:"name"`
	// Kind is the surface the key is for: "agent_studio" (the default: as_live_/as_test_)
	// or "alumia" (alm_live_/alm_test_). Every kind reaches every route of the tenant.
	Kind string `json:"kind"`
	// Env picks the prefix's environment: "live" (the default) or "test".
	Env       string     `json:"env"`
	Scopes    []string   `json:"scopes"`
	RateLimit int        `json:"rate_limit"`
	ExpiresAt *time.Time `json:"expires_at"`
	// TokenLimit bounds model gateway tokens a minute; BudgetUSD what the key may spend
	// there (0: no limit).
	TokenLimit int     `json:"token_limit"`
	BudgetUSD  float64 `json:"budget_usd"`
}

// KeyUpdateRequest changes a key; fields left out keep their values.
type KeyUpdateRequest struct {
	Name       *string    `json:"name"`
	Scopes     []string   `json:"scopes"`
	RateLimit  *int       `json:"rate_limit"`
	ExpiresAt  *time.Time `json:"expires_at"`
	TokenLimit *int       `json:"token_limit"`
	BudgetUSD  *float64   `json:"budget_usd"`
}

// CreatedKey is a new key with its secret, which is shown this once.
type CreatedKey struct {
	store.APIKey
	Key string `json:"key"`
}

func (s *Server) keyRoutes() []route {
	const tag = "API keys"
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/keys", Tag: tag, Summary: "Create an API key; the key is in this answer only", Scope: store.ScopeAdmin,
			Request: KeyCreateRequest{}, Response: CreatedKey{}, Status: http.StatusCreated, Handle: s.createKey},
		{Method: http.MethodGet, Path: "/api/v1/keys", Tag: tag, Summary: "List API keys (never the keys themselves)", Scope: store.ScopeAdmin,
			Response: List[store.APIKey]{}, Status: http.StatusOK, Query: pageQuery, Handle: s.listKeys},
		{Method: http.MethodGet, Path: "/api/v1/keys/{id}", Tag: tag, Summary: "Get an API key", Scope: store.ScopeAdmin,
			Response: store.APIKey{}, Status: http.StatusOK, Handle: s.getKey},
		{Method: http.MethodPatch, Path: "/api/v1/keys/{id}", Tag: tag, Summary: "Rename a key or change its scopes, rate limit or expiry", Scope: store.ScopeAdmin,
			Request: KeyUpdateRequest{}, Response: store.APIKey{}, Status: http.StatusOK, Handle: s.updateKey},
		{Method: http.MethodDelete, Path: "/api/v1/keys/{id}", Tag: tag, Summary: "Revoke an API key; it stops working at once", Scope: store.ScopeAdmin,
			Status: http.StatusNoContent, Handle: s.revokeKey},
	}
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	req := KeyCreateRequest{Env: "live"}
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	kind, err := keyPrefix(req.Kind, req.Env)
	if err != nil {
		return err
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		return errValidation("expires_at", "must be in the future")
	}
	k := &store.APIKey{Name: req.Name, Kind: kind, Scopes: req.Scopes, RateLimit: req.RateLimit, ExpiresAt: utcPtr(req.ExpiresAt),
		TokenLimit: req.TokenLimit, BudgetUSD: req.BudgetUSD}
	secret, err := s.makeKey(r.Context(), p, k, false)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, CreatedKey{APIKey: *k, Key: secret})
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	items, total, err := store.List[store.APIKey](r.Context(), s.store, p.TenantID, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.APIKey]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	k, err := store.Get[store.APIKey](r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if err != nil {
		return keyNotFound(err)
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

func (s *Server) updateKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req KeyUpdateRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	k, err := store.Get[store.APIKey](r.Context(), s.store, p.TenantID, r.PathValue("id"))
	if err != nil {
		return keyNotFound(err)
	}
	before := *k
	if req.Name != nil {
		k.Name = *req.Name
	}
	if req.Scopes != nil {
		k.Scopes = req.Scopes
	}
	if req.RateLimit != nil {
		k.RateLimit = *req.RateLimit
	}
	if req.ExpiresAt != nil {
		k.ExpiresAt = utcPtr(req.ExpiresAt)
	}
	if req.TokenLimit != nil {
		k.TokenLimit = *req.TokenLimit
	}
	if req.BudgetUSD != nil {
		k.BudgetUSD = *req.BudgetUSD
	}
	if err := s.checkKeyChange(r.Context(), p, &before, k); err != nil {
		return err
	}
	if err := store.Update(r.Context(), s.store, k); err != nil {
		return keyNotFound(err)
	}
	// The keys it made are bounded by what it holds now from their next request.
	s.auth.ForgetKey(k.ID)
	writeJSON(w, http.StatusOK, k)
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	// Every key the key made, and every key those made, goes with it, each one's streams
	// closed as its own revocation would close them.
	keys, err := s.store.RevokeAPIKey(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		return keyNotFound(err)
	}
	rvs := make([]realtime.Revocation, len(keys))
	for i, k := range keys {
		s.auth.Forget(k.Hash)
		rvs[i] = realtime.Revocation{TenantID: k.TenantID, KeyID: k.ID, Reason: realtime.ReasonKeyRevoked}
	}
	s.revoke(r.Context(), rvs...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// keyPrefix is the prefix of a new key of kind ("" is agent_studio) and env.
func keyPrefix(kind, env string) (string, error) {
	prefix, kindOK, envOK := store.KeyPrefix(kind, env)
	switch {
	case !kindOK:
		return "", errValidation("kind", "must be "+store.KeySurfaces)
	case !envOK:
		return "", errValidation("env", "must be live or test")
	}
	return prefix, nil
}

func keyNotFound(err error) error {
	if asError(err).Status == http.StatusNotFound {
		return errNotFound("API key")
	}
	return err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
