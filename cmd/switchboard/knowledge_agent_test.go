package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// faqMarkdown is the front desk's document: each answer under its own heading.
const faqMarkdown = `# Acme front desk

## Opening hours

The Acme office is open from nine in the morning until five in the afternoon, Monday to Friday.
On Saturdays the office opens at ten and closes at one.

## Parking

Visitors park free of charge in the blue garage on Elm Street, level two.
`

// TestKnowledgeAgent calls an agent whose answer is in a document uploaded through the API,
// over real SIP and RTP, on both databases: the caller's words are searched in the agent's
// knowledge base and the stand-in model sees the chunk that answers them, cited by document;
// the call's transcript keeps the search and the answer's latency its time. A session of
// the same agent over HTTP does the same in auto mode, and in tool mode the model's
// knowledge_search finds the chunk.
func TestKnowledgeAgent(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			model := llmtest.NewOpenAI(t)
			voice := speechtest.NewOpenAI(t)
			dir := t.TempDir()
			providers := filepath.Join(dir, "providers.yaml")
			if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "DATABASE_URL=" + d.url(t), "SWITCHBOARD_RATE_LIMIT=10000",
				"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers}
			key := createKey(t, env, "--name", "knowledge")
			n := startServe(t, env)

			status, kb := n.call("POST", "/api/v1/knowledge-bases", key, `{"name":"Front desk FAQ"}`)
			if status != http.StatusCreated {
				t.Fatalf("POST knowledge base: %d %v", status, kb)
			}
			baseID := kb["id"].(string)
			n.uploadReady(key, baseID, "faq.md", faqMarkdown)

			status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Front desk","model":"openai/gpt-test","instructions":"You are Acme's front desk.",`+
				`"first_message":"Hello, Acme front desk.","knowledge_base_ids":["`+baseID+`"],`+
				`"transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"espeak","voice":"en-us","speed":1}}`)
			if status != http.StatusCreated {
				t.Fatalf("POST agent: %d %v", status, ag)
			}
			if k, _ := ag["knowledge"].(map[string]any); k["mode"] != "auto" {
				t.Errorf("a new agent's knowledge settings %v, want mode auto", ag["knowledge"])
			}
			agentID := ag["id"].(string)
			if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550101","name":"Front desk","agent_id":"`+agentID+`"}`); status != http.StatusCreated {
				t.Fatalf("POST phone number: %d %v", status, pn)
			}

			// The call: the caller asks for the opening hours; the model answers.
			var saying sync.Mutex
			current := ""
			voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
				saying.Lock()
				defer saying.Unlock()
				return speechtest.Transcript{Text: current}
			})
			model.Enqueue(llmtest.Reply{Text: "We are open from nine to five on weekdays."})
			p := dialPhone(t, "sip:+15550101@"+n.sipAddr())
			p.waitSpeech(25, 15*time.Second, "greeting")
			p.waitQuiet(400*time.Millisecond, 15*time.Second)
			saying.Lock()
			current = "What are your opening hours?"
			saying.Unlock()
			p.speak(readWAV8k(t, "../../testdata/speech/opening_hours.wav"))
			p.waitSpeech(25, 20*time.Second, "the answer")
			p.hangup()
			p.close()

			asked := ""
			for _, r := range model.Requests() {
				if strings.Contains(string(r.Body), "opening hours") {
					asked = string(r.Body)
				}
			}
			for _, want := range []string{"nine in the morning until five in the afternoon", "faq.md", "Opening hours"} {
				if !strings.Contains(asked, want) {
					t.Errorf("the model was not given %q; it was asked:\n%s", want, asked)
				}
			}

			status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
			ids := itemIDs(t, list)
			if status != http.StatusOK || len(ids) != 1 {
				t.Fatalf("calls: %d %v", status, list)
			}
			n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
			var transcript []struct {
				Role      string
				Knowledge *struct {
					Source string
					Query  string
					Hits   []struct {
						DocumentName string  `json:"document_name"`
						ChunkID      string  `json:"chunk_id"`
						Score        float64 `json:"score"`
					}
					DurationMS float64 `json:"duration_ms"`
				}
				Metrics *struct {
					KnowledgeMS       float64 `json:"knowledge_ms"`
					BrainFirstTokenMS float64 `json:"brain_first_token_ms"`
				}
			}
			n.getJSON(key, "/api/v1/calls/"+ids[0]+"/transcript", "turns", &transcript)
			searched, timed := false, false
			for _, tr := range transcript {
				if k := tr.Knowledge; tr.Role == "knowledge" && k != nil && k.Source == "auto" && len(k.Hits) > 0 &&
					k.Hits[0].DocumentName == "faq.md" && k.Hits[0].ChunkID != "" && k.Hits[0].Score > 0 && k.DurationMS > 0 {
					searched = true
				}
				if m := tr.Metrics; tr.Role == "assistant" && m != nil && m.KnowledgeMS > 0 && m.BrainFirstTokenMS >= m.KnowledgeMS {
					timed = true
					t.Logf("the answer's latency: knowledge %.1f ms of brain first token %.1f ms", m.KnowledgeMS, m.BrainFirstTokenMS)
				}
			}
			if !searched || !timed {
				raw, _ := json.Marshal(transcript)
				t.Errorf("the transcript lacks the search (%v) or its time in the answer's latency (%v): %s", searched, timed, raw)
			}

			// A session of the same agent: auto mode puts the parking chunk in the context.
			status, sess := n.call("POST", "/api/v1/sessions", key, `{"agent_id":"`+agentID+`"}`)
			if status != http.StatusCreated {
				t.Fatalf("POST session: %d %v", status, sess)
			}
			sessionID := sess["id"].(string)
			model.Enqueue(llmtest.Reply{Text: "In the blue garage on Elm Street."})
			status, turn := n.call("POST", "/api/v1/sessions/"+sessionID+"/messages", key, `{"content":"Where can visitors park?"}`)
			if status != http.StatusOK && status != http.StatusCreated {
				t.Fatalf("POST message: %d %v", status, turn)
			}
			reqs := model.Requests()
			if body := string(reqs[len(reqs)-1].Body); !strings.Contains(body, "blue garage on Elm Street") || !strings.Contains(body, "faq.md") {
				t.Errorf("the session's model request lacks the parking chunk:\n%s", body)
			}
			msg, _ := turn["message"].(map[string]any)
			meta, _ := msg["metadata"].(map[string]any)
			raw, _ := json.Marshal(meta)
			if !strings.Contains(string(raw), `"document_name":"faq.md"`) || !strings.Contains(string(raw), `"source":"auto"`) || meta["knowledge_ms"] == nil {
				t.Errorf("the answer's metadata lacks the search: %s", raw)
			}

			// Tool mode: the model asks knowledge_search and gets the chunk as the tool's result.
			if status, ag := n.call("PATCH", "/api/v1/agents/"+agentID, key, `{"knowledge":{"mode":"tool"}}`); status != http.StatusOK {
				t.Fatalf("PATCH agent: %d %v", status, ag)
			}
			model.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "knowledge_search", Arguments: `{"query":"saturday opening hours"}`}}},
				llmtest.Reply{Text: "From ten to one on Saturdays."})
			status, turn = n.call("POST", "/api/v1/sessions/"+sessionID+"/messages", key, `{"content":"And on Saturdays?"}`)
			if status != http.StatusOK && status != http.StatusCreated {
				t.Fatalf("POST message: %d %v", status, turn)
			}
			reqs = model.Requests()
			first, last := string(reqs[len(reqs)-2].Body), string(reqs[len(reqs)-1].Body)
			if !strings.Contains(first, `"knowledge_search"`) || strings.Contains(first, "opens at ten") {
				t.Errorf("tool mode: the first request should offer knowledge_search and hold no chunk:\n%s", first)
			}
			if !strings.Contains(last, "opens at ten and closes at one") || !strings.Contains(last, `"role":"tool"`) {
				t.Errorf("tool mode: the tool's result lacks the chunk:\n%s", last)
			}
		})
	}
}

// uploadReady uploads a document to a knowledge base as multipart/form-data and waits until
// it is indexed.
func (n *node) uploadReady(key, baseID, name, content string) {
	n.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		n.t.Fatal(err)
	}
	_, _ = io.WriteString(fw, content)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(n.t.Context(), "POST", "http://"+n.addr+"/api/v1/knowledge-bases/"+baseID+"/documents", &body)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-API-Key", key)
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusCreated {
		n.t.Fatalf("upload %s: %d %v", name, resp.StatusCode, doc)
	}
	id, _ := doc["id"].(string)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		status, d := n.call("GET", "/api/v1/knowledge-bases/"+baseID+"/documents/"+id, key, "")
		if status == http.StatusOK && d["status"] == "ready" {
			return
		}
		if d["status"] == "failed" || time.Now().After(deadline) {
			n.t.Fatalf("document %s not ready: %d %v", id, status, d)
		}
	}
}

// getJSON reads field of the JSON object at path into v, waiting up to 15 s for the path to
// be there (a call's transcript is written once the call has ended).
func (n *node) getJSON(key, path, field string, v any) {
	n.t.Helper()
	status, obj := n.call("GET", path, key, "")
	for deadline := time.Now().Add(15 * time.Second); status == http.StatusNotFound && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		status, obj = n.call("GET", path, key, "")
	}
	if status != http.StatusOK {
		n.t.Fatalf("GET %s: %d %v", path, status, obj)
	}
	raw, err := json.Marshal(obj[field])
	if err != nil {
		n.t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		n.t.Fatalf("GET %s: %s: %v", path, field, err)
	}
}
