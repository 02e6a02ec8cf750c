package api

import (
	"encoding/json"
	"net/http"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// TenantRequest creates or changes a tenant.
type TenantRequest struct {
	Slug     string         `json:"slug"`
	Name     string         `json:"name"`
	Metadata map[string]any `json:"metadata"`
	// BalanceUSD sets the tenant's prepaid balance (operators only); null keeps none, and
	// the tenant is then not limited by one. Model usage draws it down; at or below zero,
	// Alumia chat requests on priced models are answered 402.
	BalanceUSD *float64 `json:"balance_usd"`
	// MaxCalls bounds the tenant's concurrent calls across every node (operators only; 0:
	// only each node's per-tenant limit).
	MaxCalls int `json:"max_calls"`
}

// checkBalance vets a balance an operator sets, before anything is written.
func checkBalance(usd *float64) error {
	if usd != nil && (*usd < 0 || *usd > store.MaxBalanceUSD) {
		return errValidation("balance_usd", "must be null or between 0 and %g", float64(store.MaxBalanceUSD))
	}
	return nil
}

// Tenants are managed by operators (admins of the default tenant). An admin of any other
// tenant sees and may rename its own tenant only; every other tenant is not found for it.
func (s *Server) tenantRoutes() []route {
	const tag = "Tenants"
	return []route{
		{Method: http.MethodPost, Path: "/api/v1/tenants", Tag: tag, Summary: "Create a tenant (operators only)", Scope: store.ScopeAdmin,
			Request: TenantRequest{}, Response: store.Tenant{}, Status: http.StatusCreated, Handle: s.createTenant},
		{Method: http.MethodGet, Path: "/api/v1/tenants", Tag: tag, Summary: "List tenants (an operator sees all, others their own)", Scope: store.ScopeAdmin,
			Response: List[store.Tenant]{}, Status: http.StatusOK, Query: pageQuery, Handle: s.listTenants},
		{Method: http.MethodGet, Path: "/api/v1/tenants/{id}", Tag: tag, Summary: "Get a tenant", Scope: store.ScopeAdmin,
			Response: store.Tenant{}, Status: http.StatusOK, Handle: s.getTenant},
		{Method: http.MethodPatch, Path: "/api/v1/tenants/{id}", Tag: tag, Summary: "Update a tenant", Scope: store.ScopeAdmin,
			Request: TenantRequest{}, Response: store.Tenant{}, Status: http.StatusOK, Handle: s.updateTenant},
		{Method: http.MethodDelete, Path: "/api/v1/tenants/{id}", Tag: tag, Summary: "Delete a tenant and everything it owns (operators only)", Scope: store.ScopeAdmin,
			Status: http.StatusNoContent, Handle: s.deleteTenant},
	}
}

func operatorOnly(p *Principal) error {
	if !p.Operator {
		return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "Only an admin of the default tenant may manage other tenants"}
	}
	return nil
}

// visibleTenant reads a tenant the principal may see: any for an operator, its own otherwise.
func (s *Server) visibleTenant(r *http.Request, p *Principal) (*store.Tenant, error) {
	id := r.PathValue("id")
	if !p.Operator && id != p.TenantID {
		return nil, errNotFound("Tenant")
	}
	t, err := s.store.Tenant(r.Context(), id)
	if err != nil {
		if asError(err).Status == http.StatusNotFound {
			return nil, errNotFound("Tenant")
		}
		return nil, err
	}
	return t, nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := operatorOnly(p); err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req TenantRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	name := req.Name
	if name == "" {
		name = req.Slug
	}
	if err := checkBalance(req.BalanceUSD); err != nil {
		return err
	}
	t := &store.Tenant{Slug: req.Slug, Name: name, Metadata: req.Metadata, BalanceUSD: req.BalanceUSD, MaxCalls: req.MaxCalls}
	if err := s.store.CreateTenant(r.Context(), t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	if !p.Operator {
		t, err := s.store.Tenant(r.Context(), p.TenantID)
		if err != nil {
			return err
		}
		items := []store.Tenant{}
		if page.Offset == 0 {
			items = append(items, *t)
		}
		writeJSON(w, http.StatusOK, List[store.Tenant]{Items: items, Total: 1, Limit: page.Limit, Offset: page.Offset})
		return nil
	}
	items, total, err := s.store.ListTenants(r.Context(), page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.Tenant]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, p *Principal) error {
	t, err := s.visibleTenant(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	t, err := s.visibleTenant(r, p)
	if err != nil {
		return err
	}
	req := TenantRequest{Slug: t.Slug, Name: t.Name, Metadata: t.Metadata, BalanceUSD: t.BalanceUSD, MaxCalls: t.MaxCalls}
	if err := decodeInto(body, &req, true); err != nil {
		return err
	}
	if req.Slug != t.Slug && t.Slug == store.DefaultTenantSlug {
		return errValidation("slug", "of the default tenant cannot change")
	}
	// The balance is written apart from the rest (SetTenantBalance), and only when the
	// body names it: a rename must not put back what usage has drawn down meanwhile.
	var named map[string]json.RawMessage
	_ = json.Unmarshal(body, &named)
	_, setBalance := named["balance_usd"]
	if setBalance {
		if !p.Operator {
			return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "Only an admin of the default tenant may set a tenant's balance"}
		}
		if err := checkBalance(req.BalanceUSD); err != nil {
			return err
		}
	}
	if req.MaxCalls != t.MaxCalls && !p.Operator {
		return &Error{Status: http.StatusForbidden, Code: codeAuthorization, Message: "Only an admin of the default tenant may set a tenant's limit of calls"}
	}
	t.Slug, t.Name, t.Metadata, t.MaxCalls = req.Slug, req.Name, req.Metadata, req.MaxCalls
	if err := s.store.UpdateTenant(r.Context(), t); err != nil {
		return err
	}
	if setBalance {
		if t, err = s.store.SetTenantBalance(r.Context(), t.ID, req.BalanceUSD); err != nil {
			return err
		}
	}
	s.forgetOrgs()
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request, p *Principal) error {
	t, err := s.visibleTenant(r, p)
	if err != nil {
		return err
	}
	if err := operatorOnly(p); err != nil {
		return err
	}
	if err := s.store.DeleteTenant(r.Context(), t.ID); err != nil {
		return err
	}
	s.forgetOrgs()
	s.revoke(r.Context(), realtime.Revocation{TenantID: t.ID, Reason: realtime.ReasonTenantDeleted})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
