package llm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/internal/netguard"
)

// TestTenantProvidersArePublicOnly: a provider a tenant configured (Registry.With) connects
// to public addresses only: a loopback or metadata literal, a name that resolves to
// loopback and an IPv4-mapped loopback are all refused, for whole answers, streams and model
// lists, without the upstream being reached; the operator's own provider on loopback is
// trusted.
func TestTenantProvidersArePublicOnly(t *testing.T) {
	t.Parallel()
	inner := llmtest.NewOpenAI(t)
	op := llmtest.NewOpenAI(t)
	base, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "local", Kind: llm.KindOpenAI, BaseURL: op.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := func() *llm.Request {
		return &llm.Request{Model: "m", Messages: []llm.Message{{Role: llm.RoleUser, Content: []llm.Part{llm.TextPart("hi")}}}}
	}
	for _, u := range []string{
		inner.URL,
		strings.Replace(inner.URL, "127.0.0.1", "localhost", 1),
		strings.Replace(inner.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1),
		"http://169.254.169.254/latest",
		"http://[fe80::1]:80/v1",
		"http://100.64.0.1/v1",
	} {
		for _, kind := range []llm.Kind{llm.KindOpenAI, llm.KindAnthropic} {
			reg, err := base.With([]llm.ProviderConfig{{Name: "mine", Kind: kind, BaseURL: u}})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := reg.Provider("mine")
			_, errC := p.Complete(ctx, req())
			_, errS := p.Stream(ctx, req())
			_, errM := p.Models(ctx)
			for _, err := range []error{errC, errS, errM} {
				var ue *llm.UpstreamError
				if !errors.Is(err, netguard.ErrPrivateAddress) || !errors.As(err, &ue) || ue.Message != "the provider did not answer" {
					t.Errorf("%s %s: %v, want the private address refused, opaquely", kind, u, err)
				}
			}
		}
	}
	if n := len(inner.Requests()); n != 0 {
		t.Fatalf("the tenant's inward provider was reached %d times", n)
	}
	op.Enqueue(llmtest.Reply{Text: "operator"})
	p, _ := base.Provider("local")
	if r, err := p.Complete(ctx, req()); err != nil || r.Content != "operator" {
		t.Fatalf("operator provider: %v %v", r, err)
	}
}

// TestTenantProviderErrorsAreOpaque: with the operator's switch on, a tenant's provider on
// loopback answers; its error bodies are not relayed, and a refused connection and an
// unknown name fail alike. The operator's providers keep the upstream's words.
func TestTenantProviderErrorsAreOpaque(t *testing.T) {
	t.Parallel()
	client := netguard.NewTenantClient(true)
	t.Cleanup(client.CloseIdleConnections)
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":{"type":"Access Denied: instance-id i-0abc","message":"AKIA-SECRET-CREDENTIALS"}}`))
	}))
	defer secret.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	std := llmtest.NewOpenAI(t)
	base, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "opsecret", Kind: llm.KindOpenAI, BaseURL: secret.URL}}, llm.WithTenantClient(client))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := base.With([]llm.ProviderConfig{
		{Name: "secret", Kind: llm.KindOpenAI, BaseURL: secret.URL},
		{Name: "refused", Kind: llm.KindOpenAI, BaseURL: closedURL},
		{Name: "unknown", Kind: llm.KindOpenAI, BaseURL: "http://no-such-host.invalid"},
		{Name: "std", Kind: llm.KindOpenAI, BaseURL: std.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ask := func(name string) error {
		p, _ := reg.Provider(name)
		_, err := p.Complete(ctx, &llm.Request{Model: "m", Messages: []llm.Message{{Role: llm.RoleUser, Content: []llm.Part{llm.TextPart("hi")}}}})
		return err
	}
	err = ask("secret")
	var ue *llm.UpstreamError
	if !errors.As(err, &ue) || ue.Status != http.StatusForbidden || ue.Message != "the provider answered 403 Forbidden" || strings.Contains(err.Error(), "AKIA") {
		t.Errorf("tenant's error status: %v", err)
	}
	var refused, unknown *llm.UpstreamError
	if !errors.As(ask("refused"), &refused) || !errors.As(ask("unknown"), &unknown) ||
		refused.Message != unknown.Message || refused.Type != unknown.Type || refused.Message != "the provider did not answer" {
		t.Errorf("a refused connection and an unknown name differ: %v / %v", refused, unknown)
	}
	std.Enqueue(llmtest.Reply{Text: "fine"})
	if err := ask("std"); err != nil {
		t.Errorf("tenant's provider allowed by the operator: %v", err)
	}
	// The operator's provider is trusted: its upstream's words are kept.
	p, _ := base.Provider("opsecret")
	if _, err := p.Complete(ctx, &llm.Request{Model: "m", Messages: []llm.Message{{Role: llm.RoleUser, Content: []llm.Part{llm.TextPart("hi")}}}}); err == nil || !strings.Contains(err.Error(), "AKIA-SECRET-CREDENTIALS") {
		t.Errorf("operator's error: %v", err)
	}
}
