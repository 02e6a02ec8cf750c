package llm_test

import (
	"errors"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

// toolRoundTrip is a conversation after two tool calls, one of which failed.
func toolRoundTrip() *llm.Request {
	return &llm.Request{
		Model:  "model-1",
		System: "You are terse.",
		Messages: []llm.Message{
			llm.TextMessage(llm.RoleUser, "Weather in Paris and Rome?"),
			{Role: llm.RoleAssistant, Content: []llm.Part{llm.TextPart("Checking.")}, ToolCalls: []llm.ToolCall{
				{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{ID: "call_2", Name: "get_weather", Arguments: `{"city":"Rome"}`},
			}},
			{Role: llm.RoleTool, ToolCallID: "call_1", Content: []llm.Part{llm.TextPart("18C, sunny")}},
			{Role: llm.RoleTool, ToolCallID: "call_2", Content: []llm.Part{llm.TextPart("service down")}, IsError: true},
			llm.TextMessage(llm.RoleUser, "Thanks. And tomorrow?"),
		},
		Tools:       []llm.Tool{weatherTool},
		ToolChoice:  &llm.ToolChoice{Mode: llm.ToolChoiceAuto},
		MaxTokens:   300,
		Temperature: ptr(0.5),
		Stop:        []string{"END"},
	}
}

const weatherSchema = `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`

func TestToolResultRoundTrip(t *testing.T) {
	t.Parallel()
	want := map[llm.Kind]string{
		llm.KindOpenAI: `{"model":"model-1","messages":[
			{"role":"system","content":"You are terse."},
			{"role":"user","content":"Weather in Paris and Rome?"},
			{"role":"assistant","content":"Checking.","tool_calls":[
				{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
				{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"18C, sunny"},
			{"role":"tool","tool_call_id":"call_2","content":"service down"},
			{"role":"user","content":"Thanks. And tomorrow?"}],
			"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":` + weatherSchema + `}}],
			"tool_choice":"auto","max_tokens":300,"temperature":0.5,"stop":["END"]}`,
		llm.KindAnthropic: `{"model":"model-1","max_tokens":300,"system":"You are terse.","messages":[
			{"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
			{"role":"assistant","content":[{"type":"text","text":"Checking."},
				{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
				{"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},
			{"role":"user","content":[
				{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C, sunny"}]},
				{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"service down"}],"is_error":true},
				{"type":"text","text":"Thanks. And tomorrow?"}]}],
			"tools":[{"name":"get_weather","description":"Weather of a city","input_schema":` + weatherSchema + `}],
			"tool_choice":{"type":"auto"},"temperature":0.5,"stop_sequences":["END"]}`,
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.Enqueue(llmtest.Reply{Text: "Tomorrow: rain in both."})
		resp, err := p.Complete(testCtx(t), toolRoundTrip())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Content != "Tomorrow: rain in both." {
			t.Errorf("answer %q", resp.Content)
		}
		assertJSON(t, srv.Last().Body, want[d.kind])
	})
}

func TestImages(t *testing.T) {
	t.Parallel()
	req := &llm.Request{Model: "vision-1", Messages: []llm.Message{{Role: llm.RoleUser, Content: []llm.Part{
		llm.TextPart("What is in these?"),
		llm.ImagePart("data:image/png;base64,iVBORw0KGgo="),
		llm.ImagePart("https://example.com/cat.jpg"),
	}}}}
	want := map[llm.Kind]string{
		llm.KindOpenAI: `{"model":"vision-1","messages":[{"role":"user","content":[
			{"type":"text","text":"What is in these?"},
			{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
			{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}`,
		llm.KindAnthropic: `{"model":"vision-1","max_tokens":4096,"messages":[{"role":"user","content":[
			{"type":"text","text":"What is in these?"},
			{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
			{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}`,
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		if _, err := p.Complete(testCtx(t), req); err != nil {
			t.Fatal(err)
		}
		assertJSON(t, srv.Last().Body, want[d.kind])
	})
}

// TestToolResultImages: an image in a tool result is a block of the result for Anthropic;
// OpenAI's tool messages carry only text, so it follows them in a user message.
func TestToolResultImages(t *testing.T) {
	t.Parallel()
	req := &llm.Request{Model: "m", Messages: []llm.Message{
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "snapshot"}}},
		{Role: llm.RoleTool, ToolCallID: "call_1", Content: []llm.Part{llm.TextPart("here"), llm.ImagePart("data:image/jpeg;base64,/9j/")}},
	}}
	want := map[llm.Kind]string{
		llm.KindOpenAI: `{"model":"m","messages":[
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"snapshot","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"here"},
			{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]}]}`,
		llm.KindAnthropic: `{"model":"m","max_tokens":4096,"messages":[
			{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"snapshot","input":{}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[
				{"type":"text","text":"here"},
				{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]}]}]}`,
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		if _, err := p.Complete(testCtx(t), req); err != nil {
			t.Fatal(err)
		}
		assertJSON(t, srv.Last().Body, want[d.kind])
	})
}

func TestToolChoice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		choice    *llm.ToolChoice
		parallel  *bool
		openai    string
		anthropic string
	}{
		{&llm.ToolChoice{Mode: llm.ToolChoiceAuto}, nil, `"auto"`, `{"type":"auto"}`},
		{&llm.ToolChoice{Mode: llm.ToolChoiceNone}, nil, `"none"`, `{"type":"none"}`},
		{&llm.ToolChoice{Mode: llm.ToolChoiceRequired}, nil, `"required"`, `{"type":"any"}`},
		{&llm.ToolChoice{Mode: llm.ToolChoiceTool, Name: "get_weather"}, nil,
			`{"type":"function","function":{"name":"get_weather"}}`, `{"type":"tool","name":"get_weather"}`},
		{&llm.ToolChoice{Mode: llm.ToolChoiceRequired}, ptr(false), `"required"`, `{"type":"any","disable_parallel_tool_use":true}`},
		{nil, ptr(false), ``, `{"type":"auto","disable_parallel_tool_use":true}`},
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		for _, c := range cases {
			req := hello()
			req.Tools = []llm.Tool{{Name: "get_weather"}}
			req.ToolChoice, req.ParallelToolCalls = c.choice, c.parallel
			if _, err := p.Complete(testCtx(t), req); err != nil {
				t.Fatal(err)
			}
			var body struct {
				ToolChoice any `json:"tool_choice"`
			}
			if err := srv.Last().Decode(&body); err != nil {
				t.Fatal(err)
			}
			want := c.openai
			if d.kind == llm.KindAnthropic {
				want = c.anthropic
			}
			if want == "" {
				if body.ToolChoice != nil {
					t.Errorf("%+v: tool_choice %v, want none sent", c.choice, body.ToolChoice)
				}
				continue
			}
			assertJSON(t, mustJSON(t, body.ToolChoice), want)
		}
		// A tool without parameters still has a schema for Anthropic, which requires one.
		tools := srv.Last().Map()["tools"].([]any)[0]
		switch d.kind {
		case llm.KindOpenAI:
			assertJSON(t, mustJSON(t, tools), `{"type":"function","function":{"name":"get_weather"}}`)
		case llm.KindAnthropic:
			assertJSON(t, mustJSON(t, tools), `{"name":"get_weather","input_schema":{"type":"object","properties":{}}}`)
		}
	})
}

// TestRequestParameters checks the settings whose names or ranges differ.
func TestRequestParameters(t *testing.T) {
	t.Parallel()
	req := hello()
	req.MaxTokens, req.Temperature, req.TopP, req.User = 64, ptr(1.6), ptr(0.9), "caller-7"
	req.Messages = append([]llm.Message{llm.TextMessage(llm.RoleSystem, "Be brief.")}, req.Messages...)
	req.System = "You answer calls."
	t.Run("openai max_completion_tokens", func(t *testing.T) {
		t.Parallel()
		srv, p := dialects[0].setup(t, func(c *llm.ProviderConfig) { c.MaxTokensParam = "max_completion_tokens" })
		if _, err := p.Complete(testCtx(t), req); err != nil {
			t.Fatal(err)
		}
		assertJSON(t, srv.Last().Body, `{"model":"model-1","messages":[
			{"role":"system","content":"You answer calls."},{"role":"system","content":"Be brief."},
			{"role":"user","content":"Say hello."}],
			"max_completion_tokens":64,"temperature":1.6,"top_p":0.9,"user":"caller-7"}`)
	})
	t.Run("anthropic", func(t *testing.T) {
		t.Parallel()
		srv, p := dialects[1].setup(t, nil)
		if _, err := p.Complete(testCtx(t), req); err != nil {
			t.Fatal(err)
		}
		// System messages join the system prompt; OpenAI's temperature range is wider.
		assertJSON(t, srv.Last().Body, `{"model":"model-1","max_tokens":64,"system":"You answer calls.\n\nBe brief.",
			"messages":[{"role":"user","content":[{"type":"text","text":"Say hello."}]}],
			"temperature":1,"top_p":0.9,"metadata":{"user_id":"caller-7"}}`)
	})
	t.Run("anthropic default max_tokens", func(t *testing.T) {
		t.Parallel()
		srv, p := dialects[1].setup(t, func(c *llm.ProviderConfig) {
			c.DefaultMaxTokens = 1000
			c.AnthropicVersion = "2024-01-01"
			c.Headers = map[string]string{"Anthropic-Beta": "tools-2024"}
		})
		if _, err := p.Complete(testCtx(t), hello()); err != nil {
			t.Fatal(err)
		}
		last := srv.Last()
		if got := last.Map()["max_tokens"]; got != 1000.0 {
			t.Errorf("max_tokens %v", got)
		}
		if last.Header.Get("Anthropic-Version") != "2024-01-01" || last.Header.Get("Anthropic-Beta") != "tools-2024" {
			t.Errorf("headers %v", last.Header)
		}
	})
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	bad := map[string]*llm.Request{
		"unknown role":             {Model: "m", Messages: []llm.Message{{Role: "narrator"}}},
		"tool result without call": {Model: "m", Messages: []llm.Message{{Role: llm.RoleTool, Content: []llm.Part{llm.TextPart("x")}}}},
		"named tool choice without name": {Model: "m", Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "x")},
			ToolChoice: &llm.ToolChoice{Mode: llm.ToolChoiceTool}},
	}
	anthropicOnly := map[string]*llm.Request{
		"arguments not an object": {Model: "m", Messages: []llm.Message{{Role: llm.RoleAssistant,
			ToolCalls: []llm.ToolCall{{ID: "c", Name: "f", Arguments: "[1]"}}}}},
		"inline image without type": {Model: "m", Messages: []llm.Message{{Role: llm.RoleUser,
			Content: []llm.Part{{Type: llm.PartImage, Data: "AAAA"}}}}},
	}
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		cases := bad
		if d.kind == llm.KindAnthropic {
			cases = map[string]*llm.Request{}
			for k, v := range bad {
				cases[k] = v
			}
			for k, v := range anthropicOnly {
				cases[k] = v
			}
		}
		for name, req := range cases {
			if _, err := p.Complete(testCtx(t), req); !errors.Is(err, llm.ErrInvalidRequest) {
				t.Errorf("%s: Complete: %v, want ErrInvalidRequest", name, err)
			}
			if _, err := p.Stream(testCtx(t), req); !errors.Is(err, llm.ErrInvalidRequest) {
				t.Errorf("%s: Stream: %v, want ErrInvalidRequest", name, err)
			}
		}
		if n := len(srv.Requests()); n != 0 {
			t.Errorf("%d invalid requests reached the upstream", n)
		}
	})
}
