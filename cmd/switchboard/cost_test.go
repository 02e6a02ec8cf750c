package main

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
)

// TestCallCostAndUsage holds a spoken conversation with an agent over real SIP and RTP,
// through a trunk with a price a minute, with stand-ins of the model (which reports the
// tokens it used) and of speech to text and text to speech, priced in the providers file;
// on SQLite and PostgreSQL. The call's record and its report carry the tokens, the seconds
// transcribed, the characters spoken and the cost part by part at those prices;
// GET /api/v1/usage counts the call's model use (source call); the analytics count the call
// with the same tokens and cost.
func TestCallCostAndUsage(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
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
			env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "DATABASE_URL=" + d.url(t),
				"SWITCHBOARD_RATE_LIMIT=10000", "SWITCHBOARD_PROVIDERS_FILE=" + providers}
			key := createKey(t, env, "--name", "cost")
			n := startServe(t, env)

			status, trunk := n.call("POST", "/api/v1/trunks", key, `{"name":"carrier","inbound":{"allowed_cidrs":["127.0.0.1/32"]},"price_per_minute_usd":0.6}`)
			if status != http.StatusCreated || trunk["price_per_minute_usd"] != 0.6 {
				t.Fatalf("POST trunk: %d %v", status, trunk)
			}
			status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"brain/gpt-test","instructions":"You answer.",`+
				`"first_message":"Hello, how can I help?","transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"voice","voice":"alloy","speed":1}}`)
			if status != http.StatusCreated {
				t.Fatalf("POST agent: %d %v", status, ag)
			}
			agentID := ag["id"].(string)
			if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"+15550001","name":"Orders","agent_id":"`+agentID+`","trunk_id":"`+trunk["id"].(string)+`"}`); status != http.StatusCreated {
				t.Fatalf("POST phone number: %d %v", status, pn)
			}
			voice.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript {
				return speechtest.Transcript{Text: "Where is my order?"}
			})
			model.Enqueue(llmtest.Reply{Usage: llm.Usage{InputTokens: 1200, OutputTokens: 300},
				ToolCalls: []llmtest.ToolCall{{Name: "end_call", Arguments: `{"goodbye":"Goodbye!"}`}}})

			far, contact := withFarEnd(t)
			p := dialPhoneContact(t, "sip:+15550001@"+n.sipAddr(), contact)
			p.waitSpeech(25, 20*time.Second, "greeting")
			p.waitQuiet(400*time.Millisecond, 20*time.Second)
			p.speak(readWAV8k(t, "../../testdata/speech/where_is_my_order.wav"))
			far.waitBye(t, 30*time.Second, "end_call")
			p.close()

			_, list := n.call("GET", "/api/v1/calls", key, "")
			ids := itemIDs(t, list)
			if len(ids) != 1 {
				t.Fatalf("calls: %v", list)
			}
			c := n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
			num := func(m map[string]any, k string) float64 {
				v, ok := m[k].(float64)
				if !ok {
					t.Fatalf("%s is not a number in %v", k, m)
				}
				return v
			}
			in, out := num(c, "input_tokens"), num(c, "output_tokens")
			stt, chars, minutes := num(c, "stt_seconds"), num(c, "tts_characters"), num(c, "duration_seconds")/60
			if in < 1200 || out < 300 || stt < 1 || chars < float64(len("Hello, how can I help?")) || minutes <= 0 || c["trunk_id"] != trunk["id"] {
				t.Fatalf("call usage: %v", c)
			}
			cost, _ := c["cost"].(map[string]any)
			round := func(f float64) float64 { return math.Round(f*1e6) / 1e6 }
			want := map[string]float64{"model": round((in*1000 + out*2000) / 1e6), "stt": round(stt / 60 * 0.6),
				"tts": round(chars * 1000 / 1e6), "telephony": round(minutes * 0.6)}
			want["total"] = round(want["model"] + want["stt"] + want["tts"] + want["telephony"])
			for k, v := range want {
				if got, _ := cost[k].(float64); math.Abs(got-v) > 2e-6 || got <= 0 {
					t.Errorf("cost %s %v, want %v: %v", k, cost[k], v, cost)
				}
			}
			if cost["currency"] != "USD" || math.Abs(num(c, "cost_usd")-num(cost, "total")) > 1e-9 {
				t.Errorf("cost %v, cost_usd %v", cost, c["cost_usd"])
			}
			report, _ := c["report"].(map[string]any)
			if rc, _ := report["cost"].(map[string]any); rc == nil || rc["total"] != cost["total"] {
				t.Errorf("report's cost %v, want %v", report["cost"], cost)
			}

			// The call's model use is in the tenant's usage.
			status, usage := n.call("GET", "/api/v1/usage", key, "")
			items, _ := usage["items"].([]any)
			if status != http.StatusOK || len(items) != 1 {
				t.Fatalf("usage: %d %v", status, usage)
			}
			it := items[0].(map[string]any)
			if it["source"] != "call" || it["model"] != "brain/gpt-test" || it["input_tokens"] != in || it["output_tokens"] != out ||
				math.Abs(num(it, "cost_usd")-want["model"]) > 2e-6 {
				t.Errorf("usage item %v, want the call's %v in and %v out", it, in, out)
			}

			// The analytics count the call as it is.
			q := url.Values{"bucket": {"hour"}, "from": {time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}}
			status, an := n.call("GET", "/api/v1/analytics/calls?"+q.Encode(), key, "")
			tot, _ := an["total"].(map[string]any)
			if status != http.StatusOK || tot["calls"] != 1.0 || tot["answered"] != 1.0 || tot["input_tokens"] != in ||
				math.Abs(num(tot, "cost_usd")-num(cost, "total")) > 2e-6 || tot["turns"].(float64) < 1 ||
				tot["turn_latency_p50_ms"] == nil || tot["end_reasons"].(map[string]any)["agent-hangup"] != 1.0 {
				t.Errorf("analytics: %d %v", status, an)
			}
		})
	}
}
