package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/otlptest"
)

// parsedTraceparent is a traceparent header's trace and parent span ids ("" when absent or
// malformed).
func parsedTraceparent(h http.Header) (traceID, spanID string) {
	parts := strings.Split(h.Get("Traceparent"), "-")
	if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return "", ""
	}
	return parts[1], parts[2]
}

// loggedWith reports whether the server logged a line with this message that holds want.
func (l *logBuffer) loggedWith(msg, want string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		if (strings.Contains(line, "msg=\""+msg+"\"") || strings.Contains(line, `"msg":"`+msg+`"`)) && strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// TestTracing runs a node that exports traces to a real OTLP/HTTP receiver (decoded with the
// official protobuf types) and holds a spoken conversation with a model agent over real SIP
// and RTP: the call's span comes with its id, transport and end; the caller's turn is below
// it, with its transcription, model, tool and speech stages below the turn; the model's
// stand-in, the transcriber's and the tool's webhook each received a traceparent of the
// call's trace, naming the stage that asked; the call's log lines carry its trace id. An
// HTTP request that brings a traceparent continues the client's trace, its span named by
// the route's pattern.
func TestTracing(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	model := llmtest.NewOpenAI(t)
	voice := speechtest.NewOpenAI(t)
	var hookMu sync.Mutex
	var hookHeaders []http.Header
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookMu.Lock()
		hookHeaders = append(hookHeaders, r.Header.Clone())
		hookMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"order":"A-17","status":"shipped"}`))
	}))
	t.Cleanup(hook.Close)
	orders := hook.URL

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS=true",
		// Spans are exported a tenth of a second after they end: the test waits on the
		// receiver, not on the SDK's default five seconds.
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL, "OTEL_SERVICE_NAME=switchboard-e2e", "OTEL_BSP_SCHEDULE_DELAY=100"}
	key := createKey(t, env, "--name", "trace")
	n := startServe(t, env)

	// A request that is part of a client's trace.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest(http.MethodGet, "http://"+n.addr+"/api/v1/agents", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/agents: %d", resp.StatusCode)
	}

	status, tool := n.call("POST", "/api/v1/tools", key, `{"name":"get_order","description":"Looks up the caller's order.",`+
		`"parameters":{"type":"object","properties":{}},"webhook":{"url":"`+orders+`","method":"POST"}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST tool: %d %v", status, tool)
	}
	status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"openai/gpt-test","instructions":"You answer questions about orders.",`+
		`"first_message":"Hello, how can I help?","tool_ids":["`+tool["id"].(string)+`"],`+
		`"transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"espeak","voice":"en-us","speed":1}}`)
	if status != http.StatusCreated {
		t.Fatalf("POST agent: %d %v", status, ag)
	}
	if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550001","name":"Orders","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
		t.Fatalf("POST phone number: %d %v", status, pn)
	}

	var saying sync.Mutex
	current := ""
	voice.Respond(func(r speechtest.TranscriptionRequest) speechtest.Transcript {
		saying.Lock()
		defer saying.Unlock()
		return speechtest.Transcript{Text: current}
	})
	say := func(p *phone, name, text string) {
		saying.Lock()
		current = text
		saying.Unlock()
		p.speak(readWAV8k(t, "../../testdata/speech/"+name+".wav"))
	}
	model.Enqueue(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "get_order", Arguments: `{}`}}},
		llmtest.Reply{Text: "Your order A-17 has shipped."},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "end_call", Arguments: `{"goodbye":"Goodbye!"}`}}},
	)
	far, contact := withFarEnd(t)
	p := dialPhoneContact(t, "sip:+15550001@"+n.sipAddr(), contact)
	p.waitSpeech(25, 15*time.Second, "greeting")
	p.waitQuiet(400*time.Millisecond, 15*time.Second)
	say(p, "where_is_my_order", "Where is my order?")
	p.waitSpeech(25, 20*time.Second, "the answer about the order")
	p.waitQuiet(400*time.Millisecond, 20*time.Second)
	say(p, "thank_you_goodbye", "Thank you, goodbye.")
	far.waitBye(t, 20*time.Second, "end_call")
	p.close()

	// The call's span ends as the call leaves the node; the turn that ran the tool is below
	// it, with every stage below the turn.
	var call otlptest.Span
	var toolTurn string
	stagesOf := func(spans []otlptest.Span, parent string) map[string]otlptest.Span {
		out := map[string]otlptest.Span{}
		for _, s := range spans {
			if s.ParentID() == parent {
				out[s.Name] = s
			}
		}
		return out
	}
	spans := rcv.Wait(t, 30*time.Second, "a call span with a turn of stt, model, tool and tts", func(spans []otlptest.Span) bool {
		for _, s := range spans {
			if s.Name == "call" && s.Attr("call.end_reason") != "" {
				call = s
			}
		}
		if call.Span == nil {
			return false
		}
		for _, turn := range spans {
			if turn.Name != "turn" || turn.ParentID() != call.SpanID() {
				continue
			}
			st := stagesOf(spans, turn.SpanID())
			if st["stt"].Span != nil && st["model"].Span != nil && st["tool"].Attr("gen_ai.tool.name") == "get_order" && st["tts"].Span != nil {
				toolTurn = turn.SpanID()
				return true
			}
		}
		// A turn's stages may come in another export than the call's span.
		return false
	})
	want := map[string]string{"call.transport": "sip", "call.direction": "inbound", "call.end_reason": "agent-hangup",
		"call.status": "completed", "agent.id": ag["id"].(string)}
	for k, v := range want {
		if got := call.Attr(k); got != v {
			t.Errorf("call span %s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(call.Attr("call.id"), "call_") || call.Service != "switchboard-e2e" {
		t.Errorf("call span: id %q, service %q", call.Attr("call.id"), call.Service)
	}
	trace := call.TraceID()
	stages := stagesOf(spans, toolTurn)
	if got := stages["tool"].Attr("gen_ai.tool.name"); got != "get_order" {
		t.Errorf("tool span names %q, want get_order", got)
	}
	spanIDs := map[string]string{} // span id: name, of the call's trace
	for _, s := range spans {
		if s.TraceID() == trace {
			spanIDs[s.SpanID()] = s.Name
		}
	}

	// What the providers and the webhook saw: the call's trace, and the stage that asked.
	modelAsked := 0
	for _, r := range model.Requests() {
		tid, parent := parsedTraceparent(r.Header)
		if tid != trace || spanIDs[parent] != "model" {
			t.Errorf("model request %d: traceparent %q (its parent %q), want one of the call's model spans", r.Seq, r.Header.Get("Traceparent"), spanIDs[parent])
		}
		modelAsked++
	}
	if modelAsked < 3 {
		t.Errorf("the model was asked %d times, want 3", modelAsked)
	}
	for _, r := range voice.Transcriptions() {
		if tid, _ := parsedTraceparent(r.Header); tid != trace {
			t.Errorf("transcription %d: traceparent %q, want the call's trace %s", r.Seq, r.Header.Get("Traceparent"), trace)
		}
	}
	hookMu.Lock()
	hooks := append([]http.Header(nil), hookHeaders...)
	hookMu.Unlock()
	if len(hooks) != 1 {
		t.Fatalf("the tool's webhook was called %d times, want once", len(hooks))
	}
	if tid, parent := parsedTraceparent(hooks[0]); tid != trace || parent != stages["tool"].SpanID() {
		t.Errorf("webhook traceparent %q, want the tool span %s of trace %s", hooks[0].Get("Traceparent"), stages["tool"].SpanID(), trace)
	}
	if !n.log.loggedWith("call answered", "trace_id="+trace) {
		t.Errorf("the call's lines do not carry its trace id %s:\n%s", trace, n.log)
	}

	// A gateway request: its span below the request's, the upstream's below it, and the
	// model's stand-in sees the upstream's span as the parent.
	model.Enqueue(llmtest.Reply{Text: "Hi."})
	if status, body := n.call("POST", "/v1/chat/completions", key, `{"model":"openai/gpt-test","messages":[{"role":"user","content":"Hi"}]}`); status != http.StatusOK {
		t.Fatalf("POST /v1/chat/completions: %d %v", status, body)
	}
	reqs := model.Requests()
	gwTrace, gwParent := parsedTraceparent(reqs[len(reqs)-1].Header)
	rcv.Wait(t, 30*time.Second, "the gateway request's spans", func(spans []otlptest.Span) bool {
		byID := map[string]otlptest.Span{}
		for _, s := range spans {
			byID[s.SpanID()] = s
		}
		up := byID[gwParent]
		gw := byID[up.ParentID()]
		return up.Span != nil && up.TraceID() == gwTrace && up.Name == "gateway upstream" && up.Attr("gen_ai.provider.name") == "openai" &&
			gw.Span != nil && gw.Name == "gateway openai" && gw.Attr("gen_ai.usage.output_tokens") != "" &&
			byID[gw.ParentID()].Span != nil && byID[gw.ParentID()].Name == "POST /v1/chat/completions"
	})

	// A span is named by the route's pattern, never by the path: ids and unknown paths
	// make no new names.
	agentID := ag["id"].(string)
	if status, _ := n.call("GET", "/api/v1/agents/"+agentID, key, ""); status != http.StatusOK {
		t.Fatalf("GET the agent: %d", status)
	}
	if status, _ := n.call("GET", "/no/such/"+agentID, key, ""); status != http.StatusNotFound {
		t.Fatalf("GET an unknown path: %d", status)
	}
	spans = rcv.Wait(t, 30*time.Second, "the spans of a route with an id and of an unknown path", func(spans []otlptest.Span) bool {
		var byID, unknown bool
		for _, s := range spans {
			if strings.Contains(s.Name, agentID) || strings.Contains(s.Name, "/no/such") {
				t.Fatalf("a span is named by its path: %q", s.Name)
			}
			byID = byID || s.Name == "GET /api/v1/agents/{id}" && s.Attr("url.path") == "/api/v1/agents/"+agentID
			unknown = unknown || s.Name == "GET" && s.Attr("http.response.status_code") == "404"
		}
		return byID && unknown
	})

	// The request of the client's trace: its span continues it, named by the route.
	var served otlptest.Span
	for _, s := range spans {
		if s.TraceID() == clientTrace {
			served = s
		}
	}
	if served.Span == nil || served.ParentID() != clientSpan || served.Name != "GET /api/v1/agents" ||
		served.Attr("http.route") != "/api/v1/agents" || served.Attr("http.response.status_code") != "200" {
		t.Errorf("the request's span continues no client trace as GET /api/v1/agents:\n%s", otlptest.Describe(spans))
	}
}
