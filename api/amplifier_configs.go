package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/store"
)

// Amplifier's configs: YAML bundles kept exactly as written, each also the agent it defines
// (store.AmplifierConfig), so that a config is run like any agent: from a session here, at
// /api/v1/sessions, on a call. What the YAML says of the agent is checked against this node
// before anything is stored: its provider modules must be providers the tenant can reach,
// its ${VAR}s may only name the credentials of those providers (never any other variable of
// the node's environment, which a tenant must not be able to read), and its tools must be
// the tenant's tools. Deleting a config deletes its agent; the agent's sessions keep their
// history, as when any agent is deleted.

// AmplifierConfigRequest creates a config (name and yaml_content required) or changes one
// (every field optional).
type AmplifierConfigRequest struct {
	Name        *string           `json:"name"`
	Description *string           `json:"description"`
	YAMLContent *string           `json:"yaml_content"`
	Tags        map[string]string `json:"tags"`
}

// AmplifierConfigOut is a config as Amplifier answers it, with the agent it defines.
type AmplifierConfigOut struct {
	ConfigID    string            `json:"config_id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	YAMLContent *string           `json:"yaml_content,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Tags        map[string]string `json:"tags"`
	AgentID     *string           `json:"agent_id"`
	Message     string            `json:"message,omitempty"`
}

// AmplifierConfigList is a page of the tenant's configs, newest first, without their YAML.
type AmplifierConfigList struct {
	Configs []AmplifierConfigOut `json:"configs"`
	Total   int                  `json:"total"`
}

// AmplifierMessage is Amplifier's answer that only says what happened.
type AmplifierMessage struct {
	Message string `json:"message"`
}

func amplifierConfigOut(c *store.AmplifierConfig, withYAML bool, msg string) AmplifierConfigOut {
	out := AmplifierConfigOut{ConfigID: c.ID, Name: c.Name, Description: c.Description, CreatedAt: c.CreatedAt,
		UpdatedAt: c.UpdatedAt, Tags: c.Tags, AgentID: c.AgentID, Message: msg}
	if withYAML {
		y := c.YAML
		out.YAMLContent = &y
	}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	return out
}

func (s *Server) amplifierConfigRoutes() []route {
	const tag = "Amplifier configs"
	item := "/configs/{id}"
	return []route{
		{Method: http.MethodPost, Path: "/configs", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusCreated,
			Summary: "Create a config from a YAML bundle (name and yaml_content required); it is also the agent it defines (agent_id). 400: YAML invalid, not a mapping, or without bundle.name; 422: what cannot run here (a provider module the tenant has not got, a ${VAR} that is not one of its providers' credentials, an unknown tool)",
			Request: AmplifierConfigRequest{}, Response: AmplifierConfigOut{}, Handle: s.amplifierCreateConfig},
		{Method: http.MethodGet, Path: "/configs", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List the tenant's configs, newest first (without their YAML)", Query: amplifierPageQuery,
			Response: AmplifierConfigList{}, Handle: s.amplifierListConfigs},
		{Method: http.MethodGet, Path: item, Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a config with its YAML, byte for byte as written", Response: AmplifierConfigOut{}, Handle: s.amplifierGetConfig},
		{Method: http.MethodPut, Path: item, Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary: "Change a config (every field optional); new YAML changes its agent too, and a config whose agent was deleted gets it back",
			Request: AmplifierConfigRequest{}, Response: AmplifierConfigOut{}, Handle: s.amplifierUpdateConfig},
		{Method: http.MethodDelete, Path: item, Tag: tag, Scope: store.ScopeWrite, Status: http.StatusOK,
			Summary:  "Delete a config and its agent (its sessions keep their history); 409 while the agent answers phone numbers",
			Response: AmplifierMessage{}, Handle: s.amplifierDeleteConfig},
	}
}

var errConfigNotFound = errDetail(http.StatusNotFound, "Config not found")

func (s *Server) amplifierCreateConfig(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req AmplifierConfigRequest
	if err := decodeFastAPI(body, &req); err != nil {
		return err
	}
	var missing []store.FieldError
	if req.Name == nil {
		missing = append(missing, store.FieldError{Field: "name", Message: "is required"})
	}
	if req.YAMLContent == nil {
		missing = append(missing, store.FieldError{Field: "yaml_content", Message: "is required"})
	}
	if len(missing) > 0 {
		return errFields(missing...)
	}
	plan, err := s.planBundle(r.Context(), p.TenantID, *req.YAMLContent)
	if err != nil {
		return err
	}
	c := &store.AmplifierConfig{Name: *req.Name, YAML: *req.YAMLContent, Tags: req.Tags}
	if req.Description != nil {
		c.Description = *req.Description
	}
	if err := store.CreateAmplifierConfig(r.Context(), s.store, p.TenantID, c, plan.shape); err != nil {
		return err
	}
	s.configAgentChanged(r.Context(), p.TenantID, c.AgentID, "created")
	writeJSON(w, http.StatusCreated, amplifierConfigOut(c, true, "Config created successfully"))
	return nil
}

func (s *Server) amplifierListConfigs(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := amplifierPage(r)
	if err != nil {
		return err
	}
	items, total, err := store.List[store.AmplifierConfig](r.Context(), s.store, p.TenantID, page)
	if err != nil {
		return err
	}
	out := AmplifierConfigList{Configs: make([]AmplifierConfigOut, len(items)), Total: total}
	for i := range items {
		out.Configs[i] = amplifierConfigOut(&items[i], false, "")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// amplifierConfig reads the config a path names; another tenant's is not found.
func (s *Server) amplifierConfig(ctx context.Context, p *Principal, id string) (*store.AmplifierConfig, error) {
	c, err := store.Get[store.AmplifierConfig](ctx, s.store, p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errConfigNotFound
	}
	return c, err
}

func (s *Server) amplifierGetConfig(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.amplifierConfig(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, amplifierConfigOut(c, true, ""))
	return nil
}

func (s *Server) amplifierUpdateConfig(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	c, err := s.amplifierConfig(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req AmplifierConfigRequest
	if err := decodeFastAPI(body, &req); err != nil {
		return err
	}
	if req.Name != nil {
		c.Name = *req.Name
	}
	if req.Description != nil {
		c.Description = *req.Description
	}
	if req.Tags != nil {
		c.Tags = req.Tags
	}
	var shape store.AgentShaper
	if req.YAMLContent != nil || c.AgentID == nil {
		if req.YAMLContent != nil {
			c.YAML = *req.YAMLContent
		}
		plan, err := s.planBundle(r.Context(), p.TenantID, c.YAML)
		if err != nil {
			return err
		}
		shape = plan.shape
	}
	had := c.AgentID
	if err := store.UpdateAmplifierConfig(r.Context(), s.store, c, shape); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errConfigNotFound
		}
		return err
	}
	if shape != nil {
		action := "updated"
		if had == nil {
			action = "created"
		}
		s.configAgentChanged(r.Context(), p.TenantID, c.AgentID, action)
	}
	writeJSON(w, http.StatusOK, amplifierConfigOut(c, true, "Config updated successfully"))
	return nil
}

func (s *Server) amplifierDeleteConfig(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.amplifierConfig(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	err = store.DeleteAmplifierConfig(r.Context(), s.store, p.TenantID, c.ID)
	var ce *store.ConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errConfigNotFound
	case errors.As(err, &ce):
		return errDetail(http.StatusConflict, "The config cannot be deleted with its agent: "+ce.Message+"; nothing was deleted")
	case err != nil:
		return err
	}
	if c.AgentID != nil {
		agentResource.notify(r.Context(), s, p.TenantID, *c.AgentID, "deleted", nil)
	}
	writeJSON(w, http.StatusOK, AmplifierMessage{Message: "Config deleted successfully"})
	return nil
}

// configAgentChanged publishes the change of a config's agent, as a change made at
// /api/v1/agents is.
func (s *Server) configAgentChanged(ctx context.Context, tenantID string, agentID *string, action string) {
	if agentID == nil {
		return
	}
	if ag, err := store.Get[store.Agent](ctx, s.store, tenantID, *agentID); err == nil {
		agentResource.notify(ctx, s, tenantID, ag.ID, action, ag)
	}
}

// bundlePlan is what a config's YAML says of its agent, checked against this node.
type bundlePlan struct {
	name, instructions, model, version string
	temperature                        *float64
	toolIDs                            []string
}

// shape sets the plan on an agent, over what the agent holds.
func (b *bundlePlan) shape(ag *store.Agent) {
	ag.Name, ag.Instructions, ag.Model, ag.ToolIDs = b.name, b.instructions, b.model, slices.Clone(b.toolIDs)
	if b.temperature != nil {
		ag.Temperature = *b.temperature
	}
	if ag.Metadata == nil {
		ag.Metadata = map[string]any{}
	}
	if b.version != "" {
		ag.Metadata["amplifier_bundle_version"] = b.version
	} else {
		delete(ag.Metadata, "amplifier_bundle_version")
	}
}

// reVar finds ${NAME} and ${NAME:-default} in the YAML's strings.
var reVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// yamlField is the name of a place in the YAML, for errors.
func yamlField(path string) string { return "yaml_content" + path }

// planBundle reads a config's YAML and checks that it can run here. Text that is not YAML,
// not a mapping, or without bundle.name is a 400 (as Amplifier answers); what this node
// cannot run is a 422 naming the place in the YAML.
func (s *Server) planBundle(ctx context.Context, tenantID, text string) (*bundlePlan, error) {
	if len(text) > store.MaxAmplifierYAML {
		return nil, errFields(store.FieldError{Field: "yaml_content", Message: fmt.Sprintf("must be at most %d bytes", store.MaxAmplifierYAML)})
	}
	doc, err := decodeBundleYAML(text)
	var le *yamlLimitError
	switch {
	case errors.As(err, &le):
		return nil, errDetail(http.StatusBadRequest, "YAML too large: "+le.msg)
	case err != nil:
		return nil, errDetail(http.StatusBadRequest, "Invalid YAML syntax: "+yaml.FormatError(err, false, false))
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errDetail(http.StatusBadRequest, "YAML must be a dict: the top level of yaml_content must be a mapping (bundle:, providers:, …)")
	}
	bundle, _ := top["bundle"].(map[string]any)
	name, _ := bundle["name"].(string)
	if strings.TrimSpace(name) == "" {
		return nil, errDetail(http.StatusBadRequest, "bundle.name is required")
	}
	plan := &bundlePlan{name: name}
	if v, ok := bundle["version"]; ok && v != nil {
		plan.version = fmt.Sprint(v)
	}

	reg, err := s.registryFor(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	creds := nodeCredentials(reg)
	var fe []store.FieldError
	bad := func(path, format string, args ...any) {
		fe = append(fe, store.FieldError{Field: yamlField(path), Message: fmt.Sprintf(format, args...)})
	}
	walkStrings(top, "", func(path, v string) {
		for _, m := range reVar.FindAllStringSubmatch(v, -1) {
			name, _, _ := strings.Cut(m[1], ":")
			if _, ok := creds[name]; !ok {
				bad(path, "names ${%s}, which is not a provider credential this node has: a config's ${VAR} may only name one of %s (Switchboard never reads its environment for a config)",
					name, credentialList(creds))
			}
		}
	})

	plan.model = s.planProviders(top, reg, creds, bad)
	if ins, ok := top["instructions"]; ok {
		str, isStr := ins.(string)
		if !isStr {
			bad(".instructions", "must be a string: the agent's instructions")
		}
		plan.instructions = str
	}
	plan.toolIDs = s.planTools(ctx, tenantID, top, bad)
	if len(fe) > 0 {
		return nil, errFields(fe...)
	}
	if err := s.planProviderTemperature(top, plan); err != nil {
		return nil, err
	}
	// What the agent holds is checked as an agent is, named by its place in the YAML.
	ag := store.NewAgent()
	plan.shape(ag)
	var ve *store.ValidationError
	if err := ag.Validate(); errors.As(err, &ve) {
		where := map[string]string{"name": ".bundle.name", "instructions": ".instructions", "model": ".providers", "temperature": ".providers"}
		for _, f := range ve.Fields {
			bad(where[f.Field], "%s", f.Message)
		}
		return nil, errFields(fe...)
	}
	return plan, nil
}

// planProviders finds the agent's model: the provider of the lowest priority (the first when
// none says), each provider module checked against the tenant's registry.
func (s *Server) planProviders(top map[string]any, reg *llm.Registry, creds map[string]string, bad func(string, string, ...any)) string {
	list, ok := top["providers"].([]any)
	if !ok || len(list) == 0 {
		bad(".providers", "must list at least one provider module (provider-openai, provider-anthropic, or provider-<name> of a provider of this tenant) for the config to run here")
		return ""
	}
	model, best := "", 0.0
	for i, item := range list {
		path := ".providers[" + strconv.Itoa(i) + "]"
		entry, _ := item.(map[string]any)
		module, _ := entry["module"].(string)
		pname, found := strings.CutPrefix(module, "provider-")
		if !found || pname == "" {
			bad(path+".module", "must name a provider module such as provider-openai or provider-anthropic")
			continue
		}
		cfg, known := reg.Config(pname)
		if !known {
			bad(path+".module", "%s maps to the provider %q, which this tenant has not got (configured: %s)", module, pname, strings.Join(reg.Names(), ", "))
			continue
		}
		conf, _ := entry["config"].(map[string]any)
		if _, set := conf["base_url"]; set {
			bad(path+".config.base_url", "cannot be set here: a provider's address is the operator's or the tenant's (/api/v1/providers)")
		}
		if key, set := conf["api_key"]; set {
			want := "${" + providerCredential(cfg) + "}"
			ks, _ := key.(string)
			named := reVar.FindStringSubmatch(ks)
			if _, known := creds[strings.SplitN(valueAt(named, 1), ":", 2)[0]]; ks != want && (named == nil || known) {
				bad(path+".config.api_key", "must be %s, the credential of the provider %s this node has, or be left out (a key of your own is a provider at /api/v1/providers)", want, pname)
			}
		}
		m, _ := conf["default_model"].(string)
		if m == "" {
			m, _ = conf["model"].(string)
		}
		if m == "" {
			m = firstModel(reg, pname)
		}
		if m == "" {
			bad(path+".config.model", "is required: the provider %s lists no model to default to", pname)
			continue
		}
		if _, err := reg.Route(pname + "/" + m); err != nil {
			bad(path+".config.model", "%s/%s cannot be reached here: %s", pname, m, routeReason(err))
			continue
		}
		prio := float64(i) + 1e6 // without priorities, the first listed
		if pv, ok := number(conf["priority"]); ok {
			prio = pv
		}
		if model == "" || prio < best {
			model, best = pname+"/"+m, prio
		}
	}
	return model
}

// planProviderTemperature takes the temperature of the chosen provider's config, if any.
func (s *Server) planProviderTemperature(top map[string]any, plan *bundlePlan) error {
	list, _ := top["providers"].([]any)
	for i, item := range list {
		entry, _ := item.(map[string]any)
		module, _ := entry["module"].(string)
		conf, _ := entry["config"].(map[string]any)
		if !strings.HasPrefix(plan.model, strings.TrimPrefix(module, "provider-")+"/") {
			continue
		}
		if t, set := conf["temperature"]; set {
			v, ok := number(t)
			if !ok || v < 0 || v > 2 {
				return errFields(store.FieldError{Field: yamlField(".providers[" + strconv.Itoa(i) + "].config.temperature"), Message: "must be a number from 0 to 2"})
			}
			plan.temperature = &v
		}
		return nil
	}
	return nil
}

// planTools maps the YAML's tools to the tenant's: a tool module names a tool of the tenant
// by its name (tool-lookup or lookup), or by config.tool_id.
func (s *Server) planTools(ctx context.Context, tenantID string, top map[string]any, bad func(string, string, ...any)) []string {
	raw, set := top["tools"]
	if !set || raw == nil {
		return []string{}
	}
	list, ok := raw.([]any)
	if !ok {
		bad(".tools", "must be a list of tool modules")
		return nil
	}
	if len(list) == 0 {
		return []string{}
	}
	byName := map[string]string{}
	byID := map[string]bool{}
	for offset := 0; ; offset += 500 {
		tools, total, err := store.List[store.Tool](ctx, s.store, tenantID, store.Page{Limit: 500, Offset: offset})
		if err != nil {
			bad(".tools", "could not be checked: %v", err)
			return nil
		}
		for _, t := range tools {
			byName[t.Name], byID[t.ID] = t.ID, true
		}
		if offset+500 >= total {
			break
		}
	}
	var ids []string
	for i, item := range list {
		path := ".tools[" + strconv.Itoa(i) + "]"
		entry, _ := item.(map[string]any)
		conf, _ := entry["config"].(map[string]any)
		if id, _ := conf["tool_id"].(string); id != "" {
			if !byID[id] {
				bad(path+".config.tool_id", "no tool %q in this tenant", id)
				continue
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			continue
		}
		module, _ := entry["module"].(string)
		id, found := byName[module]
		if !found {
			id, found = byName[strings.TrimPrefix(module, "tool-")]
		}
		if !found {
			bad(path+".module", "names no tool of this tenant (%q or %q): create it at /api/v1/tools first", module, strings.TrimPrefix(module, "tool-"))
			continue
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// providerCredential is the name a config's ${VAR} gives a provider's key: the variable the
// node's provider takes it from, or NAME_API_KEY for a provider of the tenant's.
func providerCredential(cfg llm.ProviderConfig) string {
	if cfg.KeyEnv != "" {
		return cfg.KeyEnv
	}
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(cfg.Name)) + "_API_KEY"
}

// nodeCredentials are the credentials a config may name: those of the tenant's providers
// that have a key, by name, with the provider each belongs to.
func nodeCredentials(reg *llm.Registry) map[string]string {
	out := map[string]string{}
	for _, name := range reg.Names() {
		if cfg, ok := reg.Config(name); ok && cfg.APIKey != "" {
			out[providerCredential(cfg)] = name
		}
	}
	return out
}

func credentialList(creds map[string]string) string {
	if len(creds) == 0 {
		return "none: no provider of this tenant has a key"
	}
	names := make([]string, 0, len(creds))
	for n := range creds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// firstModel is the first model the registry lists for a provider, or "".
func firstModel(reg *llm.Registry, provider string) string {
	models := reg.Models()
	sort.Strings(models)
	for _, m := range models {
		if rest, ok := strings.CutPrefix(m, provider+"/"); ok {
			return rest
		}
	}
	return ""
}

// routeReason says why a model cannot be reached, without the package's prefix.
func routeReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "llm:") {
		msg = msg[i+2:]
	}
	if errors.Is(err, llm.ErrNoKey) {
		msg = "the provider has no key on this node (" + msg + ")"
	}
	return msg
}

// valueAt is ss[i], or "" past its end.
func valueAt(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return ""
}

// number reads a YAML number.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// walkStrings calls f with every string of a YAML document and its path (".a.b[2]").
func walkStrings(v any, path string, f func(path, s string)) {
	switch t := v.(type) {
	case string:
		f(path, t)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkStrings(t[k], path+"."+k, f)
		}
	case []any:
		for i, e := range t {
			walkStrings(e, path+"["+strconv.Itoa(i)+"]", f)
		}
	}
}
