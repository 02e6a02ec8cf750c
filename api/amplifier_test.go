package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// ampRig is a server whose "openai" provider (credential OPENAI_API_KEY) is a stand-in, with
// an "anthropic" provider that has no key on this node.
type ampRig struct {
	*testServer
	up *llmtest.Server
}

func newAmpRig(t testing.TB, d store.Dialect, cfg api.Config) *ampRig {
	t.Helper()
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{
		{Name: "openai", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k", KeyEnv: "OPENAI_API_KEY", Models: []string{"m"}},
		{Name: "anthropic", Kind: llm.KindAnthropic, KeyEnv: "ANTHROPIC_API_KEY", KeyRequired: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	cfg.Models, cfg.Webhooks, cfg.DefaultRateLimit = reg, agent.NewWebhooks(true), 1_000_000
	ts := newTestServerOpts(t, opts, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.API.Sessions().Shutdown(ctx)
	})
	return &ampRig{testServer: ts, up: up}
}

func eachAmpDialect(t *testing.T, f func(t *testing.T, r *ampRig)) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newAmpRig(t, d, api.Config{}))
		})
	}
}

// bundleYAML is the document's example on this node's stand-in, with a comment and odd
// spacing that must come back byte for byte.
const bundleYAML = "bundle:\n  name: dev-bundle\n  version: 1.0.0\n\n# the model\nincludes:\n  - bundle: foundation\n\nproviders:\n  - module: provider-openai\n    config:\n      api_key: ${OPENAI_API_KEY}\n      model:   m\n\ninstructions: Be brief.\nsession:\n  orchestrator: loop-basic\n  context: context-simple\n"

func (r *ampRig) createConfig(t testing.TB, key, yml string) map[string]any {
	t.Helper()
	res := r.do(http.MethodPost, "/configs", key, map[string]any{"name": "my-config", "description": "Development configuration",
		"yaml_content": yml, "tags": map[string]string{"env": "dev"}})
	if res.Status != http.StatusCreated {
		t.Fatalf("config: %d %s", res.Status, res.Body)
	}
	return res.JSON(t)
}

// wantDetail checks an answer is FastAPI's {"detail": "…"} of that status, containing want.
func wantDetail(t testing.TB, r response, status int, want string) {
	t.Helper()
	var body struct {
		Detail any `json:"detail"`
	}
	if r.Status != status || json.Unmarshal(r.Body, &body) != nil {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	msg, ok := body.Detail.(string)
	if !ok || !strings.Contains(msg, want) || bytes.Contains(r.Body, []byte(`"error"`)) {
		t.Fatalf("detail %s, want one containing %q", r.Body, want)
	}
}

// wantLoc checks an answer is FastAPI's 422 with an item at loc whose msg contains want.
func wantLoc(t testing.TB, r response, loc, want string) {
	t.Helper()
	var body struct {
		Detail []struct {
			Loc  []any  `json:"loc"`
			Msg  string `json:"msg"`
			Type string `json:"type"`
		} `json:"detail"`
	}
	if r.Status != http.StatusUnprocessableEntity || json.Unmarshal(r.Body, &body) != nil || len(body.Detail) == 0 {
		t.Fatalf("want a 422 detail list: %d %s", r.Status, r.Body)
	}
	for _, d := range body.Detail {
		parts := make([]string, len(d.Loc))
		for i, p := range d.Loc {
			parts[i] = strings.Trim(mustJSONAny(p), `"`)
		}
		if strings.Join(parts, ".") == loc && strings.Contains(d.Msg, want) && d.Type != "" {
			return
		}
	}
	t.Fatalf("no detail at %s with %q: %s", loc, want, r.Body)
}

func mustJSONAny(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAmplifierConfigs(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		c := r.createConfig(t, r.Key, bundleYAML)
		id, agentID := c["config_id"].(string), c["agent_id"].(string)
		if c["yaml_content"] != bundleYAML || c["message"] != "Config created successfully" || c["name"] != "my-config" ||
			c["description"] != "Development configuration" || c["tags"].(map[string]any)["env"] != "dev" || c["created_at"] == nil {
			t.Fatalf("created %v", c)
		}
		// The config is an agent, linked both ways.
		ag := r.do(http.MethodGet, "/api/v1/agents/"+agentID, r.Key, nil).JSON(t)
		if ag["name"] != "dev-bundle" || ag["model"] != "openai/m" || ag["instructions"] != "Be brief." ||
			ag["metadata"].(map[string]any)["amplifier_config_id"] != id {
			t.Fatalf("agent %v", ag)
		}
		got := r.do(http.MethodGet, "/configs/"+id, r.Key, nil)
		if got.Status != 200 || got.JSON(t)["yaml_content"] != bundleYAML || got.JSON(t)["message"] != nil {
			t.Fatalf("get %d %s", got.Status, got.Body)
		}
		list := r.do(http.MethodGet, "/configs", r.Key, nil).JSON(t)
		items := list["configs"].([]any)
		if list["total"] != float64(1) || len(items) != 1 || items[0].(map[string]any)["yaml_content"] != nil || items[0].(map[string]any)["config_id"] != id {
			t.Fatalf("list %v", list)
		}

		// A partial update leaves the agent be; new YAML changes it.
		up := r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"tags": map[string]string{"env": "production"}})
		if up.Status != 200 || up.JSON(t)["message"] != "Config updated successfully" || up.JSON(t)["yaml_content"] != bundleYAML ||
			up.JSON(t)["tags"].(map[string]any)["env"] != "production" {
			t.Fatalf("put tags: %d %s", up.Status, up.Body)
		}
		v2 := strings.Replace(strings.Replace(bundleYAML, "Be brief.", "Be thorough.", 1), "1.0.0", "2.0.0", 1)
		if up := r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"yaml_content": v2, "name": "updated-name"}); up.Status != 200 ||
			up.JSON(t)["yaml_content"] != v2 || up.JSON(t)["name"] != "updated-name" {
			t.Fatalf("put yaml: %d %s", up.Status, up.Body)
		}
		ag = r.do(http.MethodGet, "/api/v1/agents/"+agentID, r.Key, nil).JSON(t)
		if ag["instructions"] != "Be thorough." || ag["metadata"].(map[string]any)["amplifier_bundle_version"] != "2.0.0" {
			t.Fatalf("agent after put %v", ag)
		}

		// What Amplifier refuses as 400, and what cannot run here as 422 naming the place.
		bad := func(yml string) response {
			return r.do(http.MethodPost, "/configs", r.Key, map[string]any{"name": "bad", "yaml_content": yml})
		}
		wantDetail(t, bad("bundle: [unclosed"), 400, "Invalid YAML syntax")
		wantDetail(t, bad("- a\n- b\n"), 400, "YAML must be a dict")
		wantDetail(t, bad("providers: []\n"), 400, "bundle.name is required")
		// Aliases nine deep would decode to 9^9 strings: refused from the parsed tree, at once.
		bomb := "a: &a [x,x,x,x,x,x,x,x,x]\n"
		for i, c := range "bcdefghi" {
			prev := string("abcdefghi"[i])
			bomb += string(c) + ": &" + string(c) + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",") + "]\n"
		}
		wantDetail(t, bad(bomb+"bundle:\n  name: x\n"), 400, "YAML too large")
		wantDetail(t, bad(strings.Repeat("[", 100)+strings.Repeat("]", 100)), 400, "deeper than 64")
		// Nesting costs the parser more than linear time: the whole body's worth is refused
		// before it parses (parsed, it takes minutes).
		start := time.Now()
		wantDetail(t, bad("bundle: {name: x}\nnote: it's\nx: "+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)), 400, "deeper than 64")
		wantDetail(t, bad(strings.Repeat("- ", 100_000)+"x"), 400, "deeper than 64")
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("deep nesting took %v to refuse", took)
		}
		wantLoc(t, bad(strings.Replace(bundleYAML, "${OPENAI_API_KEY}", "${HOME}", 1)), "body.yaml_content.providers.0.config.api_key", "${HOME}, which is not a provider credential")
		wantLoc(t, bad(bundleYAML+"note: ${DATABASE_URL}\n"), "body.yaml_content.note", "Switchboard never reads its environment")
		wantLoc(t, bad(strings.NewReplacer("provider-openai", "provider-anthropic", "${OPENAI_API_KEY}", "${ANTHROPIC_API_KEY}").Replace(bundleYAML)),
			"body.yaml_content.providers.0.config.api_key", "${ANTHROPIC_API_KEY}, which is not a provider credential this node has")
		wantLoc(t, bad(strings.Replace(bundleYAML, "provider-openai", "provider-nope", 1)), "body.yaml_content.providers.0.module", `"nope", which this tenant has not got`)
		wantLoc(t, bad(strings.Replace(bundleYAML, "${OPENAI_API_KEY}", "sk-literal", 1)), "body.yaml_content.providers.0.config.api_key", "must be ${OPENAI_API_KEY}")
		wantLoc(t, bad("bundle:\n  name: x\n"), "body.yaml_content.providers", "at least one provider")
		wantLoc(t, bad(bundleYAML+"tools:\n  - module: tool-web\n"), "body.yaml_content.tools.0.module", "names no tool of this tenant")
		wantLoc(t, r.do(http.MethodPost, "/configs", r.Key, map[string]any{"yaml_content": bundleYAML}), "body.name", "is required")
		wantLoc(t, r.do(http.MethodPost, "/configs", r.Key, map[string]any{"name": "x", "yaml_content": 7}), "body.yaml_content", "must be")
		wantLoc(t, r.do(http.MethodGet, "/configs?limit=0", r.Key, nil), "query.limit", "from 1 to 1000")
		wantDetail(t, r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"yaml_content": "- x\n"}), 400, "YAML must be a dict")
		// The agent is written first and the config refused in the same transaction: neither stays.
		wantLoc(t, r.do(http.MethodPost, "/configs", r.Key, map[string]any{"name": strings.Repeat("n", 201), "yaml_content": bundleYAML}), "body.name", "at most 200")
		wantLoc(t, r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"name": strings.Repeat("n", 201), "yaml_content": bundleYAML}), "body.name", "at most 200")
		// Anchors within bounds are YAML like any other.
		anchored := strings.Replace(bundleYAML, "model:   m", "model: &model m", 1) + "notes:\n  model: *model\n"
		if res := bad(anchored); res.Status != 201 {
			t.Fatalf("anchored YAML: %d %s", res.Status, res.Body)
		} else if del := r.do(http.MethodDelete, "/configs/"+res.JSON(t)["config_id"].(string), r.Key, nil); del.Status != 200 {
			t.Fatalf("delete anchored: %d %s", del.Status, del.Body)
		}
		// Nothing was written by what was refused.
		if n := r.do(http.MethodGet, "/configs", r.Key, nil).JSON(t)["total"]; n != float64(1) {
			t.Fatalf("configs after refusals: %v", n)
		}
		if n := r.do(http.MethodGet, "/api/v1/agents", r.Key, nil).JSON(t)["total"]; n != float64(1) {
			t.Fatalf("agents after refusals: %v", n)
		}
		if got := r.do(http.MethodGet, "/configs/"+id, r.Key, nil).JSON(t); got["yaml_content"] != v2 {
			t.Fatalf("refused put changed the config: %v", got)
		}

		// Errors on these paths are FastAPI's, from authentication to unknown methods.
		wantDetail(t, r.do(http.MethodGet, "/configs", "", nil), 401, "Missing or invalid credentials")
		wantDetail(t, r.do(http.MethodPatch, "/configs/"+id, r.Key, map[string]any{}), 405, "not allowed")
		wantDetail(t, r.do(http.MethodGet, "/bundles", r.Key, nil), 404, "No such route")
		wantDetail(t, r.do(http.MethodGet, "/configs/cfg_01jdq3zzzzzzzzzzzzzzzzzzzz", r.Key, nil), 404, "Config not found")
		// Another tenant's config is not found.
		other := r.newKey("other", "admin", 0, store.ScopeAdmin)
		wantDetail(t, r.do(http.MethodGet, "/configs/"+id, other, nil), 404, "Config not found")
		wantDetail(t, r.do(http.MethodDelete, "/configs/"+id, other, nil), 404, "Config not found")
		if n := r.do(http.MethodGet, "/configs", other, nil).JSON(t)["total"]; n != float64(0) {
			t.Fatalf("other tenant sees %v configs", n)
		}

		// The agent deleted on its own comes back with the next PUT.
		if res := r.do(http.MethodDelete, "/api/v1/agents/"+agentID, r.Key, nil); res.Status != http.StatusNoContent {
			t.Fatalf("delete agent: %d %s", res.Status, res.Body)
		}
		if got := r.do(http.MethodGet, "/configs/"+id, r.Key, nil).JSON(t); got["agent_id"] != nil {
			t.Fatalf("config keeps a deleted agent: %v", got)
		}
		wantDetail(t, r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"config_id": id}), 409, "PUT the config")
		up = r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"description": "again"})
		agentID, _ = up.JSON(t)["agent_id"].(string)
		if up.Status != 200 || agentID == "" || r.do(http.MethodGet, "/api/v1/agents/"+agentID, r.Key, nil).Status != 200 {
			t.Fatalf("put remade no agent: %d %s", up.Status, up.Body)
		}

		// An agent that answers a phone number keeps its config: nothing is deleted.
		pn := r.do(http.MethodPost, "/api/v1/phone-numbers", r.Key, map[string]any{"number": "+14155550199", "agent_id": agentID})
		if pn.Status != http.StatusCreated {
			t.Fatalf("phone number: %d %s", pn.Status, pn.Body)
		}
		wantDetail(t, r.do(http.MethodDelete, "/configs/"+id, r.Key, nil), 409, "nothing was deleted")
		if r.do(http.MethodGet, "/configs/"+id, r.Key, nil).Status != 200 || r.do(http.MethodGet, "/api/v1/agents/"+agentID, r.Key, nil).Status != 200 {
			t.Fatal("a refused delete removed something")
		}
		if res := r.do(http.MethodDelete, "/api/v1/phone-numbers/"+pn.JSON(t)["id"].(string), r.Key, nil); res.Status != http.StatusNoContent {
			t.Fatalf("delete phone number: %d %s", res.Status, res.Body)
		}

		// Deleting the config deletes its agent; the agent's sessions keep their history.
		sess := r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"config_id": id}).JSON(t)["session_id"].(string)
		del := r.do(http.MethodDelete, "/configs/"+id, r.Key, nil)
		if del.Status != 200 || del.JSON(t)["message"] != "Config deleted successfully" {
			t.Fatalf("delete: %d %s", del.Status, del.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/configs/"+id, r.Key, nil), 404, "Config not found")
		if res := r.do(http.MethodGet, "/api/v1/agents/"+agentID, r.Key, nil); res.Status != 404 {
			t.Fatalf("the deleted config's agent: %d", res.Status)
		}
		if got := r.do(http.MethodGet, "/sessions/"+sess, r.Key, nil); got.Status != 200 || got.JSON(t)["agent_id"] != nil || got.JSON(t)["config_id"] != id {
			t.Fatalf("the session of a deleted config: %d %s", got.Status, got.Body)
		}
		wantDetail(t, r.do(http.MethodPost, "/sessions/"+sess+"/messages", r.Key, map[string]any{"message": "hi"}), 409, "deleted")
	})
}

func TestAmplifierConfigTools(t *testing.T) {
	r := newAmpRig(t, store.SQLite, api.Config{})
	tool := r.do(http.MethodPost, "/api/v1/tools", r.Key, map[string]any{"name": "lookup", "description": "Look up",
		"parameters": map[string]any{"type": "object"}, "webhook": map[string]any{"url": "http://127.0.0.1:9/x"}})
	if tool.Status != http.StatusCreated {
		t.Fatalf("tool: %d %s", tool.Status, tool.Body)
	}
	c := r.createConfig(t, r.Key, bundleYAML+"tools:\n  - module: tool-lookup\n")
	ag := r.do(http.MethodGet, "/api/v1/agents/"+c["agent_id"].(string), r.Key, nil).JSON(t)
	if ids := ag["tool_ids"].([]any); len(ids) != 1 || ids[0] != tool.JSON(t)["id"] {
		t.Fatalf("agent tools %v", ag["tool_ids"])
	}
}

// ampEvent is one event of Amplifier's stream: its data.
type ampEvent map[string]any

// readAmpSSE reads data-only Server-Sent Events as a client does, each to out, until the
// stream ends.
func readAmpSSE(t *testing.T, body io.Reader, out chan<- ampEvent) {
	defer close(out)
	br := bufio.NewReader(body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev ampEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Errorf("data is not JSON: %q", line)
				return
			}
			out <- ev
		} else if line != "" {
			t.Errorf("unexpected line %q", line)
		}
	}
}

func (r *ampRig) stream(t *testing.T, ctx context.Context, id, msg string) (*http.Response, <-chan ampEvent) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/sessions/"+id+"/stream",
		strings.NewReader(`{"message":`+mustJSON(t, msg)+`,"context":{}}`))
	req.Header.Set("X-API-Key", r.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	out := make(chan ampEvent, 256)
	if resp.StatusCode == http.StatusOK {
		go readAmpSSE(t, resp.Body, out)
	} else {
		close(out)
	}
	return resp, out
}

func TestAmplifierSessions(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.WriteString(w, `{"status":"shipped"}`)
		}))
		defer hook.Close()
		if tool := r.do(http.MethodPost, "/api/v1/tools", r.Key, map[string]any{"name": "lookup_order", "description": "Look up an order",
			"parameters": map[string]any{"type": "object"}, "webhook": map[string]any{"url": hook.URL}}); tool.Status != 201 {
			t.Fatalf("tool: %d %s", tool.Status, tool.Body)
		}
		c := r.createConfig(t, r.Key, bundleYAML+"tools:\n  - module: lookup_order\n")
		cfgID := c["config_id"].(string)
		res := r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"config_id": cfgID})
		s := res.JSON(t)
		id, _ := s["session_id"].(string)
		if res.Status != 201 || s["config_id"] != cfgID || s["status"] != "active" || s["message"] != "Session created successfully" {
			t.Fatalf("session: %d %s", res.Status, res.Body)
		}
		// It is a session of the canonical surface, with the config's agent.
		if cs := r.do(http.MethodGet, "/api/v1/sessions/"+id, r.Key, nil).JSON(t); cs["agent_id"] != c["agent_id"] || cs["label"] != "my-config" {
			t.Fatalf("canonical session %v", cs)
		}
		wantLoc(t, r.do(http.MethodPost, "/sessions", r.Key, map[string]any{}), "body.config_id", "is required")
		wantDetail(t, r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"config_id": "cfg_01jdq3zzzzzzzzzzzzzzzzzzzz"}), 404, "Config not found")

		// A message and its answer.
		r.up.Enqueue(llmtest.Reply{Text: "Here's a Python function"})
		res = r.do(http.MethodPost, "/sessions/"+id+"/messages", r.Key, map[string]any{"message": "fib please", "context": map[string]any{"lang": "py"}})
		m := res.JSON(t)
		if res.Status != 200 || m["session_id"] != id || m["response"] != "Here's a Python function" || m["metadata"].(map[string]any)["config_id"] != cfgID {
			t.Fatalf("message: %d %s", res.Status, res.Body)
		}
		wantLoc(t, r.do(http.MethodPost, "/sessions/"+id+"/messages", r.Key, map[string]any{"context": map[string]any{}}), "body.message", "is required")

		// The stream: connected, deltas, the tool's activity, response, done, in order.
		r.up.Enqueue(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "lookup_order", Arguments: `{"id":"42"}`}}},
			llmtest.Reply{Chunks: []string{"Order ", "42 ", "shipped."}},
		)
		resp, evs := r.stream(t, ctx, id, "Where is order 42?")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		var types []string
		var text strings.Builder
		var last ampEvent
		for ev := range evs {
			typ, _ := ev["type"].(string)
			types = append(types, typ)
			switch typ {
			case "connected":
				if ev["session_id"] != id {
					t.Fatalf("connected %v", ev)
				}
			case "provider:stream:delta":
				text.WriteString(ev["data"].(map[string]any)["content"].(string))
			case "tool:pre":
				if d := ev["data"].(map[string]any); d["tool_name"] != "lookup_order" || d["tool_input"].(map[string]any)["id"] != "42" {
					t.Fatalf("tool:pre %v", ev)
				}
			case "tool:post":
				if d := ev["data"].(map[string]any); d["result"] != `{"status":"shipped"}` {
					t.Fatalf("tool:post %v", ev)
				}
			case "response":
				last = ev
			}
		}
		want := "connected,tool:pre,tool:post,provider:stream:delta,provider:stream:delta,provider:stream:delta,response,done"
		if strings.Join(types, ",") != want || text.String() != "Order 42 shipped." || last["content"] != "Order 42 shipped." {
			t.Fatalf("events %v text %q last %v", types, text.String(), last)
		}

		// Cancel closes the model's request upstream and ends the stream cleanly.
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"never ", "more"}, Fault: llmtest.FaultStall, FaultAfter: 2})
		_, evs = r.stream(t, ctx, id, "stall")
		for ev := range evs {
			if ev["type"] == "provider:stream:delta" {
				break
			}
		}
		if res := r.do(http.MethodPost, "/sessions/"+id+"/cancel", r.Key, nil); res.Status != 200 || res.JSON(t)["message"] != "Cancellation requested" || res.JSON(t)["cancelled"] != true {
			t.Fatalf("cancel: %d %s", res.Status, res.Body)
		}
		select {
		case <-r.up.Aborted():
		case <-ctx.Done():
			t.Fatal("the upstream request was not closed")
		}
		var rest []string
		for ev := range evs {
			rest = append(rest, ev["type"].(string))
		}
		if strings.Join(rest, ",") != "cancelled,done" {
			t.Fatalf("events after cancel %v", rest)
		}
		if res := r.do(http.MethodPost, "/sessions/"+id+"/cancel", r.Key, nil); res.Status != 200 || res.JSON(t)["cancelled"] != false {
			t.Fatalf("idle cancel: %d %s", res.Status, res.Body)
		}

		// A model that fails: a 502 detail, or the stream's error event, then done.
		r.up.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "context too long"})
		wantDetail(t, r.do(http.MethodPost, "/sessions/"+id+"/messages", r.Key, map[string]any{"message": "hi"}), 502, "The model could not answer")
		r.up.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "context too long"})
		_, evs = r.stream(t, ctx, id, "hi")
		var failed []string
		for ev := range evs {
			failed = append(failed, ev["type"].(string))
			if ev["type"] == "error" && ev["error"] == "" {
				t.Fatalf("error event without its error: %v", ev)
			}
		}
		if strings.Join(failed, ",") != "connected,error,done" {
			t.Fatalf("events of a failed answer %v", failed)
		}

		// Listed with its messages counted; resumed; deleted.
		list := r.do(http.MethodGet, "/sessions", r.Key, nil).JSON(t)
		first := list["sessions"].([]any)[0].(map[string]any)
		if list["total"] != float64(1) || first["session_id"] != id || first["message_count"] != float64(10) || first["config_id"] != cfgID {
			t.Fatalf("sessions %v", list)
		}
		if res := r.do(http.MethodPost, "/sessions/"+id+"/resume", r.Key, nil); res.Status != 200 || res.JSON(t)["message"] != "Session resumed successfully" {
			t.Fatalf("resume: %d %s", res.Status, res.Body)
		}
		other := r.newKey("other", "admin", 0, store.ScopeAdmin)
		for _, p := range []string{"", "/resume", "/cancel", "/messages"} {
			method := http.MethodPost
			if p == "" {
				method = http.MethodGet
			}
			wantDetail(t, r.do(method, "/sessions/"+id+p, other, map[string]any{"message": "hi"}), 404, "Session not found")
		}
		wantDetail(t, r.do(http.MethodDelete, "/sessions/"+id, other, nil), 404, "Session not found")
		if res := r.do(http.MethodDelete, "/sessions/"+id, r.Key, nil); res.Status != 200 || res.JSON(t)["message"] != "Session deleted successfully" {
			t.Fatalf("delete: %d %s", res.Status, res.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/sessions/"+id, r.Key, nil), 404, "Session not found")
	})
}

func TestAmplifierApplications(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		res := r.do(http.MethodPost, "/applications", r.Key, map[string]any{"app_id": "my-mobile-app", "app_name": "My Mobile App"})
		app := res.JSON(t)
		key, _ := app["api_key"].(string)
		if res.Status != 201 || !strings.HasPrefix(key, "app_") || app["is_active"] != true || app["app_name"] != "My Mobile App" || app["created_at"] == nil {
			t.Fatalf("register: %d %s", res.Status, res.Body)
		}
		if got := r.do(http.MethodGet, "/configs", key, nil); got.Status != 200 {
			t.Fatalf("the application's key: %d %s", got.Status, got.Body)
		}
		// A key of the tenant, listed with the others.
		keys := r.do(http.MethodGet, "/api/v1/keys", r.Key, nil).JSON(t)["items"].([]any)
		found := false
		for _, k := range keys {
			if k.(map[string]any)["id"] == app["key_id"] && k.(map[string]any)["kind"] == "app_" {
				found = true
			}
		}
		if !found {
			t.Fatalf("the application's key is not in the key list: %v", keys)
		}
		list := r.do(http.MethodGet, "/applications", r.Key, nil)
		var arr []map[string]any
		if err := json.Unmarshal(list.Body, &arr); err != nil || len(arr) != 1 || arr[0]["app_id"] != "my-mobile-app" || arr[0]["api_key"] != nil ||
			bytes.Contains(list.Body, []byte(key)) {
			t.Fatalf("list: %s", list.Body)
		}
		if got := r.do(http.MethodGet, "/applications/my-mobile-app", r.Key, nil); got.Status != 200 || got.JSON(t)["api_key"] != nil || got.JSON(t)["is_active"] != true {
			t.Fatalf("get: %d %s", got.Status, got.Body)
		}

		// Regenerating: the old key is refused on the very next request.
		res = r.do(http.MethodPost, "/applications/my-mobile-app/regenerate-key", r.Key, nil)
		newKey, _ := res.JSON(t)["api_key"].(string)
		if res.Status != 200 || newKey == key || !strings.HasPrefix(newKey, "app_") || res.JSON(t)["message"] != "API key regenerated successfully" {
			t.Fatalf("regenerate: %d %s", res.Status, res.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/configs", key, nil), 401, "Missing or invalid credentials")
		if got := r.do(http.MethodGet, "/configs", newKey, nil); got.Status != 200 {
			t.Fatalf("the new key: %d %s", got.Status, got.Body)
		}

		wantDetail(t, r.do(http.MethodPost, "/applications", r.Key, map[string]any{"app_id": "my-mobile-app", "app_name": "Again"}), 409, "already exists")
		wantLoc(t, r.do(http.MethodPost, "/applications", r.Key, map[string]any{"app_name": "x"}), "body.app_id", "is required")
		wantLoc(t, r.do(http.MethodPost, "/applications", r.Key, map[string]any{"app_id": "no spaces", "app_name": "x"}), "body.app_id", "letters, digits")
		// An application's key cannot manage applications (it is not an admin key).
		wantDetail(t, r.do(http.MethodGet, "/applications", newKey, nil), 403, "scope")
		other := r.newKey("other", "admin", 0, store.ScopeAdmin)
		wantDetail(t, r.do(http.MethodGet, "/applications/my-mobile-app", other, nil), 404, "not found")
		wantDetail(t, r.do(http.MethodPost, "/applications/my-mobile-app/regenerate-key", other, nil), 404, "not found")

		// Deleting revokes its key at once; the key stays listed, revoked.
		if res := r.do(http.MethodDelete, "/applications/my-mobile-app", r.Key, nil); res.Status != 200 {
			t.Fatalf("delete: %d %s", res.Status, res.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/configs", newKey, nil), 401, "Missing or invalid credentials")
		if got := r.do(http.MethodGet, "/applications", r.Key, nil); string(bytes.TrimSpace(got.Body)) != "[]" {
			t.Fatalf("list after delete: %s", got.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/applications/my-mobile-app", r.Key, nil), 404, "not found")
	})
}

func TestAmplifierKeyless(t *testing.T) {
	open := newAmpRig(t, store.SQLite, api.Config{AmplifierAuthOptional: true})
	// From loopback without a key: the default tenant, on the Amplifier paths only.
	c := open.createConfig(t, "", bundleYAML)
	if got := open.do(http.MethodGet, "/configs/"+c["config_id"].(string), open.Key, nil); got.Status != 200 {
		t.Fatalf("the keyless config is not the default tenant's: %d %s", got.Status, got.Body)
	}
	if got := open.do(http.MethodGet, "/smoke-tests/quick", "", nil); got.Status != 200 {
		t.Fatalf("keyless smoke tests: %d %s", got.Status, got.Body)
	}
	wantError(t, open.do(http.MethodGet, "/api/v1/agents", "", nil), 401, "authentication_error", "")
	// A wrong key is refused, not taken as none.
	wantDetail(t, open.do(http.MethodGet, "/configs", "app_wrong", nil), 401, "Missing or invalid credentials")
	// Through a proxy, loopback is every client's address: refused.
	req, _ := http.NewRequest(http.MethodGet, open.URL+"/configs", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantDetail(t, response{Status: resp.StatusCode, Body: body}, 401, "Missing or invalid credentials")
	// A web page that a browser on this host shows is not this host's own program: a page
	// of another site (Origin, Sec-Fetch-Site), or one under a name of its own rebound to
	// 127.0.0.1 (Host), is refused; a page served from loopback (a local dev UI) is not.
	keyless := func(method, body string, h ...string) response {
		t.Helper()
		req, _ := http.NewRequest(method, open.URL+"/configs", strings.NewReader(body))
		for i := 0; i+1 < len(h); i += 2 {
			if h[i] == "Host" {
				req.Host = h[i+1]
			} else {
				req.Header.Set(h[i], h[i+1])
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	port := open.URL[strings.LastIndex(open.URL, ":")+1:]
	cfgBody := `{"name":"from a page","yaml_content":` + mustJSONAny(bundleYAML) + `}`
	wantDetail(t, keyless(http.MethodPost, cfgBody, "Origin", "https://evil.example"), 401, "Missing or invalid credentials")
	wantDetail(t, keyless(http.MethodPost, cfgBody, "Origin", "null"), 401, "Missing or invalid credentials")
	wantDetail(t, keyless(http.MethodGet, "", "Host", "rebound.example:"+port), 401, "Missing or invalid credentials")
	wantDetail(t, keyless(http.MethodGet, "", "Sec-Fetch-Site", "cross-site"), 401, "Missing or invalid credentials")
	if got := keyless(http.MethodPost, cfgBody, "Origin", "http://localhost:3000", "Host", "localhost:"+port); got.Status != http.StatusCreated {
		t.Fatalf("a page served from loopback: %d %s", got.Status, got.Body)
	}
	if got := keyless(http.MethodGet, "", "Host", "[::1]:"+port); got.Status != http.StatusOK {
		t.Fatalf("Host [::1]: %d %s", got.Status, got.Body)
	}
	if got := open.do(http.MethodGet, "/configs", open.Key, nil).JSON(t); got["total"] != float64(2) {
		t.Fatalf("configs: %v", got)
	}

	// From another address of this host (not loopback): refused.
	if ip := nonLoopbackIP(); ip != "" {
		ts := httptest.NewUnstartedServer(open.API.Handler())
		l, err := netListen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		ts.Listener = l
		ts.Start()
		defer ts.Close()
		resp, err := http.Get(ts.URL + "/configs")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantDetail(t, response{Status: resp.StatusCode, Body: body}, 401, "Missing or invalid credentials")
	} else {
		t.Log("no address but loopback on this host: the remote case is covered by the proxy case only")
	}

	// With the switch off (the default), a key is needed from loopback too.
	closed := newAmpRig(t, store.SQLite, api.Config{})
	wantDetail(t, closed.do(http.MethodGet, "/configs", "", nil), 401, "Missing or invalid credentials")
	wantDetail(t, closed.do(http.MethodGet, "/smoke-tests/quick", "", nil), 401, "Missing or invalid credentials")
}

func TestAmplifierSmokeTests(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		start := time.Now()
		res := r.do(http.MethodGet, "/smoke-tests/quick", r.Key, nil)
		took := time.Since(start)
		q := res.JSON(t)
		tests, _ := q["tests"].([]any)
		if res.Status != 200 || q["success"] != true || q["passed"] != float64(7) || q["failed"] != float64(0) || q["total"] != float64(7) || len(tests) != 7 || q["timestamp"] == nil {
			t.Fatalf("quick: %d %s", res.Status, res.Body)
		}
		if took > 5*time.Second {
			t.Fatalf("quick smoke tests took %v", took)
		}
		// Run after run, the node's requests of itself count against no client's limits:
		// more runs than the limit of failed authentications a minute (30) all pass, and a
		// loopback client's new key is let in afterwards.
		for i := 0; i < 35; i++ {
			if res := r.do(http.MethodGet, "/smoke-tests/quick", r.Key, nil); res.Status != 200 || !bytes.Contains(res.Body, []byte(`"success":true`)) {
				t.Fatalf("quick run %d: %d %s", i, res.Status, res.Body)
			}
		}
		if got := r.do(http.MethodGet, "/configs", r.newKey(store.DefaultTenantSlug, "fresh", 0, store.ScopeRead), nil); got.Status != 200 {
			t.Fatalf("a new key after the smoke runs: %d %s", got.Status, got.Body)
		}
		full := r.do(http.MethodGet, "/smoke-tests?verbose=true", r.Key, nil).JSON(t)
		out, _ := full["stdout"].(string)
		if full["success"] != true || full["exit_code"] != float64(0) || !strings.Contains(out, "test_smoke.py::test_session_lifecycle PASSED") ||
			full["summary"].(map[string]any)["failed"] != float64(0) {
			t.Fatalf("suite: %v", full)
		}
		sel := r.do(http.MethodGet, "/smoke-tests?pattern=test_*_lifecycle", r.Key, nil).JSON(t)
		if sel["summary"].(map[string]any)["total"] != float64(3) || sel["exit_code"] != float64(0) || strings.Contains(sel["stdout"].(string), "test_smoke.py::") {
			t.Fatalf("pattern: %v", sel)
		}
		if none := r.do(http.MethodGet, "/smoke-tests?pattern=nothing-matches", r.Key, nil).JSON(t); none["exit_code"] != float64(5) || none["success"] != false {
			t.Fatalf("no match: %v", none)
		}
		// Operator only.
		admin := r.newKey("acme", "admin", 0, store.ScopeAdmin)
		wantDetail(t, r.do(http.MethodGet, "/smoke-tests/quick", admin, nil), 403, "operator")
		wantDetail(t, r.do(http.MethodGet, "/smoke-tests", admin, nil), 403, "operator")
		// The throwaway data is gone.
		for path, field := range map[string]string{"/configs": "total", "/sessions": "total", "/api/v1/agents": "total", "/api/v1/sessions": "total"} {
			if n := r.do(http.MethodGet, path, r.Key, nil).JSON(t)[field]; n != float64(0) {
				t.Fatalf("%s holds %v after the smoke tests", path, n)
			}
		}
		if got := r.do(http.MethodGet, "/applications", r.Key, nil); string(bytes.TrimSpace(got.Body)) != "[]" {
			t.Fatalf("applications after the smoke tests: %s", got.Body)
		}
		// The operator's key and the fresh one above: the throwaway applications' are gone.
		if n := r.do(http.MethodGet, "/api/v1/keys", r.Key, nil).JSON(t)["total"]; n != float64(2) {
			t.Fatalf("keys after the smoke tests: %v", n)
		}
	})
}

func TestAmplifierInOpenAPI(t *testing.T) {
	ts := newTestServer(t, store.SQLite)
	// The service endpoints Amplifier's clients read carry its fields.
	for path, fields := range map[string][]string{"/": {"service", "version", "description", "docs", "health"},
		"/health":  {"status", "version", "uptime", "database_connected"},
		"/version": {"service_version", "amplifier_core_version", "amplifier_foundation_version"}} {
		m := ts.do(http.MethodGet, path, "", nil).JSON(t)
		for _, f := range fields {
			if m[f] == nil || m[f] == "" {
				t.Fatalf("%s lacks %s: %v", path, f, m)
			}
		}
	}
	doc := ts.do(http.MethodGet, "/openapi.json", "", nil)
	for _, want := range []string{`"/configs/{id}"`, `"/sessions/{id}/stream"`, `"/applications/{id}/regenerate-key"`,
		`"/smoke-tests/quick"`, `"FastAPIError"`, `"yaml_content"`} {
		if !bytes.Contains(doc.Body, []byte(want)) {
			t.Fatalf("the OpenAPI document lacks %s", want)
		}
	}
}

// BenchmarkAmplifierQuickSmoke is the wall time of GET /smoke-tests/quick, over HTTP, on
// each database.
func BenchmarkAmplifierQuickSmoke(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			r := newAmpRig(b, d, api.Config{})
			b.ReportAllocs()
			took := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if res := r.do(http.MethodGet, "/smoke-tests/quick", r.Key, nil); res.Status != 200 || !bytes.Contains(res.Body, []byte(`"success":true`)) {
					b.Fatalf("quick: %d %s", res.Status, res.Body)
				}
				took[i] = time.Since(start)
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[b.N*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(took[b.N-1].Microseconds())/1000, "max-ms")
		})
	}
}

var netListen = net.Listen

// nonLoopbackIP is an IPv4 address of this host that is not loopback, or "".
func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// TestAmplifierRegenerateKeyOnEveryNode: two nodes on one PostgreSQL; a key another node
// already trusts is refused there as soon as the revocation's event arrives, long before
// that node's key cache would have let it go.
func TestAmplifierRegenerateKeyOnEveryNode(t *testing.T) {
	url := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node := func() (*testServer, *realtime.Hub) {
		hub := realtime.NewHub(realtime.Options{})
		relay := realtime.NewPostgresRelay(url, hub, nil)
		// The server migrates the database the relay writes to.
		ts := newTestServerOpts(t, store.Options{URL: url, DataDir: t.TempDir(), Secret: testSecret}, api.Config{Hub: hub})
		rctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { relay.Run(rctx); close(done) }()
		t.Cleanup(func() { stop(); <-done })
		select {
		case <-relay.Ready():
		case <-ctx.Done():
			t.Fatal("the relay never listened")
		}
		return ts, hub
	}
	a, _ := node()
	b, hubB := node()
	revoked := make(chan struct{}, 4)
	hubB.Observe(realtime.TypeCredentialRevoked, func(*realtime.Event) { revoked <- struct{}{} })

	res := a.do(http.MethodPost, "/applications", a.Key, map[string]any{"app_id": "mobile", "app_name": "Mobile"})
	old, _ := res.JSON(t)["api_key"].(string)
	if res.Status != 201 {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	// Node b trusts the key (and caches it).
	if got := b.do(http.MethodGet, "/configs", old, nil); got.Status != 200 {
		t.Fatalf("the key on node b: %d %s", got.Status, got.Body)
	}
	start := time.Now()
	if res := a.do(http.MethodPost, "/applications/mobile/regenerate-key", a.Key, nil); res.Status != 200 {
		t.Fatalf("regenerate: %d %s", res.Status, res.Body)
	}
	wantDetail(t, a.do(http.MethodGet, "/configs", old, nil), 401, "Missing or invalid credentials")
	select {
	case <-revoked:
	case <-ctx.Done():
		t.Fatal("node b never heard of the revocation")
	}
	// Node b acts on the event on a goroutine of its own: its next requests are refused as
	// soon as it has, well inside its 30 s key cache.
	for {
		got := b.do(http.MethodGet, "/configs", old, nil)
		if got.Status == http.StatusUnauthorized {
			wantDetail(t, got, 401, "Missing or invalid credentials")
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node b still takes the old key %v after the regeneration", time.Since(start))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("node b refused the old key only after %v", took)
	}
}

// amplifierRoot is the Amplifier collection a root path names ("/configs"), or "".
func amplifierRoot(path string) string {
	for _, root := range []string{"/configs", "/sessions", "/applications"} {
		if path == root || strings.HasPrefix(path, root+"/") {
			return root
		}
	}
	return ""
}

// amplifierFixtures makes one of each Amplifier resource with key (a config on the tenant's
// own provider, a session from it, an application), tagged so that app_ids differ between
// tenants, and returns their ids by root path.
func (ts *testServer) amplifierFixtures(key string, tag int) map[string]string {
	ts.t.Helper()
	ids := map[string]string{}
	// The tenant's own provider (fixtures' groq) gives the config a model and a credential.
	yml := "bundle:\n  name: desk\nproviders:\n  - module: provider-groq\n    config:\n      api_key: ${GROQ_API_KEY}\n      model: llama\n"
	res := ts.do(http.MethodPost, "/configs", key, obj{"name": "desk", "yaml_content": yml})
	wantStatus(ts.t, res, http.StatusCreated, "POST /configs")
	ids["/configs"] = res.JSON(ts.t)["config_id"].(string)
	res = ts.do(http.MethodPost, "/sessions", key, obj{"config_id": ids["/configs"]})
	wantStatus(ts.t, res, http.StatusCreated, "POST /sessions")
	ids["/sessions"] = res.JSON(ts.t)["session_id"].(string)
	appID := fmt.Sprintf("app-%d", tag)
	res = ts.do(http.MethodPost, "/applications", key, obj{"app_id": appID, "app_name": "App"})
	wantStatus(ts.t, res, http.StatusCreated, "POST /applications")
	ids["/applications"] = appID
	return ids
}

// amplifierSnapshot is what key reads of its Amplifier resources.
func (ts *testServer) amplifierSnapshot(ids map[string]string, key string) string {
	var out []string
	for _, root := range []string{"/configs", "/sessions", "/applications"} {
		out = append(out, string(ts.do(http.MethodGet, root+"/"+ids[root], key, nil).Body))
	}
	return strings.Join(out, "\n")
}

// amplifierIsolated checks that method on path, with the first tenant's id and the second
// tenant's key, is FastAPI's 404 that tells nothing.
func (ts *testServer) amplifierIsolated(t *testing.T, method, path, id, keyB string) {
	t.Helper()
	var body any
	if method == http.MethodPost || method == http.MethodPut {
		body = obj{"name": "stolen"}
	}
	r := ts.do(method, strings.ReplaceAll(path, "{id}", id), keyB, body)
	wantDetail(t, r, http.StatusNotFound, "not found")
	if strings.Contains(string(r.Body), id) {
		t.Fatalf("%s %s: the 404 tells too much: %s", method, path, r.Body)
	}
}

// amplifierIsolationDone checks that every Amplifier collection was walked (read and
// deleted by {id}), that the first tenant's resources are as they were, and that the second
// tenant's lists hold its own and none of the first's.
func (ts *testServer) amplifierIsolationDone(t *testing.T, walked map[string]bool, a, b map[string]string, keyA, keyB, before string) {
	t.Helper()
	for root := range a {
		for _, m := range []string{"GET", "DELETE"} {
			if !walked[m+" "+root] {
				t.Fatalf("the document has no %s %s/{id}", m, root)
			}
		}
	}
	if after := ts.amplifierSnapshot(a, keyA); after != before {
		t.Fatalf("another tenant's requests changed the first tenant's Amplifier resources:\n%s\n%s", before, after)
	}
	for root, field := range map[string]string{"/configs": "config_id", "/sessions": "session_id", "/applications": "app_id"} {
		list := string(ts.do(http.MethodGet, root, keyB, nil).Body)
		if strings.Contains(list, `"`+field+`":"`+a[root]+`"`) || !strings.Contains(list, `"`+field+`":"`+b[root]+`"`) {
			t.Fatalf("GET %s with B's key: %s", root, list)
		}
	}
}

// TestAmplifierIgnoresUnknownFields: Amplifier is a FastAPI server whose models ignore what
// they do not know (Pydantic's default), so its clients may send fields of another version,
// or a key in another case; here as there, such a field is ignored, not a 422. What a field
// it knows holds is still checked.
func TestAmplifierIgnoresUnknownFields(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		res := r.do(http.MethodPost, "/configs", r.Key, map[string]any{"name": "x", "yaml_content": bundleYAML, "colour": 1,
			"Name": "miscased", "bundle_ref": map[string]any{"a": []any{1}}})
		c := res.JSON(t)
		if res.Status != http.StatusCreated || c["name"] != "x" {
			t.Fatalf("config with extra fields: %d %s", res.Status, res.Body)
		}
		id := c["config_id"].(string)
		if res := r.do(http.MethodPut, "/configs/"+id, r.Key, map[string]any{"description": "d", "version": 2}); res.Status != 200 || res.JSON(t)["description"] != "d" {
			t.Fatalf("update with an extra field: %d %s", res.Status, res.Body)
		}
		res = r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"config_id": id, "metadata": map[string]any{"k": "v"}})
		sid, _ := res.JSON(t)["session_id"].(string)
		if res.Status != http.StatusCreated || sid == "" {
			t.Fatalf("session with an extra field: %d %s", res.Status, res.Body)
		}
		r.up.Enqueue(llmtest.Reply{Text: "hello"})
		if res := r.do(http.MethodPost, "/sessions/"+sid+"/messages", r.Key, map[string]any{"message": "hi", "stream": false}); res.Status != 200 || res.JSON(t)["response"] != "hello" {
			t.Fatalf("message with an extra field: %d %s", res.Status, res.Body)
		}
		if res := r.do(http.MethodPost, "/applications", r.Key, map[string]any{"app_id": "a1", "app_name": "A", "owner": "me"}); res.Status != http.StatusCreated {
			t.Fatalf("application with an extra field: %d %s", res.Status, res.Body)
		}
		// What a known field holds is still checked, and so is the body's JSON.
		wantLoc(t, r.do(http.MethodPost, "/configs", r.Key, map[string]any{"name": "x", "yaml_content": 7, "colour": 1}), "body.yaml_content", "must be")
		wantLoc(t, r.do(http.MethodPost, "/sessions", r.Key, map[string]any{"Config_ID": id}), "body.config_id", "is required")
		wantLoc(t, r.do(http.MethodPost, "/sessions", r.Key, `{"config_id":"`+id+`"} {}`), "body", "after the JSON object")
		wantLoc(t, r.do(http.MethodPost, "/sessions", r.Key, "{\"x\":\"\xff\",\"config_id\":\""+id+"\"}"), "body.x", "UTF-8")
	})
}

// TestAmplifierAppKeyBoundByMaker: an application's key is a key its maker made, as any key
// is. Made by a key with an expiry, a rate limit and a budget, it holds no more than that
// key (before, it held read and write without any of them, and outlived its maker), and
// revoking the maker revokes it; regenerating it bounds the new key the same way.
func TestAmplifierAppKeyBoundByMaker(t *testing.T) {
	eachAmpDialect(t, func(t *testing.T, r *ampRig) {
		expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		res := r.do(http.MethodPost, "/api/v1/keys", r.Key, map[string]any{"name": "narrow admin", "scopes": []string{"admin"},
			"rate_limit": 50, "expires_at": expires, "budget_usd": 0.5, "token_limit": 1000})
		if res.Status != http.StatusCreated {
			t.Fatalf("maker: %d %s", res.Status, res.Body)
		}
		maker, makerID := res.JSON(t)["key"].(string), res.JSON(t)["id"].(string)
		check := func(what string, app map[string]any) {
			t.Helper()
			k := r.do(http.MethodGet, "/api/v1/keys/"+app["key_id"].(string), r.Key, nil).JSON(t)
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(k["expires_at"]))
			if k["parent_id"] != makerID || !at.Equal(expires) || k["rate_limit"] != float64(50) || k["token_limit"] != float64(1000) ||
				k["budget_usd"].(float64) <= 0 || k["budget_usd"].(float64) > 0.5 {
				t.Fatalf("%s: the application's key is not bounded by its maker: %v", what, k)
			}
		}
		res = r.do(http.MethodPost, "/applications", maker, map[string]any{"app_id": "bounded", "app_name": "Bounded"})
		if res.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", res.Status, res.Body)
		}
		check("registered", res.JSON(t))
		res = r.do(http.MethodPost, "/applications/bounded/regenerate-key", maker, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("regenerate: %d %s", res.Status, res.Body)
		}
		app := res.JSON(t)
		check("regenerated", app)
		appKey := app["api_key"].(string)
		if got := r.do(http.MethodGet, "/configs", appKey, nil); got.Status != http.StatusOK {
			t.Fatalf("the application's key: %d %s", got.Status, got.Body)
		}
		// Revoking the maker revokes what it made.
		if got := r.do(http.MethodDelete, "/api/v1/keys/"+makerID, r.Key, nil); got.Status/100 != 2 {
			t.Fatalf("revoke the maker: %d %s", got.Status, got.Body)
		}
		wantDetail(t, r.do(http.MethodGet, "/configs", appKey, nil), http.StatusUnauthorized, "Missing or invalid credentials")
	})
}
