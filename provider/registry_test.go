package provider_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = []byte("switchboard-provider-test-secret-0123")

// openStore opens a migrated store of dialect d, with two tenants.
func openStore(t *testing.T, d store.Dialect) (*store.Store, *store.Tenant, *store.Tenant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := st.EnsureTenant(ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.EnsureTenant(ctx, "tenant-b")
	if err != nil {
		t.Fatal(err)
	}
	return st, a, b
}

func addProvider(t *testing.T, st *store.Store, tenantID, name, baseURL, key string) {
	t.Helper()
	p := store.NewModelProvider()
	p.Name, p.BaseURL, p.APIKey, p.Models = name, baseURL, key, []string{"m1"}
	if err := store.Create(context.Background(), st, tenantID, p); err != nil {
		t.Fatal(err)
	}
}

// nodeRegistries are the node's providers: an openai of the operator's.
func nodeRegistries(t *testing.T) (*llm.Registry, *speech.Registry) {
	t.Helper()
	env := map[string]string{"OPENAI_BASE_URL": "https://node.example/v1", "OPENAI_API_KEY": "node-key"}
	models, voices, err := provider.FromEnv(func(k string) string { return env[k] }, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return models, voices
}

func forEachDialect(t *testing.T, f func(t *testing.T, d store.Dialect)) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// TestRegistryTenantIsolation: a tenant's own provider replaces the node's of the same name
// for that tenant only; another tenant never resolves it, for models, speech or embeddings.
func TestRegistryTenantIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, a, b := openStore(t, d)
		addProvider(t, st, a.ID, "openai", "https://a.example/v1", "a-key")
		addProvider(t, st, a.ID, "groq", "https://groq-a.example/v1", "a-groq-key")
		models, voices := nodeRegistries(t)
		nodeClient, tenantClient := &http.Client{}, &http.Client{}
		reg := provider.New(provider.Config{Store: st, Models: models, Speech: voices, NodeClient: nodeClient, TenantClient: tenantClient})

		ma, err := reg.Models(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := ma.Config("openai"); !ok || c.BaseURL != "https://a.example/v1" || c.APIKey != "a-key" {
			t.Errorf("tenant a's openai = %+v, %v; want its own, key unsealed", c, ok)
		}
		if _, ok := ma.Config("groq"); !ok {
			t.Error("tenant a does not resolve its own groq")
		}
		mb, err := reg.Models(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := mb.Config("openai"); !ok || c.BaseURL != "https://node.example/v1" || c.APIKey != "node-key" {
			t.Errorf("tenant b's openai = %+v, %v; want the node's", c, ok)
		}
		if _, ok := mb.Config("groq"); ok {
			t.Error("tenant b resolves tenant a's groq")
		}
		if _, err := mb.Route("groq/m1"); err == nil {
			t.Error("tenant b routes a model to tenant a's groq")
		}

		sa, err := reg.Speech(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := reg.Speech(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sa.Names(), "groq") || slices.Contains(sb.Names(), "groq") {
			t.Errorf("speech names: tenant a %v, tenant b %v; want groq for a only", sa.Names(), sb.Names())
		}
		if cfgs, err := reg.Tenant(ctx, b.ID); err != nil || len(cfgs) != 0 {
			t.Errorf("tenant b's own providers = %v, %v; want none", cfgs, err)
		}

		ea, err := reg.EmbeddingEndpoint(ctx, a.ID, "openai")
		if err != nil {
			t.Fatal(err)
		}
		if ea.BaseURL != "https://a.example/v1" || ea.Client != tenantClient {
			t.Errorf("tenant a's embeddings go to %s (tenant client: %v); want its own provider through the tenant client", ea.BaseURL, ea.Client == tenantClient)
		}
		eb, err := reg.EmbeddingEndpoint(ctx, b.ID, "openai")
		if err != nil {
			t.Fatal(err)
		}
		if eb.BaseURL != "https://node.example/v1" || eb.Client != nodeClient {
			t.Errorf("tenant b's embeddings go to %s (node client: %v); want the node's provider through the node client", eb.BaseURL, eb.Client == nodeClient)
		}
		if _, err := reg.EmbeddingEndpoint(ctx, b.ID, "groq"); err == nil {
			t.Error("tenant b embeds with tenant a's groq")
		}
	})
}

// TestRegistryInvalidate: a tenant's registry is kept until its providers change on this
// node (Invalidate) or the TTL passes (a change on another node); the other tenant's is
// untouched by the change.
func TestRegistryInvalidate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, a, b := openStore(t, d)
		models, voices := nodeRegistries(t)
		reg := provider.New(provider.Config{Store: st, Models: models, Speech: voices, TTL: time.Hour})
		has := func(tenantID, name string) bool {
			t.Helper()
			m, err := reg.Models(ctx, tenantID)
			if err != nil {
				t.Fatal(err)
			}
			_, ok := m.Config(name)
			return ok
		}
		if has(a.ID, "groq") {
			t.Fatal("groq before it was created")
		}
		addProvider(t, st, a.ID, "groq", "https://groq-a.example/v1", "k")
		if has(a.ID, "groq") {
			t.Error("the kept registry was read again before it was invalidated")
		}
		reg.Invalidate(a.ID)
		if !has(a.ID, "groq") {
			t.Error("groq not seen after Invalidate")
		}
		if has(b.ID, "groq") {
			t.Error("tenant b sees tenant a's new provider")
		}

		// Another node's change is seen once the TTL has passed.
		short := provider.New(provider.Config{Store: st, Models: models, Speech: voices, TTL: 50 * time.Millisecond})
		if _, err := short.Models(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		addProvider(t, st, a.ID, "mistral", "https://mistral-a.example/v1", "k")
		for {
			m, err := short.Models(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.Config("mistral"); ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("a change not seen after the TTL")
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}
