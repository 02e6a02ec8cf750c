package llmtest_test

import (
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

// TestAnthropicKeyHeaders: the Anthropic stand-in takes its key as x-api-key or as a Bearer
// token, as the real API does (the official client, @anthropic-ai/sdk 1.x, sends the apiKey
// it is given as a Bearer token), and refuses a wrong one either way.
func TestAnthropicKeyHeaders(t *testing.T) {
	t.Parallel()
	an := llmtest.NewAnthropic(t)
	an.RequireKey("sk-ant-k")
	body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		header map[string]string
		status int
	}{
		{map[string]string{"x-api-key": "sk-ant-k"}, 200},
		{map[string]string{"Authorization": "Bearer sk-ant-k"}, 200},
		{map[string]string{"x-api-key": "nope"}, 401},
		{map[string]string{"Authorization": "Bearer nope"}, 401},
		{map[string]string{"Authorization": "sk-ant-k"}, 401},
		{nil, 401},
	}
	for _, c := range cases {
		h := map[string]string{"anthropic-version": "2023-06-01"}
		for k, v := range c.header {
			h[k] = v
		}
		status, got := post(t, an.URL+"/v1/messages", h, body)
		if status != c.status || (status == 401 && !strings.Contains(got, `"authentication_error"`)) {
			t.Errorf("%v: %d %s, want %d", c.header, status, got, c.status)
		}
	}
}
