package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestAgentStudioConfig: Agent Studio's clients create and patch agents with a config whose
// prompt.system is the agent's instructions; the agent takes it as such and answers the
// config back as it was sent, on both dialects. The instructions and the config's system
// prompt never disagree, whichever a client sets, and a config without a usable system
// prompt is a 422 naming config.prompt.system that writes nothing.
func TestAgentStudioConfig(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		config := map[string]any{
			"prompt": map[string]any{"system": "You are the front desk of a dental clinic.", "first_message": "Hello!"},
			"llm":    map[string]any{"model": "gpt-4o-mini", "temperature": 0.3},
			"voice":  map[string]any{"provider": "openai", "voice_id": "alloy"},
		}
		same := func(what string, got any, want map[string]any) {
			t.Helper()
			// Through JSON both ways, so that numbers compare as the wire has them.
			raw, _ := json.Marshal(want)
			var w any
			_ = json.Unmarshal(raw, &w)
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s: config %v, want %v", what, got, w)
			}
		}

		ag := ts.create("/api/v1/agents", ts.Key, map[string]any{"name": "Desk", "config": config, "metadata": map[string]any{"team": "front"}})
		id := ag["id"].(string)
		if ag["instructions"] != "You are the front desk of a dental clinic." {
			t.Errorf("created: instructions %q, want the config's system prompt", ag["instructions"])
		}
		same("created", ag["config"], config)
		got := ts.get("/api/v1/agents/"+id, ts.Key)
		same("read back", got["config"], config)
		if md := got["metadata"].(map[string]any); len(md) != 1 || md["team"] != "front" {
			t.Errorf("metadata %v, want only the client's", md)
		}
		var listed map[string]any
		for _, it := range ts.list("/api/v1/agents?limit=100", ts.Key).Items {
			if it["id"] == id {
				listed = it
			}
		}
		same("listed", listed["config"], config)

		// A patch of the config alone sets the instructions; the config is replaced whole.
		r := ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, map[string]any{"config": map[string]any{"prompt": map[string]any{"system": "Be brief."}, "llm": map[string]any{"model": "gpt-4o"}}})
		wantStatus(t, r, http.StatusOK, "patch config")
		got = r.JSON(t)
		if got["instructions"] != "Be brief." {
			t.Errorf("patched config: instructions %q", got["instructions"])
		}
		same("patched config", got["config"], map[string]any{"prompt": map[string]any{"system": "Be brief."}, "llm": map[string]any{"model": "gpt-4o"}})

		// A patch of the instructions alone: the config follows, the rest of it kept; a
		// patch of the metadata leaves the config alone.
		r = ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, map[string]any{"instructions": "Speak slowly.", "metadata": map[string]any{}})
		wantStatus(t, r, http.StatusOK, "patch instructions")
		same("patched instructions", r.JSON(t)["config"], map[string]any{"prompt": map[string]any{"system": "Speak slowly."}, "llm": map[string]any{"model": "gpt-4o"}})
		got = ts.get("/api/v1/agents/"+id, ts.Key)
		same("read after patching instructions", got["config"], map[string]any{"prompt": map[string]any{"system": "Speak slowly."}, "llm": map[string]any{"model": "gpt-4o"}})
		if md := got["metadata"].(map[string]any); len(md) != 0 {
			t.Errorf("metadata %v after it was emptied", md)
		}

		// Both, with the same text, is fine; an agent made without a config answers one.
		ag = ts.create("/api/v1/agents", ts.Key, map[string]any{"name": "Both", "instructions": "Hi.", "config": map[string]any{"prompt": map[string]any{"system": "Hi."}}})
		same("both the same", ag["config"], map[string]any{"prompt": map[string]any{"system": "Hi."}})
		plain := ts.create("/api/v1/agents", ts.Key, map[string]any{"name": "Plain", "instructions": "Canonical."})
		same("no config", plain["config"], map[string]any{"prompt": map[string]any{"system": "Canonical."}})
		same("no config, read back", ts.get("/api/v1/agents/"+plain["id"].(string), ts.Key)["config"], map[string]any{"prompt": map[string]any{"system": "Canonical."}})

		before := ts.total("/api/v1/agents", ts.Key)
		for _, tt := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"no system prompt", map[string]any{"name": "X", "config": map[string]any{"llm": map[string]any{}}}, "config.prompt.system"},
			{"system prompt not a string", map[string]any{"name": "X", "config": map[string]any{"prompt": map[string]any{"system": 5}}}, "config.prompt.system"},
			{"prompt not an object", map[string]any{"name": "X", "config": map[string]any{"prompt": "hello"}}, "config.prompt"},
			{"config not an object", map[string]any{"name": "X", "config": "hello"}, "config"},
			{"instructions disagree", map[string]any{"name": "X", "instructions": "A", "config": map[string]any{"prompt": map[string]any{"system": "B"}}}, "config.prompt.system"},
		} {
			r := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, tt.body)
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s: %d, want 422: %s", tt.name, r.Status, r.Body)
				continue
			}
			e := r.JSON(t)["error"].(map[string]any)
			details, _ := e["details"].([]any)
			if e["code"] != "validation_error" || len(details) == 0 || details[0].(map[string]any)["field"] != tt.field {
				t.Errorf("%s: %s, want a validation_error naming %s", tt.name, r.Body, tt.field)
			}
		}
		r = ts.do(http.MethodPatch, "/api/v1/agents/"+id, ts.Key, map[string]any{"config": map[string]any{"prompt": map[string]any{}}})
		wantStatus(t, r, http.StatusUnprocessableEntity, "patch without a system prompt")
		if n := ts.total("/api/v1/agents", ts.Key); n != before {
			t.Errorf("%d agents after refused bodies, %d before", n, before)
		}
		if got := ts.get("/api/v1/agents/"+id, ts.Key); got["instructions"] != "Speak slowly." {
			t.Errorf("a refused patch changed the agent: %v", got["instructions"])
		}
	})
}

// TestAgentStudioConfigReachesModel: the system prompt an Agent Studio client sets in the
// config is what the agent's model is told, at creation and after a patch of the config.
func TestAgentStudioConfigReachesModel(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, store.SQLite)
	ag := r.create("/api/v1/agents", r.Key, map[string]any{"name": "Zed", "model": "up/m",
		"config": map[string]any{"prompt": map[string]any{"system": "You are Zed, set through the config."}}})
	id := r.createSession(t, r.Key, ag["id"].(string))
	system := func() string {
		t.Helper()
		var sent struct {
			Messages []struct {
				Role    string `json:"role"`
				Content any    `json:"content"`
			} `json:"messages"`
		}
		if err := r.up.Last().Decode(&sent); err != nil {
			t.Fatal(err)
		}
		if len(sent.Messages) == 0 || sent.Messages[0].Role != "system" {
			t.Fatalf("no system message sent to the model: %s", r.up.Last().Body)
		}
		return fmt.Sprint(sent.Messages[0].Content)
	}
	turn := func() {
		t.Helper()
		r.up.Enqueue(llmtest.Reply{Text: "Hello."})
		if res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "Who are you?"}); res.Status != http.StatusOK {
			t.Fatalf("turn: %d %s", res.Status, res.Body)
		}
	}
	turn()
	if s := system(); !strings.Contains(s, "You are Zed, set through the config.") {
		t.Errorf("the model was told %q, not the config's system prompt", s)
	}
	res := r.do(http.MethodPatch, "/api/v1/agents/"+ag["id"].(string), r.Key, map[string]any{"config": map[string]any{"prompt": map[string]any{"system": "You are Yan now."}}})
	wantStatus(t, res, http.StatusOK, "patch config")
	turn()
	if s := system(); !strings.Contains(s, "You are Yan now.") || strings.Contains(s, "Zed") {
		t.Errorf("after the patch the model was told %q", s)
	}
}
