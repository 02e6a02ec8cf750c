package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// AmaStudio's keys: POST /v1/keys makes an amallm_ key, GET /v1/keys lists the tenant's.

type amaKeyRequest struct {
	Name string `json:"name"`
	// The rest narrow the new key; left out, it has what its maker has (see boundByMaker).
	Scopes     []string   `json:"scopes,omitempty"`
	RateLimit  int        `json:"rate_limit,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	TokenLimit int        `json:"token_limit,omitempty"`
	BudgetUSD  float64    `json:"budget_usd,omitempty"`
}

type amaKeyCreated struct {
	Key       string     `json:"key"`
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

type amaKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

type amaKeyList struct {
	Keys []amaKey `json:"keys"`
}

type amaValidate struct {
	Valid    bool     `json:"valid"`
	KeyID    string   `json:"key_id,omitempty"`
	TenantID string   `json:"tenant_id"`
	Scopes   []string `json:"scopes"`
}

func (s *Server) amaCreateKey(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req amaKeyRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	k := &store.APIKey{Name: req.Name, Kind: amaStudioKind, Scopes: req.Scopes, RateLimit: req.RateLimit,
		ExpiresAt: utcPtr(req.ExpiresAt), TokenLimit: req.TokenLimit, BudgetUSD: req.BudgetUSD}
	secret, err := s.makeKey(r.Context(), p, k, true)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, amaKeyCreated{Key: secret, ID: k.ID, Name: k.Name, Scopes: k.Scopes, ExpiresAt: k.ExpiresAt})
	return nil
}

func (s *Server) amaListKeys(w http.ResponseWriter, r *http.Request, p *Principal) error {
	out := amaKeyList{Keys: []amaKey{}}
	for offset := 0; ; offset += 100 {
		keys, total, err := store.List[store.APIKey](r.Context(), s.store, p.TenantID, store.Page{Limit: 100, Offset: offset})
		if err != nil {
			return err
		}
		for _, k := range keys {
			out.Keys = append(out.Keys, amaKey{ID: k.ID, Name: k.Name, Prefix: k.Display, Scopes: k.Scopes, CreatedAt: k.CreatedAt,
				LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt})
		}
		if offset+len(keys) >= total || len(keys) == 0 {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) amaValidate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	writeJSON(w, http.StatusOK, amaValidate{Valid: true, KeyID: p.KeyID, TenantID: p.TenantID, Scopes: p.Scopes})
	return nil
}

// makeKey is how every route makes a key for p: bounded by p (boundByMaker) and, when p is a
// key, recorded as made by it, so that it stays bounded by p while it is used and is revoked
// with it. inheritScopes gives the key p's scopes when it asks none.
func (s *Server) makeKey(ctx context.Context, p *Principal, k *store.APIKey, inheritScopes bool) (string, error) {
	if err := s.boundByMaker(ctx, p, k, inheritScopes); err != nil {
		return "", err
	}
	k.ParentID = p.KeyID
	return s.store.CreateAPIKey(ctx, p.TenantID, k)
}

// checkKeyChange refuses a change to key (before → after) that gives it more than it may
// have: no key raises its own limits or those of a key above it in its chain of makers (it
// may narrow them), and a key made by a key never holds more than its maker holds now. The
// fields the change leaves alone are not judged, so a key whose maker was narrowed since can
// still be renamed; while used it is bounded by its makers whatever it holds.
func (s *Server) checkKeyChange(ctx context.Context, p *Principal, before, after *store.APIKey) error {
	if p.key != nil && (before.ID == p.KeyID || slices.ContainsFunc(p.makers, func(m *store.APIKey) bool { return m.ID == before.ID })) {
		if fields := s.widens(before, after); len(fields) > 0 {
			field := fields[0]
			who := "its own"
			if before.ID != p.KeyID {
				who = "those of the key that made it"
			}
			return keyBeyond(field, "cannot be raised: a key cannot raise "+who)
		}
	}
	if after.ParentID == "" {
		return nil
	}
	maker, err := store.Get[store.APIKey](ctx, s.store, after.TenantID, after.ParentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, field := range s.widens(maker, after) {
		if changed(before, after, field) {
			return keyBeyond(field, "must not exceed what "+maker.ID+", the key that made it, holds")
		}
	}
	return nil
}

// widens names the fields in which b holds more than a (a higher scope, a higher or no
// limit where a has one, a later or no expiry where a has one).
func (s *Server) widens(a, b *store.APIKey) []string {
	top := func(scopes []string) int {
		t := 0
		for _, sc := range scopes {
			t = max(t, scopeRank(sc))
		}
		return t
	}
	rate := func(n int) int {
		if n == 0 {
			return s.cfg.DefaultRateLimit
		}
		return n
	}
	var out []string
	if top(b.Scopes) > top(a.Scopes) {
		out = append(out, "scopes")
	}
	if rate(b.RateLimit) > rate(a.RateLimit) {
		out = append(out, "rate_limit")
	}
	if a.TokenLimit > 0 && (b.TokenLimit == 0 || b.TokenLimit > a.TokenLimit) {
		out = append(out, "token_limit")
	}
	if a.BudgetUSD > 0 && (b.BudgetUSD == 0 || b.BudgetUSD > a.BudgetUSD) {
		out = append(out, "budget_usd")
	}
	if a.ExpiresAt != nil && (b.ExpiresAt == nil || b.ExpiresAt.After(*a.ExpiresAt)) {
		out = append(out, "expires_at")
	}
	return out
}

// changed reports whether a change touched field.
func changed(before, after *store.APIKey, field string) bool {
	switch field {
	case "scopes":
		return !slices.Equal(before.Scopes, after.Scopes)
	case "rate_limit":
		return before.RateLimit != after.RateLimit
	case "token_limit":
		return before.TokenLimit != after.TokenLimit
	case "budget_usd":
		return before.BudgetUSD != after.BudgetUSD
	case "expires_at":
		return !(before.ExpiresAt == nil && after.ExpiresAt == nil || before.ExpiresAt != nil && after.ExpiresAt != nil && before.ExpiresAt.Equal(*after.ExpiresAt))
	}
	return true
}

// keyBeyond is the 403 of a key asked to hold more than it may, naming the field.
func keyBeyond(field, msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "Invalid request: " + field + " " + msg,
		Details: []store.FieldError{{Field: field, Message: msg}}}
}

// boundByMaker makes sure a key about to be made for p holds no more than p: its tenant
// (always p's), scopes, rate limit, expiry, token limit and budget. What k leaves open it
// takes from p (scopes too when inheritScopes is set, else the store's read and write); what
// it asks beyond p is refused with 403 naming the field. A key made by a signed-in user is
// bounded by the user's scopes; users have no limits of their own.
func (s *Server) boundByMaker(ctx context.Context, p *Principal, k *store.APIKey, inheritScopes bool) error {
	beyond := func(field, format string, args ...any) error {
		return keyBeyond(field, fmt.Sprintf(format, args...))
	}
	if k.Scopes == nil && inheritScopes {
		k.Scopes = append([]string(nil), p.Scopes...)
	}
	for i, sc := range k.Scopes {
		if (sc == store.ScopeRead || sc == store.ScopeWrite || sc == store.ScopeAdmin) && !p.Has(sc) {
			return beyond(fmt.Sprintf("scopes[%d]", i), "cannot be %s: the credential making the key does not hold it", sc)
		}
	}
	mk := p.key
	if mk == nil {
		return nil
	}
	now := time.Now()
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		return errValidation("expires_at", "must be in the future")
	}
	if mk.ExpiresAt != nil {
		switch {
		case k.ExpiresAt == nil:
			k.ExpiresAt = utcPtr(mk.ExpiresAt)
		case k.ExpiresAt.After(*mk.ExpiresAt):
			return beyond("expires_at", "must not be later than %s, when the key making it expires", mk.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	if mk.RateLimit > 0 || k.RateLimit > 0 {
		limit := mk.RateLimit
		if limit == 0 {
			limit = s.cfg.DefaultRateLimit
		}
		switch {
		case k.RateLimit == 0:
			k.RateLimit = mk.RateLimit
		case k.RateLimit > limit:
			return beyond("rate_limit", "must be at most %d, the limit of the key making it", limit)
		}
	}
	if mk.TokenLimit > 0 {
		switch {
		case k.TokenLimit == 0:
			k.TokenLimit = mk.TokenLimit
		case k.TokenLimit > mk.TokenLimit:
			return beyond("token_limit", "must be at most %d, the limit of the key making it", mk.TokenLimit)
		}
	}
	if mk.BudgetUSD > 0 {
		spent, err := s.store.SpentUSDTree(ctx, p.TenantID, mk.ID)
		if err != nil {
			return err
		}
		left := mk.BudgetUSD - spent
		switch {
		case left <= 0:
			return &Error{Status: http.StatusPaymentRequired, Code: "budget_exhausted", Message: "The spending budget of this key is used up: it cannot make keys that spend"}
		case k.BudgetUSD == 0:
			k.BudgetUSD = left
		case k.BudgetUSD > left:
			return beyond("budget_usd", "must be at most %.6g USD, what is left of the budget of the key making it", left)
		}
	}
	return nil
}
