package llm_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRegistryFromEnv(t *testing.T) {
	t.Parallel()
	oa, an := llmtest.NewOpenAI(t), llmtest.NewAnthropic(t)
	oa.RequireKey("sk-env")

	r, err := llm.FromEnv(env(map[string]string{
		"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": oa.URL,
		// A base URL of one's own needs no key.
		"ANTHROPIC_BASE_URL": an.URL,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"} {
		p, model, err := r.Resolve(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := p.Complete(testCtx(t), &llm.Request{Model: model, Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "hi")}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got := oa.Last().Map()["model"]; got != "gpt-4o-mini" {
		t.Errorf("openai upstream model %v", got)
	}
	if got := an.Last().Map()["model"]; got != "claude-haiku-4-5" {
		t.Errorf("anthropic upstream model %v", got)
	}

	// Nothing set: both providers exist, and say what to set.
	r, err = llm.FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for name, hint := range map[string]string{"openai/gpt-4o": "OPENAI_API_KEY", "anthropic/claude": "ANTHROPIC_API_KEY"} {
		_, _, err := r.Resolve(name)
		if !errors.Is(err, llm.ErrNoKey) || !strings.Contains(err.Error(), hint) {
			t.Errorf("%s: %v, want ErrNoKey naming %s", name, err, hint)
		}
	}
	if cfg, _ := r.Config("openai"); cfg.BaseURL != llm.DefaultOpenAIBaseURL {
		t.Errorf("openai base URL %q", cfg.BaseURL)
	}
	if cfg, _ := r.Config("anthropic"); cfg.BaseURL != llm.DefaultAnthropicBaseURL {
		t.Errorf("anthropic base URL %q", cfg.BaseURL)
	}
}

const providersYAML = `
providers:
  - name: groq
    kind: openai
    base_url: ${GROQ_URL}
    api_key: ${GROQ_API_KEY}
    stall_timeout: 5s
    models: [compound]
    aliases:
      fast: llama-3.1-8b-instant
    prices:
      llama-3.1-8b-instant: {input_per_mtok: 0.05, output_per_mtok: 0.08}
    fallbacks:
      fast: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5]
  - name: ollama
    kind: openai
    base_url: ${OLLAMA_URL:-http://127.0.0.1:11434/v1}
  - name: together
    kind: openai
    base_url: https://api.together.xyz/v1
    api_key: ${TOGETHER_API_KEY}
  - name: claude
    kind: anthropic
    api_key: sk-ant-literal
    headers:
      anthropic-beta: ${BETA}
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRegistryFromFile(t *testing.T) {
	t.Parallel()
	groq := llmtest.NewOpenAI(t)
	groq.RequireKey("gsk-secret")
	r, err := llm.FromEnv(env(map[string]string{
		"SWITCHBOARD_PROVIDERS_FILE": writeFile(t, providersYAML),
		"GROQ_API_KEY":               "gsk-secret",
		"GROQ_URL":                   groq.URL,
		"OPENAI_API_KEY":             "sk-env",
		"BETA":                       "tools-2024",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"anthropic", "claude", "groq", "ollama", "openai", "together"}) {
		t.Errorf("names %q", got)
	}

	rt, err := r.Route("groq/fast")
	if err != nil {
		t.Fatal(err)
	}
	if rt.ProviderName != "groq" || rt.Upstream != "llama-3.1-8b-instant" || rt.Model != "groq/fast" ||
		rt.Price == nil || *rt.Price != (llm.Price{InputPerMTok: 0.05, OutputPerMTok: 0.08}) ||
		!slices.Equal(rt.Fallbacks, []string{"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}) {
		t.Errorf("route %+v", rt)
	}
	// The alias is sent upstream with the expanded key.
	resp, err := rt.Provider.Complete(testCtx(t), &llm.Request{Model: rt.Upstream, Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := groq.Last().Map()["model"]; got != "llama-3.1-8b-instant" {
		t.Errorf("upstream model %v", got)
	}
	cost, ok := r.Cost("groq/fast", resp.Usage)
	if want := (10*0.05 + 20*0.08) / 1e6; !ok || math.Abs(cost-want) > 1e-15 {
		t.Errorf("cost %v %v, want %v", cost, ok, want)
	}
	if _, ok := r.Cost("groq/compound", resp.Usage); ok {
		t.Error("a model without a price has a cost")
	}

	cfg, _ := r.Config("groq")
	if cfg.StallTimeout != 5*time.Second || cfg.KeyEnv != "GROQ_API_KEY" {
		t.Errorf("groq config %+v", cfg)
	}
	if cfg, _ := r.Config("ollama"); cfg.BaseURL != "http://127.0.0.1:11434/v1" || cfg.KeyRequired {
		t.Errorf("ollama config %+v", cfg)
	}
	if cfg, _ := r.Config("claude"); cfg.BaseURL != llm.DefaultAnthropicBaseURL || cfg.Headers["anthropic-beta"] != "tools-2024" {
		t.Errorf("claude config %+v", cfg)
	}

	// Model names with slashes of their own keep them.
	if _, model, err := r.Resolve("ollama/library/llama3.2:1b"); err != nil || model != "library/llama3.2:1b" {
		t.Errorf("ollama model %q, %v", model, err)
	}

	// Listed, aliased and priced models of usable providers, asking no upstream.
	want := []string{"groq/compound", "groq/fast", "groq/llama-3.1-8b-instant"}
	if got := r.Models(); !slices.Equal(got, want) {
		t.Errorf("models %q, want %q", got, want)
	}
}

func TestRouteErrors(t *testing.T) {
	t.Parallel()
	r, err := llm.FromEnv(env(map[string]string{"SWITCHBOARD_PROVIDERS_FILE": writeFile(t, providersYAML), "OPENAI_API_KEY": "sk"}))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]error{
		"gpt-4o":          llm.ErrModelName,
		"groq/":           llm.ErrModelName,
		"/compound":       llm.ErrModelName,
		"":                llm.ErrModelName,
		"nope/compound":   llm.ErrUnknownProvider,
		"together/llama":  llm.ErrNoKey,
		"groq/compound":   llm.ErrNoKey, // ${GROQ_API_KEY} is unset here.
		"ollama/llama3.2": nil,
		"openai/gpt-4o":   nil,
	}
	for name, want := range cases {
		_, _, err := r.Resolve(name)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%q: %v, want %v", name, err, want)
		}
	}
	_, _, err = r.Resolve("together/llama")
	if !strings.Contains(err.Error(), "TOGETHER_API_KEY") {
		t.Errorf("the error does not say what to set: %v", err)
	}
}

func TestProvidersFileErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"unknown field":      "providers:\n  - name: x\n    kind: openai\n    base_ulr: http://h\n",
		"unknown kind":       "providers:\n  - name: x\n    kind: gemini\n",
		"twice":              "providers:\n  - {name: x, kind: openai}\n  - {name: x, kind: anthropic}\n",
		"reserved name":      "providers:\n  - {name: agent, kind: openai}\n",
		"slash in name":      "providers:\n  - {name: a/b, kind: openai}\n",
		"bad base_url":       "providers:\n  - {name: x, kind: openai, base_url: 'ftp://h'}\n",
		"bad fallback":       "providers:\n  - {name: x, kind: openai, fallbacks: {m: [gpt-4o]}}\n",
		"negative price":     "providers:\n  - {name: x, kind: openai, prices: {m: {input_per_mtok: -1}}}\n",
		"unterminated ${":    "providers:\n  - {name: x, kind: openai, api_key: '${KEY'}\n",
		"max tokens param":   "providers:\n  - {name: x, kind: openai, max_tokens_param: tokens}\n",
		"not yaml":           "providers: [",
		"bad stall duration": "providers:\n  - {name: x, kind: openai, stall_timeout: soon}\n",
	}
	for name, content := range cases {
		if _, err := llm.ParseProviders([]byte(content), env(nil)); !errors.Is(err, llm.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := llm.LoadProviders(filepath.Join(t.TempDir(), "missing.yaml"), env(nil)); !errors.Is(err, llm.ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
	if cfgs, err := llm.ParseProviders(nil, env(nil)); err != nil || len(cfgs) != 0 {
		t.Errorf("empty file: %v %v", cfgs, err)
	}
}

// TestRegistryWith: a tenant's providers over the server's, the server's left as they were.
func TestRegistryWith(t *testing.T) {
	t.Parallel()
	base, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "groq", Kind: llm.KindOpenAI, BaseURL: "https://api.groq.com/openai/v1", APIKey: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := base.With([]llm.ProviderConfig{
		{Name: "groq", Kind: llm.KindOpenAI, BaseURL: "https://api.groq.com/openai/v1", APIKey: "tenant"},
		{Name: "mine", Kind: llm.KindAnthropic, APIKey: "k"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := tenant.Config("groq"); c.APIKey != "tenant" {
		t.Errorf("tenant groq key %q", c.APIKey)
	}
	if c, _ := base.Config("groq"); c.APIKey != "server" {
		t.Errorf("server groq key %q", c.APIKey)
	}
	if !reflect.DeepEqual(base.Names(), []string{"groq"}) || !reflect.DeepEqual(tenant.Names(), []string{"groq", "mine"}) {
		t.Errorf("names %q %q", base.Names(), tenant.Names())
	}
	if _, err := base.With([]llm.ProviderConfig{{Name: "bad", Kind: "x"}}); !errors.Is(err, llm.ErrConfig) {
		t.Errorf("bad overlay: %v", err)
	}
}

func TestPriceCost(t *testing.T) {
	t.Parallel()
	p := llm.Price{InputPerMTok: 3, OutputPerMTok: 15}
	if got := p.Cost(llm.Usage{InputTokens: 1_000_000, OutputTokens: 200_000}); math.Abs(got-6) > 1e-9 {
		t.Errorf("cost %v, want 6", got)
	}
	if got := p.Cost(llm.Usage{}); got != 0 {
		t.Errorf("cost of nothing %v", got)
	}
}
