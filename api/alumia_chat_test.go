package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
	case strings.Contains(lastUser, "slowly"):
		return llmtest.Reply{Text: "I am taking my time over this answer.", Delay: 100 * time.Millisecond}
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

func newAlumiaBench(t testing.TB, d store.Dialect, cfg api.Config) *alumiaBench {
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

			// The history, as Alumia reads it: UIMessages the AI SDK validates, the answer with
			// the tool as the stream built it, paged by cursor.
			b.checkHistory(t, sid, []*uiMessageOut{first.Message, second.Message, tm})

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

// checkHistory reads a session's messages as Alumia does, and checks that the answers are
// what the stream gave (answers, in order), and the paging rules.
func (b *alumiaBench) checkHistory(t *testing.T, sid string, answers []*uiMessageOut) {
	t.Helper()
	path := b.ts.URL + "/api/v1/sessions/" + sid + "/messages"
	page, err := judgeUI(t, path, b.headers(), "", "SWITCHBOARD_VALIDATE=items")
	if err != nil {
		t.Fatal(err) // validateUIMessages refused the page
	}
	var body struct {
		Items      []uiMessageOut `json:"items"`
		NextCursor *string        `json:"nextCursor"`
		Total      int            `json:"total"`
	}
	if err := json.Unmarshal(page.Body, &body); err != nil || page.Status != 200 || !page.Valid {
		t.Fatalf("history: %d %s", page.Status, page.Body)
	}
	if len(body.Items) != 2*len(answers) || body.Total != len(body.Items) || body.NextCursor != nil {
		t.Fatalf("history holds %d messages (total %d), want %d", len(body.Items), body.Total, 2*len(answers))
	}
	for i, want := range answers {
		user, got := body.Items[2*i], body.Items[2*i+1]
		if user.Role != "user" || len(user.Parts) != 1 || user.Parts[0].Type != "text" {
			t.Errorf("message %d: %+v", 2*i, user)
		}
		if got.ID != want.ID || got.Role != "assistant" || partTypes(&got) != partTypes(want) {
			t.Fatalf("answer %d in the history: %s %s, streamed: %s %s", i, got.ID, partTypes(&got), want.ID, partTypes(want))
		}
		for j, p := range got.Parts {
			w := want.Parts[j]
			if p.Text != w.Text || p.State != w.State || p.ToolCallID != w.ToolCallID || gwCompact(string(p.Input)) != gwCompact(string(w.Input)) ||
				gwCompact(string(p.Output)) != gwCompact(string(w.Output)) {
				t.Errorf("answer %d part %d: history %+v, stream %+v", i, j, p, w)
			}
		}
		var md struct {
			Status string      `json:"status"`
			Usage  api.UIUsage `json:"usage"`
		}
		if err := json.Unmarshal(got.Metadata, &md); err != nil || md.Status != "completed" || md.Usage != metaOf(t, want).Usage {
			t.Errorf("answer %d metadata %s, streamed %s", i, got.Metadata, want.Metadata)
		}
	}

	// By cursor, two at a time.
	var ids []string
	cursor := ""
	for range 10 {
		q := "?pageSize=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := b.ts.request(http.MethodGet, "/api/v1/sessions/"+sid+"/messages"+q, nil, alumiaHeaders(b.key, "acme"))
		wantStatus(t, r, http.StatusOK, "page "+q)
		var pg struct {
			Items      []uiMessageOut `json:"items"`
			NextCursor *string        `json:"nextCursor"`
		}
		if err := json.Unmarshal(r.Body, &pg); err != nil || len(pg.Items) > 2 {
			t.Fatalf("page %s: %s", q, r.Body)
		}
		for _, m := range pg.Items {
			ids = append(ids, m.ID)
		}
		if pg.NextCursor == nil {
			break
		}
		cursor = *pg.NextCursor
	}
	if len(ids) != len(body.Items) || ids[len(ids)-1] != body.Items[len(body.Items)-1].ID {
		t.Errorf("paged ids %v", ids)
	}
	r := b.ts.request(http.MethodGet, "/api/v1/sessions/"+sid+"/messages?countOnly=true", nil, alumiaHeaders(b.key, "acme"))
	if r.Status != 200 || r.JSON(t)["count"] != float64(len(body.Items)) || strings.Contains(string(r.Body), "parts") {
		t.Errorf("countOnly: %d %s", r.Status, r.Body)
	}
	wantAlumiaError(t, b.ts.request(http.MethodGet, "/api/v1/sessions/"+sid+"/messages?pageSize=501", nil, alumiaHeaders(b.key, "acme")), 422, "UNPROCESSABLE_CONTENT", "pageSize")
	wantAlumiaError(t, b.ts.request(http.MethodGet, "/api/v1/sessions/ses_nope/messages", nil, alumiaHeaders(b.key, "acme")), 404, "NOT_FOUND", "")
	// The same history on the canonical surface keeps its own shape.
	canon := b.ts.get("/api/v1/sessions/"+sid+"/messages", b.admin)
	if items, _ := canon["items"].([]any); len(items) != len(body.Items) || items[0].(map[string]any)["content"] == nil || items[0].(map[string]any)["session_id"] != sid {
		t.Errorf("canonical history: %v", canon)
	}
}

// chatRaw posts a chat request over plain HTTP from the local address from (an address of
// 127.0.0.0/8, so that tests can be several clients) and reads the whole answer.
func (b *alumiaBench) chatRaw(t testing.TB, from, key string, body any) response {
	t.Helper()
	raw, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.ts.URL+"/api/v1/chat", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("X-Alumia-Org", "acme")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

func hello(agentID string) map[string]any {
	return map[string]any{"agentId": agentID, "messages": []any{map[string]any{"role": "user", "content": "Hello?"}}}
}

// TestAlumiaChatRateLimit: 429 TOO_MANY_REQUESTS with Retry-After past the chat limit of a
// key, and past the limit of a client address, whichever key it uses.
func TestAlumiaChatRateLimit(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := newAlumiaBench(t, d, api.Config{ChatRateLimit: 3})
			other := b.ts.create("/api/v1/keys", b.admin, map[string]any{"name": "other", "kind": "alumia"})["key"].(string)
			third := b.ts.create("/api/v1/keys", b.admin, map[string]any{"name": "third", "kind": "alumia"})["key"].(string)
			waitOutMinuteEdge(20 * time.Second)
			for i := range 3 {
				wantStatus(t, b.chatRaw(t, "127.0.0.1", b.key, hello(b.agentID)), http.StatusOK, fmt.Sprintf("chat %d", i+1))
			}
			over := b.chatRaw(t, "127.0.0.1", b.key, hello(b.agentID))
			wantAlumiaError(t, over, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "")
			if ra, err := strconv.Atoi(over.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 61 {
				t.Errorf("Retry-After %q", over.Header.Get("Retry-After"))
			}
			// Another key from another address is not limited; the spent key is, from any.
			wantStatus(t, b.chatRaw(t, "127.0.0.2", other, hello(b.agentID)), http.StatusOK, "another key and address")
			wantAlumiaError(t, b.chatRaw(t, "127.0.0.3", b.key, hello(b.agentID)), http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "")
			// The spent address is limited whatever key it presents.
			wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", third, hello(b.agentID)), http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "")
			// Other routes are not chat: the key still lists agents.
			wantStatus(t, b.ts.request(http.MethodGet, "/api/v1/agents", nil, alumiaHeaders(b.key, "acme")), http.StatusOK, "agents of a chat-limited key")
		})
	}
}

// TestAlumiaChatRefusals: 401, 402 and the errors of bad requests, each in Alumia's shape,
// and none of them leaves a session or a message behind.
func TestAlumiaChatRefusals(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := newAlumiaBench(t, d, api.Config{})
			ts := b.ts
			sessions := func() int { return ts.total("/api/v1/sessions", b.admin) }

			wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", "", hello(b.agentID)), 401, "UNAUTHORIZED", "")
			wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", "alm_live_"+strings.Repeat("0", 40), hello(b.agentID)), 401, "UNAUTHORIZED", "")

			// 402 when the balance is spent and the model is paid; a free model answers.
			tenantPath := "/api/v1/tenants/" + b.tenant.ID
			wantStatus(t, ts.do(http.MethodPatch, tenantPath, ts.Key, map[string]any{"balance_usd": 0}), http.StatusOK, "balance 0")
			paid := b.chatRaw(t, "127.0.0.1", b.key, hello(b.paidID))
			wantAlumiaError(t, paid, http.StatusPaymentRequired, "PAYMENT_REQUIRED", "")
			if sessions() != 0 || len(b.up.Requests()) != 0 {
				t.Fatalf("a refused chat left %d sessions, %d upstream requests", sessions(), len(b.up.Requests()))
			}
			wantStatus(t, b.chatRaw(t, "127.0.0.1", b.key, hello(b.agentID)), http.StatusOK, "free model on a spent balance")
			// The same balance holds on the other roads to a paid model: the gateway, in its
			// dialect, and the canonical sessions route.
			gwBody := func(model string) map[string]any {
				return map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": "Hi"}}}
			}
			gw := ts.request(http.MethodPost, "/v1/chat/completions", gwBody("oai/priced"), hdr("X-API-Key", b.admin))
			if e := gwOpenAIError(t, gw, http.StatusPaymentRequired); e.Type != "insufficient_quota" {
				t.Errorf("gateway on a spent balance: %s", gw.Body)
			}
			wantStatus(t, ts.request(http.MethodPost, "/v1/chat/completions", gwBody("oai/gpt-test"), hdr("X-API-Key", b.admin)), http.StatusOK, "gateway, free model")
			paidSession := ts.createID("/api/v1/sessions", b.admin, map[string]any{"agent_id": b.paidID})
			wantError(t, ts.do(http.MethodPost, "/api/v1/sessions/"+paidSession+"/messages", b.admin, map[string]any{"content": "Hi"}), http.StatusPaymentRequired, "payment_required", "")
			if msgs := b.storedMessages(t, paidSession); len(msgs) != 0 {
				t.Errorf("a refused message was stored: %d", len(msgs))
			}
			// With money, the paid model answers and its cost comes off the balance:
			// 12 tokens in at $10 and 9 out at $40 a million.
			wantStatus(t, ts.do(http.MethodPatch, tenantPath, ts.Key, map[string]any{"balance_usd": 1}), http.StatusOK, "balance 1")
			r := b.chatRaw(t, "127.0.0.1", b.key, hello(b.paidID))
			wantStatus(t, r, http.StatusOK, "paid model with a balance")
			bal := ts.get(tenantPath, ts.Key)["balance_usd"].(float64)
			if want := 1 - (12*10+9*40)/1e6; math.Abs(bal-want) > 1e-12 {
				t.Errorf("balance after a paid answer: %v, want %v", bal, want)
			}
			// The refused message kept no answer lease (PostgreSQL claims it as it reads the
			// session): the session answers at once, not after the lease's expiry.
			wantStatus(t, ts.do(http.MethodPost, "/api/v1/sessions/"+paidSession+"/messages", b.admin, map[string]any{"content": "Hi"}), http.StatusOK, "the refused session, with a balance")
			wantStatus(t, ts.do(http.MethodPatch, tenantPath, ts.Key, map[string]any{"balance_usd": nil}), http.StatusOK, "balance null")
			wantStatus(t, b.chatRaw(t, "127.0.0.1", b.key, hello(b.paidID)), http.StatusOK, "paid model without a balance kept")

			before := sessions()
			sid := b.chatRaw(t, "127.0.0.1", b.key, hello(b.agentID)).Header.Get("X-Session-Id")
			for _, c := range []struct {
				name   string
				body   any
				status int
				code   string
				field  string
			}{
				{"not JSON", "{", 422, "UNPROCESSABLE_CONTENT", "body"},
				{"over 1 MiB", map[string]any{"agentId": b.agentID, "messages": []any{map[string]any{"role": "user", "content": strings.Repeat("x", 1<<20)}}}, 413, "PAYLOAD_TOO_LARGE", ""},
				{"no messages", map[string]any{"agentId": b.agentID}, 422, "UNPROCESSABLE_CONTENT", "messages"},
				{"messages not an array", map[string]any{"agentId": b.agentID, "messages": "hi"}, 422, "UNPROCESSABLE_CONTENT", "messages"},
				{"last is the assistant's", map[string]any{"agentId": b.agentID, "messages": []any{map[string]any{"role": "assistant", "content": "Hi"}}}, 422, "UNPROCESSABLE_CONTENT", "messages[0].role"},
				{"empty message", map[string]any{"agentId": b.agentID, "messages": []any{map[string]any{"role": "user", "content": "  "}}}, 422, "UNPROCESSABLE_CONTENT", "messages[0].content"},
				{"content of a number", map[string]any{"agentId": b.agentID, "messages": []any{map[string]any{"role": "user", "content": 7}}}, 422, "UNPROCESSABLE_CONTENT", "messages[0].content"},
				{"no agent, no session", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "Hi"}}}, 422, "UNPROCESSABLE_CONTENT", "agentId"},
				{"unknown agent", hello("agt_nope"), 404, "NOT_FOUND", "agentId"},
				{"unknown session", map[string]any{"sessionId": "ses_nope", "messages": []any{map[string]any{"role": "user", "content": "Hi"}}}, 404, "NOT_FOUND", "sessionId"},
				{"another agent than the session's", map[string]any{"sessionId": sid, "agentId": b.paidID, "messages": []any{map[string]any{"role": "user", "content": "Hi"}}}, 422, "UNPROCESSABLE_CONTENT", "agentId"},
				{"another model than the agent's", map[string]any{"agentId": b.agentID, "model": "oai/other", "messages": []any{map[string]any{"role": "user", "content": "Hi"}}}, 422, "UNPROCESSABLE_CONTENT", "model"},
				{"regenerate", map[string]any{"sessionId": sid, "trigger": "regenerate-message", "messages": []any{map[string]any{"role": "user", "content": "Hi"}}}, 422, "UNPROCESSABLE_CONTENT", "trigger"},
				{"a file without url", map[string]any{"agentId": b.agentID, "messages": []any{map[string]any{"id": "u1", "role": "user", "parts": []any{map[string]any{"type": "file", "mediaType": "image/png"}}}}}, 422, "UNPROCESSABLE_CONTENT", "messages[0].parts[0].url"},
			} {
				wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", b.key, c.body), c.status, c.code, c.field)
			}
			if n := sessions(); n != before+1 {
				t.Errorf("refused chats made sessions: %d, want %d", n, before+1)
			}
			if msgs := b.storedMessages(t, sid); len(msgs) != 2 {
				t.Errorf("refused chats stored messages in the session: %d", len(msgs))
			}
			// A session answering its last message refuses the next with 409; a closed one too.
			slow, _ := json.Marshal(map[string]any{"sessionId": sid, "messages": []any{map[string]any{"role": "user", "content": "Answer slowly"}}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/api/v1/chat", bytes.NewReader(slow))
			req.Header = alumiaHeaders(b.key, "acme")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(resp.Body)
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("the slow answer ended before it started: %v", err)
				}
				if strings.Contains(line, `"type":"start"`) {
					break
				}
			}
			busy := map[string]any{"sessionId": sid, "messages": []any{map[string]any{"role": "user", "content": "Hi again"}}}
			wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", b.key, busy), http.StatusConflict, "CONFLICT", "sessionId")
			rest, _ := io.ReadAll(rd)
			resp.Body.Close()
			if !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
				t.Fatalf("the slow answer: %s", rest)
			}
			wantStatus(t, ts.do(http.MethodPatch, "/api/v1/sessions/"+sid, b.admin, map[string]any{"status": "closed"}), http.StatusOK, "close")
			wantAlumiaError(t, b.chatRaw(t, "127.0.0.1", b.key, busy), http.StatusConflict, "CONFLICT", "sessionId")
			if msgs := b.storedMessages(t, sid); len(msgs) != 4 {
				t.Errorf("after a slow turn and two refusals the session holds %d messages, want 4", len(msgs))
			}

			// Another org's session is not found, as an unknown one.
			ts.tenantAdmin("globex")
			gk := ts.create("/api/v1/keys", ts.tenantAdmin("globex"), map[string]any{"name": "g", "kind": "alumia"})["key"].(string)
			raw, _ := json.Marshal(map[string]any{"sessionId": sid, "messages": []any{map[string]any{"role": "user", "content": "Hi"}}})
			wantAlumiaError(t, ts.request(http.MethodPost, "/api/v1/chat", raw, alumiaHeaders(gk, "globex")), 404, "NOT_FOUND", "sessionId")
		})
	}
}

// TestAlumiaQuickstart is the document's quickstart step by step, over plain HTTP as its curl
// commands: a session made with {"label","agentId"}, a reply streamed in it, the history read
// back, and the conversation continued with the new message alone.
func TestAlumiaQuickstart(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := newAlumiaBench(t, d, api.Config{})
			h := alumiaHeaders(b.key, "acme")
			r := b.ts.request(http.MethodPost, "/api/v1/sessions", map[string]any{"label": "API quickstart", "agentId": b.agentID}, h)
			wantStatus(t, r, http.StatusCreated, "POST /api/v1/sessions")
			sess := r.JSON(t)
			sid, _ := sess["id"].(string)
			if sess["agentId"] != b.agentID || sess["label"] != "API quickstart" {
				t.Fatalf("session: %s", r.Body)
			}
			// An unknown agent is refused in Alumia's shape (the sessions route decides 404 or 422).
			bad := b.ts.request(http.MethodPost, "/api/v1/sessions", map[string]any{"label": "x", "agentId": "agt_nope"}, h)
			switch bad.Status {
			case http.StatusNotFound:
				wantAlumiaError(t, bad, bad.Status, "NOT_FOUND", "")
			default:
				wantAlumiaError(t, bad, http.StatusUnprocessableEntity, "UNPROCESSABLE_CONTENT", "")
			}
			for i, text := range []string{"Summarise the periodic table in 3 sentences.", "Thanks!"} {
				r := b.chatRaw(t, "127.0.0.1", b.key, map[string]any{"sessionId": sid, "agentId": b.agentID,
					"messages": []any{map[string]any{"role": "user", "content": text}}})
				wantStatus(t, r, http.StatusOK, "chat")
				body := string(r.Body)
				if r.Header.Get("X-Vercel-Ai-Ui-Message-Stream") != "v1" || !strings.HasPrefix(body, `data: {"type":"start","messageId":"msg_`) ||
					!strings.HasSuffix(body, "data: [DONE]\n\n") || !strings.Contains(streamedText(t, body), fmt.Sprintf("(user turns seen: %d)", i+1)) {
					t.Fatalf("turn %d: %s", i+1, body)
				}
			}
			r = b.ts.request(http.MethodGet, "/api/v1/sessions/"+sid+"/messages", nil, h)
			wantStatus(t, r, http.StatusOK, "history")
			var page struct {
				Items []uiMessageOut `json:"items"`
			}
			if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Items) != 4 || page.Items[0].Role != "user" || page.Items[3].Role != "assistant" {
				t.Fatalf("history: %s", r.Body)
			}
			if got := b.ts.request(http.MethodGet, "/api/v1/sessions/"+sid, nil, h).JSON(t)["messageCount"]; got != 4.0 {
				t.Errorf("messageCount %v", got)
			}
		})
	}
}

// streamedText joins the text deltas of a UI message stream.
func streamedText(t *testing.T, body string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Type, Delta string
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if c.Type == "text-delta" {
			b.WriteString(c.Delta)
		}
	}
	return b.String()
}

// TestAlumiaChatDisconnect: a client that goes away mid-answer (useChat's stop, a closed tab)
// does not lose the answer: it is made and stored whole, and the history has it.
func TestAlumiaChatDisconnect(t *testing.T) {
	b := newAlumiaBench(t, store.SQLite, api.Config{})
	b.up.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "one two three four five six seven eight", Delay: 30 * time.Millisecond}
	})
	raw, _ := json.Marshal(hello(b.agentID))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reqCtx, leave := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodPost, b.ts.URL+"/api/v1/chat", bytes.NewReader(raw))
	req.Header = alumiaHeaders(b.key, "acme")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sid := resp.Header.Get("X-Session-Id")
	rd := bufio.NewReader(resp.Body)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before its first word: %v", err)
		}
		if strings.Contains(line, `"type":"text-delta"`) {
			break
		}
	}
	leave()
	resp.Body.Close()

	for {
		msgs := b.storedMessages(t, sid)
		if len(msgs) == 2 {
			if a := msgs[1]; a.Status != store.MessageCompleted || a.Text() != "one two three four five six seven eight" {
				t.Fatalf("the answer stored after the client left: %+v", a)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the answer was not stored after the client left: %d messages", len(msgs))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestSpentBalanceOnEverySessionRoad: a spent balance refuses a paid model on every road to
// a session's answer, not only Alumia's chat and the canonical route: AmaStudio's session
// messages and Amarsia's runner (an agent's ID and a deployment's) answered with it before,
// spending on. Each refusal is in its surface's shape, asks nothing upstream, and leaves
// no message (and no run's session) behind; a free model still answers.
func TestSpentBalanceOnEverySessionRoad(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			b := newAlumiaBench(t, d, api.Config{})
			ts := b.ts
			dep := ts.createID("/api/v1/agents/"+b.paidID+"/deployments", b.admin, map[string]any{})
			ama := ts.create("/v1/agents/sessions", b.admin, map[string]any{"agentId": b.paidID, "name": "Paid"})
			amaID, _ := ama["id"].(string)
			if amaID == "" {
				t.Fatalf("AmaStudio session: %v", ama)
			}
			wantStatus(t, ts.do(http.MethodPatch, "/api/v1/tenants/"+b.tenant.ID, ts.Key, map[string]any{"balance_usd": 0}), http.StatusOK, "balance 0")
			sessions := ts.total("/api/v1/sessions", b.admin)

			r := ts.do(http.MethodPost, "/v1/agents/sessions/"+amaID+"/messages", b.admin, map[string]any{"role": "user", "content": "Hi"})
			var amaErr struct {
				Error struct {
					Message string `json:"message"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if r.Status != http.StatusPaymentRequired || json.Unmarshal(r.Body, &amaErr) != nil || amaErr.Error.Code != http.StatusPaymentRequired {
				t.Fatalf("AmaStudio session message on a spent balance: %d %s", r.Status, r.Body)
			}
			if msgs := b.storedMessages(t, amaID); len(msgs) != 0 {
				t.Errorf("a refused AmaStudio message was stored: %d", len(msgs))
			}
			for _, id := range []string{b.paidID, dep} {
				run := ts.request(http.MethodPost, "/v1/runner/"+id, map[string]any{"content": []any{text("Hi")}}, hdr("x-api-key", b.admin))
				if run.Status != http.StatusPaymentRequired {
					t.Fatalf("runner of %s on a spent balance: %d %s", id, run.Status, run.Body)
				}
			}
			if n := ts.total("/api/v1/sessions", b.admin); n != sessions {
				t.Errorf("refused runs left sessions: %d, were %d", n, sessions)
			}
			if n := len(b.up.Requests()); n != 0 {
				t.Fatalf("refused answers asked upstream %d times", n)
			}
			// A free model answers on the same balance.
			run := ts.request(http.MethodPost, "/v1/runner/"+b.agentID, map[string]any{"content": []any{text("Hi")}}, hdr("x-api-key", b.admin))
			wantStatus(t, run, http.StatusOK, "runner with a free model on a spent balance")
		})
	}
}
