package voice

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/provider"
	"github.com/switchboard-go/switchboard/store"
)

// callLine is a test line with what the runtime keeps with a call.
type callLine struct {
	*testLine
	id, tenantID string

	kept   sync.Mutex
	report map[string]any
	usage  store.CallUsage
}

func (c *callLine) ID() string                 { return c.id }
func (c *callLine) TenantID() string           { return c.tenantID }
func (c *callLine) Log() *slog.Logger          { return slog.New(slog.DiscardHandler) }
func (c *callLine) SetMetadata(string, any)    {}
func (c *callLine) SetReport(r map[string]any) { c.kept.Lock(); c.report = r; c.kept.Unlock() }
func (c *callLine) SetUsage(u store.CallUsage) { c.kept.Lock(); c.usage = u; c.kept.Unlock() }

// TestRuntimeUsesOnlyTheCallersTenantProviders: an agent names a model of a provider only
// another tenant configured; the runtime never reaches it, but apologises and hangs up with
// provider-not-configured, while the tenant that owns the provider gets its model.
func TestRuntimeUsesOnlyTheCallersTenantProviders(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Secret: []byte("switchboard-voice-test-secret-0123456")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	owner, err := st.EnsureTenant(ctx, "owner")
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.EnsureTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	p := store.NewModelProvider()
	p.Name, p.BaseURL, p.APIKey, p.Models = "acme", "https://acme.example/v1", "acme-key", []string{"m1"}
	if err := store.Create(ctx, st, owner.ID, p); err != nil {
		t.Fatal(err)
	}
	rt := NewRuntime(RuntimeConfig{Store: st, Providers: provider.New(provider.Config{Store: st})})
	ag := store.NewAgent()
	ag.ID, ag.Model = "agt_test", "acme/m1"

	r := newRig(t, 8000)
	ownerCall := &callLine{testLine: &testLine{sess: r.line.sess}, id: "call_owner", tenantID: owner.ID}
	if _, apologises := rt.brain(ctx, ownerCall, ag, ownerCall.Log()).(unavailable); apologises {
		t.Fatal("the tenant that configured acme cannot use its model")
	}

	otherCall := &callLine{testLine: r.line, id: "call_other", tenantID: other.ID}
	rt.Answer(ctx, otherCall, ag)
	if got := otherCall.hungUp(); got != ReasonProviderNotConfigured {
		t.Errorf("the other tenant's call hung up with %q, want %s", got, ReasonProviderNotConfigured)
	}
	if len(otherCall.eventsOf(EventError)) == 0 {
		t.Error("no error event said the model cannot be reached")
	}
	otherCall.kept.Lock()
	defer otherCall.kept.Unlock()
	if otherCall.report == nil {
		t.Error("no report kept with the call")
	}
}
