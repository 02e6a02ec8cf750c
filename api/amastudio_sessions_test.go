package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestAmaStudioSessions: AmaStudio's three agent session routes with an amallm_ key, as its
// document uses them: a session made with {agentId, name} is listed here and is the same
// session at /api/v1/sessions; a message {role: user, content} gets the agent's answer
// (over the session's history) in the document's shape, and both are stored.
func TestAmaStudioSessions(t *testing.T) {
	t.Parallel()
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		ts := r.testServer.with(t)
		key, keyID := amaKey(t, ts, r.Key, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})

		res := ts.request(http.MethodPost, "/v1/agents/sessions", map[string]any{"agentId": r.agentID, "name": "Debug Session"}, hdr("X-API-Key", key))
		wantStatus(t, res, http.StatusCreated, "POST /v1/agents/sessions")
		created := res.JSON(t)
		id, _ := created["id"].(string)
		if !strings.HasPrefix(id, "ses_") || created["agentId"] != r.agentID || created["name"] != "Debug Session" || created["status"] != "active" {
			t.Fatalf("created %s", res.Body)
		}

		// The same session on the canonical surface, made by the amallm_ key.
		canon := ts.get("/api/v1/sessions/"+id, r.Key)
		if canon["label"] != "Debug Session" || canon["agent_id"] != r.agentID || canon["created_by_key_id"] != keyID {
			t.Errorf("at /api/v1/sessions: %v", canon)
		}
		// And sessions made there are listed here.
		other := r.createSession(t, r.Key, r.agentID)
		var list struct {
			Sessions []map[string]any `json:"sessions"`
			Total    int              `json:"total"`
		}
		res = ts.request(http.MethodGet, "/v1/agents/sessions", nil, bearer(key))
		wantStatus(t, res, http.StatusOK, "GET /v1/agents/sessions")
		if err := json.Unmarshal(res.Body, &list); err != nil || list.Total != 2 || len(list.Sessions) != 2 ||
			list.Sessions[0]["id"] != other || list.Sessions[1]["id"] != id {
			t.Fatalf("list %s", res.Body)
		}
		res = ts.request(http.MethodGet, "/v1/agents/sessions?status=closed", nil, bearer(key))
		if err := json.Unmarshal(res.Body, &list); err != nil || list.Total != 0 {
			t.Fatalf("closed sessions %s", res.Body)
		}

		// Two turns: the second is answered over the first.
		send := func(content, reply string) map[string]any {
			t.Helper()
			r.up.Enqueue(llmtest.Reply{Text: reply})
			res := ts.request(http.MethodPost, "/v1/agents/sessions/"+id+"/messages", map[string]any{"role": "user", "content": content}, hdr("X-API-Key", key))
			wantStatus(t, res, http.StatusOK, "POST message")
			a := res.JSON(t)
			user, _ := a["userMessage"].(map[string]any)
			if a["role"] != "assistant" || a["content"] != reply || a["sessionId"] != id || a["status"] != "completed" ||
				!strings.HasPrefix(a["id"].(string), "msg_") || a["finishReason"] != "stop" || user["content"] != content || user["role"] != "user" {
				t.Fatalf("answer %s", res.Body)
			}
			return a
		}
		send("What's the status?", "All systems go.")
		send("And the database?", "It is up.")
		var sent struct {
			Messages []struct {
				Role    string `json:"role"`
				Content any    `json:"content"`
			} `json:"messages"`
		}
		if err := r.up.Last().Decode(&sent); err != nil {
			t.Fatal(err)
		}
		var said []string
		for _, m := range sent.Messages {
			b, _ := json.Marshal(m.Content)
			said = append(said, m.Role+": "+string(b))
		}
		joined := strings.Join(said, "\n")
		if len(sent.Messages) != 4 || !strings.Contains(joined, "What's the status?") || !strings.Contains(joined, "All systems go.") ||
			!strings.Contains(joined, "And the database?") || !strings.Contains(joined, "Be brief.") {
			t.Errorf("the model was asked:\n%s", joined)
		}
		page := ts.get("/api/v1/sessions/"+id+"/messages", r.Key)
		if items, _ := page["items"].([]any); len(items) != 4 || items[3].(map[string]any)["content"] != "It is up." {
			t.Errorf("history %v", page)
		}
	})
}

// TestAmaStudioSessionErrors: bad input on the session routes is AmaStudio's error with the
// field named: an unknown agent or session is 404 (another tenant's too), a malformed body
// 400, a model failure 502 with both messages stored, a message while one is answered 409.
func TestAmaStudioSessionErrors(t *testing.T) {
	t.Parallel()
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		ts := r.testServer.with(t)
		key, _ := amaKey(t, ts, r.Key, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})
		reader, _ := amaKey(t, ts, r.Key, map[string]any{"scopes": []string{store.ScopeRead}})
		stranger := ts.newKey("other", "stranger", 0, store.ScopeAdmin)
		strangerAgent := r.createAgent(t, stranger, nil)
		strangerSession := r.createSession(t, stranger, strangerAgent)
		id := r.createSession(t, r.Key, r.agentID)
		h := hdr("X-API-Key", key)
		named := func(res response, status int, field string) {
			t.Helper()
			if msg := gwAmaError(t, res, status); field != "" && !strings.Contains(msg, field) {
				t.Errorf("message %q does not name %s", msg, field)
			}
		}

		create := "/v1/agents/sessions"
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": "agt_01jdq3zzzzzzzzzzzzzzzzzzzz", "name": "x"}, h), http.StatusNotFound, "agt_01jdq3zzzzzzzzzzzzzzzzzzzz")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": "nonsense"}, h), http.StatusNotFound, "nonsense")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": strangerAgent}, h), http.StatusNotFound, "Agent")
		// AmaStudio's routes answer in its shape whatever the key.
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": "nonsense"}, hdr("X-API-Key", r.Key)), http.StatusNotFound, "nonsense")
		named(ts.request(http.MethodPost, create, map[string]any{"name": "x"}, h), http.StatusBadRequest, "agentId")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": r.agentID, "name": 7}, h), http.StatusBadRequest, "name")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": r.agentID, "name": strings.Repeat("x", 201)}, h), http.StatusBadRequest, "name")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": r.agentID, "colour": "red"}, h), http.StatusBadRequest, "colour")
		named(ts.request(http.MethodPost, create, `{"agentId":`, h), http.StatusBadRequest, "")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": r.agentID}, hdr("X-API-Key", reader)), http.StatusForbidden, "write")
		named(ts.request(http.MethodPost, create, map[string]any{"agentId": r.agentID}, nil), http.StatusUnauthorized, "")
		named(ts.request(http.MethodGet, create, nil, hdr("X-API-Key", "amallm_nope")), http.StatusUnauthorized, "")
		named(ts.request(http.MethodGet, create+"?status=open", nil, h), http.StatusBadRequest, "status")
		named(ts.request(http.MethodGet, create+"?limit=1000", nil, h), http.StatusBadRequest, "limit")
		named(ts.request(http.MethodDelete, create, nil, h), http.StatusMethodNotAllowed, "")
		if n := ts.total("/api/v1/sessions", r.Key); n != 1 {
			t.Errorf("refused creates left %d sessions, want 1", n)
		}

		msgs := func(sid string) string { return "/v1/agents/sessions/" + sid + "/messages" }
		hello := map[string]any{"role": "user", "content": "Hello"}
		named(ts.request(http.MethodPost, msgs("ses_01jdq3zzzzzzzzzzzzzzzzzzzz"), hello, h), http.StatusNotFound, "Session")
		named(ts.request(http.MethodPost, msgs("nonsense"), hello, h), http.StatusNotFound, "Session")
		named(ts.request(http.MethodPost, msgs(strangerSession), hello, h), http.StatusNotFound, "Session")
		named(ts.request(http.MethodPost, msgs(strangerSession), map[string]any{"name": "stolen"}, h), http.StatusNotFound, "Session")
		named(ts.request(http.MethodPost, msgs(id), map[string]any{"role": "assistant", "content": "Hi"}, h), http.StatusBadRequest, "role")
		named(ts.request(http.MethodPost, msgs(id), map[string]any{"role": "user"}, h), http.StatusBadRequest, "content")
		named(ts.request(http.MethodPost, msgs(id), map[string]any{"role": "user", "content": "  "}, h), http.StatusBadRequest, "content")
		named(ts.request(http.MethodPost, msgs(id), map[string]any{"role": "user", "content": []any{1}}, h), http.StatusBadRequest, "content")
		named(ts.request(http.MethodPost, msgs(id), `[]`, h), http.StatusBadRequest, "")
		named(ts.request(http.MethodGet, msgs(id), nil, h), http.StatusMethodNotAllowed, "")
		if n := ts.get("/api/v1/sessions/"+id, r.Key)["message_count"]; n != float64(0) {
			t.Errorf("refused messages were stored: %v", n)
		}
		if n := len(r.up.Requests()); n != 0 {
			t.Errorf("refused messages reached the model: %d", n)
		}

		// The model fails (the brain asks three times, as on a call): 502, and the message
		// and the failed answer are stored.
		fail := llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "the model fell over"}
		r.up.Enqueue(fail, fail, fail)
		named(ts.request(http.MethodPost, msgs(id), hello, h), http.StatusBadGateway, "the model fell over")
		items, _ := ts.get("/api/v1/sessions/"+id+"/messages", r.Key)["items"].([]any)
		if len(items) != 2 || items[0].(map[string]any)["content"] != "Hello" || items[1].(map[string]any)["status"] != "failed" {
			t.Errorf("after a failure the history is %v", items)
		}

		// While an answer is being made, another message is refused; the first is answered
		// once the stand-in goes on.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"slow ", "answer"}, Fault: llmtest.FaultStall, FaultAfter: 2})
		before := len(r.up.Requests())
		first := make(chan response, 1)
		go func() {
			first <- ts.request(http.MethodPost, msgs(id), map[string]any{"role": "user", "content": "Take your time"}, h)
		}()
		for len(r.up.Requests()) == before {
			select {
			case <-ctx.Done():
				t.Fatal("the first message never reached the model")
			case <-time.After(10 * time.Millisecond):
			}
		}
		named(ts.request(http.MethodPost, msgs(id), map[string]any{"role": "user", "content": "Now"}, h), http.StatusConflict, "")
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", r.Key, nil), http.StatusOK, "cancel")
		select {
		case res := <-first:
			wantStatus(t, res, http.StatusOK, "the canceled message")
			if a := res.JSON(t); a["status"] != "canceled" || a["role"] != "assistant" {
				t.Errorf("canceled answer %s", res.Body)
			}
		case <-ctx.Done():
			t.Fatal("the first message was never answered")
		}
	})
}
