package llm_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// rawUpstream serves a fixed body, for the habits of compatible servers that the stand-ins
// do not have.
func rawUpstream(t *testing.T, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestOpenAICompatibleQuirks: tool calls without an index or an ID, an index reused for a
// new call, "stop" after tool calls, Groq's usage, "data:" without a space, keep-alive
// comments, and no [DONE].
func TestOpenAICompatibleQuirks(t *testing.T) {
	t.Parallel()
	body := strings.Join([]string{
		`: keep-alive`,
		``,
		`data:{"id":"q1","model":"local","choices":[{"index":0,"delta":{"role":"assistant"}}]}`,
		``,
		`data: {"id":"q1","model":"local","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"lookup","arguments":"{\"q\":"}}]}}]}`,
		``,
		`data: {"id":"q1","model":"local","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}`,
		``,
		`data: {"id":"q1","model":"local","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_b","function":{"name":"hang_up","arguments":"{}"}}]}}]}`,
		``,
		`data: {"id":"q1","model":"local","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":5,"completion_tokens":6}}}`,
		``,
	}, "\n")
	p, err := llm.New(llm.ProviderConfig{Name: "local", Kind: llm.KindOpenAI, BaseURL: rawUpstream(t, "text/event-stream", body)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Stream(testCtx(t), hello())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := llm.Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 2 || !strings.HasPrefix(resp.ToolCalls[0].ID, "call_") {
		t.Fatalf("tool calls %+v", resp.ToolCalls)
	}
	resp.ToolCalls[0].ID = "made-up"
	want := &llm.Response{ID: "q1", Model: "local", StopReason: llm.StopToolCalls, Usage: llm.Usage{InputTokens: 5, OutputTokens: 6},
		ToolCalls: []llm.ToolCall{{ID: "made-up", Name: "lookup", Arguments: `{"q":1}`}, {ID: "call_b", Name: "hang_up", Arguments: "{}"}}}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("response\n got %+v\nwant %+v", resp, want)
	}
}

// TestAnthropicSkipsUnknownBlocks: thinking blocks and unknown events are passed over.
func TestAnthropicSkipsUnknownBlocks(t *testing.T) {
	t.Parallel()
	body := strings.Join([]string{
		`event: message_start`,
		`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":3,"cache_read_input_tokens":100,"output_tokens":1}}}`,
		``,
		`event: content_block_start`,
		`data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		``,
		`event: content_block_delta`,
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`,
		``,
		`event: content_block_stop`,
		`data: {"type":"content_block_stop","index":0}`,
		``,
		`event: something_new`,
		`data: {"type":"something_new"}`,
		``,
		`event: content_block_start`,
		`data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hi"}}`,
		``,
		`event: content_block_delta`,
		`data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" there"}}`,
		``,
		`event: content_block_stop`,
		`data: {"type":"content_block_stop","index":1}`,
		``,
		`event: message_delta`,
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}`,
		``,
		`event: message_stop`,
		`data: {"type":"message_stop"}`,
		``,
	}, "\n")
	p, err := llm.New(llm.ProviderConfig{Name: "claude", Kind: llm.KindAnthropic, BaseURL: rawUpstream(t, "text/event-stream; charset=utf-8", body)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Stream(testCtx(t), hello())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := llm.Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	// Cached prompt tokens count as input.
	want := &llm.Response{ID: "msg_1", Model: "claude", Content: "Hi there", StopReason: llm.StopEnd, Usage: llm.Usage{InputTokens: 103, OutputTokens: 9}}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("response\n got %+v\nwant %+v", resp, want)
	}
}

func TestStopReasonMapping(t *testing.T) {
	t.Parallel()
	fromOpenAI := map[string]llm.StopReason{"stop": llm.StopEnd, "length": llm.StopLength, "tool_calls": llm.StopToolCalls,
		"function_call": llm.StopToolCalls, "content_filter": llm.StopContentFilter, "": llm.StopEnd}
	for in, want := range fromOpenAI {
		if got := llm.StopReasonFromOpenAI(in); got != want {
			t.Errorf("openai %q: %q, want %q", in, got, want)
		}
	}
	fromAnthropic := map[string]llm.StopReason{"end_turn": llm.StopEnd, "stop_sequence": llm.StopEnd, "max_tokens": llm.StopLength,
		"tool_use": llm.StopToolCalls, "refusal": llm.StopContentFilter, "pause_turn": llm.StopEnd,
		"model_context_window_exceeded": llm.StopLength}
	for in, want := range fromAnthropic {
		if got := llm.StopReasonFromAnthropic(in); got != want {
			t.Errorf("anthropic %q: %q, want %q", in, got, want)
		}
	}
	cases := []struct {
		r         llm.StopReason
		seq       string
		openai    string
		anthropic string
	}{
		{llm.StopEnd, "", "stop", "end_turn"},
		{llm.StopEnd, "END", "stop", "stop_sequence"},
		{llm.StopLength, "", "length", "max_tokens"},
		{llm.StopToolCalls, "", "tool_calls", "tool_use"},
		{llm.StopContentFilter, "", "content_filter", "refusal"},
		{"", "", "stop", "end_turn"},
	}
	for _, c := range cases {
		if got := c.r.OpenAI(); got != c.openai {
			t.Errorf("%q to openai: %q, want %q", c.r, got, c.openai)
		}
		if got := c.r.Anthropic(c.seq); got != c.anthropic {
			t.Errorf("%q %q to anthropic: %q, want %q", c.r, c.seq, got, c.anthropic)
		}
	}
}

// TestConnectionReuse: a stream read to its end gives its connection back to the pool, so
// that a busy gateway does not dial its upstream for every answer.
func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p, err := llm.New(llm.ProviderConfig{Name: "reuse", Kind: llm.KindOpenAI, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s, err := p.Stream(testCtx(t), hello())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := llm.Collect(s); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("%d connections for 10 sequential streams", conns)
	}
}
