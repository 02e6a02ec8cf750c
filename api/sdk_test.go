package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// The official SDKs as judges: the openai and @anthropic-ai/sdk npm packages (pinned in
// testdata/sdk/package.json, installed by `make sdk`) run testdata/sdk/openai.mjs and
// anthropic.mjs against a real Switchboard on loopback, in both dialects and across them,
// and against the stand-ins directly, which keeps the stand-ins honest too. Their strict
// stream accumulators throw on any chunk or event out of place.

// sdkDir is testdata/sdk, with its node_modules installed.
func sdkDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"openai", filepath.Join("@anthropic-ai", "sdk")} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the official SDKs are not installed in %s/node_modules (%v): run `make sdk`", dir, err)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v): the SDK judges need Node.js 20 or later; then run `make sdk`", err)
	}
	return dir
}

// sdkRespond answers as a model would: the weather tool's calls when offered it, an answer
// once its results are in, a greeting otherwise. idPrefix names tool calls as the upstream
// does.
func sdkRespond(idPrefix string) func(llmtest.Request) llmtest.Reply {
	return func(r llmtest.Request) llmtest.Reply {
		m := r.Map()
		if m["model"] == "broken" {
			return llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStreamError, FaultAfter: 3, ErrorMessage: "Overloaded, try later"}
		}
		msgs, _ := m["messages"].([]any)
		var last map[string]any
		if len(msgs) > 0 {
			last, _ = msgs[len(msgs)-1].(map[string]any)
		}
		hasResult := last["role"] == "tool"
		if blocks, ok := last["content"].([]any); ok {
			for _, b := range blocks {
				if bm, _ := b.(map[string]any); bm["type"] == "tool_result" {
					hasResult = true
				}
			}
		}
		switch tools, _ := m["tools"].([]any); {
		case hasResult:
			return gwTurns[2].reply(idPrefix)
		case len(tools) > 0:
			return gwTurns[1].reply(idPrefix)
		}
		return gwTurns[0].reply(idPrefix)
	}
}

// runSDK runs a judge script and decodes what it printed.
func runSDK(t *testing.T, dir, script string, env ...string) map[string]json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s\nstdout:\n%s", script, err, stderr.String(), stdout.String())
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node %s printed no JSON object: %v\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	return out
}

// The final objects as the SDKs build them.
type (
	sdkCompletion struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role      string  `json:"role"`
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Type     string `json:"type"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
		ChunksSeen int `json:"chunks_seen"`
	}
	sdkMessage struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Role       string `json:"role"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
		EventsSeen []string `json:"events_seen"`
	}
	sdkError struct {
		Name    string          `json:"name"`
		Status  int             `json:"status"`
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
)

var sdkTurnNames = []string{"text", "tool_call", "tool_result"}

// checkOpenAISDK checks the OpenAI client's final objects against the turns' outcomes.
func checkOpenAISDK(t *testing.T, out map[string]json.RawMessage, model, idPrefix string) {
	t.Helper()
	for i, name := range sdkTurnNames {
		want := gwTurns[i].want(idPrefix)
		for _, mode := range []string{"create", "stream"} {
			key := name + "/" + mode
			var c sdkCompletion
			if err := json.Unmarshal(out[key], &c); err != nil || len(c.Choices) != 1 {
				t.Errorf("%s: %v: %s", key, err, out[key])
				continue
			}
			ch := c.Choices[0]
			got := gwOutcome{Stop: llm.StopReasonFromOpenAI(ch.FinishReason)}
			if ch.Message.Content != nil {
				got.Text = *ch.Message.Content
			}
			for _, tc := range ch.Message.ToolCalls {
				if tc.Type != "function" {
					t.Errorf("%s: tool call type %q", key, tc.Type)
				}
				got.Calls = append(got.Calls, gwCall{ID: tc.ID, Name: tc.Function.Name, Args: gwCompact(tc.Function.Arguments)})
			}
			if c.Usage != nil {
				got.In, got.Out = c.Usage.PromptTokens, c.Usage.CompletionTokens
				if c.Usage.TotalTokens != got.In+got.Out {
					t.Errorf("%s: usage %+v", key, *c.Usage)
				}
			}
			if !gwSameOutcome(got, want) {
				t.Errorf("%s:\n got %+v\nwant %+v", key, got, want)
			}
			if c.Model != model || ch.Message.Role != "assistant" || c.ID == "" {
				t.Errorf("%s: id %q model %q role %q", key, c.ID, c.Model, ch.Message.Role)
			}
			if mode == "stream" && c.ChunksSeen < 3 {
				t.Errorf("%s: %d chunks", key, c.ChunksSeen)
			}
		}
	}
}

// checkAnthropicSDK checks the Anthropic client's final objects against the turns' outcomes.
func checkAnthropicSDK(t *testing.T, out map[string]json.RawMessage, model, idPrefix string) {
	t.Helper()
	for i, name := range sdkTurnNames {
		want := gwTurns[i].want(idPrefix)
		for _, mode := range []string{"create", "stream"} {
			key := name + "/" + mode
			var m sdkMessage
			if err := json.Unmarshal(out[key], &m); err != nil {
				t.Errorf("%s: %v: %s", key, err, out[key])
				continue
			}
			got := gwOutcome{Stop: llm.StopReasonFromAnthropic(m.StopReason), In: m.Usage.InputTokens, Out: m.Usage.OutputTokens}
			for _, b := range m.Content {
				switch b.Type {
				case "text":
					got.Text += b.Text
				case "tool_use":
					got.Calls = append(got.Calls, gwCall{ID: b.ID, Name: b.Name, Args: gwCompact(string(b.Input))})
				default:
					t.Errorf("%s: block %q", key, b.Type)
				}
			}
			if !gwSameOutcome(got, want) {
				t.Errorf("%s:\n got %+v\nwant %+v", key, got, want)
			}
			if m.Model != model || m.Type != "message" || m.Role != "assistant" || m.ID == "" {
				t.Errorf("%s: id %q type %q role %q model %q", key, m.ID, m.Type, m.Role, m.Model)
			}
			if mode == "stream" && (len(m.EventsSeen) < 4 || m.EventsSeen[0] != "message_start" || m.EventsSeen[len(m.EventsSeen)-1] != "message_stop" ||
				!slices.Contains(m.EventsSeen, "message_delta")) {
				t.Errorf("%s: events %v", key, m.EventsSeen)
			}
		}
	}
}

// checkSDKErrors checks the typed error each client raised for an unknown model.
func checkSDKErrors(t *testing.T, out map[string]json.RawMessage, anthropic bool) {
	t.Helper()
	for _, key := range []string{"error/create", "error/stream"} {
		var e sdkError
		if err := json.Unmarshal(out[key], &e); err != nil {
			t.Errorf("%s: %v: %s", key, err, out[key])
			continue
		}
		if e.Status != 400 || e.Name != "BadRequestError" || !strings.Contains(e.Message, "nope") {
			t.Errorf("%s: %s", key, out[key])
		}
		var body struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(e.Error, &body)
		// The OpenAI client gives the error object; the Anthropic client the whole body.
		if anthropic && (body.Type != "error" || body.Error.Type != "invalid_request_error") ||
			!anthropic && (body.Message == "" || !strings.Contains(string(e.Error), `"type":"invalid_request_error"`)) {
			t.Errorf("%s: error body %s", key, e.Error)
		}
	}
}

// TestSDKJudges runs the official clients against Switchboard in both dialects and across
// them (the OpenAI client to an Anthropic-kind upstream, the Anthropic client to an
// OpenAI-kind upstream), and against the stand-ins directly.
func TestSDKJudges(t *testing.T) {
	t.Parallel()
	dir := sdkDir(t)
	g := newGW(t, store.SQLite)
	g.oa.Respond(sdkRespond("call_up"))
	g.an.Respond(sdkRespond("toolu_up"))
	cases := []struct {
		name, script, base, key, model, idPrefix string
		switchboard                              bool
	}{
		{"openai-sdk-to-oai", "openai.mjs", g.ts.URL + "/v1", g.ts.Key, "oai/gpt-test", "call_up", true},
		{"openai-sdk-to-ant", "openai.mjs", g.ts.URL + "/v1", g.ts.Key, "ant/claude-test", "toolu_up", true},
		{"anthropic-sdk-to-ant", "anthropic.mjs", g.ts.URL, g.ts.Key, "ant/claude-test", "toolu_up", true},
		{"anthropic-sdk-to-oai", "anthropic.mjs", g.ts.URL, g.ts.Key, "oai/gpt-test", "call_up", true},
		{"openai-sdk-to-standin", "openai.mjs", g.oa.URL, gwOAIKey, "gpt-test", "call_up", false},
		{"anthropic-sdk-to-standin", "anthropic.mjs", g.an.URL, gwAntKey, "claude-test", "toolu_up", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_BASE_URL=" + c.base, "SWITCHBOARD_API_KEY=" + c.key, "SWITCHBOARD_MODEL=" + c.model}
			if c.switchboard {
				env = append(env, "SWITCHBOARD_ERROR_MODEL=nope/some-model", "SWITCHBOARD_BROKEN_MODEL="+strings.Split(c.model, "/")[0]+"/broken")
			}
			out := runSDK(t, dir, c.script, env...)
			if c.script == "openai.mjs" {
				checkOpenAISDK(t, out, c.model, c.idPrefix)
			} else {
				checkAnthropicSDK(t, out, c.model, c.idPrefix)
			}
			if c.switchboard {
				checkSDKErrors(t, out, c.script == "anthropic.mjs")
				var e sdkError
				if err := json.Unmarshal(out["broken/stream"], &e); err != nil || !strings.Contains(e.Message, "Overloaded, try later") || e.Name == "" {
					t.Errorf("a broken stream: %s", out["broken/stream"])
				}
			}
		})
	}
}
