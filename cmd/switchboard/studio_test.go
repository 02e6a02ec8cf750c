package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
)

// TestStudioBuildsAgentAndKeys drives the studio in Chromium as a new operator would: the
// sign-in card says how to get a key or a user; a user made by `switchboard users create`
// signs in, and a second tab shares the sign-in; a tool with a bad webhook URL shows the
// API's own 422 next to the field; a tool, a knowledge base with a document, an agent with
// both (then edited) and a trunk are made in the page, and the agent, called from the voice
// client, greets the caller and answers with the tool offered and the document's words in
// its model's context; a number is made and deleted after the page asks; two tabs
// refreshing at once refresh once; signing out in one tab signs out all; and a key made in
// the page works from Go and is never shown again after a reload.
func TestStudioBuildsAgentAndKeys(t *testing.T) {
	// Not parallel, like the other browser tests: Chromium's load shifts the timing of calls.
	model := llmtest.NewOpenAI(t)
	model.SetModels("gpt-studio")
	asked := make(chan llmtest.Request, 8)
	model.Respond(func(r llmtest.Request) llmtest.Reply {
		select {
		case asked <- r:
		default:
		}
		return llmtest.Reply{Text: "We are open Monday to Friday, nine to five."}
	})
	voice := speechtest.NewOpenAI(t)
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: "When are you open?"}
	})
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"shipped"}`))
	}))
	t.Cleanup(orders.Close)

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "hours.md")
	const hours = "The shop is open from nine in the morning to five in the afternoon, Monday to Friday. It is closed at weekends."
	if err := os.WriteFile(doc, []byte("# Opening hours\n\n"+hours+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true"}
	key := createKey(t, env, "--name", "go")
	const email, password = "studio@switchboard.test", "a studio password"
	if r := runStdin(t, env, password+"\n", "users", "create", "--email", email, "--password-stdin"); r.code != 0 {
		t.Fatalf("users create:\n%s", r)
	}
	n := startServe(t, env)

	b := startBrowser(t, "studio.mjs", "http://"+n.addr, artifactDir(t), email, password, studioCallerWAV(t, dir), doc, orders.URL, "openai/gpt-studio")

	help, _ := b.next("first-run", 60*time.Second)["help"].(string)
	for _, want := range []string{"switchboard keys create", "switchboard users create"} {
		if !strings.Contains(help, want) {
			t.Errorf("the sign-in card does not say %q:\n%s", want, help)
		}
	}
	if shared := b.next("shared", 60*time.Second); shared["signin_shown"] != false || !strings.Contains(fmt.Sprint(shared["who"]), email) {
		t.Errorf("the second tab: %v, want it signed in as %s", shared, email)
	}

	// The page shows the API's own words, at the field the API names.
	invalid := b.next("invalid", 30*time.Second)
	status, refused := n.call("POST", "/api/v1/tools", key, `{"name":"lookup_order","webhook":{"url":"orders.example.com/lookup"}}`)
	details, _ := refused["error"].(map[string]any)["details"].([]any)
	if status != http.StatusUnprocessableEntity || len(details) != 1 {
		t.Fatalf("POST tool with a bad URL: %d %v", status, refused)
	}
	detail := details[0].(map[string]any)
	if detail["field"] != invalid["field"] || detail["message"] != invalid["message"] || invalid["aria_invalid"] != "true" || invalid["others"] != 1.0 {
		t.Errorf("the page showed %v, the API says %v", invalid, detail)
	}

	toolID, _ := b.next("tool", 30*time.Second)["id"].(string)
	baseID, _ := b.next("knowledge", 90*time.Second)["id"].(string)
	if msg := b.next("invalid-turn", 30*time.Second)["message"]; !strings.Contains(fmt.Sprint(msg), "between 100 and 10000") {
		t.Errorf("the page showed %q at turn.endpointing_ms", msg)
	}
	agentID, _ := b.next("agent", 30*time.Second)["id"].(string)
	status, agent := n.call("GET", "/api/v1/agents/"+agentID, key, "")
	if status != http.StatusOK || agent["name"] != "Studio receptionist" || agent["first_message"] != "Hello from the studio." ||
		agent["model"] != "openai/gpt-studio" || fmt.Sprint(agent["tool_ids"]) != "["+toolID+"]" ||
		fmt.Sprint(agent["knowledge_base_ids"]) != "["+baseID+"]" {
		t.Fatalf("the agent made in the page: %d %v", status, agent)
	}
	// What the form left as it was is the server's default, not a blank.
	if v, turn := agent["voice"].(map[string]any), agent["turn"].(map[string]any); v["provider"] != "espeak" || turn["interruptions"] != true || turn["endpointing_ms"] != 700.0 {
		t.Errorf("the agent's defaults were not kept: voice %v, turn %v", v, agent["turn"])
	}
	number := b.next("number", 30*time.Second)
	if status, _ := n.call("GET", "/api/v1/phone-numbers/"+number["id"].(string), key, ""); status != http.StatusNotFound || number["listed"] != 0.0 {
		t.Errorf("the number deleted in the page: %d, listed %v", status, number["listed"])
	}

	trunk := b.next("trunk", 30*time.Second)
	status, tr := n.call("GET", "/api/v1/trunks/"+fmt.Sprint(trunk["id"]), key, "")
	out, _ := tr["outbound"].(map[string]any)
	if status != http.StatusOK || tr["direction"] != "both" || fmt.Sprint(tr["inbound"].(map[string]any)["allowed_cidrs"]) != "[198.51.100.0/24]" ||
		out["address"] != "sip.carrier.test" || out["has_password"] != true || strings.Contains(fmt.Sprint(tr), "trunk secret") || trunk["password_shown"] != "" {
		t.Errorf("the trunk made in the page: %d %v; the form shows the password %q", status, tr, trunk["password_shown"])
	}

	// The call: the agent greets, hears the caller, and its model is asked with the tool
	// offered and the document's words in its context.
	callID, _ := b.next("calling", 60*time.Second)["call_id"].(string)
	b.next("greeting", 60*time.Second)
	select {
	case r := <-asked:
		body := string(r.Body)
		for _, want := range []string{"lookup_order", "closed at weekends", "When are you open?"} {
			if !strings.Contains(body, want) {
				t.Errorf("the model was asked without %q: %s", want, body)
			}
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the agent's model was never asked; transcriptions: %d", len(voice.Transcriptions()))
	}
	b.next("answer", 60*time.Second)
	b.next("hung-up", 30*time.Second)
	if c := n.waitCall(key, callID, "ended", func(c map[string]any) bool { return c["ended_at"] != nil }); c["agent_id"] != agentID || c["direction"] != "web" {
		t.Errorf("call %s: %v, want a web call to %s", callID, c, agentID)
	}

	refreshed := b.next("refreshed", 60*time.Second)
	turns, _ := refreshed["turns"].([]any)
	counted := map[string]int{}
	for _, turn := range turns {
		counted[fmt.Sprint(turn)]++
	}
	if fmt.Sprint(refreshed["ok"]) != "[true true]" || counted["refreshed"] != 1 || counted["followed"] < 1 || len(counted) != 2 ||
		refreshed["changed"] != true || refreshed["same"] != true || strings.Contains(fmt.Sprint(refreshed["me"]), "error") {
		t.Errorf("two tabs refreshing at once: %v, want one refresh that both tabs use", refreshed)
	}
	if planned := b.next("planned-refresh", 60*time.Second); strings.Contains(fmt.Sprint(planned["me"]), "error") {
		t.Errorf("after the planned refresh: %v", planned)
	}
	if out := b.next("signed-out", 60*time.Second); out["stored"] != nil {
		t.Errorf("signed out, the browser still holds %v", out["stored"])
	}

	// The key made in the page works, once copied, and is not shown again.
	made := b.next("key", 60*time.Second)
	secret, _ := made["key"].(string)
	if !reKey.MatchString(secret) || made["copied"] != secret {
		t.Fatalf("the page showed the key %q and copied %v", secret, made["copied"])
	}
	status, list := n.call("GET", "/api/v1/agents", secret, "")
	if status != http.StatusOK || !slices.Contains(itemIDs(t, list), agentID) {
		t.Errorf("the key made in the page: %d %v", status, list)
	}
	gone := b.next("key-gone", 60*time.Second)
	if gone["in_page"] != false || gone["in_storage"] != false || gone["shown"] != 0.0 || !strings.Contains(fmt.Sprint(gone["rows"]), "made in the studio") {
		t.Errorf("after a reload: %v, want the key listed but nowhere shown or kept", gone)
	}
	b.wait(30 * time.Second)
}

// studioCallerWAV is what the fake microphone plays: quiet while the agent greets, then a caller's
// question, then quiet again so that the turn ends.
func studioCallerWAV(t *testing.T, dir string) string {
	t.Helper()
	speech := readWAV8k(t, filepath.Join("..", "..", "testdata", "speech", "opening_hours.wav"))
	samples := slices.Concat(make([]int16, 4*8000), speech, make([]int16, 3*8000))
	b, err := media.EncodeWAV(samples, 8000)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "caller.wav")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
