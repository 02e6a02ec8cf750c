package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// TestAmaStudioSDKJudges: the official OpenAI and Anthropic clients with an amallm_ key get
// every turn as with any other key, and parse the errors AmaStudio's requests get (the
// SDK's shape with AmaStudio's integer code) into their typed errors, the code included.
func TestAmaStudioSDKJudges(t *testing.T) {
	t.Parallel()
	dir := sdkDir(t)
	g := newGW(t, store.SQLite)
	g.oa.Respond(sdkRespond("call_up"))
	g.an.Respond(sdkRespond("toolu_up"))
	key, _ := amaKey(t, g.ts, g.ts.Key, map[string]any{"scopes": []string{store.ScopeRead, store.ScopeWrite}})
	cases := []struct{ name, script, base, model, idPrefix string }{
		{"openai-sdk", "openai.mjs", g.ts.URL + "/v1", "ant/claude-test", "toolu_up"},
		{"anthropic-sdk", "anthropic.mjs", g.ts.URL, "oai/gpt-test", "call_up"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := runSDK(t, dir, c.script, "SWITCHBOARD_BASE_URL="+c.base, "SWITCHBOARD_API_KEY="+key, "SWITCHBOARD_MODEL="+c.model,
				"SWITCHBOARD_ERROR_MODEL=nope/some-model")
			anthropic := c.script == "anthropic.mjs"
			if anthropic {
				checkAnthropicSDK(t, out, c.model, c.idPrefix)
			} else {
				checkOpenAISDK(t, out, c.model, c.idPrefix)
			}
			checkSDKErrors(t, out, anthropic)
			for _, k := range []string{"error/create", "error/stream"} {
				var e sdkError
				if err := json.Unmarshal(out[k], &e); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				// The OpenAI client keeps the error object, the Anthropic client the body.
				var code struct {
					Code  any `json:"code"`
					Error struct {
						Code any `json:"code"`
					} `json:"error"`
				}
				_ = json.Unmarshal(e.Error, &code)
				got := code.Code
				if anthropic {
					got = code.Error.Code
				}
				if n, ok := got.(float64); !ok || n != 400 || !strings.Contains(e.Message, "nope") {
					t.Errorf("%s: %s, want AmaStudio's code 400", k, out[k])
				}
			}
		})
	}
}
