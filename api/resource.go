package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/realtime"

	"github.com/switchboard-go/switchboard/store"
)

// resource serves create, list, get, update (PATCH) and delete of one kind of tenant-owned
// model at /api/v1/{plural}. Bodies are decoded over the model itself: a create over the
// model's defaults, a PATCH over the stored row, so that what a client leaves out keeps its
// value. Identity and times are the server's: a body cannot change them.
type resource[T any, P store.Model[T]] struct {
	singular, plural string
	tag              string
	// scope is the scope needed to change the resource (reading needs read, or this when
	// it is admin and readable is false).
	scope string
	// readable lets a key with read alone read a resource that only admins change.
	readable bool
	new      func() P
	// keepReadOnly copies fields a client may not set from src (the stored row, or the
	// defaults) back into dst after a body was decoded over dst.
	keepReadOnly func(dst, src P)
	// changed, when set, is told of every create, update and delete (to publish events).
	changed func(ctx context.Context, s *Server, tenantID, id, action string, m P)
	// reconcile, when set, settles fields that say the same thing two ways after a body was
	// decoded over m: before is the stored row, or the defaults (an agent's instructions and
	// its config.prompt.system).
	reconcile func(m, before P) error
	// check, when set, vets a row against the node's configuration before it is written:
	// before is the stored row, or the defaults.
	check func(ctx context.Context, s *Server, tenantID string, m, before P) error
	// present, when set, fills what rows show but do not store (a trunk's registration)
	// before they are written out.
	present func(ctx context.Context, s *Server, tenantID string, ms ...P) error
}

func (res resource[T, P]) show(ctx context.Context, s *Server, tenantID string, ms ...P) error {
	if res.present == nil {
		return nil
	}
	return res.present(ctx, s, tenantID, ms...)
}

func (res resource[T, P]) notify(ctx context.Context, s *Server, tenantID, id, action string, m P) {
	if res.changed != nil {
		res.changed(ctx, s, tenantID, id, action, m)
	}
}

func (res resource[T, P]) path() string { return "/api/v1/" + res.plural }

func (res resource[T, P]) readScope() string {
	if res.scope == store.ScopeAdmin && !res.readable {
		return store.ScopeAdmin
	}
	return store.ScopeRead
}

func (res resource[T, P]) routes(s *Server) []route {
	var zero T
	item := "/api/v1/" + res.plural + "/{id}"
	write := res.scope
	if write == "" {
		write = store.ScopeWrite
	}
	return []route{
		{Method: http.MethodPost, Path: res.path(), Tag: res.tag, Summary: "Create a " + res.singular, Scope: write,
			Request: zero, Response: zero, Status: http.StatusCreated, Handle: res.create(s)},
		{Method: http.MethodGet, Path: res.path(), Tag: res.tag, Summary: "List " + res.plural, Scope: res.readScope(),
			Response: List[T]{}, Status: http.StatusOK, Query: pageQuery, Handle: res.list(s)},
		{Method: http.MethodGet, Path: item, Tag: res.tag, Summary: "Get a " + res.singular, Scope: res.readScope(),
			Response: zero, Status: http.StatusOK, Handle: res.get(s)},
		{Method: http.MethodPatch, Path: item, Tag: res.tag, Summary: "Update a " + res.singular + " (fields left out keep their values)", Scope: write,
			Request: zero, Response: zero, Status: http.StatusOK, Handle: res.update(s)},
		{Method: http.MethodDelete, Path: item, Tag: res.tag, Summary: "Delete a " + res.singular, Scope: write,
			Status: http.StatusNoContent, Handle: res.delete(s)},
	}
}

var pageQuery = []param{
	{Name: "limit", Description: "Items per page, 1 to 100 (default 20)", Integer: true},
	{Name: "offset", Description: "Items to skip (default 0)", Integer: true},
}

func (res resource[T, P]) create(s *Server) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		m, defaults := res.new(), res.new()
		if err := decodeInto(body, m, false); err != nil {
			return err
		}
		*m.Base() = store.Row{}
		if res.keepReadOnly != nil {
			res.keepReadOnly(m, defaults)
		}
		if res.reconcile != nil {
			if err := res.reconcile(m, defaults); err != nil {
				return err
			}
		}
		if res.check != nil {
			if err := res.check(r.Context(), s, p.TenantID, m, defaults); err != nil {
				return err
			}
		}
		if err := store.Create(r.Context(), s.store, p.TenantID, m); err != nil {
			return err
		}
		res.notify(r.Context(), s, p.TenantID, m.Base().ID, "created", m)
		if err := res.show(r.Context(), s, p.TenantID, m); err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, m)
		return nil
	}
}

func (res resource[T, P]) list(s *Server) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		page, err := pageParams(r)
		if err != nil {
			return err
		}
		items, total, err := store.List[T, P](r.Context(), s.store, p.TenantID, page)
		if err != nil {
			return err
		}
		if res.present != nil {
			ms := make([]P, len(items))
			for i := range items {
				ms[i] = &items[i]
			}
			if err := res.show(r.Context(), s, p.TenantID, ms...); err != nil {
				return err
			}
		}
		writeJSON(w, http.StatusOK, List[T]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
		return nil
	}
}

func (res resource[T, P]) get(s *Server) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		m, err := store.Get[T, P](r.Context(), s.store, p.TenantID, r.PathValue("id"))
		if err != nil {
			return res.notFound(err)
		}
		if err := res.show(r.Context(), s, p.TenantID, m); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}
}

func (res resource[T, P]) update(s *Server) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		m, err := store.Get[T, P](r.Context(), s.store, p.TenantID, r.PathValue("id"))
		if err != nil {
			return res.notFound(err)
		}
		stored := *m
		if err := decodeInto(body, m, true); err != nil {
			return err
		}
		*m.Base() = *P(&stored).Base()
		if res.keepReadOnly != nil {
			res.keepReadOnly(m, &stored)
		}
		if res.reconcile != nil {
			if err := res.reconcile(m, &stored); err != nil {
				return err
			}
		}
		if res.check != nil {
			if err := res.check(r.Context(), s, p.TenantID, m, &stored); err != nil {
				return err
			}
		}
		if err := store.Update(r.Context(), s.store, m); err != nil {
			return res.notFound(err)
		}
		res.notify(r.Context(), s, p.TenantID, m.Base().ID, "updated", m)
		if err := res.show(r.Context(), s, p.TenantID, m); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}
}

func (res resource[T, P]) delete(s *Server) func(http.ResponseWriter, *http.Request, *Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		if err := store.Delete[T, P](r.Context(), s.store, p.TenantID, r.PathValue("id")); err != nil {
			return res.notFound(err)
		}
		res.notify(r.Context(), s, p.TenantID, r.PathValue("id"), "deleted", nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// notFound names the resource in a not-found answer.
func (res resource[T, P]) notFound(err error) error {
	if e := asError(err); e.Status == http.StatusNotFound {
		return errNotFound(capitalize(res.singular))
	}
	return err
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

var (
	agentResource = resource[store.Agent, *store.Agent]{
		singular: "agent", plural: "agents", tag: "Agents", new: store.NewAgent, check: checkAgent, reconcile: reconcileAgentConfig,
		changed: func(ctx context.Context, s *Server, tenantID, id, action string, a *store.Agent) {
			if a != nil && a.Server != nil { // a generated secret is shown to its creator alone
				redacted := *a
				redacted.Server = a.Server.Redacted()
				a = &redacted
			}
			s.publish(ctx, tenantID, "agent:"+id, realtime.TypeAgentUpdated, AgentChange{AgentID: id, Action: action, Agent: a})
		},
		keepReadOnly: func(dst, src *store.Agent) { dst.Server.KeepSecret(src.Server) },
	}
	workflowResource = resource[store.Workflow, *store.Workflow]{
		singular: "workflow", plural: "workflows", tag: "Workflows",
		new: func() *store.Workflow { return &store.Workflow{Metadata: map[string]any{}} },
	}
	toolResource = resource[store.Tool, *store.Tool]{
		singular: "tool", plural: "tools", tag: "Tools", new: store.NewTool,
	}
	phoneNumberResource = resource[store.PhoneNumber, *store.PhoneNumber]{
		singular: "phone number", plural: "phone-numbers", tag: "Phone numbers", new: store.NewPhoneNumber,
		check: checkNumberServer, keepReadOnly: func(dst, src *store.PhoneNumber) { dst.Server.KeepSecret(src.Server) },
	}
	// Trunks decide who may call a tenant's numbers and whose calls built-in destinations
	// take (see the sip package's routing), so only the tenant's admins change them.
	trunkResource = resource[store.Trunk, *store.Trunk]{
		singular: "trunk", plural: "trunks", tag: "Trunks", scope: store.ScopeAdmin, readable: true, new: store.NewTrunk,
		keepReadOnly: func(dst, src *store.Trunk) {
			dst.InboundPasswordEnc, dst.OutboundPasswordEnc = src.InboundPasswordEnc, src.OutboundPasswordEnc
		},
		present: showRegistrations,
		// The SIP server starts, restarts or stops the trunk's registration at once.
		changed: func(_ context.Context, s *Server, _, _, _ string, _ *store.Trunk) {
			if w, ok := s.cfg.Calls.(trunkWatcher); ok {
				w.TrunksChanged()
			}
		},
	}
	providerResource = resource[store.ModelProvider, *store.ModelProvider]{
		singular: "provider", plural: "providers", tag: "Model providers", scope: store.ScopeAdmin, new: store.NewModelProvider,
		keepReadOnly: func(dst, src *store.ModelProvider) { dst.APIKeyEnc = src.APIKeyEnc },
		check:        checkProviderURL,
		changed: func(_ context.Context, s *Server, tenantID, _, _ string, _ *store.ModelProvider) {
			s.providers.Invalidate(tenantID)
		},
	}
	userResource = resource[store.User, *store.User]{
		singular: "user", plural: "users", tag: "Users", scope: store.ScopeAdmin,
		new: func() *store.User { return &store.User{Scopes: []string{store.ScopeRead, store.ScopeWrite}} },
		keepReadOnly: func(dst, src *store.User) {
			dst.PasswordHash, dst.LastLoginAt = src.PasswordHash, src.LastLoginAt
		},
		// A deleted user's access tokens and open streams stop at once.
		changed: func(ctx context.Context, s *Server, tenantID, id, action string, _ *store.User) {
			if action == "deleted" {
				s.revoke(ctx, realtime.Revocation{TenantID: tenantID, UserID: id, Reason: realtime.ReasonUserDeleted})
			}
		},
	}
)

// trunkWatcher is told of every trunk written through the API (the SIP server, which
// registers the trunks that ask it).
type trunkWatcher interface{ TrunksChanged() }

// showRegistrations fills the registration of each trunk that registers with its provider.
func showRegistrations(ctx context.Context, s *Server, tenantID string, ts ...*store.Trunk) error {
	ids := make([]string, 0, len(ts))
	for _, t := range ts {
		if t.Outbound.Register {
			ids = append(ids, t.ID)
		}
	}
	regs, err := store.TrunkRegistrations(ctx, s.store, tenantID, ids)
	if err != nil {
		return err
	}
	for _, t := range ts {
		t.ShowRegistration(regs)
	}
	return nil
}

// checkProviderURL refuses a tenant's provider whose base_url is obviously not public (a
// loopback, private or link-local address, localhost), unless the operator allows private
// providers. It is a courtesy: the tenant client checks every connection, whatever a name
// resolves to.
func checkProviderURL(_ context.Context, s *Server, _ string, p, _ *store.ModelProvider) error {
	if s.cfg.AllowPrivateProviders || p.BaseURL == "" {
		return nil
	}
	if err := netguard.CheckURL(p.BaseURL); errors.Is(err, netguard.ErrPrivateAddress) {
		return errValidation("base_url", "must be a public address: this server does not let tenants' providers reach loopback, private or link-local addresses")
	}
	return nil
}

// checkAgentModel refuses an agent whose conversations need a model this node cannot reach:
// an agent without a workflow talks through its model, so the model's provider must be
// configured (on the node, or as one of the tenant's providers) and have its key. An
// agent with a workflow uses its model only in llm steps, which say so when it is missing.
func checkAgentModel(ctx context.Context, s *Server, tenantID string, a *store.Agent) error {
	if a.WorkflowID != nil {
		return nil
	}
	reg, err := s.registryFor(ctx, tenantID)
	if err != nil {
		return err
	}
	// A server built without any model provider (no gateway: some tests and tools) has
	// nothing to check against; switchboard serve always has openai and anthropic.
	if len(reg.Names()) == 0 {
		return nil
	}
	if _, err := reg.Route(a.Model); err != nil {
		return errValidation("model", "cannot be used: %v; configure its provider (environment, SWITCHBOARD_PROVIDERS_FILE or /api/v1/providers) or give the agent a workflow", err)
	}
	return nil
}
