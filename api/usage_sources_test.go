package api_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestUsageCountsSessionsAndGateway: GET /api/v1/usage counts a session's answers (source
// session, priced as the model's provider prices them) beside the gateway's requests
// (source gateway), and the session's own tokens and cost agree with its usage.
func TestUsageCountsSessionsAndGateway(t *testing.T) {
	eachSessionDialect(t, func(t *testing.T, r *sessionRig) {
		id := r.createSession(t, r.Key, r.agentID)
		r.up.Enqueue(llmtest.Reply{Text: "Hello.", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 200}})
		if res := r.do(http.MethodPost, "/api/v1/sessions/"+id+"/messages", r.Key, map[string]any{"content": "Hi"}); res.Status != http.StatusOK {
			t.Fatalf("session answer: %d %s", res.Status, res.Body)
		}
		r.up.Enqueue(llmtest.Reply{Text: "Hi.", Usage: llm.Usage{InputTokens: 10, OutputTokens: 5}})
		if res := r.do(http.MethodPost, "/v1/chat/completions", r.Key, map[string]any{"model": "up/m",
			"messages": []map[string]any{{"role": "user", "content": "Hi"}}}); res.Status != http.StatusOK {
			t.Fatalf("gateway request: %d %s", res.Status, res.Body)
		}
		res := r.do(http.MethodGet, "/api/v1/usage", r.Key, nil)
		wantStatus(t, res, http.StatusOK, "GET /api/v1/usage")
		var rep struct {
			Items []store.UsageTotal `json:"items"`
			Total store.UsageTotal   `json:"total"`
		}
		if err := json.Unmarshal(res.Body, &rep); err != nil {
			t.Fatal(err)
		}
		by := map[string]store.UsageTotal{}
		for _, it := range rep.Items {
			by[it.Source] = it
		}
		s, g := by[store.UsageSession], by[store.UsageGateway]
		if len(rep.Items) != 2 || s.InputTokens != 1000 || s.OutputTokens != 200 || s.Model != "up/m" || math.Abs(s.CostUSD-0.0014) > 1e-9 ||
			g.InputTokens != 10 || g.OutputTokens != 5 || rep.Total.Requests != 2 {
			t.Fatalf("usage %s", res.Body)
		}
		sess, err := store.Get[store.Session](context.Background(), r.Store, r.Default.ID, id)
		if err != nil || sess.InputTokens != 1000 || math.Abs(sess.CostUSD-s.CostUSD) > 1e-9 {
			t.Fatalf("session %+v (%v), want the usage's tokens and cost", sess, err)
		}
	})
}

// TestPricesValidated: a trunk's price a minute and a provider's speech prices are dollar
// amounts; a negative one is refused by name and nothing is written, and a good one reads
// back as it was set.
func TestPricesValidated(t *testing.T) {
	ts := newTestServer(t, store.SQLite)
	wantError(t, ts.do(http.MethodPost, "/api/v1/trunks", ts.Key, obj{"name": "carrier", "price_per_minute_usd": -0.01,
		"inbound": obj{"allowed_cidrs": arr{"203.0.113.0/24"}}}), http.StatusUnprocessableEntity, "validation_error", "price_per_minute_usd")
	wantError(t, ts.do(http.MethodPost, "/api/v1/providers", ts.Key, obj{"name": "groq", "base_url": "https://api.groq.com/openai/v1",
		"speech_prices": obj{"stt_per_minute": -1}}), http.StatusUnprocessableEntity, "validation_error", "speech_prices.stt_per_minute")
	for _, path := range []string{"/api/v1/trunks", "/api/v1/providers"} {
		if list := ts.do(http.MethodGet, path, ts.Key, nil).JSON(t); list["total"] != 0.0 {
			t.Errorf("%s after refusals: %v", path, list)
		}
	}
	r := ts.do(http.MethodPost, "/api/v1/providers", ts.Key, obj{"name": "groq", "base_url": "https://api.groq.com/openai/v1",
		"speech_prices": obj{"stt_per_minute": 0.006, "tts_per_million_characters": 15}})
	wantStatus(t, r, http.StatusCreated, "POST provider")
	if sp, _ := r.JSON(t)["speech_prices"].(map[string]any); sp["stt_per_minute"] != 0.006 || sp["tts_per_million_characters"] != 15.0 {
		t.Errorf("provider %s", r.Body)
	}
}
