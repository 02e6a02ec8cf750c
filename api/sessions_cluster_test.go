package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestSessionOneNodeAnswersAcrossServers: two servers on one PostgreSQL, as two nodes behind
// a load balancer. While server A streams a session's answer, a message to the session on
// server B is 409, and a cancel on server B stops the answer on server A: A's stream ends as
// canceled, the stand-in sees its request closed, and the canceled turn is stored before
// B's cancel answers. B then answers the next message.
func TestSessionOneNodeAnswersAcrossServers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.URL(t)
	server := func(node string) *sessionRig {
		ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret, URL: url},
			api.Config{Models: reg, Webhooks: agent.NewWebhooks(true), DefaultRateLimit: 1_000_000, Node: node})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ts.API.Sessions().Shutdown(ctx)
		})
		return &sessionRig{testServer: ts, up: up}
	}
	a, b := server("node-a"), server("node-b")
	a.agentID = a.createAgent(t, a.Key, nil)
	id := a.createSession(t, a.Key, a.agentID)

	up.Enqueue(llmtest.Reply{Chunks: []string{"never ", "more"}, Fault: llmtest.FaultStall, FaultAfter: 2})
	_, evs := a.postSSE(t, ctx, id, "stall")
	for ev := range evs {
		if ev.Name == "text-delta" {
			break
		}
	}
	wantError(t, b.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", b.Key, map[string]any{"content": "me too"}), http.StatusConflict, "conflict", "")
	if res := b.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", b.Key, nil); res.Status != http.StatusOK || res.JSON(t)["canceled"] != true {
		t.Fatalf("cancel on server B: %d %s", res.Status, res.Body)
	}
	// The turn was stored before B answered the cancel.
	items := b.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages", b.Key, nil).JSON(t)["items"].([]any)
	if len(items) != 2 || items[1].(map[string]any)["status"] != "canceled" {
		t.Fatalf("messages after the cancel: %v", items)
	}
	select {
	case <-up.Aborted():
	case <-ctx.Done():
		t.Fatal("the upstream request of server A's answer was not closed")
	}
	var rest []string
	for ev := range evs {
		rest = append(rest, ev.Name)
	}
	if strings.Join(rest, ",") != "text-end,step-finish,error,finish" {
		t.Fatalf("server A's stream after the cancel: %v", rest)
	}
	wantError(t, b.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", b.Key, nil), http.StatusConflict, "conflict", "")

	up.Enqueue(llmtest.Reply{Text: "Hello from B."})
	res := b.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", b.Key, map[string]any{"content": "hello?"})
	wantStatus(t, res, http.StatusOK, "a message on server B")
	if !strings.Contains(string(res.Body), "Hello from B.") {
		t.Fatalf("server B's answer: %s", res.Body)
	}
}
