package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// farEnd answers the requests a server sends inside a call to the phone: BYE and REFER.
type farEnd struct {
	mu      sync.Mutex
	byes    int
	referTo []string
	// got signals each request received.
	got changes
}

// waitBye waits at most d for the server's BYE.
func (f *farEnd) waitBye(t *testing.T, d time.Duration, what string) {
	t.Helper()
	if !f.got.until(d, func() bool { byes, _ := f.state(); return byes > 0 }) {
		t.Fatal(what + " did not hang up")
	}
}

// withFarEnd gives the phone a SIP server on its own port, named in its Contact, so that the
// server's BYE and REFER reach it.
func withFarEnd(t *testing.T) (*farEnd, sip.ContactHeader) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-far-end"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	f := &farEnd{}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		f.mu.Lock()
		f.byes++
		f.mu.Unlock()
		f.got.notify()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnRefer(func(req *sip.Request, tx sip.ServerTransaction) {
		f.mu.Lock()
		if h := req.GetHeader("Refer-To"); h != nil {
			f.referTo = append(f.referTo, h.Value())
		}
		f.mu.Unlock()
		f.got.notify()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() { _ = pc.Close(); _ = ua.Close() })
	return f, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}}
}

func (f *farEnd) state() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byes, append([]string(nil), f.referTo...)
}

// TestLLMAgentCall holds a spoken conversation with an agent that thinks with a model, over
// real SIP and RTP, with stand-ins of an OpenAI-compatible server for the model, speech to
// text and text to speech: the greeting is heard, the caller's words reach the transcriber
// as audio and the transcript reaches the model, a webhook tool's result goes back to it,
// its answer is spoken, transfer_call sends a REFER, and end_call hangs up. The transcript
// and the report are kept with the call.
func TestLLMAgentCall(t *testing.T) {
	t.Parallel()
	model := llmtest.NewOpenAI(t)
	voice := speechtest.NewOpenAI(t)
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order":"A-17","status":"shipped"}`))
	}))
	t.Cleanup(orders.Close)

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true"}
	key := createKey(t, env, "--name", "llm")
	n := startServe(t, env)

	status, tool := n.call("POST", "/api/v1/tools", key, `{"name":"get_order","description":"Looks up the caller's order.",`+
		`"parameters":{"type":"object","properties":{}},"webhook":{"url":"`+orders.URL+`","method":"POST"}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST tool: %d %v", status, tool)
	}
	status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"openai/gpt-test","instructions":"You answer questions about orders.",`+
		`"first_message":"Hello, how can I help?","tool_ids":["`+tool["id"].(string)+`"],"transfer_targets":["+15550002"],`+
		`"transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"espeak","voice":"en-us","speed":1}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST agent: %d %v", status, ag)
	}
	if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550001","name":"Orders","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
		t.Fatalf("POST phone number: %d %v", status, pn)
	}

	// The transcriber hears what the caller is saying at the time (the voice loop may
	// transcribe an utterance more than once: early at a short pause, then whole).
	clips := map[string][]int16{}
	for _, name := range []string{"where_is_my_order", "thank_you_goodbye", "speak_to_someone"} {
		clips[name] = readWAV8k(t, "../../testdata/speech/"+name+".wav")
	}
	texts := map[string]string{"where_is_my_order": "Where is my order?", "thank_you_goodbye": "Thank you, goodbye.",
		"speak_to_someone": "Please put me through to a person."}
	var saying sync.Mutex
	current := ""
	voice.Respond(func(r speechtest.TranscriptionRequest) speechtest.Transcript {
		saying.Lock()
		defer saying.Unlock()
		return speechtest.Transcript{Text: current}
	})
	say := func(p *phone, name string) {
		saying.Lock()
		current = texts[name]
		saying.Unlock()
		p.speak(clips[name])
	}

	// First call: a question answered with a tool's help, then goodbye (end_call).
	model.Enqueue(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "get_order", Arguments: `{}`}}},
		llmtest.Reply{Text: "Your order A-17 has shipped. It arrives tomorrow."},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "end_call", Arguments: `{"goodbye":"Goodbye!"}`}}},
	)
	far, contact := withFarEnd(t)
	p := dialPhoneContact(t, "sip:+15550001@"+n.sipAddr(), contact)
	p.waitSpeech(25, 15*time.Second, "greeting")
	p.waitQuiet(400*time.Millisecond, 15*time.Second)
	say(p, "where_is_my_order")
	p.waitSpeech(50, 20*time.Second, "the answer about the order")
	p.waitQuiet(400*time.Millisecond, 20*time.Second)
	say(p, "thank_you_goodbye")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if byes, _ := far.state(); byes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("end_call did not hang up")
		}
	}
	p.close()

	// Second call: the caller asks for a person (transfer_call: a REFER, then our BYE).
	model.Enqueue(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "transfer_call", Arguments: `{"to":"+15550002"}`}}},
		llmtest.Reply{Text: "I am putting you through."},
	)
	far2, contact2 := withFarEnd(t)
	p = dialPhoneContact(t, "sip:+15550001@"+n.sipAddr(), contact2)
	p.waitSpeech(25, 15*time.Second, "greeting")
	p.waitQuiet(400*time.Millisecond, 15*time.Second)
	say(p, "speak_to_someone")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if byes, refers := far2.state(); len(refers) > 0 && byes > 0 {
			if !strings.Contains(refers[0], "+15550002") {
				t.Errorf("REFER to %v, want +15550002", refers)
			}
			break
		}
		if time.Now().After(deadline) {
			for _, r := range model.Requests() {
				t.Logf("model request %d: %s", r.Seq, r.Body)
			}
			for _, r := range voice.Transcriptions() {
				t.Logf("transcription of %.2f s", r.Seconds())
			}
			t.Fatal("transfer_call sent no REFER, or no BYE followed")
		}
	}
	p.close()

	// What the providers saw: audio of the caller's words, then the model with the
	// transcript and the tool's result.
	trs := voice.Transcriptions()
	if len(trs) < 3 || trs[0].Seconds() < 1 || trs[0].Model != "whisper-1" {
		t.Errorf("transcriptions: %d, first %.2f s with model %q; want the caller's utterances as audio", len(trs), trs[0].Seconds(), trs[0].Model)
	}
	var sawTranscript, sawToolResult bool
	for _, r := range model.Requests() {
		body := string(r.Body)
		sawTranscript = sawTranscript || strings.Contains(body, "Where is my order?")
		sawToolResult = sawToolResult || strings.Contains(body, `shipped`) && strings.Contains(body, `"role":"tool"`)
	}
	if !sawTranscript || !sawToolResult {
		t.Errorf("model requests: transcript seen %v, tool result seen %v", sawTranscript, sawToolResult)
	}

	status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	ids := itemIDs(t, list)
	if status != http.StatusOK || len(ids) != 2 {
		t.Fatalf("calls: %d %v", status, list)
	}
	transferred := n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	if transferred["ended_reason"] != "transferred" {
		t.Errorf("second call: %v, want ended transferred", transferred)
	}
	call := n.waitCall(key, ids[1], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	report, _ := call["report"].(map[string]any)
	if call["ended_reason"] != "agent-hangup" || report == nil || report["turns"].(float64) < 2 || report["latency_p50_ms"].(float64) <= 0 {
		t.Errorf("first call: %v, want agent-hangup with a report of the turns", call)
	}
	status, tr := n.call("GET", "/api/v1/calls/"+ids[1]+"/transcript", key, "")
	raw, _ := json.Marshal(tr)
	for _, want := range []string{"Hello, how can I help?", "Where is my order?", "has shipped", `"name":"get_order"`, `"name":"end_call"`} {
		if status != http.StatusOK || !strings.Contains(string(raw), want) {
			t.Errorf("transcript lacks %q: %d %s", want, status, raw)
		}
	}
}
