package agent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

func tool(url, method string) *store.Tool {
	t := store.NewTool()
	t.Name, t.Webhook.URL, t.Webhook.Method = "lookup", url, method
	t.Webhook.Headers = map[string]string{"Authorization": "Bearer s3cret"}
	t.Webhook.TimeoutMS = 2000
	return t
}

func TestWebhooksRefusePrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit = true }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{srv.URL, "http://localhost:1/", "http://10.0.0.1:1/", "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/"} {
		_, err := agent.NewWebhooks(false).Run(ctx, tool(u, http.MethodPost), `{}`)
		if !errors.Is(err, agent.ErrPrivateAddress) {
			t.Errorf("%s: %v, want ErrPrivateAddress", u, err)
		}
	}
	if hit {
		t.Fatal("a private webhook was called")
	}
}

func TestWebhooksCallTheTool(t *testing.T) {
	type seen struct{ method, body, query, auth string }
	var (
		mu   sync.Mutex
		last seen
	)
	got := func() seen { mu.Lock(); defer mu.Unlock(); return last }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, string(b), r.URL.Query().Get("arguments"), r.Header.Get("Authorization")}
		mu.Unlock()
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "order system down", http.StatusBadGateway)
		case "/slow":
			time.Sleep(3 * time.Second)
		case "/redirect":
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		default:
			_, _ = io.WriteString(w, `{"status":"shipped"}`)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := agent.NewWebhooks(true)

	out, err := w.Run(ctx, tool(srv.URL+"/orders", http.MethodPost), `{"id":"42"}`)
	if g := got(); err != nil || out != `{"status":"shipped"}` || g.method != "POST" || g.body != `{"id":"42"}` || g.auth != "Bearer s3cret" {
		t.Fatalf("POST: %q %v %+v", out, err, g)
	}
	if _, err := w.Run(ctx, tool(srv.URL+"/orders", http.MethodGet), `{"id":"42"}`); err != nil || got().method != "GET" || got().query != `{"id":"42"}` {
		t.Fatalf("GET: %v %+v", err, got())
	}
	if _, err := w.Run(ctx, tool(srv.URL+"/fail", http.MethodPost), `{}`); err == nil || !strings.Contains(err.Error(), "order system down") {
		t.Fatalf("failing tool: %v", err)
	}
	if _, err := w.Run(ctx, tool(srv.URL+"/slow", http.MethodPost), `{}`); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("slow tool: %v", err)
	}
	// A redirect is not followed: it could lead anywhere.
	if _, err := w.Run(ctx, tool(srv.URL+"/redirect", http.MethodPost), `{}`); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("redirect: %v", err)
	}
}

// A call to a tool the client brought passes through the tool loop as the model made it,
// with its index renumbered after the agent's own calls are taken out.
func TestWithToolsPassesOnClientTools(t *testing.T) {
	up := llmtest.NewOpenAI(t)
	p, err := llm.New(llm.ProviderConfig{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	up.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{
		{ID: "c1", Name: "mine", Arguments: `{"a":1}`},
		{ID: "c2", Name: "theirs", Arguments: `{"b":2}`},
	}})
	ran := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := agent.WithTools(ctx, p, &llm.Request{Model: "m", Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "hi")}},
		map[string]agent.ToolFunc{"mine": func(context.Context, string) (string, error) { ran++; return "ok", nil }})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := llm.Collect(st)
	if err != nil {
		t.Fatal(err)
	}
	// The model called a client tool too, so the round is the client's to finish: nothing
	// of ours ran, and only the client's call is passed on.
	if ran != 0 || len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "theirs" || resp.ToolCalls[0].Arguments != `{"b":2}` {
		t.Fatalf("ran %d, calls %+v", ran, resp.ToolCalls)
	}
	if len(up.Requests()) != 1 {
		t.Fatalf("asked the model %d times", len(up.Requests()))
	}
}

// TestWebhooksNeverSendBadHeaders: a header with CR, LF or NUL (stored before validation
// refused them, or written to the database by hand) is not sent: the tool fails and the
// webhook is not called.
func TestWebhooksNeverSendBadHeaders(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range []map[string]string{
		{"X-Foo": "a\r\nX-Injected: 1"},
		{"X-Foo": "a\nb"},
		{"X-Foo": "a\x00b"},
		{"X-Foo\r\nX-Bar": "1"},
		{"X Foo": "1"},
	} {
		tl := tool(srv.URL, http.MethodPost)
		tl.Webhook.Headers = h
		if _, err := agent.NewWebhooks(true).Run(ctx, tl, `{}`); !errors.Is(err, agent.ErrBadHeader) {
			t.Errorf("%q: %v, want ErrBadHeader", h, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the webhook was called %d times", hits.Load())
	}
}
