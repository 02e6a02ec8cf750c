package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Amplifier's smoke tests, run by the node on itself: each check sends real requests through
// the node's own handler (routing, authentication as the caller, the handlers, the store),
// in process, as the operator who asked. What a check makes is throwaway (named smoke-…)
// and removed when it ends, passed or not. Both routes are the operator's (an admin of the
// default tenant): the checks act in the operator's tenant.

// smokeCheckTimeout bounds one check.
const smokeCheckTimeout = 4 * time.Second

// SmokeResult is one check's outcome.
type SmokeResult struct {
	Name       string  `json:"name"`
	Passed     bool    `json:"passed"`
	Skipped    bool    `json:"skipped,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// QuickSmokeOut answers GET /smoke-tests/quick.
type QuickSmokeOut struct {
	Timestamp       float64       `json:"timestamp"`
	Tests           []SmokeResult `json:"tests"`
	Passed          int           `json:"passed"`
	Failed          int           `json:"failed"`
	Success         bool          `json:"success"`
	Total           int           `json:"total"`
	DurationSeconds float64       `json:"duration_seconds"`
}

// SmokeSummary counts a full run.
type SmokeSummary struct {
	Passed          int           `json:"passed"`
	Failed          int           `json:"failed"`
	Skipped         int           `json:"skipped"`
	Total           int           `json:"total"`
	DurationSeconds float64       `json:"duration_seconds"`
	Tests           []SmokeResult `json:"tests"`
}

// SmokeSuiteOut answers GET /smoke-tests, as Amplifier's pytest run does.
type SmokeSuiteOut struct {
	Success  bool         `json:"success"`
	ExitCode int          `json:"exit_code"`
	Stdout   string       `json:"stdout"`
	Stderr   string       `json:"stderr"`
	Summary  SmokeSummary `json:"summary"`
}

// smokeSuiteFile is the name Amplifier's clients give the suite (its default pattern).
const smokeSuiteFile = "test_smoke.py"

func (s *Server) amplifierSmokeRoutes() []route {
	const tag = "Amplifier health and testing"
	return []route{
		{Method: http.MethodGet, Path: "/smoke-tests/quick", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary:  "Run seven quick checks of this node (health, database, sessions, configs, OpenAPI document, applications, registering a throwaway application, removed afterwards) in under 5 s; operator only",
			Response: QuickSmokeOut{}, Handle: s.amplifierQuickSmoke},
		{Method: http.MethodGet, Path: "/smoke-tests", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Run the node's full smoke suite in process: every surface touched once with throwaway data that is removed afterwards; operator only",
			Query: []param{{Name: "verbose", Description: "true: one line per check in stdout"},
				{Name: "pattern", Description: "Which checks run: test_smoke.py (the default) for all, else a check's name, a part of one, or a glob (test_*_lifecycle)"}},
			Response: SmokeSuiteOut{}, Handle: s.amplifierSmokeSuite},
	}
}

// smokeCheck is one named check; skip is returned by a check that cannot run on this node.
type smokeCheck struct {
	name string
	run  func(ctx context.Context, c *smokeClient) error
}

type errSkip string

func (e errSkip) Error() string { return string(e) }

func (s *Server) amplifierQuickSmoke(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if !p.Operator {
		return errDetail(http.StatusForbidden, "Smoke tests are the operator's: use an admin key of the default tenant")
	}
	start := time.Now()
	results := s.runSmoke(r.Context(), p, s.quickChecks())
	out := QuickSmokeOut{Timestamp: float64(start.UnixNano()) / 1e9, Tests: results, Total: len(results),
		DurationSeconds: time.Since(start).Seconds()}
	for _, res := range results {
		if res.Passed {
			out.Passed++
		} else {
			out.Failed++
		}
	}
	out.Success = out.Failed == 0
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) amplifierSmokeSuite(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if !p.Operator {
		return errDetail(http.StatusForbidden, "Smoke tests are the operator's: use an admin key of the default tenant")
	}
	q := r.URL.Query()
	verbose := q.Get("verbose") == "true" || q.Get("verbose") == "1"
	pattern := q.Get("pattern")
	var checks []smokeCheck
	for _, c := range s.suiteChecks() {
		if smokeSelected(pattern, c.name) {
			checks = append(checks, c)
		}
	}
	start := time.Now()
	results := s.runSmoke(r.Context(), p, checks)
	sum := SmokeSummary{Total: len(results), Tests: results, DurationSeconds: time.Since(start).Seconds()}
	var out strings.Builder
	fmt.Fprintf(&out, "collected %d items\n", len(results))
	for _, res := range results {
		word, mark := "PASSED", "."
		switch {
		case res.Skipped:
			sum.Skipped++
			word, mark = "SKIPPED", "s"
		case res.Passed:
			sum.Passed++
		default:
			sum.Failed++
			word, mark = "FAILED", "F"
		}
		if verbose {
			fmt.Fprintf(&out, "%s::%s %s (%.0f ms)\n", smokeSuiteFile, res.Name, word, res.DurationMS)
		} else {
			out.WriteString(mark)
		}
	}
	if !verbose && len(results) > 0 {
		out.WriteString("\n")
	}
	for _, res := range results {
		if !res.Passed && !res.Skipped {
			fmt.Fprintf(&out, "FAILED %s::%s - %s\n", smokeSuiteFile, res.Name, res.Error)
		}
	}
	var parts []string
	for _, c := range []struct {
		n    int
		word string
	}{{sum.Failed, "failed"}, {sum.Passed, "passed"}, {sum.Skipped, "skipped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.word))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no tests ran"}
	}
	fmt.Fprintf(&out, "===== %s in %.2fs =====\n", strings.Join(parts, ", "), sum.DurationSeconds)
	// pytest's exit codes: 0 all passed, 1 some failed, 5 none collected.
	code := 0
	switch {
	case len(results) == 0:
		code = 5
	case sum.Failed > 0:
		code = 1
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SmokeSuiteOut{Success: code == 0, ExitCode: code, Stdout: out.String(), Summary: sum})
	return nil
}

// smokeSelected reports whether a pattern selects a check: all for none or the suite's file,
// else the name (after an optional "test_smoke.py::"), a glob, or a part of the name.
func smokeSelected(pattern, name string) bool {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" || pattern == smokeSuiteFile {
		return true
	}
	pattern = strings.TrimPrefix(pattern, smokeSuiteFile+"::")
	if strings.ContainsAny(pattern, "*?[") {
		ok, err := path.Match(pattern, name)
		return err == nil && ok
	}
	return strings.Contains(name, pattern)
}

// runSmoke runs checks one after the other, each within smokeCheckTimeout.
func (s *Server) runSmoke(ctx context.Context, p *Principal, checks []smokeCheck) []SmokeResult {
	results := make([]SmokeResult, 0, len(checks))
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, smokeCheckTimeout)
		start := time.Now()
		err := c.run(cctx, &smokeClient{s: s, p: p, ctx: cctx})
		cancel()
		res := SmokeResult{Name: c.name, Passed: err == nil, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
		var skip errSkip
		if errors.As(err, &skip) {
			res.Passed, res.Skipped = true, true
		}
		if err != nil {
			res.Error = err.Error()
		}
		results = append(results, res)
	}
	return results
}

// smokeClient sends requests to the node's own handler as the principal that asked.
type smokeClient struct {
	s   *Server
	p   *Principal
	ctx context.Context
	// key, when set, is sent instead of acting as p (to check a key works).
	key string
}

// smokeResponse is an answer read whole.
type smokeResponse struct {
	status int
	body   []byte
}

func (r smokeResponse) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	return m
}

// do sends a request and fails unless it answers want.
//
//nolint:contextcheck // the client carries its check's context, as an http.Request does
func (c *smokeClient) do(method, target string, body any, want int) (smokeResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return smokeResponse{}, err
		}
		rd = bytes.NewReader(b)
	}
	ctx := c.ctx
	if c.key == "" {
		ctx = context.WithValue(ctx, inProcessPrincipal{}, c.p)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return smokeResponse{}, err
	}
	// Not a client's address: the node's own requests neither count against, nor are held
	// back by, the limits of the clients on any address (loopback among them).
	req.RemoteAddr = "in-process:0"
	req.RequestURI = target
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	rec := &smokeRecorder{header: http.Header{}}
	c.s.handler.ServeHTTP(rec, req)
	res := smokeResponse{status: rec.status, body: rec.body.Bytes()}
	if res.status == 0 {
		res.status = http.StatusOK
	}
	if want != 0 && res.status != want {
		snippet := string(res.body)
		if len(snippet) > 300 {
			snippet = snippet[:300] + "…"
		}
		return res, fmt.Errorf("%s %s answered %d, want %d: %s", method, target, res.status, want, snippet)
	}
	return res, nil
}

// as is a client that sends key instead of acting as the operator.
func (c *smokeClient) as(key string) *smokeClient {
	return &smokeClient{s: c.s, p: c.p, ctx: c.ctx, key: key}
}

// cleanup runs f on a context of its own, so that throwaway data goes even when the check
// ran out of time.
func (c *smokeClient) cleanup(f func(c *smokeClient)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), smokeCheckTimeout)
	defer cancel()
	f(&smokeClient{s: c.s, p: c.p, ctx: ctx})
}

// smokeRecorder keeps what the handler wrote.
type smokeRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *smokeRecorder) Header() http.Header { return r.header }
func (r *smokeRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *smokeRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// smokeName is a throwaway name no one else uses.
func smokeName(kind string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "smoke-" + kind + "-" + hex.EncodeToString(b[:])
}

func (s *Server) quickChecks() []smokeCheck {
	get := func(target string) func(ctx context.Context, c *smokeClient) error {
		return func(ctx context.Context, c *smokeClient) error {
			_, err := c.do(http.MethodGet, target, nil, http.StatusOK)
			return err
		}
	}
	return []smokeCheck{
		{"health_endpoint", func(ctx context.Context, c *smokeClient) error {
			res, err := c.do(http.MethodGet, "/health", nil, http.StatusOK)
			if err == nil && res.json()["status"] != "healthy" {
				err = fmt.Errorf("health is %v", res.json()["status"])
			}
			return err
		}},
		{"database_connectivity", func(ctx context.Context, c *smokeClient) error { return s.store.Ping(ctx) }},
		{"sessions_endpoint", get("/sessions?limit=1")},
		{"config_endpoint", get("/configs?limit=1")},
		{"openapi_document", func(ctx context.Context, c *smokeClient) error {
			res, err := c.do(http.MethodGet, "/openapi.json", nil, http.StatusOK)
			if err == nil && !bytes.Contains(res.body, []byte(`"/configs/{id}"`)) {
				err = errors.New("the OpenAPI document lacks the Amplifier paths")
			}
			return err
		}},
		{"applications_endpoint", get("/applications")},
		{"application_registration", smokeRegistration},
	}
}

// smokeRegistration registers a throwaway application, checks its key works, deletes it,
// checks the key is refused, and removes the key for good.
func smokeRegistration(ctx context.Context, c *smokeClient) error {
	appID := smokeName("app")
	res, err := c.do(http.MethodPost, "/applications", map[string]any{"app_id": appID, "app_name": "Smoke test"}, http.StatusCreated)
	if err != nil {
		return err
	}
	var keyIDs []string
	defer c.cleanup(func(c *smokeClient) {
		_, _ = c.do(http.MethodDelete, "/applications/"+appID, nil, 0)
		for _, id := range keyIDs {
			_ = store.PurgeAPIKey(c.ctx, c.s.store, c.p.TenantID, id)
		}
	})
	app := res.json()
	if id, ok := app["key_id"].(string); ok {
		keyIDs = append(keyIDs, id)
	}
	key, _ := app["api_key"].(string)
	if !strings.HasPrefix(key, "app_") {
		return fmt.Errorf("the application's key %q is not an app_ key", key)
	}
	if _, err := c.as(key).do(http.MethodGet, "/sessions?limit=1", nil, http.StatusOK); err != nil {
		return fmt.Errorf("the new key does not work: %w", err)
	}
	if _, err := c.do(http.MethodGet, "/applications/"+appID, nil, http.StatusOK); err != nil {
		return err
	}
	if _, err := c.do(http.MethodDelete, "/applications/"+appID, nil, http.StatusOK); err != nil {
		return err
	}
	return c.refused(key, "the deleted application's key")
}

// refused checks that the authenticator refuses a key, as it would on any request, without
// a request that would count as a failed authentication.
func (c *smokeClient) refused(key, what string) error {
	if _, err := c.s.auth.Authenticate(c.ctx, key); !errors.Is(err, errUnauthenticated) {
		return fmt.Errorf("%s is not refused (%v)", what, err)
	}
	return nil
}

// suiteChecks are the full suite: each surface once.
func (s *Server) suiteChecks() []smokeCheck {
	quick := s.quickChecks()
	checks := []smokeCheck{
		{"test_health", func(ctx context.Context, c *smokeClient) error {
			for _, target := range []string{"/", "/health", "/version", "/api/v1/health"} {
				if _, err := c.do(http.MethodGet, target, nil, http.StatusOK); err != nil {
					return err
				}
			}
			return nil
		}},
		{"test_database", quick[1].run},
		{"test_openapi", quick[4].run},
		{"test_canonical_lists", func(ctx context.Context, c *smokeClient) error {
			for _, target := range []string{"/api/v1/agents?limit=1", "/api/v1/sessions?limit=1", "/api/v1/keys?limit=1",
				"/api/v1/tools?limit=1", "/api/v1/providers?limit=1"} {
				if _, err := c.do(http.MethodGet, target, nil, http.StatusOK); err != nil {
					return err
				}
			}
			return nil
		}},
		{"test_amplifier_errors", func(ctx context.Context, c *smokeClient) error {
			res, err := c.do(http.MethodGet, "/configs/cfg_none", nil, http.StatusNotFound)
			if err == nil && res.json()["detail"] != "Config not found" {
				err = fmt.Errorf("a missing config answered %s", res.body)
			}
			return err
		}},
		{"test_config_lifecycle", s.smokeConfigLifecycle},
		{"test_session_lifecycle", s.smokeSessionLifecycle},
		{"test_application_lifecycle", smokeApplicationLifecycle},
	}
	return checks
}

// smokeBundle is a throwaway config's YAML on a model this node can reach, or errSkip when
// none is configured with a key.
func (s *Server) smokeBundle(ctx context.Context, tenantID, version string) (string, error) {
	reg, err := s.registryFor(ctx, tenantID)
	if err != nil {
		return "", err
	}
	models := reg.Models()
	sort.Strings(models)
	for _, m := range models {
		pname, model, _ := strings.Cut(m, "/")
		if cfg, ok := reg.Config(pname); ok && cfg.APIKey != "" {
			return fmt.Sprintf("bundle:\n  name: %s\n  version: %s\nproviders:\n  - module: provider-%s\n    config:\n      api_key: ${%s}\n      model: %s\ninstructions: Say hello.\n",
				smokeName("bundle"), version, pname, providerCredential(cfg), model), nil
		}
	}
	return "", errSkip("no provider of this node has a key and a model: a config cannot run here")
}

func (s *Server) smokeConfigLifecycle(ctx context.Context, c *smokeClient) error {
	yml, err := s.smokeBundle(ctx, c.p.TenantID, "1.0.0")
	if err != nil {
		return err
	}
	res, err := c.do(http.MethodPost, "/configs", map[string]any{"name": smokeName("config"), "yaml_content": yml}, http.StatusCreated)
	if err != nil {
		return err
	}
	id, _ := res.json()["config_id"].(string)
	agentID, _ := res.json()["agent_id"].(string)
	defer c.cleanup(func(c *smokeClient) { _, _ = c.do(http.MethodDelete, "/configs/"+id, nil, 0) })
	got, err := c.do(http.MethodGet, "/configs/"+id, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if got.json()["yaml_content"] != yml {
		return errors.New("the config's YAML did not come back as written")
	}
	if _, err := c.do(http.MethodGet, "/api/v1/agents/"+agentID, nil, http.StatusOK); err != nil {
		return fmt.Errorf("the config's agent: %w", err)
	}
	yml2, err := s.smokeBundle(ctx, c.p.TenantID, "2.0.0")
	if err != nil {
		return err
	}
	if _, err := c.do(http.MethodPut, "/configs/"+id, map[string]any{"yaml_content": yml2, "tags": map[string]string{"smoke": "yes"}}, http.StatusOK); err != nil {
		return err
	}
	if _, err := c.do(http.MethodGet, "/configs?limit=5", nil, http.StatusOK); err != nil {
		return err
	}
	if _, err := c.do(http.MethodDelete, "/configs/"+id, nil, http.StatusOK); err != nil {
		return err
	}
	if _, err := c.do(http.MethodGet, "/api/v1/agents/"+agentID, nil, http.StatusNotFound); err != nil {
		return fmt.Errorf("the deleted config's agent: %w", err)
	}
	return nil
}

func (s *Server) smokeSessionLifecycle(ctx context.Context, c *smokeClient) error {
	yml, err := s.smokeBundle(ctx, c.p.TenantID, "1.0.0")
	if err != nil {
		return err
	}
	res, err := c.do(http.MethodPost, "/configs", map[string]any{"name": smokeName("config"), "yaml_content": yml}, http.StatusCreated)
	if err != nil {
		return err
	}
	cfgID, _ := res.json()["config_id"].(string)
	var sessID string
	defer c.cleanup(func(c *smokeClient) {
		if sessID != "" {
			_, _ = c.do(http.MethodDelete, "/sessions/"+sessID, nil, 0)
		}
		_, _ = c.do(http.MethodDelete, "/configs/"+cfgID, nil, 0)
	})
	res, err = c.do(http.MethodPost, "/sessions", map[string]any{"config_id": cfgID}, http.StatusCreated)
	if err != nil {
		return err
	}
	sessID, _ = res.json()["session_id"].(string)
	for _, step := range []struct{ method, target string }{
		{http.MethodGet, "/sessions/" + sessID}, {http.MethodPost, "/sessions/" + sessID + "/resume"},
		{http.MethodGet, "/api/v1/sessions/" + sessID}, {http.MethodPost, "/sessions/" + sessID + "/cancel"},
		{http.MethodDelete, "/sessions/" + sessID},
	} {
		if _, err := c.do(step.method, step.target, nil, http.StatusOK); err != nil {
			return err
		}
	}
	_, err = c.do(http.MethodGet, "/sessions/"+sessID, nil, http.StatusNotFound)
	return err
}

func smokeApplicationLifecycle(ctx context.Context, c *smokeClient) error {
	appID := smokeName("app")
	res, err := c.do(http.MethodPost, "/applications", map[string]any{"app_id": appID, "app_name": "Smoke test"}, http.StatusCreated)
	if err != nil {
		return err
	}
	keyIDs := []string{}
	if id, ok := res.json()["key_id"].(string); ok {
		keyIDs = append(keyIDs, id)
	}
	defer c.cleanup(func(c *smokeClient) {
		_, _ = c.do(http.MethodDelete, "/applications/"+appID, nil, 0)
		for _, id := range keyIDs {
			_ = store.PurgeAPIKey(c.ctx, c.s.store, c.p.TenantID, id)
		}
	})
	oldKey, _ := res.json()["api_key"].(string)
	list, err := c.do(http.MethodGet, "/applications", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if !bytes.Contains(list.body, []byte(`"`+appID+`"`)) || bytes.Contains(list.body, []byte(oldKey)) {
		return errors.New("the application list lacks the new application, or shows a key")
	}
	res, err = c.do(http.MethodPost, "/applications/"+appID+"/regenerate-key", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if id, ok := res.json()["key_id"].(string); ok {
		keyIDs = append(keyIDs, id)
	}
	newKey, _ := res.json()["api_key"].(string)
	if err := c.refused(oldKey, "the old key after regenerate-key"); err != nil {
		return err
	}
	if _, err := c.as(newKey).do(http.MethodGet, "/configs?limit=1", nil, http.StatusOK); err != nil {
		return fmt.Errorf("the new key: %w", err)
	}
	_, err = c.do(http.MethodDelete, "/applications/"+appID, nil, http.StatusOK)
	return err
}
