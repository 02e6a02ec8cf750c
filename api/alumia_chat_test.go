package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// alumiaBench is a Switchboard with an OpenAI stand-in behind it, an organisation "acme"
// with an alm_ key, an agent answering on the stand-in with a webhook tool (get_weather, on
// a real HTTP server), an agent on a paid model, and one whose model breaks mid-answer.
type alumiaBench struct {
	ts      *testServer
	up      *llmtest.Server
	key     string // alm_live_ key of acme
	admin   string // as_ admin key of acme
	tenant  *store.Tenant
	agentID string // oai/gpt-test, with get_weather
	paidID  string // oai/priced
	broken  string // oai/broken: the stream fails after three events

	mu       sync.Mutex
	hookArgs []string
}

// alumiaReply answers as a model would: a get_weather call when the user asks about the
// weather and no result is in yet, a sentence about the result once it is, and otherwise an
// echo of the user's last words with how many user turns it was shown, so that a test sees
// the history the model got.
func alumiaReply(r llmtest.Request) llmtest.Reply {
	m := r.Map()
	if m["model"] == "broken" {
		return llmtest.Reply{Text: "one two three four", Fault: llmtest.FaultStreamError, FaultAfter: 3, ErrorMessage: "Overloaded, try later"}
	}
	msgs, _ := m["messages"].([]any)
	users, lastUser, lastRole := 0, "", ""
	for _, x := range msgs {
		msg, _ := x.(map[string]any)
		lastRole, _ = msg["role"].(string)
		if lastRole == "user" {
			users++
			lastUser = contentText(msg["content"])
		}
	}
	switch {
	case lastRole == "tool":
		return llmtest.Reply{Text: "It is 18C and sunny in Paris.", Usage: llm.Usage{InputTokens: 30, OutputTokens: 8}}
	case strings.Contains(lastUser, "weather"):
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_w1", Name: "get_weather", Arguments: `{"city":"Paris"}`}}, Usage: llm.Usage{InputTokens: 20, OutputTokens: 5}}
	}
	return llmtest.Reply{Text: fmt.Sprintf("You said %q (user turns seen: %d).", lastUser, users), Usage: llm.Usage{InputTokens: 12, OutputTokens: 9}}
}

func contentText(c any) string {
	switch v := c.(type) {
	case string:
		return v
	case []any:
		var b strings.Builder
		for _, p := range v {
			if pm, _ := p.(map[string]any); pm["type"] == "text" {
				s, _ := pm["text"].(string)
				b.WriteString(s)
			}
		}
		return b.String()
	}
	return ""
}

func newAlumiaBench(t *testing.T, d store.Dialect, cfg api.Config) *alumiaBench {
	t.Helper()
	b := &alumiaBench{up: llmtest.NewOpenAI(t)}
	b.up.Respond(alumiaReply)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "oai", Kind: llm.KindOpenAI, BaseURL: b.up.URL, APIKey: "k",
		Prices: map[string]llm.Price{"priced": {InputPerMTok: 10, OutputPerMTok: 40}}}})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.hookArgs = append(b.hookArgs, string(raw))
		b.mu.Unlock()
		_, _ = io.WriteString(w, `{"temp_c":18,"sky":"sunny"}`)
	}))
	t.Cleanup(hook.Close)
	cfg.Models, cfg.Webhooks = reg, agent.NewWebhooks(true)
	if cfg.DefaultRateLimit == 0 {
		cfg.DefaultRateLimit = 1_000_000
	}
	if cfg.ChatRateLimit == 0 {
		cfg.ChatRateLimit = 1_000_000
	}
	b.ts = newTestServerConfig(t, d, cfg).with(t)
	b.admin = b.ts.tenantAdmin("acme")
	if b.tenant, err = b.ts.Store.TenantBySlug(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	b.key = b.ts.create("/api/v1/keys", b.admin, map[string]any{"name": "alumia", "kind": "alumia", "scopes": []string{"read", "write"}})["key"].(string)
	tool := b.ts.createID("/api/v1/tools", b.admin, map[string]any{
		"name": "get_weather", "description": "The weather in a city",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}},
		"webhook":    map[string]any{"url": hook.URL},
	})
	b.agentID = b.ts.createID("/api/v1/agents", b.admin, map[string]any{"name": "Ala", "instructions": "Be brief.", "model": "oai/gpt-test", "tool_ids": []any{tool}})
	b.paidID = b.ts.createID("/api/v1/agents", b.admin, map[string]any{"name": "Paid", "model": "oai/priced"})
	b.broken = b.ts.createID("/api/v1/agents", b.admin, map[string]any{"name": "Broken", "model": "oai/broken"})
	return b
}

func (b *alumiaBench) headers() map[string]string {
	return map[string]string{"Authorization": "Bearer " + b.key, "X-Alumia-Org": "acme"}
}

// chat has the AI SDK judge post body to /api/v1/chat and read the answer.
func (b *alumiaBench) chat(t *testing.T, body any) uiJudged {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := judgeUI(t, b.ts.URL+"/api/v1/chat", b.headers(), string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// partTypes lists the types of a message's parts.
func partTypes(m *uiMessageOut) string {
	var ts []string
	for _, p := range m.Parts {
		ts = append(ts, p.Type)
	}
	return strings.Join(ts, ",")
}

// finishMeta is the message metadata the answer ends with.
type finishMeta struct {
	SessionID string      `json:"sessionId"`
	Model     string      `json:"model"`
	Usage     api.UIUsage `json:"usage"`
	CostUSD   float64     `json:"costUsd"`
	Status    string      `json:"status"`
}

func metaOf(t *testing.T, m *uiMessageOut) finishMeta {
	t.Helper()
	var fm finishMeta
	if err := json.Unmarshal(m.Metadata, &fm); err != nil {
		t.Fatalf("metadata %s: %v", m.Metadata, err)
	}
	return fm
}

// storedMessages reads a session's messages from the store.
func (b *alumiaBench) storedMessages(t *testing.T, sessionID string) []store.SessionMessage {
	t.Helper()
	msgs, err := store.ListSessionMessages(context.Background(), b.ts.Store, b.tenant.ID, sessionID, "", 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestAlumiaChatStream walks Alumia's quickstart with the AI SDK reading every answer: a text
// answer in a session the request makes, a second turn sent as useChat sends it (the whole
// conversation, UIMessages), a tool call run on a real webhook, and an upstream failure in
// the middle of an answer. Each UIMessage the SDK builds is checked, and what was stored.
func TestAlumiaChatStream(t *testing.T) {
	uiJudgeDir(t)
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := newAlumiaBench(t, d, api.Config{})

			// 1. Plain {role, content}, no session: one is made.
			first := b.chat(t, map[string]any{"agentId": b.agentID, "projectId": "proj_1",
				"messages": []any{map[string]any{"role": "user", "content": "Summarise the periodic table in 3 sentences."}}})
			if first.Status != 200 || first.Headers["x-vercel-ai-ui-message-stream"] != "v1" || !first.Done || len(first.Errors) != 0 {
				t.Fatalf("first turn: %+v", first)
			}
			sid := first.Headers["x-session-id"]
			m := first.Message
			if !strings.HasPrefix(sid, "ses_") || m.Role != "assistant" || !strings.HasPrefix(m.ID, "msg_") {
				t.Fatalf("session %q, message %+v", sid, m)
			}
			if got := partTypes(m); got != "step-start,text" {
				t.Fatalf("first turn parts: %s", got)
			}
			if txt := m.Parts[1]; txt.Text != `You said "Summarise the periodic table in 3 sentences." (user turns seen: 1).` || txt.State != "done" {
				t.Errorf("first turn text: %+v", txt)
			}
			fm := metaOf(t, m)
			if fm.SessionID != sid || fm.Model != "oai/gpt-test" || fm.Usage.InputTokens != 12 || fm.Usage.OutputTokens != 9 || fm.Usage.TotalTokens != 21 || fm.Status != "completed" {
				t.Errorf("finish metadata: %+v", fm)
			}
			if first.Chunks[0] != "start" || first.Chunks[len(first.Chunks)-1] != "finish" {
				t.Errorf("chunks: %v", first.Chunks)
			}
			sess, err := store.Get[store.Session](context.Background(), b.ts.Store, b.tenant.ID, sid)
			if err != nil || *sess.AgentID != b.agentID || sess.Meta["projectId"] != "proj_1" || sess.Label != "Summarise the periodic table in 3 sentences." {
				t.Fatalf("the session made: %+v %v", sess, err)
			}

			// 2. The second turn as useChat sends it: the whole conversation as UIMessages.
			// Only the new message is taken; the model sees two user turns, not three.
			second := b.chat(t, map[string]any{
				"id": "chat-local-1", "trigger": "submit-message", "sessionId": sid,
				"messages": []any{
					map[string]any{"id": "u1", "role": "user", "parts": []any{map[string]any{"type": "text", "text": "Summarise the periodic table in 3 sentences."}}},
					map[string]any{"id": m.ID, "role": "assistant", "parts": []any{map[string]any{"type": "step-start"}, map[string]any{"type": "text", "text": m.Parts[1].Text, "state": "done"}}},
					map[string]any{"id": "u2", "role": "user", "parts": []any{map[string]any{"type": "text", "text": "And in one?"}}},
				},
			})
			if second.Status != 200 || second.Headers["x-session-id"] != sid || len(second.Errors) != 0 {
				t.Fatalf("second turn: %+v", second)
			}
			if txt := second.Message.Parts[len(second.Message.Parts)-1]; txt.Text != `You said "And in one?" (user turns seen: 2).` {
				t.Errorf("second turn text: %+v", txt)
			}
			stored := b.storedMessages(t, sid)
			if len(stored) != 4 || stored[0].Role != "user" || stored[1].Role != "assistant" || stored[2].Text() != "And in one?" || stored[3].ID != second.Message.ID {
				t.Fatalf("stored after two turns: %d messages", len(stored))
			}
			if stored[2].Meta["uiMessageId"] != "u2" {
				t.Errorf("the UIMessage id of the user's message is not kept: %v", stored[2].Meta)
			}

			// 3. A tool call, run on the webhook, with its result, then the answer.
			tool := b.chat(t, map[string]any{"sessionId": sid, "messages": []any{map[string]any{"role": "user", "content": "What is the weather in Paris?"}}})
			tm := tool.Message
			if got := partTypes(tm); got != "step-start,tool-get_weather,step-start,text" || len(tool.Errors) != 0 {
				t.Fatalf("tool turn parts: %s (errors %v, chunks %v)", got, tool.Errors, tool.Chunks)
			}
			tp := tm.Parts[1]
			if tp.State != "output-available" || tp.ToolCallID != "call_w1" || gwCompact(string(tp.Input)) != `{"city":"Paris"}` || gwCompact(string(tp.Output)) != `{"temp_c":18,"sky":"sunny"}` {
				t.Errorf("tool part: %+v", tp)
			}
			if tm.Parts[3].Text != "It is 18C and sunny in Paris." {
				t.Errorf("answer after the tool: %+v", tm.Parts[3])
			}
			b.mu.Lock()
			if len(b.hookArgs) != 1 || !strings.Contains(b.hookArgs[0], "Paris") {
				t.Errorf("webhook got %v", b.hookArgs)
			}
			b.mu.Unlock()
			// The step that called the tool holds its input and output, as the AI SDK's own
			// streams have them.
			if got, want := strings.Join(tool.Chunks, ","), "start,start-step,tool-input-start,tool-input-delta,"; !strings.HasPrefix(got, want) ||
				!strings.Contains(got, ",tool-input-available,tool-output-available,finish-step,start-step,text-start,") || !strings.HasSuffix(got, ",text-end,finish-step,finish") {
				t.Errorf("tool turn chunks: %s", got)
			}
			if fm := metaOf(t, tm); fm.Usage.InputTokens != 50 || fm.Usage.OutputTokens != 13 {
				t.Errorf("usage of two steps: %+v", fm.Usage)
			}

			// 4. The upstream fails mid-answer: the client gets what was said, an error, and
			// the end of the stream; the turn is stored with its failure.
			broken := b.chat(t, map[string]any{"agentId": b.broken, "messages": []any{map[string]any{"role": "user", "content": "Hello?"}}})
			if broken.Status != 200 || !broken.Done || len(broken.Errors) != 1 || !strings.Contains(broken.Errors[0], "Overloaded") {
				t.Fatalf("broken: %+v", broken)
			}
			if chunks := strings.Join(broken.Chunks, ","); !strings.HasSuffix(chunks, "text-end,finish-step,error,finish") || !strings.Contains(chunks, "text-delta") {
				t.Errorf("broken chunks: %s", chunks)
			}
			if fm := metaOf(t, broken.Message); fm.Status != "failed" {
				t.Errorf("broken metadata: %+v", fm)
			}
			bs := b.storedMessages(t, broken.Headers["x-session-id"])
			if len(bs) != 2 || bs[1].Status != store.MessageFailed || !strings.Contains(bs[1].Error, "Overloaded") {
				t.Fatalf("broken turn stored: %+v", bs)
			}
		})
	}
}
