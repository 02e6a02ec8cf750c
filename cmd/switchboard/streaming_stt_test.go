package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// TestStreamingSTTCalls answers calls with agents that hear through live transcribers: a
// SIP call through Deepgram's protocol (DEEPGRAM_BASE_URL, DEEPGRAM_API_KEY), whose
// complete sentence reaches the model before the provider's final; one whose transcriber's
// socket drops mid-turn (a deepgram-kind provider of the providers file); a WebRTC call
// through OpenAI's realtime transcription (an openai-kind provider and a -transcribe
// model).
func TestStreamingSTTCalls(t *testing.T) {
	t.Parallel()
	model := llmtest.NewOpenAI(t)
	const question = "What are your opening hours?"
	dg := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return question },
		FinalDelay: 1500 * time.Millisecond, RequireKey: "dg-key"})
	rt := speechtest.NewOpenAIRealtimeSTT(t, speechtest.LiveOptions{Say: func(int) string { return "Where is my order?" }})
	const billing = "I need help with my bill."
	drop := speechtest.NewDeepgram(t, speechtest.LiveOptions{Say: func(int) string { return billing }, DropAfter: 500 * time.Millisecond})
	asked := make(chan time.Time, 8)
	model.Respond(func(r llmtest.Request) llmtest.Reply {
		if body := string(r.Body); strings.Contains(body, question) || strings.Contains(body, "Where is my order?") || strings.Contains(body, billing) {
			asked <- time.Now()
		}
		return llmtest.Reply{Text: "We are open from nine to five."}
	})

	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: rt\n    kind: openai\n    base_url: "+rt.URL+"\n  - name: dgdrop\n    kind: deepgram\n    base_url: "+drop.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"DEEPGRAM_BASE_URL=" + dg.URL, "DEEPGRAM_API_KEY=dg-key"}
	key := createKey(t, env, "--name", "live")
	n := startServe(t, env)

	agent := func(transcriber string) string {
		t.Helper()
		status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Hours","model":"openai/gpt-test","instructions":"You answer questions.",`+
			`"first_message":"Hello, how can I help?","transcriber":`+transcriber+`,"voice":{"provider":"espeak","voice":"en-us","speed":1},`+
			`"turn":{"endpointing_ms":600,"interruptions":true,"min_interruption_ms":250,"stt_endpointing_ms":300}}`)
		if status != http.StatusCreated {
			t.Fatalf("POST agent: %d %v", status, ag)
		}
		return ag["id"].(string)
	}
	waitAsked := func(what string) time.Time {
		t.Helper()
		select {
		case at := <-asked:
			return at
		case <-time.After(30 * time.Second):
			t.Fatalf("the model was never asked %s", what)
			return time.Time{}
		}
	}

	t.Run("sip deepgram", func(t *testing.T) {
		id := agent(`{"provider":"deepgram","model":"nova-3","language":"en"}`)
		if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550101","name":"Hours","agent_id":"`+id+`"}`); status != http.StatusCreated {
			t.Fatalf("POST phone number: %d %v", status, pn)
		}
		p := dialPhone(t, "sip:+15550101@"+n.sipAddr())
		p.waitSpeech(25, 15*time.Second, "greeting")
		p.waitQuiet(400*time.Millisecond, 15*time.Second)
		p.speak(readWAV8k(t, "../../testdata/speech/opening_hours.wav"))
		at := waitAsked(question)
		ctx := t.Context()
		if !dg.Wait(ctx, func(_ []speechtest.LiveConn, f []speechtest.LiveFinal) bool { return len(f) > 0 }) {
			t.Fatal("the stand-in sent no final")
		}
		if final := dg.Finals()[0]; !at.Before(final.At) {
			t.Errorf("the model was asked %v after the provider's final", at.Sub(final.At))
		}
		p.waitSpeech(25, 20*time.Second, "the answer")
		p.hangup()
		c := dg.Conns()[0]
		if c.Header.Get("Authorization") != "Token dg-key" || c.Query.Get("model") != "nova-3" || c.Query.Get("language") != "en" || c.Query.Get("endpointing") != "300" {
			t.Errorf("socket %v %v", c.Header, c.Query)
		}
		status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
		ids := itemIDs(t, list)
		if status != http.StatusOK || len(ids) != 1 {
			t.Fatalf("calls: %d %v", status, list)
		}
		n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
		_, tr := n.call("GET", "/api/v1/calls/"+ids[0]+"/transcript", key, "")
		if !strings.Contains(toJSON(tr), question) {
			t.Errorf("transcript: %s", toJSON(tr))
		}
	})

	// The transcriber's socket drops while the caller speaks: a new one hears the turn again
	// and the model gets it whole.
	t.Run("sip deepgram dropped socket", func(t *testing.T) {
		id := agent(`{"provider":"dgdrop"}`)
		if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550102","name":"Billing","agent_id":"`+id+`"}`); status != http.StatusCreated {
			t.Fatalf("POST phone number: %d %v", status, pn)
		}
		p := dialPhone(t, "sip:+15550102@"+n.sipAddr())
		p.waitSpeech(25, 15*time.Second, "greeting")
		p.waitQuiet(400*time.Millisecond, 15*time.Second)
		p.speak(readWAV8k(t, "../../testdata/speech/bill_help.wav"))
		waitAsked(billing)
		p.hangup()
		if c := drop.Conns(); len(c) != 2 || !c[0].Dropped {
			t.Errorf("sockets %+v, want one dropped and its replacement", c)
		}
	})

	t.Run("webrtc openai realtime", func(t *testing.T) {
		id := agent(`{"provider":"rt","model":"gpt-4o-transcribe"}`)
		b := dialBrowser(t, n, key, `{"agent_id":"`+id+`"}`)
		b.connect()
		b.waitEvent("call.agent_speech", 15*time.Second, func(d map[string]any) bool { return strings.Contains(toJSON(d), "how can I help") })
		b.waitSpeech(25, 15*time.Second, "greeting")
		if err := b.SendPCM(read48k(t, "where_is_my_order")); err != nil {
			t.Fatal(err)
		}
		b.waitEvent("call.transcript", 20*time.Second, func(d map[string]any) bool { return d["text"] == "Where is my order?" })
		waitAsked("Where is my order?")
		if c := rt.Conns(); len(c) != 1 || !strings.Contains(string(c[0].Config), `"model":"gpt-4o-transcribe"`) {
			t.Errorf("realtime sockets %+v", c)
		}
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		b.waitEvent("call.ended", 5*time.Second, nil)
	})
}
