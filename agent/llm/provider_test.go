package llm_test

import (
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

func hello() *llm.Request {
	return &llm.Request{Model: "model-1", Messages: []llm.Message{llm.TextMessage(llm.RoleUser, "Say hello.")}}
}

func TestCompletePlain(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.Enqueue(llmtest.Reply{Text: "Hello, caller.", Usage: llm.Usage{InputTokens: 7, OutputTokens: 3}})
		resp, err := p.Complete(testCtx(t), hello())
		if err != nil {
			t.Fatal(err)
		}
		want := &llm.Response{ID: resp.ID, Model: "model-1", Content: "Hello, caller.", StopReason: llm.StopEnd,
			Usage: llm.Usage{InputTokens: 7, OutputTokens: 3}}
		if !reflect.DeepEqual(resp, want) || resp.ID == "" {
			t.Errorf("response\n got %+v\nwant %+v", resp, want)
		}
		req := srv.Last()
		switch d.kind {
		case llm.KindOpenAI:
			if req.Path != "/v1/chat/completions" || req.Header.Get("Authorization") != "Bearer key-openai" {
				t.Errorf("request %s with Authorization %q", req.Path, req.Header.Get("Authorization"))
			}
			assertJSON(t, req.Body, `{"model":"model-1","messages":[{"role":"user","content":"Say hello."}]}`)
		case llm.KindAnthropic:
			if req.Path != "/v1/messages" || req.Header.Get("X-Api-Key") != "key-anthropic" || req.Header.Get("Anthropic-Version") != "2023-06-01" {
				t.Errorf("request %s with headers %v", req.Path, req.Header)
			}
			// max_tokens is required by Anthropic: the provider's default fills it.
			assertJSON(t, req.Body, `{"model":"model-1","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Say hello."}]}]}`)
		}
	})
}

func TestStreamPlain(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.Enqueue(llmtest.Reply{Chunks: []string{"Hel", "lo, ", "caller."}, Usage: llm.Usage{InputTokens: 9, OutputTokens: 4}})
		s, err := p.Stream(testCtx(t), hello())
		if err != nil {
			t.Fatal(err)
		}
		ds, err := drain(t, s)
		if err != nil {
			t.Fatal(err)
		}
		start := ds[0]
		if start.Kind != llm.DeltaStart || start.ID == "" || start.Model != "model-1" {
			t.Errorf("first delta %+v", start)
		}
		if d.kind == llm.KindAnthropic && start.Usage.InputTokens != 9 {
			t.Errorf("anthropic says input tokens up front: %+v", start)
		}
		var texts []string
		for _, d := range ds[1 : len(ds)-1] {
			if d.Kind != llm.DeltaText {
				t.Fatalf("unexpected %v delta %+v", d.Kind, d)
			}
			texts = append(texts, d.Text)
		}
		if !slices.Equal(texts, []string{"Hel", "lo, ", "caller."}) {
			t.Errorf("texts %q", texts)
		}
		want := llm.Delta{Kind: llm.DeltaDone, StopReason: llm.StopEnd, Usage: llm.Usage{InputTokens: 9, OutputTokens: 4}}
		if got := ds[len(ds)-1]; got != want {
			t.Errorf("last delta\n got %+v\nwant %+v", got, want)
		}
		switch d.kind {
		case llm.KindOpenAI:
			assertJSON(t, srv.Last().Body, `{"model":"model-1","messages":[{"role":"user","content":"Say hello."}],
				"stream":true,"stream_options":{"include_usage":true}}`)
		case llm.KindAnthropic:
			assertJSON(t, srv.Last().Body, `{"model":"model-1","max_tokens":4096,"stream":true,
				"messages":[{"role":"user","content":[{"type":"text","text":"Say hello."}]}]}`)
		}
	})
}

var weatherTool = llm.Tool{Name: "get_weather", Description: "Weather of a city",
	Parameters: []byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)}

func toolReply() llmtest.Reply {
	return llmtest.Reply{
		Text: "Let me look. ",
		ToolCalls: []llmtest.ToolCall{
			{ID: "call_paris", Name: "get_weather", Arguments: `{"city":"Paris"}`},
			{ID: "call_rome", Name: "get_weather", Arguments: `{"city":"Rome"}`, Chunks: []string{`{"ci`, `ty":`, `"Rome"}`}},
		},
		Usage: llm.Usage{InputTokens: 50, OutputTokens: 30},
	}
}

func TestStreamToolCalls(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.Enqueue(toolReply())
		req := hello()
		req.Tools = []llm.Tool{weatherTool}
		s, err := p.Stream(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := drain(t, s)
		if err != nil {
			t.Fatal(err)
		}
		// Every tool call opens with its ID and name before its arguments, numbered from 0.
		var rome []string
		opened := map[int]llm.ToolCall{}
		for _, d := range ds {
			switch d.Kind {
			case llm.DeltaToolCall:
				opened[d.Index] = d.ToolCall
			case llm.DeltaToolArgs:
				if _, ok := opened[d.Index]; !ok {
					t.Fatalf("arguments of call %d before it opened", d.Index)
				}
				if d.Index == 1 {
					rome = append(rome, d.Text)
				}
			}
		}
		want := map[int]llm.ToolCall{0: {ID: "call_paris", Name: "get_weather"}, 1: {ID: "call_rome", Name: "get_weather"}}
		if !reflect.DeepEqual(opened, want) {
			t.Errorf("calls opened %+v", opened)
		}
		if !slices.Equal(rome, []string{`{"ci`, `ty":`, `"Rome"}`}) {
			t.Errorf("argument fragments of call 1: %q", rome)
		}
		resp := mustCollect(t, ds)
		wantResp := &llm.Response{ID: resp.ID, Model: "model-1", Content: "Let me look. ",
			ToolCalls: []llm.ToolCall{
				{ID: "call_paris", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{ID: "call_rome", Name: "get_weather", Arguments: `{"city":"Rome"}`},
			},
			StopReason: llm.StopToolCalls, Usage: llm.Usage{InputTokens: 50, OutputTokens: 30}}
		if !reflect.DeepEqual(resp, wantResp) {
			t.Errorf("collected\n got %+v\nwant %+v", resp, wantResp)
		}
		// A whole answer played as a stream collects back to itself.
		replayed, err := llm.Collect(llm.StreamResponse(resp))
		if err != nil || !reflect.DeepEqual(replayed, resp) {
			t.Errorf("replayed %+v, %v", replayed, err)
		}
	})
}

// mustCollect folds deltas already read into a response.
func mustCollect(t *testing.T, ds []llm.Delta) *llm.Response {
	t.Helper()
	resp, err := llm.Collect(&sliceStream{ds: ds})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type sliceStream struct{ ds []llm.Delta }

func (s *sliceStream) Next() (llm.Delta, error) {
	if len(s.ds) == 0 {
		return llm.Delta{}, io.EOF
	}
	d := s.ds[0]
	s.ds = s.ds[1:]
	return d, nil
}

func (s *sliceStream) Close() error { return nil }

func TestCompleteToolCalls(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.Enqueue(toolReply())
		req := hello()
		req.Tools = []llm.Tool{weatherTool}
		resp, err := p.Complete(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		want := []llm.ToolCall{
			{ID: "call_paris", Name: "get_weather", Arguments: `{"city":"Paris"}`},
			{ID: "call_rome", Name: "get_weather", Arguments: `{"city":"Rome"}`},
		}
		if !reflect.DeepEqual(resp.ToolCalls, want) || resp.StopReason != llm.StopToolCalls || resp.Content != "Let me look. " {
			t.Errorf("response %+v", resp)
		}
	})
}

// TestStreamMatchesComplete checks that both ways of asking give the same answer.
func TestStreamMatchesComplete(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		replies := []llmtest.Reply{
			{Text: "Plain."},
			toolReply(),
			{Text: "Cut short", StopReason: llm.StopLength},
			{Text: "Until END", StopSequence: "END"},
			{Text: "No.", StopReason: llm.StopContentFilter},
		}
		for _, rep := range replies {
			srv.Enqueue(rep, rep)
			whole, err := p.Complete(testCtx(t), hello())
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Stream(testCtx(t), hello())
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := llm.Collect(s)
			if err != nil {
				t.Fatal(err)
			}
			whole.ID, streamed.ID = "", ""
			if d.kind == llm.KindOpenAI {
				// OpenAI does not say which stop sequence ended an answer.
				whole.StopSequence = ""
			}
			if !reflect.DeepEqual(whole, streamed) {
				t.Errorf("complete and stream differ\ncomplete %+v\n  stream %+v", whole, streamed)
			}
		}
	})
}

func TestStopReasons(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		cases := []struct {
			reply    llmtest.Reply
			want     llm.StopReason
			sequence string
		}{
			{llmtest.Reply{Text: "a"}, llm.StopEnd, ""},
			{llmtest.Reply{Text: "a", StopReason: llm.StopLength}, llm.StopLength, ""},
			{llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "f", Arguments: "{}"}}}, llm.StopToolCalls, ""},
			{llmtest.Reply{Text: "a", StopReason: llm.StopContentFilter}, llm.StopContentFilter, ""},
		}
		if d.kind == llm.KindAnthropic {
			cases = append(cases, struct {
				reply    llmtest.Reply
				want     llm.StopReason
				sequence string
			}{llmtest.Reply{Text: "a", StopSequence: "END"}, llm.StopEnd, "END"})
		}
		for _, c := range cases {
			srv.Enqueue(c.reply)
			s, err := p.Stream(testCtx(t), hello())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := llm.Collect(s)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StopReason != c.want || resp.StopSequence != c.sequence {
				t.Errorf("reply %+v: stop %q %q, want %q %q", c.reply, resp.StopReason, resp.StopSequence, c.want, c.sequence)
			}
		}
	})
}

// TestStreamOfJSON: a server that ignores "stream" and answers with JSON still streams.
func TestStreamOfJSON(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		rep := toolReply()
		rep.JSON = true
		srv.Enqueue(rep)
		s, err := p.Stream(testCtx(t), hello())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := llm.Collect(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ToolCalls) != 2 || resp.Content != "Let me look. " || resp.StopReason != llm.StopToolCalls {
			t.Errorf("response %+v", resp)
		}
	})
}

func TestModels(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider) {
		srv.SetModels("alpha", "beta")
		got, err := p.Models(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"alpha", "beta"}) {
			t.Errorf("models %q", got)
		}
	})
}
