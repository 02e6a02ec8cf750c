package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// waitEnded reads the tenant's events until the call of the topic that first ends has
// ended, and returns its ID.
func (s *eventsSocket) waitEnded() string {
	s.t.Helper()
	for {
		f := s.read()
		if f.Type == "event" && f.Event.Type == "call.ended" && strings.HasPrefix(f.Event.Topic, "call:") {
			return strings.TrimPrefix(f.Event.Topic, "call:")
		}
	}
}

// TestCallHistoryInBrowser: two calls over real SIP, recorded: a spoken conversation with an
// agent (stand-ins of the model and of speech, priced) and one to the echo. The node is
// restarted, so that what the pages show comes from the store and not from the hub's memory.
// In Chromium the call history pages through them, finds the agent's call by agent and by
// number, plays its recording, draws its turn latency by stage, shows its cost as the API
// has it and the events and errors it published, kept after the restart; the analytics
// page charts the two calls.
func TestCallHistoryInBrowser(t *testing.T) {
	// Not parallel, like the other browser tests: Chromium's load would shift the timing of
	// the package's calls.
	model := llmtest.NewOpenAI(t)
	voice := speechtest.NewOpenAI(t)
	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	yaml := fmt.Sprintf(`providers:
  - name: brain
    kind: openai
    base_url: %s
    prices: {gpt-test: {input_per_mtok: 1000, output_per_mtok: 2000}}
  - name: voice
    kind: openai
    base_url: %s
    speech_prices: {stt_per_minute: 0.6, tts_per_million_characters: 1000}
`, model.URL, voice.URL)
	if err := os.WriteFile(providers, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"SWITCHBOARD_PROVIDERS_FILE=" + providers, "SWITCHBOARD_RECORD_CALLS=true"}
	key := createKey(t, env, "--name", "history")
	n := startServe(t, env)

	status, trunk := n.call("POST", "/api/v1/trunks", key, `{"name":"carrier","inbound":{"allowed_cidrs":["127.0.0.1/32"]},"price_per_minute_usd":0.6}`)
	if status != http.StatusCreated {
		t.Fatalf("POST trunk: %d %v", status, trunk)
	}
	status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"brain/gpt-test","instructions":"You answer.",`+
		`"first_message":"Hello, how can I help?","transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"voice","voice":"alloy","speed":1}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST agent: %d %v", status, ag)
	}
	agentID := ag["id"].(string)
	const number = "+15550001"
	if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"`+number+`","name":"Orders","agent_id":"`+agentID+`","trunk_id":"`+trunk["id"].(string)+`"}`); status != http.StatusCreated {
		t.Fatalf("POST phone number: %d %v", status, pn)
	}
	voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
		return speechtest.Transcript{Text: "Where is my order?"}
	})
	model.Enqueue(llmtest.Reply{Text: "Your order ships tomorrow morning.", Usage: llm.Usage{InputTokens: 1200, OutputTokens: 300}})
	// The greeting's speech fails, and once more (the agent then says it in its fallback
	// voice): an error the call's page must still show after the restart.
	unavailable := speechtest.Speech{Status: http.StatusBadRequest, Message: "voice alloy is unavailable"}
	voice.EnqueueSpeech(unavailable, unavailable)

	ws := dialEvents(t, n, key)
	if f := ws.command(map[string]any{"type": "subscribe", "topics": []string{"tenant"}}); f.Type != "ack" {
		t.Fatalf("subscribe: %+v", f)
	}

	// The agent's call: the greeting, a question, the answer; then the caller hangs up.
	p := dialPhone(t, "sip:"+number+"@"+n.sipAddr())
	p.waitSpeech(25, 20*time.Second, "greeting")
	p.waitQuiet(400*time.Millisecond, 20*time.Second)
	p.speak(readWAV8k(t, "../../testdata/speech/where_is_my_order.wav"))
	p.waitSaid(20 * time.Second)
	p.waitSpeech(25, 30*time.Second, "answer")
	p.hangup()
	p.close()
	agentCall := ws.waitEnded()

	// A call to the echo, newer.
	e := dialPhone(t, "sip:echo@"+n.sipAddr())
	e.hangup()
	e.close()
	otherCall := ws.waitEnded()
	if agentCall == otherCall {
		t.Fatalf("one call ended twice: %s", agentCall)
	}
	_, rec := n.call("GET", "/api/v1/calls/"+agentCall, key, "")
	if rec["agent_id"] != agentID {
		t.Fatalf("the first call is not the agent's: %v", rec)
	}

	// A restart: the hub forgets every event; the pages read the store.
	n.signal(syscall.SIGTERM)
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("the node exited with %d", code)
	}
	n = startServe(t, env)

	b := startBrowser(t, "history.mjs", "http://"+n.addr, artifactDir(t), key, agentID, agentCall, otherCall, strings.TrimPrefix(number, "+1"))
	for _, step := range []struct{ name, want string }{{"listed", otherCall}, {"paged", agentCall}, {"by-agent", agentCall}, {"by-number", agentCall}} {
		got := b.next(step.name, 90*time.Second)
		if ids, _ := got["ids"].([]any); len(ids) != 1 || ids[0] != step.want {
			t.Fatalf("%s: the history shows %v, want %s", step.name, got, step.want)
		}
		t.Logf("%s: %v", step.name, got)
	}

	if r := b.next("recording", 60*time.Second); !(r["duration"].(float64) > 0.5) || r["src"] != "blob:" {
		t.Fatalf("the recording: %v, want a blob that plays for more than half a second", r)
	}

	lat := b.next("latency", 30*time.Second)
	stages, _ := lat["stages"].([]any)
	if lat["rows"].(float64) < 1 || !slices.Contains(stages, any("Speech to text")) || !slices.Contains(stages, any("TTS first audio")) {
		t.Fatalf("the turn latency bars: %v, want a row with speech to text and TTS first audio", lat)
	}

	_, rec = n.call("GET", "/api/v1/calls/"+agentCall, key, "")
	c := b.next("cost", 30*time.Second)
	if want, _ := rec["cost_usd"].(float64); want <= 0 || math.Abs(c["total"].(float64)-want) > 1e-9 || !strings.Contains(c["shown"].(string), "$") {
		t.Fatalf("the page's cost %v, the API's %v", c, rec["cost_usd"])
	}

	evs := b.next("events", 30*time.Second)
	types, _ := evs["types"].([]any)
	for _, want := range []string{"call.created", "call.answered", "call.transcript", "call.agent_speech", "call.metrics", "call.ended"} {
		if !slices.Contains(types, any(want)) {
			t.Errorf("the call's kept events lack %s: %v", want, types)
		}
	}
	if len(types) == 0 || float64(len(types)) != evs["total"].(float64) {
		t.Errorf("events shown %d of %v", len(types), evs["total"])
	}
	if tr := strings.ToLower(fmt.Sprint(evs["transcript"])); !strings.Contains(tr, "ships tomorrow") {
		t.Errorf("the transcript lacks the answer: %s", tr)
	}
	if errs := fmt.Sprint(evs["errors"]); !slices.Contains(types, any("agent.error")) || !strings.Contains(errs, "tts") || !strings.Contains(errs, "alloy is unavailable") {
		t.Errorf("the call's page lacks the greeting's speech error: %s", errs)
	}

	a := b.next("analytics", 60*time.Second)
	if a["calls"].(float64) != 2 || a["volume_bars"].(float64) < 1 || a["cost_bars"].(float64) < 1 || a["latency_points"].(float64) < 1 {
		t.Fatalf("the analytics charts: %v, want the two calls, their cost and latency", a)
	}
	b.wait(30 * time.Second)
}
