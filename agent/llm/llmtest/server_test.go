package llmtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// post sends a raw request, as a client of the real API would, and returns the status and
// body.
func post(t *testing.T, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// frames splits an event stream into its events.
func frames(body string) []string {
	return slices.DeleteFunc(strings.Split(body, "\n\n"), func(s string) bool { return s == "" })
}

func TestOpenAIStreamWire(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewOpenAI(t)
	srv.Enqueue(llmtest.Reply{Text: "Hi there", ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "f", Arguments: `{"a":1}`, Chunks: []string{`{"a"`, `:1}`}}}})
	status, body := post(t, srv.URL+"/chat/completions", nil,
		`{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	fs := frames(body)
	if fs[len(fs)-1] != "data: [DONE]" {
		t.Errorf("last frame %q", fs[len(fs)-1])
	}
	var chunks []map[string]any
	for _, f := range fs[:len(fs)-1] {
		data, ok := strings.CutPrefix(f, "data: ")
		if !ok {
			t.Fatalf("frame %q", f)
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("frame %q: %v", f, err)
		}
		if c["object"] != "chat.completion.chunk" || c["model"] != "gpt-x" {
			t.Errorf("chunk %v", c)
		}
		chunks = append(chunks, c)
	}
	delta := func(i int) map[string]any {
		return chunks[i]["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)
	}
	if delta(0)["role"] != "assistant" {
		t.Errorf("first delta %v", delta(0))
	}
	want := []string{
		`{"role":"assistant","content":"","refusal":null}`,
		`{"content":"Hi "}`,
		`{"content":"there"}`,
		`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}`,
		`{}`,
	}
	for i, w := range want {
		got, _ := json.Marshal(delta(i))
		if !jsonEqual(t, got, w) {
			t.Errorf("delta %d: %s, want %s", i, got, w)
		}
		if chunks[i]["usage"] != nil {
			t.Errorf("chunk %d has usage %v", i, chunks[i]["usage"])
		}
		if _, ok := chunks[i]["usage"]; !ok {
			t.Errorf("chunk %d lacks usage: null", i)
		}
	}
	if fr := chunks[6]["choices"].([]any)[0].(map[string]any)["finish_reason"]; fr != "tool_calls" {
		t.Errorf("finish_reason %v", fr)
	}
	last := chunks[len(chunks)-1]
	if len(last["choices"].([]any)) != 0 || last["usage"].(map[string]any)["total_tokens"] != 30.0 {
		t.Errorf("usage chunk %v", last)
	}

	// Without include_usage there is no usage at all.
	_, body = post(t, srv.URL+"/chat/completions", nil, `{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if strings.Contains(body, `"usage"`) {
		t.Errorf("usage without include_usage: %s", body)
	}
}

func jsonEqual(t *testing.T, a []byte, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return bytes.Equal(ax, by)
}

func TestAnthropicStreamWire(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewAnthropic(t)
	srv.RequireKey("k")
	srv.Enqueue(llmtest.Reply{Text: "Hi", ToolCalls: []llmtest.ToolCall{{ID: "toolu_1", Name: "f", Arguments: `{"a":1}`}}})
	status, body := post(t, srv.URL+"/v1/messages", map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"},
		`{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var types []string
	for _, f := range frames(body) {
		lines := strings.Split(f, "\n")
		name, ok1 := strings.CutPrefix(lines[0], "event: ")
		data, ok2 := strings.CutPrefix(lines[1], "data: ")
		var ev struct {
			Type string `json:"type"`
		}
		if len(lines) != 2 || !ok1 || !ok2 || json.Unmarshal([]byte(data), &ev) != nil || ev.Type != name {
			t.Fatalf("frame %q", f)
		}
		types = append(types, name)
	}
	want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if !slices.Equal(types, want) {
		t.Errorf("events\n got %q\nwant %q", types, want)
	}
	if !strings.Contains(body, `"stop_reason":"tool_use"`) || !strings.Contains(body, `"partial_json":"{\"a\":1}"`) {
		t.Errorf("body %s", body)
	}
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	oa, an := llmtest.NewOpenAI(t), llmtest.NewAnthropic(t)
	oa.RequireKey("k")
	cases := []struct {
		name   string
		url    string
		header map[string]string
		body   string
		status int
		want   string
	}{
		{"openai key", oa.URL + "/chat/completions", map[string]string{"Authorization": "Bearer nope"}, `{}`, 401, `"code":null`},
		{"openai messages", oa.URL + "/chat/completions", map[string]string{"Authorization": "Bearer k"}, `{"model":"m"}`, 400, `Missing required parameter: 'messages'.`},
		{"anthropic version", an.URL + "/v1/messages", nil, `{}`, 400, `{"error":{"message":"anthropic-version: header is required","type":"invalid_request_error"},"type":"error"}`},
		{"anthropic max_tokens", an.URL + "/v1/messages", map[string]string{"anthropic-version": "2023-06-01"},
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 400, `max_tokens: Field required`},
		{"anthropic path", an.URL + "/v1/complete", map[string]string{"anthropic-version": "2023-06-01"}, `{}`, 404, `not_found_error`},
	}
	for _, c := range cases {
		status, body := post(t, c.url, c.header, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %s", c.name, status, body, c.status, c.want)
		}
	}
	if n := len(oa.Requests()); n != 2 || oa.Requests()[1].Seq != 2 {
		t.Errorf("recorded %d requests", n)
	}
}

func TestRespondAndRecord(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewOpenAI(t)
	srv.Enqueue(llmtest.Reply{Text: "scripted"})
	srv.Respond(func(r llmtest.Request) llmtest.Reply {
		// A script may look at what came before.
		return llmtest.Reply{Text: "answer " + strconv.Itoa(r.Seq) + " after " + strconv.Itoa(len(srv.Requests()))}
	})
	var texts []string
	for range 2 {
		_, body := post(t, srv.URL+"/chat/completions", nil, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		var resp struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Choices) != 1 {
			t.Fatalf("%s: %v", body, err)
		}
		texts = append(texts, resp.Choices[0].Message.Content)
	}
	if !slices.Equal(texts, []string{"scripted", "answer 2 after 2"}) {
		t.Errorf("answers %q", texts)
	}
	if m := srv.Last().Map(); m["model"] != "m" {
		t.Errorf("last request %v", m)
	}
}
