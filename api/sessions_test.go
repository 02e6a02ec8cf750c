package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/store"
)

// sessionRig is a server whose agents answer through a stand-in model, with an agent of the
// default tenant ready.
type sessionRig struct {
	*testServer
	up      *llmtest.Server
	agentID string
}

func newSessionRig(t *testing.T, d store.Dialect) *sessionRig {
	t.Helper()
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k",
		Prices: map[string]llm.Price{"m": {InputPerMTok: 1, OutputPerMTok: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	// Tools of the tests are webhooks on loopback: the operator's switch allows them.
	ts := newTestServerOpts(t, opts, api.Config{Models: reg, Webhooks: agent.NewWebhooks(true), DefaultRateLimit: 1_000_000})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.API.Sessions().Shutdown(ctx)
	})
	r := &sessionRig{testServer: ts, up: up}
	r.agentID = r.createAgent(t, ts.Key, nil)
	return r
}

func (r *sessionRig) createAgent(t *testing.T, key string, toolIDs []any) string {
	t.Helper()
	if toolIDs == nil {
		toolIDs = []any{}
	}
	ag := r.do(http.MethodPost, "/api/v1/agents", key, map[string]any{
		"name": "Ala", "instructions": "Be brief.", "model": "up/m", "tool_ids": toolIDs})
	if ag.Status != http.StatusCreated {
		t.Fatalf("agent: %d %s", ag.Status, ag.Body)
	}
	return ag.JSON(t)["id"].(string)
}

func (r *sessionRig) createSession(t *testing.T, key, agentID string) string {
	t.Helper()
	res := r.do(http.MethodPost, "/api/v1/sessions", key, map[string]any{"agent_id": agentID, "label": "test"})
	if res.Status != http.StatusCreated {
		t.Fatalf("session: %d %s", res.Status, res.Body)
	}
	return res.JSON(t)["id"].(string)
}

func eachSessionDialect(t *testing.T, f func(t *testing.T, r *sessionRig)) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newSessionRig(t, d))
		})
	}
}

func TestSessionsCRUD(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		// Agent Studio's body and Alumia's both create, and the answer carries both spellings.
		a := r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"agent_id": r.agentID, "name": "canonical", "metadata": map[string]any{"k": "v"}})
		b := r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"label": "API quickstart", "agentId": r.agentID})
		for _, res := range []response{a, b} {
			if res.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", res.Status, res.Body)
			}
			m := res.JSON(t)
			if !strings.HasPrefix(m["id"].(string), "ses_") || m["agent_id"] != r.agentID || m["agentId"] != r.agentID ||
				m["status"] != "active" || m["created_at"] == nil || m["createdAt"] == nil || m["label"] != m["name"] {
				t.Fatalf("session answer %s", res.Body)
			}
		}
		if got := b.JSON(t)["label"]; got != "API quickstart" {
			t.Fatalf("label %v", got)
		}
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"agent_id": "agt_01jdq3zzzzzzzzzzzzzzzzzzzz"}), 422, "validation_error", "agent_id")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"label": "x"}), 422, "validation_error", "agent_id")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"agent_id": r.agentID, "colour": "red"}), 422, "validation_error", "colour")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions", r.Key, map[string]any{"agent_id": r.agentID, "label": strings.Repeat("x", 201)}), 422, "validation_error", "label")

		other := r.createAgent(t, r.Key, nil)
		c := r.createSession(t, r.Key, other)
		list := r.do(http.MethodGet, "/api/v1/sessions?agent_id="+other, r.Key, nil).JSON(t)
		if list["total"] != float64(1) || list["items"].([]any)[0].(map[string]any)["id"] != c {
			t.Fatalf("list by agent: %v", list)
		}
		if all := r.do(http.MethodGet, "/api/v1/sessions?limit=2", r.Key, nil).JSON(t); all["total"] != float64(3) || len(all["items"].([]any)) != 2 || all["limit"] != float64(2) {
			t.Fatalf("list: %v", all)
		}
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions?status=open", r.Key, nil), 422, "validation_error", "status")

		id := a.JSON(t)["id"].(string)
		p := r.do(http.MethodPatch, "/api/v1/sessions/"+id, r.Key, map[string]any{"label": "renamed", "metadata": map[string]any{"x": 1}})
		if p.Status != 200 || p.JSON(t)["label"] != "renamed" || p.JSON(t)["metadata"].(map[string]any)["x"] != float64(1) {
			t.Fatalf("patch: %d %s", p.Status, p.Body)
		}
		wantError(t, r.do(http.MethodPatch, "/api/v1/sessions/"+id, r.Key, map[string]any{"agent_id": other}), 422, "validation_error", "agent_id")
		closed := r.do(http.MethodPatch, "/api/v1/sessions/"+id, r.Key, map[string]any{"status": "closed"})
		if closed.Status != 200 || closed.JSON(t)["status"] != "closed" || closed.JSON(t)["closed_at"] == nil {
			t.Fatalf("close: %d %s", closed.Status, closed.Body)
		}
		wantError(t, r.do(http.MethodPatch, "/api/v1/sessions/"+id, r.Key, map[string]any{"status": "active"}), 422, "validation_error", "status")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "hi"}), 409, "conflict", "")
		if got := r.do(http.MethodGet, "/api/v1/sessions?status=closed", r.Key, nil).JSON(t); got["total"] != float64(1) {
			t.Fatalf("closed sessions: %v", got)
		}

		// Another tenant sees none of it.
		stranger := r.newKey("other", "stranger", 0, store.ScopeAdmin)
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/api/v1/sessions/" + c}, {http.MethodPatch, "/api/v1/sessions/" + c},
			{http.MethodDelete, "/api/v1/sessions/" + c}, {http.MethodGet, "/api/v1/sessions/" + c + "/messages"},
			{http.MethodPost, "/api/v1/sessions/" + c + "/messages"}, {http.MethodPost, "/api/v1/sessions/" + c + "/cancel"},
		} {
			var body any
			switch req.method {
			case http.MethodPatch:
				body = map[string]any{"label": "mine now"}
			case http.MethodPost:
				body = map[string]any{"content": "hi"}
			}
			wantError(t, r.do(req.method, req.path, stranger, body), 404, "not_found", "")
		}
		if got := r.do(http.MethodGet, "/api/v1/sessions", stranger, nil).JSON(t); got["total"] != float64(0) {
			t.Fatalf("stranger lists %v", got)
		}
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions", stranger, map[string]any{"agent_id": r.agentID}), 422, "validation_error", "agent_id")

		if d := r.do(http.MethodDelete, "/api/v1/sessions/"+c, r.Key, nil); d.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", d.Status, d.Body)
		}
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions/"+c, r.Key, nil), 404, "not_found", "")
	})
}

func TestSessionMessagesAnswerWithToolsAndPage(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		var hookBody atomic.Value
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			hookBody.Store(string(b))
			_, _ = io.WriteString(w, `{"status":"shipped"}`)
		}))
		defer hook.Close()
		tool := r.do(http.MethodPost, "/api/v1/tools", r.Key, map[string]any{
			"name": "lookup_order", "description": "Look up an order",
			"parameters": map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}},
			"webhook":    map[string]any{"url": hook.URL},
		})
		if tool.Status != http.StatusCreated {
			t.Fatalf("tool: %d %s", tool.Status, tool.Body)
		}
		agentID := r.createAgent(t, r.Key, []any{tool.JSON(t)["id"]})
		id := r.createSession(t, r.Key, agentID)
		r.up.Enqueue(
			llmtest.Reply{Text: "Looking. ", ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "lookup_order", Arguments: `{"id":"42"}`}}},
			llmtest.Reply{Text: "Order 42 has shipped."},
		)
		res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"role": "user", "content": "Where is order 42?"})
		if res.Status != http.StatusOK {
			t.Fatalf("send: %d %s", res.Status, res.Body)
		}
		var turn struct {
			SessionStatus string `json:"session_status"`
			UserMessage   struct {
				ID, Role, Content string
			} `json:"user_message"`
			Message struct {
				ID, Role, Content, Status string
				FinishReason              string              `json:"finish_reason"`
				Parts                     []store.MessagePart `json:"parts"`
				InputTokens               int                 `json:"input_tokens"`
				CostUSD                   float64             `json:"cost_usd"`
			} `json:"message"`
		}
		if err := json.Unmarshal(res.Body, &turn); err != nil {
			t.Fatal(err)
		}
		m := turn.Message
		if m.Content != "Looking. Order 42 has shipped." || m.Role != "assistant" || m.Status != "completed" || m.FinishReason != "stop" ||
			len(m.Parts) != 4 || m.Parts[1].Type != "tool_call" || m.Parts[1].Arguments != `{"id":"42"}` ||
			m.Parts[2].Type != "tool_result" || m.Parts[2].Result != `{"status":"shipped"}` || m.InputTokens != 20 || m.CostUSD <= 0 {
			t.Fatalf("answer %s", res.Body)
		}
		if hookBody.Load() != `{"id":"42"}` || turn.UserMessage.Content != "Where is order 42?" || turn.UserMessage.ID >= m.ID {
			t.Fatalf("webhook got %v; turn %s", hookBody.Load(), res.Body)
		}
		// History reads back in order; the count needs no bodies.
		page := r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages", r.Key, nil).JSON(t)
		items := page["items"].([]any)
		if len(items) != 2 || items[0].(map[string]any)["role"] != "user" || items[1].(map[string]any)["id"] != m.ID ||
			page["total"] != float64(2) || page["limit"] != float64(200) || page["has_more"] != false || page["next_cursor"] != nil {
			t.Fatalf("messages %v", page)
		}
		if c := r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?countOnly=true", r.Key, nil).JSON(t); c["count"] != float64(2) || c["items"] != nil {
			t.Fatalf("count %v", c)
		}
		first := r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?pageSize=1", r.Key, nil).JSON(t)
		next, _ := first["next_cursor"].(string)
		if next != turn.UserMessage.ID || first["nextCursor"] != next || first["has_more"] != true {
			t.Fatalf("first page %v", first)
		}
		second := r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?pageSize=1&cursor="+next, r.Key, nil).JSON(t)
		if items := second["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != m.ID || second["has_more"] != false {
			t.Fatalf("second page %v", second)
		}
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?pageSize=501", r.Key, nil), 422, "validation_error", "pageSize")
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?pageSize=0", r.Key, nil), 422, "validation_error", "pageSize")
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?cursor=nope", r.Key, nil), 422, "validation_error", "cursor")
		wantError(t, r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages?countOnly=maybe", r.Key, nil), 422, "validation_error", "countOnly")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "  "}), 422, "validation_error", "content")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"role": "assistant", "content": "x"}), 422, "validation_error", "role")
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": 42}), 422, "validation_error", "content")

		// The second turn is made over the stored history, the tool's round included.
		r.up.Enqueue(llmtest.Reply{Text: "You're welcome."})
		if res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "Thanks"}); res.Status != 200 {
			t.Fatalf("second turn: %d %s", res.Status, res.Body)
		}
		var sent struct {
			Messages []struct {
				Role       string `json:"role"`
				ToolCallID string `json:"tool_call_id"`
			} `json:"messages"`
		}
		if err := r.up.Last().Decode(&sent); err != nil {
			t.Fatal(err)
		}
		roles := []string{}
		for _, m := range sent.Messages {
			roles = append(roles, m.Role)
		}
		if strings.Join(roles, ",") != "system,user,assistant,tool,assistant,user" {
			t.Fatalf("history sent to the model: %v: %s", roles, r.up.Last().Body)
		}
	})
}

func TestSessionEndCallAndUpstreamFailure(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		id := r.createSession(t, r.Key, r.agentID)
		// An upstream failure: 502, and the turn is stored with the failure.
		r.up.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "context too long"})
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "hi"}), 502, "upstream_error", "")
		items := r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages", r.Key, nil).JSON(t)["items"].([]any)
		if len(items) != 2 || items[1].(map[string]any)["status"] != "failed" || !strings.Contains(items[1].(map[string]any)["error"].(string), "context too long") {
			t.Fatalf("failed turn not stored: %v", items)
		}
		// end_call says goodbye and closes the session.
		r.up.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "e1", Name: "end_call", Arguments: `{"goodbye":"Goodbye!"}`}}})
		res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "bye"})
		if res.Status != 200 {
			t.Fatalf("end_call turn: %d %s", res.Status, res.Body)
		}
		if m := res.JSON(t); m["session_status"] != "closed" || m["message"].(map[string]any)["content"] != "Goodbye!" ||
			m["message"].(map[string]any)["finish_reason"] != "end_call" {
			t.Fatalf("end_call turn %s", res.Body)
		}
		if s := r.do(http.MethodGet, "/api/v1/sessions/"+id, r.Key, nil).JSON(t); s["status"] != "closed" || s["message_count"] != float64(4) {
			t.Fatalf("session after end_call %v", s)
		}
	})
}

// sseEvent is one event of a session's answer stream.
type sseEvent struct {
	Name string
	Data map[string]any
}

// readSessionSSE reads an answer stream with a real HTTP client and a line reader, as an
// EventSource does, sending each event to out until the stream ends.
func readSessionSSE(t *testing.T, body io.Reader, out chan<- sseEvent) {
	defer close(out)
	br := bufio.NewReader(body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.Name != "" || ev.Data != nil {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data); err != nil {
				t.Errorf("data is not JSON: %q", line)
			}
		}
	}
}

// postSSE sends a message asking for an event stream; it returns the response and a channel
// of its events.
func (r *sessionRig) postSSE(t *testing.T, ctx context.Context, id, content string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/api/v1/sessions/"+id+"/messages",
		strings.NewReader(`{"content":`+strings.TrimSpace(mustJSON(t, content))+`}`))
	req.Header.Set("X-API-Key", r.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	out := make(chan sseEvent, 256)
	if resp.StatusCode == http.StatusOK {
		go readSessionSSE(t, resp.Body, out)
	} else {
		close(out)
	}
	return resp, out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSessionMessagesStreamAsSSE(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id := r.createSession(t, r.Key, r.agentID)
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"Hel", "lo ", "there"}})
		resp, evs := r.postSSE(t, ctx, id, "hi")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
		}
		var names []string
		var text strings.Builder
		var finish map[string]any
		for ev := range evs {
			names = append(names, ev.Name)
			if ev.Data["type"] != ev.Name || ev.Data["session_id"] != id {
				t.Fatalf("event %s %v", ev.Name, ev.Data)
			}
			if ev.Name == "text-delta" {
				text.WriteString(ev.Data["delta"].(string))
			}
			if ev.Name == "finish" {
				finish = ev.Data
			}
		}
		want := "start,step-start,text-start,text-delta,text-delta,text-delta,text-end,step-finish,finish"
		if strings.Join(names, ",") != want || text.String() != "Hello there" {
			t.Fatalf("events %v text %q", names, text.String())
		}
		if finish["finish_reason"] != "stop" || finish["usage"].(map[string]any)["output_tokens"] != float64(20) ||
			finish["message"].(map[string]any)["content"] != "Hello there" {
			t.Fatalf("finish %v", finish)
		}
		// An error before the stream starts is a JSON error, not a stream.
		resp, _ = r.postSSE(t, ctx, "ses_01jdq3zzzzzzzzzzzzzzzzzzzz", "hi")
		if resp.StatusCode != 404 {
			t.Fatalf("unknown session: %d", resp.StatusCode)
		}
	})
}

func TestSessionDisconnectBusyAndCancel(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id := r.createSession(t, r.Key, r.agentID)
		// The client leaves after the first delta while the stand-in is still streaming.
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"one ", "two ", "three ", "four"}, Delay: 100 * time.Millisecond})
		reqCtx, leave := context.WithCancel(ctx)
		_, evs := r.postSSE(t, reqCtx, id, "count")
		for ev := range evs {
			if ev.Name == "text-delta" {
				break
			}
		}
		leave()
		// While it is still being answered, a second message is refused.
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "again"}), 409, "conflict", "")
		// The answer is stored whole all the same.
		var items []any
		for {
			items = r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages", r.Key, nil).JSON(t)["items"].([]any)
			if len(items) == 2 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("the answer was never stored")
			case <-time.After(20 * time.Millisecond):
			}
		}
		if a := items[1].(map[string]any); a["content"] != "one two three four" || a["status"] != "completed" {
			t.Fatalf("stored answer %v", a)
		}

		// An explicit cancel closes the model's request upstream.
		wantError(t, r.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", r.Key, nil), 409, "conflict", "")
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"never ", "more"}, Fault: llmtest.FaultStall, FaultAfter: 2})
		_, evs = r.postSSE(t, ctx, id, "stall")
		for ev := range evs {
			if ev.Name == "text-delta" {
				break
			}
		}
		if res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", r.Key, nil); res.Status != 200 || res.JSON(t)["canceled"] != true {
			t.Fatalf("cancel: %d %s", res.Status, res.Body)
		}
		select {
		case <-r.up.Aborted():
		case <-ctx.Done():
			t.Fatal("the upstream request was not closed")
		}
		var rest []string
		for ev := range evs {
			rest = append(rest, ev.Name)
		}
		if strings.Join(rest, ",") != "text-end,step-finish,error,finish" {
			t.Fatalf("events after cancel %v", rest)
		}
		items = r.do(http.MethodGet, "/api/v1/sessions/"+id+"/messages", r.Key, nil).JSON(t)["items"].([]any)
		if a := items[3].(map[string]any); len(items) != 4 || a["status"] != "canceled" || a["content"] != "never " || a["finish_reason"] != "canceled" {
			t.Fatalf("canceled answer %v", items)
		}
	})
}

func TestSessionsInOpenAPI(t *testing.T) {
	ts := newTestServer(t, store.SQLite)
	doc := ts.do(http.MethodGet, "/openapi.json", "", nil)
	if doc.Status != 200 {
		t.Fatalf("openapi: %d", doc.Status)
	}
	body := string(doc.Body)
	for _, want := range []string{`"/api/v1/sessions"`, `"/api/v1/sessions/{id}"`, `"/api/v1/sessions/{id}/messages"`,
		`"/api/v1/sessions/{id}/cancel"`, `"agentId"`, `"agent_id"`, `"pageSize"`, `"countOnly"`, `"next_cursor"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the OpenAPI document lacks %s", want)
		}
	}
}
