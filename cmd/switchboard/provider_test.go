package main

import (
	"net/http"
	"testing"
	"time"
)

// TestAgentWithoutProvider calls an agent whose model's provider went away after it was
// saved (the tenant's provider was deleted): the caller hears an apology and the call ends
// with reason provider-not-configured, not in silence.
func TestAgentWithoutProvider(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "providers")
	n := startServe(t, env)

	status, prov := n.call("POST", "/api/v1/providers", key, `{"name":"groq","kind":"openai","base_url":"https://api.groq.com/openai/v1","api_key":"gsk_test"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST provider: %d %v", status, prov)
	}
	status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Fast","model":"groq/llama-3.1-8b-instant","first_message":"Hello!"}`)
	if status != http.StatusCreated {
		t.Fatalf("POST agent: %d %v", status, ag)
	}
	if status, pn := n.call("POST", "/api/v1/phone-numbers", key, `{"number":"fast","name":"Fast","agent_id":"`+ag["id"].(string)+`"}`); status != http.StatusCreated {
		t.Fatalf("POST phone number: %d %v", status, pn)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "DELETE", "http://"+n.addr+"/api/v1/providers/"+prov["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := n.client.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE provider: %v %v", resp, err)
	}

	p := dialPhone(t, "sip:fast@"+n.sipAddr())
	p.waitSpeech(25, 15*time.Second, "the apology")
	p.close()
	status, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	ids := itemIDs(t, list)
	if status != http.StatusOK || len(ids) != 1 {
		t.Fatalf("calls: %d %v", status, list)
	}
	c := n.waitCall(key, ids[0], "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	if c["ended_reason"] != "provider-not-configured" {
		t.Errorf("call: %v, want ended provider-not-configured", c)
	}
}
