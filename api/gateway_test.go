package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// The model gateway end to end: clients of either dialect, through a real Switchboard, to
// stand-in upstreams of either kind, checking the answer the client gets and the exact JSON
// the upstream got.

// gwTurn is one turn of a conversation, as each kind of client asks it, as each kind of
// upstream must receive it, and what the upstream answers.
type gwTurn struct {
	name string
	// openai and anthropic are the client's request (model and stream are added).
	openai, anthropic map[string]any
	// upOpenAI and upAnthropic are the exact body the upstream must receive, with %[1]s for
	// the upstream model and %[2]s for the stream fields.
	upOpenAI, upAnthropic string
	// reply is the upstream's answer; idPrefix names its tool calls as that upstream does.
	reply func(idPrefix string) llmtest.Reply
	want  func(idPrefix string) gwOutcome
}

const gwSchema = `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`

func gwRaw(s string) json.RawMessage { return json.RawMessage(s) }

var (
	gwOAITools = []any{map[string]any{"type": "function", "function": map[string]any{
		"name": "get_weather", "description": "The weather in a city", "parameters": gwRaw(gwSchema)}}}
	gwAntTools = []any{map[string]any{"name": "get_weather", "description": "The weather in a city", "input_schema": gwRaw(gwSchema)}}

	upOAITools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"The weather in a city","parameters":` + gwSchema + `}}]`
	upAntTools = `"tools":[{"name":"get_weather","description":"The weather in a city","input_schema":` + gwSchema + `}]`
)

const gwQuestion = "What is the weather in Paris and Lyon?"

var gwTurns = []gwTurn{
	{
		name: "text",
		openai: map[string]any{"max_tokens": 256, "temperature": 0.5, "messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": "Hello?"},
		}},
		anthropic: map[string]any{"max_tokens": 256, "temperature": 0.5, "system": "Be brief.", "messages": []any{
			map[string]any{"role": "user", "content": "Hello?"},
		}},
		upOpenAI:    `{"model":"%[1]s","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"max_tokens":256,"temperature":0.5%[2]s}`,
		upAnthropic: `{"model":"%[1]s","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello?"}]}],"temperature":0.5%[2]s}`,
		reply: func(string) llmtest.Reply {
			return llmtest.Reply{Text: "Hello there, friend.", Usage: llm.Usage{InputTokens: 12, OutputTokens: 5}}
		},
		want: func(string) gwOutcome {
			return gwOutcome{Text: "Hello there, friend.", Stop: llm.StopEnd, In: 12, Out: 5}
		},
	},
	{
		name: "tool_call",
		openai: map[string]any{"max_tokens": 256, "temperature": 0.5, "tools": gwOAITools, "tool_choice": "auto", "messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": gwQuestion},
		}},
		anthropic: map[string]any{"max_tokens": 256, "temperature": 0.5, "system": "Be brief.", "tools": gwAntTools,
			"tool_choice": map[string]any{"type": "auto"}, "messages": []any{
				map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": gwQuestion}}},
			}},
		upOpenAI: `{"model":"%[1]s","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"` + gwQuestion + `"}],` +
			upOAITools + `,"tool_choice":"auto","max_tokens":256,"temperature":0.5%[2]s}`,
		upAnthropic: `{"model":"%[1]s","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"` + gwQuestion + `"}]}],` +
			upAntTools + `,"tool_choice":{"type":"auto"},"temperature":0.5%[2]s}`,
		reply: func(p string) llmtest.Reply {
			return llmtest.Reply{Text: "Let me check.", ToolCalls: []llmtest.ToolCall{
				{ID: p + "1", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{ID: p + "2", Name: "get_weather", Arguments: `{"city":"Lyon"}`},
			}, Usage: llm.Usage{InputTokens: 30, OutputTokens: 9}}
		},
		want: func(p string) gwOutcome {
			return gwOutcome{Text: "Let me check.", Calls: []gwCall{
				{ID: p + "1", Name: "get_weather", Args: `{"city":"Paris"}`},
				{ID: p + "2", Name: "get_weather", Args: `{"city":"Lyon"}`},
			}, Stop: llm.StopToolCalls, In: 30, Out: 9}
		},
	},
	{
		name: "tool_result",
		openai: map[string]any{"max_tokens": 256, "temperature": 0.5, "tools": gwOAITools, "messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": gwQuestion},
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{
				map[string]any{"id": "call_w1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris"}`}},
				map[string]any{"id": "call_w2", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Lyon"}`}},
			}},
			map[string]any{"role": "tool", "tool_call_id": "call_w1", "content": "18C and sunny"},
			map[string]any{"role": "tool", "tool_call_id": "call_w2", "content": []any{map[string]any{"type": "text", "text": "12C and rain"}}},
		}},
		anthropic: map[string]any{"max_tokens": 256, "temperature": 0.5, "system": "Be brief.", "tools": gwAntTools, "messages": []any{
			map[string]any{"role": "user", "content": gwQuestion},
			map[string]any{"role": "assistant", "content": []any{
				map[string]any{"type": "tool_use", "id": "call_w1", "name": "get_weather", "input": map[string]any{"city": "Paris"}},
				map[string]any{"type": "tool_use", "id": "call_w2", "name": "get_weather", "input": map[string]any{"city": "Lyon"}},
			}},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "tool_result", "tool_use_id": "call_w1", "content": "18C and sunny"},
				map[string]any{"type": "tool_result", "tool_use_id": "call_w2", "content": []any{map[string]any{"type": "text", "text": "12C and rain"}}},
			}},
		}},
		upOpenAI: `{"model":"%[1]s","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"` + gwQuestion + `"},` +
			`{"role":"assistant","content":null,"tool_calls":[` +
			`{"id":"call_w1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},` +
			`{"id":"call_w2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Lyon\"}"}}]},` +
			`{"role":"tool","content":"18C and sunny","tool_call_id":"call_w1"},{"role":"tool","content":"12C and rain","tool_call_id":"call_w2"}],` +
			upOAITools + `,"max_tokens":256,"temperature":0.5%[2]s}`,
		upAnthropic: `{"model":"%[1]s","max_tokens":256,"system":"Be brief.","messages":[` +
			`{"role":"user","content":[{"type":"text","text":"` + gwQuestion + `"}]},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"call_w1","name":"get_weather","input":{"city":"Paris"}},` +
			`{"type":"tool_use","id":"call_w2","name":"get_weather","input":{"city":"Lyon"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_w1","content":[{"type":"text","text":"18C and sunny"}]},` +
			`{"type":"tool_result","tool_use_id":"call_w2","content":[{"type":"text","text":"12C and rain"}]}]}],` +
			upAntTools + `,"temperature":0.5%[2]s}`,
		reply: func(string) llmtest.Reply {
			return llmtest.Reply{Text: "Paris: 18C and sunny. Lyon: 12C and rain.", Usage: llm.Usage{InputTokens: 40, OutputTokens: 11}}
		},
		want: func(string) gwOutcome {
			return gwOutcome{Text: "Paris: 18C and sunny. Lyon: 12C and rain.", Stop: llm.StopEnd, In: 40, Out: 11}
		},
	},
	{
		// Images inline and by URL; no system prompt.
		name: "image",
		openai: map[string]any{"max_tokens": 256, "temperature": 0.5, "messages": []any{
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "What are these?"},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,iVBORw0KGgo="}},
				map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://example.com/cat.jpg"}},
			}},
		}},
		anthropic: map[string]any{"max_tokens": 256, "temperature": 0.5, "messages": []any{
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "What are these?"},
				map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
				map[string]any{"type": "image", "source": map[string]any{"type": "url", "url": "https://example.com/cat.jpg"}},
			}},
		}},
		upOpenAI: `{"model":"%[1]s","messages":[{"role":"user","content":[{"type":"text","text":"What are these?"},` +
			`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}],` +
			`"max_tokens":256,"temperature":0.5%[2]s}`,
		upAnthropic: `{"model":"%[1]s","max_tokens":256,"messages":[{"role":"user","content":[{"type":"text","text":"What are these?"},` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}],` +
			`"temperature":0.5%[2]s}`,
		reply: func(string) llmtest.Reply {
			return llmtest.Reply{Text: "A pixel and a cat <3 été 🐈", Usage: llm.Usage{InputTokens: 800, OutputTokens: 6}}
		},
		want: func(string) gwOutcome {
			return gwOutcome{Text: "A pixel and a cat <3 été 🐈", Stop: llm.StopEnd, In: 800, Out: 6}
		},
	},
}

// body is the client's request of a turn.
func (tr gwTurn) body(surface, model string, stream bool) map[string]any {
	src := tr.openai
	if surface == gwAnthropic {
		src = tr.anthropic
	}
	b := map[string]any{"model": model}
	for k, v := range src {
		b[k] = v
	}
	if stream {
		b["stream"] = true
		if surface == gwOpenAI {
			b["stream_options"] = map[string]any{"include_usage": true}
		}
	}
	return b
}

// TestGatewayTurns: every turn (text, tool call, tool result), non-streaming and streaming,
// from each kind of client to each kind of upstream: the client gets the upstream's answer
// in its own dialect, exactly formed, and the upstream gets exactly its dialect's request.
func TestGatewayTurns(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			for _, up := range []string{"oai", "ant"} {
				for _, tr := range gwTurns {
					for _, stream := range []bool{false, true} {
						mode := "create"
						if stream {
							mode = "stream"
						}
						t.Run(fmt.Sprintf("%s-to-%s/%s/%s", surface, up, tr.name, mode), func(t *testing.T) {
							g.runTurn(t, surface, up, tr, stream)
						})
					}
				}
			}
		}
	})
}

func (g *gwServer) runTurn(t *testing.T, surface, up string, tr gwTurn, stream bool) {
	model, upModel, idPrefix := "oai/gpt-test", "gpt-test", "call_up"
	if up == "ant" {
		model, upModel, idPrefix = "ant/claude-test", "claude-test", "toolu_up"
	}
	st := g.upstream(up)
	before := len(st.Requests())
	st.Enqueue(tr.reply(idPrefix))
	r := g.post(t, gwPath(surface), g.ts.Key, tr.body(surface, model, stream))

	var got gwOutcome
	switch {
	case surface == gwOpenAI && !stream:
		got = gwOpenAIAnswer(t, r, model)
	case surface == gwOpenAI:
		got = gwOpenAIStream(t, r, model, true)
	case !stream:
		got = gwAnthropicAnswer(t, r, model)
	default:
		// An Anthropic upstream says the input tokens up front; an OpenAI one only at the end.
		startIn := 0
		if up == "ant" {
			startIn = tr.want(idPrefix).In
		}
		got = gwAnthropicStream(t, r, model, startIn)
	}
	if want := tr.want(idPrefix); !gwSameOutcome(got, want) {
		t.Errorf("answer\n got %+v\nwant %+v", got, want)
	}

	reqs := st.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("the upstream got %d requests, want 1", len(reqs)-before)
	}
	last := reqs[len(reqs)-1]
	if up == "oai" {
		if last.Path != "/v1/chat/completions" || last.Header.Get("Authorization") != "Bearer "+gwOAIKey {
			t.Errorf("upstream path %s, authorization %q", last.Path, last.Header.Get("Authorization"))
		}
		streamFields := ""
		if stream {
			streamFields = `,"stream":true,"stream_options":{"include_usage":true}`
		}
		gwSameJSON(t, "OpenAI upstream request", last.Body, fmt.Sprintf(tr.upOpenAI, upModel, streamFields))
	} else {
		if last.Path != "/v1/messages" || last.Header.Get("X-Api-Key") != gwAntKey || last.Header.Get("Anthropic-Version") == "" {
			t.Errorf("upstream path %s, headers %v", last.Path, last.Header)
		}
		streamFields := ""
		if stream {
			streamFields = `,"stream":true`
		}
		gwSameJSON(t, "Anthropic upstream request", last.Body, fmt.Sprintf(tr.upAnthropic, upModel, streamFields))
	}
}

func gwSameOutcome(a, b gwOutcome) bool {
	return a.Text == b.Text && a.Stop == b.Stop && a.In == b.In && a.Out == b.Out && slices.Equal(a.Calls, b.Calls)
}

// TestGatewayToolChoice: tool_choice and parallel tool use translate both ways.
func TestGatewayToolChoice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		surface string
		// fields are added to the client's tool_call request.
		fields map[string]any
		up     string
		// want is the upstream's tool_choice and parallel tool fields, as JSON.
		want string
	}{
		{gwOpenAI, map[string]any{"tool_choice": "required"}, "ant", `{"tool_choice":{"type":"any"}}`},
		{gwOpenAI, map[string]any{"tool_choice": "none"}, "ant", `{"tool_choice":{"type":"none"}}`},
		{gwOpenAI, map[string]any{"tool_choice": map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}}, "ant",
			`{"tool_choice":{"type":"tool","name":"get_weather"}}`},
		{gwOpenAI, map[string]any{"tool_choice": "auto", "parallel_tool_calls": false}, "ant", `{"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`},
		{gwOpenAI, map[string]any{"tool_choice": "required", "parallel_tool_calls": false}, "oai", `{"tool_choice":"required","parallel_tool_calls":false}`},
		{gwAnthropic, map[string]any{"tool_choice": map[string]any{"type": "any"}}, "oai", `{"tool_choice":"required"}`},
		{gwAnthropic, map[string]any{"tool_choice": map[string]any{"type": "none"}}, "oai", `{"tool_choice":"none"}`},
		{gwAnthropic, map[string]any{"tool_choice": map[string]any{"type": "tool", "name": "get_weather"}}, "oai",
			`{"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`},
		{gwAnthropic, map[string]any{"tool_choice": map[string]any{"type": "auto", "disable_parallel_tool_use": true}}, "oai",
			`{"tool_choice":"auto","parallel_tool_calls":false}`},
		{gwAnthropic, map[string]any{"tool_choice": map[string]any{"type": "any", "disable_parallel_tool_use": true}}, "ant",
			`{"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`},
	}
	eachGW(t, func(t *testing.T, g *gwServer) {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%d-%s-to-%s", i, c.surface, c.up), func(t *testing.T) {
				model := map[string]string{"oai": "oai/gpt-test", "ant": "ant/claude-test"}[c.up]
				body := gwTurns[1].body(c.surface, model, false)
				for k, v := range c.fields {
					body[k] = v
				}
				g.upstream(c.up).Enqueue(llmtest.Reply{Text: "ok"})
				wantStatus(t, g.post(t, gwPath(c.surface), g.ts.Key, body), http.StatusOK, "tool choice")
				up := g.upstream(c.up).Last().Map()
				got := map[string]any{"tool_choice": up["tool_choice"]}
				if v, ok := up["parallel_tool_calls"]; ok {
					got["parallel_tool_calls"] = v
				}
				raw, _ := json.Marshal(got)
				gwSameJSON(t, "upstream tool choice", raw, c.want)
			})
		}
		t.Run("bad tool_choice", func(t *testing.T) {
			for _, c := range []struct {
				surface string
				choice  any
			}{
				{gwOpenAI, "sometimes"},
				{gwOpenAI, map[string]any{"type": "function"}},
				{gwAnthropic, map[string]any{"type": "sometimes"}},
				{gwAnthropic, map[string]any{"type": "tool"}},
			} {
				body := gwTurns[1].body(c.surface, "oai/gpt-test", false)
				body["tool_choice"] = c.choice
				e := gwDialectError(t, c.surface, g.post(t, gwPath(c.surface), g.ts.Key, body), http.StatusBadRequest)
				if !strings.Contains(e.Message, "tool_choice") {
					t.Errorf("%s %v: error %+v does not name tool_choice", c.surface, c.choice, e)
				}
			}
		})
	})
}

// TestGatewayStreamOptions: without stream_options.include_usage there is no usage chunk;
// an Anthropic answer that ran out of tokens says max_tokens to either client; stop
// sequences map both ways.
func TestGatewayStreamOptions(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		t.Run("no usage chunk unless asked", func(t *testing.T) {
			g.oa.Enqueue(llmtest.Reply{Text: "Hi."})
			body := gwTurns[0].body(gwOpenAI, "oai/gpt-test", true)
			delete(body, "stream_options")
			o := gwOpenAIStream(t, g.post(t, "/v1/chat/completions", g.ts.Key, body), "oai/gpt-test", false)
			if o.Text != "Hi." || o.Stop != llm.StopEnd {
				t.Errorf("answer %+v", o)
			}
		})
		t.Run("upstream ignores stream", func(t *testing.T) {
			// Some compatible servers answer a streaming request with one JSON answer: the
			// client still gets a well-formed stream.
			for _, surface := range []string{gwOpenAI, gwAnthropic} {
				for _, up := range []string{"oai", "ant"} {
					model, prefix := "oai/gpt-test", "call_up"
					if up == "ant" {
						model, prefix = "ant/claude-test", "toolu_up"
					}
					rep := gwTurns[1].reply(prefix)
					rep.JSON = true
					g.upstream(up).Enqueue(rep)
					r := g.post(t, gwPath(surface), g.ts.Key, gwTurns[1].body(surface, model, true))
					var o gwOutcome
					if surface == gwOpenAI {
						o = gwOpenAIStream(t, r, model, true)
					} else {
						o = gwAnthropicStream(t, r, model, -1)
					}
					if want := gwTurns[1].want(prefix); !gwSameOutcome(o, want) {
						t.Errorf("%s to %s:\n got %+v\nwant %+v", surface, up, o, want)
					}
				}
			}
		})
		t.Run("empty answer", func(t *testing.T) {
			for _, surface := range []string{gwOpenAI, gwAnthropic} {
				for _, stream := range []bool{false, true} {
					g.an.Enqueue(llmtest.Reply{Usage: llm.Usage{InputTokens: 3, OutputTokens: 1}})
					r := g.post(t, gwPath(surface), g.ts.Key, gwTurns[0].body(surface, "ant/claude-test", stream))
					var o gwOutcome
					switch {
					case surface == gwOpenAI && stream:
						o = gwOpenAIStream(t, r, "ant/claude-test", true)
					case surface == gwOpenAI:
						o = gwOpenAIAnswer(t, r, "ant/claude-test")
					case stream:
						o = gwAnthropicStream(t, r, "ant/claude-test", 3)
					default:
						o = gwAnthropicAnswer(t, r, "ant/claude-test")
					}
					if want := (gwOutcome{Stop: llm.StopEnd, In: 3, Out: 1}); !gwSameOutcome(o, want) {
						t.Errorf("%s stream=%v: %+v", surface, stream, o)
					}
				}
			}
		})
		t.Run("length", func(t *testing.T) {
			for _, surface := range []string{gwOpenAI, gwAnthropic} {
				for _, stream := range []bool{false, true} {
					g.an.Enqueue(llmtest.Reply{Text: "Once upon", StopReason: llm.StopLength})
					r := g.post(t, gwPath(surface), g.ts.Key, gwTurns[0].body(surface, "ant/claude-test", stream))
					var o gwOutcome
					switch {
					case surface == gwOpenAI && stream:
						o = gwOpenAIStream(t, r, "ant/claude-test", true)
					case surface == gwOpenAI:
						o = gwOpenAIAnswer(t, r, "ant/claude-test")
						if !strings.Contains(string(r.Body), `"finish_reason":"length"`) {
							t.Errorf("finish_reason: %s", r.Body)
						}
					case stream:
						o = gwAnthropicStream(t, r, "ant/claude-test", -1)
					default:
						o = gwAnthropicAnswer(t, r, "ant/claude-test")
						if !strings.Contains(string(r.Body), `"stop_reason":"max_tokens"`) {
							t.Errorf("stop_reason: %s", r.Body)
						}
					}
					if o.Stop != llm.StopLength {
						t.Errorf("%s stream %v: stop %q", surface, stream, o.Stop)
					}
				}
			}
		})
		t.Run("stop sequence", func(t *testing.T) {
			g.oa.Enqueue(llmtest.Reply{Text: "One, two"})
			body := gwTurns[0].body(gwAnthropic, "oai/gpt-test", false)
			body["stop_sequences"] = []string{"three"}
			gwAnthropicAnswer(t, g.post(t, "/v1/messages", g.ts.Key, body), "oai/gpt-test")
			if got := g.oa.Last().Map()["stop"]; fmt.Sprint(got) != "[three]" {
				t.Errorf("OpenAI upstream stop %v", got)
			}
			g.an.Enqueue(llmtest.Reply{Text: "One, two", StopSequence: "three"})
			body = gwTurns[0].body(gwOpenAI, "ant/claude-test", false)
			body["stop"] = "three"
			r := g.post(t, "/v1/chat/completions", g.ts.Key, body)
			if o := gwOpenAIAnswer(t, r, "ant/claude-test"); o.Stop != llm.StopEnd {
				t.Errorf("stop %q", o.Stop)
			}
			if got := g.an.Last().Map()["stop_sequences"]; fmt.Sprint(got) != "[three]" {
				t.Errorf("Anthropic upstream stop_sequences %v", got)
			}
			// Anthropic to Anthropic keeps the sequence that stopped the answer.
			g.an.Enqueue(llmtest.Reply{Text: "One, two", StopSequence: "three"})
			body = gwTurns[0].body(gwAnthropic, "ant/claude-test", false)
			body["stop_sequences"] = []string{"three"}
			r = g.post(t, "/v1/messages", g.ts.Key, body)
			if m := r.JSON(t); m["stop_reason"] != "stop_sequence" || m["stop_sequence"] != "three" {
				t.Errorf("stop_reason %v stop_sequence %v", m["stop_reason"], m["stop_sequence"])
			}
		})
	})
}

// TestGatewayErrors: bad requests, unknown models, missing keys and failing upstreams are
// answered in the dialect of the surface, with the right status, naming the problem.
func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		key := g.ts.Key
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			path := gwPath(surface)
			t.Run(surface+"/invalid JSON", func(t *testing.T) {
				e := gwDialectError(t, surface, g.post(t, path, key, `{"model":"oai/gpt-test",`), http.StatusBadRequest)
				if e.Type != "invalid_request_error" || !strings.Contains(e.Message, "JSON") {
					t.Errorf("error %+v", e)
				}
			})
			t.Run(surface+"/wrong type", func(t *testing.T) {
				e := gwDialectError(t, surface, g.post(t, path, key, `{"model":"oai/gpt-test","max_tokens":"many","messages":[]}`), http.StatusBadRequest)
				if !strings.Contains(e.Message, "max_tokens") {
					t.Errorf("error %+v does not name max_tokens", e)
				}
			})
			t.Run(surface+"/no messages", func(t *testing.T) {
				e := gwDialectError(t, surface, g.post(t, path, key, map[string]any{"model": "oai/gpt-test", "max_tokens": 5, "messages": []any{}}), http.StatusBadRequest)
				if !strings.Contains(e.Message, "messages") {
					t.Errorf("error %+v does not name messages", e)
				}
			})
			t.Run(surface+"/unknown provider", func(t *testing.T) {
				for _, stream := range []bool{false, true} {
					e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, "nope/some-model", stream)), http.StatusBadRequest)
					if e.Type != "invalid_request_error" || !strings.Contains(e.Message, "nope") {
						t.Errorf("error %+v", e)
					}
				}
				e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, "gpt-test", false)), http.StatusBadRequest)
				if !strings.Contains(e.Message, "provider") {
					t.Errorf("a model without provider: %+v", e)
				}
			})
			t.Run(surface+"/unknown agent", func(t *testing.T) {
				e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, "agent/agt_nosuchagent", false)), http.StatusBadRequest)
				if !strings.Contains(e.Message, "agent") {
					t.Errorf("error %+v", e)
				}
			})
			t.Run(surface+"/provider without key", func(t *testing.T) {
				e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, "keyless/hidden", false)), http.StatusBadRequest)
				if !strings.Contains(e.Message, "keyless") || !strings.Contains(e.Message, "KEYLESS_API_KEY") {
					t.Errorf("error %+v does not name the provider and what to set", e)
				}
			})
			t.Run(surface+"/missing key", func(t *testing.T) {
				for _, k := range []string{"", "as_test_wrongwrongwrongwrongwrongwrongwrongwron"} {
					e := gwDialectError(t, surface, g.post(t, path, k, gwTurns[0].body(surface, "oai/gpt-test", false)), http.StatusUnauthorized)
					if e.Type != "authentication_error" {
						t.Errorf("key %q: type %q", k, e.Type)
					}
				}
			})
			t.Run(surface+"/read-only key", func(t *testing.T) {
				ro := g.ts.newKey(store.DefaultTenantSlug, "read-only", 0, store.ScopeRead)
				e := gwDialectError(t, surface, g.post(t, path, ro, gwTurns[0].body(surface, "oai/gpt-test", false)), http.StatusForbidden)
				if e.Type != "permission_error" {
					t.Errorf("type %q", e.Type)
				}
			})
			for _, up := range []string{"oai", "ant"} {
				model := map[string]string{"oai": "oai/gpt-test", "ant": "ant/claude-test"}[up]
				t.Run(surface+"/upstream 500 from "+up, func(t *testing.T) {
					for _, stream := range []bool{false, true} {
						g.upstream(up).Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "the upstream is on fire"})
						e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, model, stream)), http.StatusBadGateway)
						if !strings.Contains(e.Message, "the upstream is on fire") || e.Type != "api_error" {
							t.Errorf("stream %v: error %+v", stream, e)
						}
					}
				})
				t.Run(surface+"/upstream refuses the request from "+up, func(t *testing.T) {
					g.upstream(up).Enqueue(llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "messages: too long"})
					e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, model, false)), http.StatusBadRequest)
					if !strings.Contains(e.Message, "messages: too long") {
						t.Errorf("error %+v", e)
					}
				})
				t.Run(surface+"/upstream stalls before answering "+up, func(t *testing.T) {
					slow := map[string]string{"oai": "slow/gpt-test", "ant": "slowant/claude-test"}[up]
					g.upstream(up).Enqueue(llmtest.Reply{Fault: llmtest.FaultStallHeaders})
					start := time.Now()
					e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, slow, true)), http.StatusBadGateway)
					if !strings.Contains(e.Message, "sent nothing") || time.Since(start) > gwStall+3*time.Second {
						t.Errorf("error %+v after %v", e, time.Since(start))
					}
				})
				t.Run(surface+"/malformed first chunk from "+up, func(t *testing.T) {
					g.upstream(up).Enqueue(llmtest.Reply{Text: "one two", Fault: llmtest.FaultMalformed})
					e := gwDialectError(t, surface, g.post(t, path, key, gwTurns[0].body(surface, model, true)), http.StatusBadGateway)
					if !strings.Contains(e.Message, "malformed") {
						t.Errorf("error %+v", e)
					}
				})
			}
		}
		t.Run("anthropic/missing max_tokens", func(t *testing.T) {
			body := gwTurns[0].body(gwAnthropic, "ant/claude-test", false)
			delete(body, "max_tokens")
			// Anthropic's clients (anthropic-version) must send it; AmaStudio's need not
			// (TestAmaStudioMessagesMaxTokens).
			r := g.ts.with(t).request(http.MethodPost, "/v1/messages", body, hdr("X-API-Key", key, "anthropic-version", "2023-06-01"))
			e := gwAnthropicError(t, r, http.StatusBadRequest)
			if e.Type != "invalid_request_error" || !strings.Contains(e.Message, "max_tokens") {
				t.Errorf("error %+v", e)
			}
		})
		t.Run("openai/max_tokens is optional", func(t *testing.T) {
			g.an.Enqueue(llmtest.Reply{Text: "ok"})
			body := gwTurns[0].body(gwOpenAI, "ant/claude-test", false)
			delete(body, "max_tokens")
			gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", key, body), "ant/claude-test")
			if mt := g.an.Last().Map()["max_tokens"]; gwNum(mt) != llm.DefaultAnthropicMaxTokens {
				t.Errorf("Anthropic upstream max_tokens %v", mt)
			}
		})
		t.Run("openai/max_completion_tokens", func(t *testing.T) {
			g.oa.Enqueue(llmtest.Reply{Text: "ok"})
			body := gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)
			delete(body, "max_tokens")
			body["max_completion_tokens"] = 77
			gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", key, body), "oai/gpt-test")
			if mt := g.oa.Last().Map()["max_tokens"]; gwNum(mt) != 77 {
				t.Errorf("upstream max_tokens %v", mt)
			}
		})
	})
}

// TestGatewayStreamFailures: an upstream whose stream breaks or stalls after it started
// ends the client's stream with the dialect's error event, promptly; a client that leaves
// cancels the upstream request at once. It runs alone, to check that no goroutine is left.
func TestGatewayStreamFailures(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			g := newGW(t, d)
			for _, surface := range []string{gwOpenAI, gwAnthropic} {
				for _, up := range []string{"oai", "ant"} {
					model := map[string]string{"oai": "oai/gpt-test", "ant": "ant/claude-test"}[up]
					slow := map[string]string{"oai": "slow/gpt-test", "ant": "slowant/claude-test"}[up]
					name := surface + "-to-" + up
					t.Run(name+"/malformed mid-stream", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultMalformed, FaultAfter: 2})
						g.wantErrorEvent(t, surface, model, "malformed", 10*time.Second)
					})
					t.Run(name+"/error event mid-stream", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStreamError, FaultAfter: 3,
							ErrorType: "overloaded_error", ErrorMessage: "Overloaded, try later"})
						g.wantErrorEvent(t, surface, model, "Overloaded, try later", 10*time.Second)
					})
					t.Run(name+"/truncated", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultTruncate, FaultAfter: 100})
						g.wantErrorEvent(t, surface, model, "ended before", 10*time.Second)
					})
					t.Run(name+"/stall", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStall, FaultAfter: 3})
						start := time.Now()
						g.wantErrorEvent(t, surface, slow, "sent nothing", 10*time.Second)
						if el := time.Since(start); el < gwStall || el > gwStall+3*time.Second {
							t.Errorf("the stall was reported after %v (stall timeout %v)", el, gwStall)
						}
						g.wantAborted(t, up)
					})
					t.Run(name+"/client leaves before the upstream answers", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Fault: llmtest.FaultStallHeaders})
						raw, _ := json.Marshal(gwTurns[0].body(surface, model, true))
						ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
						defer cancel()
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.ts.URL+gwPath(surface), bytes.NewReader(raw))
						req.Header.Set("X-API-Key", g.ts.Key)
						if resp, err := http.DefaultClient.Do(req); err == nil {
							resp.Body.Close()
							t.Fatalf("an answer (%d) from a stalled upstream", resp.StatusCode)
						}
						g.wantAborted(t, up)
					})
					t.Run(name+"/client leaves", func(t *testing.T) {
						g.upstream(up).Enqueue(llmtest.Reply{Text: "one two three", Fault: llmtest.FaultStall, FaultAfter: 3})
						resp, rd, cancel := g.streamStart(t, gwPath(surface), g.ts.Key, gwTurns[0].body(surface, model, true))
						if resp.StatusCode != http.StatusOK {
							cancel()
							t.Fatalf("status %d", resp.StatusCode)
						}
						gwReadEvent(t, rd)
						cancel()
						g.wantAborted(t, up)
					})
				}
			}
		})
	}
}

// wantErrorEvent streams a text turn and wants the stream to end, within limit, with the
// dialect's error event carrying msg, after a well-formed start.
func (g *gwServer) wantErrorEvent(t *testing.T, surface, model, msg string, limit time.Duration) {
	t.Helper()
	done := make(chan response, 1)
	go func() {
		done <- g.ts.request(http.MethodPost, gwPath(surface), gwTurns[0].body(surface, model, true), hdr("X-API-Key", g.ts.Key))
	}()
	var r response
	select {
	case r = <-done:
	case <-time.After(limit):
		t.Fatalf("the stream did not end within %v", limit)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	evs := gwReadSSE(t, r.Body)
	if len(evs) < 2 {
		t.Fatalf("events: %s", r.Body)
	}
	last := evs[len(evs)-1]
	e := gwObj(t, "the last event", last.Data)
	var detail map[string]any
	if surface == gwOpenAI {
		if last.Name != "" || evs[0].Data == "[DONE]" {
			t.Errorf("the error event: %s", r.Body)
		}
		first := gwObj(t, "the first chunk", evs[0].Data)
		if first["object"] != "chat.completion.chunk" {
			t.Errorf("first chunk %s", evs[0].Data)
		}
		detail, _ = e["error"].(map[string]any)
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := detail[k]; !ok {
				t.Errorf("the error chunk has no %q: %s", k, last.Data)
			}
		}
	} else {
		if last.Name != "error" || e["type"] != "error" || evs[0].Name != "message_start" {
			t.Errorf("the error event: %s", r.Body)
		}
		detail, _ = e["error"].(map[string]any)
		if typ, _ := detail["type"].(string); typ == "" {
			t.Errorf("the error event has no type: %s", last.Data)
		}
		for _, ev := range evs {
			if ev.Name == "message_stop" {
				t.Errorf("a failed stream says message_stop: %s", r.Body)
			}
		}
	}
	if m, _ := detail["message"].(string); !strings.Contains(m, msg) {
		t.Errorf("error message %q does not say %q", m, msg)
	}
}

// wantAborted waits for the stand-in to see the client of its last request leave.
func (g *gwServer) wantAborted(t *testing.T, up string) {
	t.Helper()
	st := g.upstream(up)
	select {
	case seq := <-st.Aborted():
		if last := st.Last().Seq; seq != last {
			t.Fatalf("request %d was cancelled, want the last, %d", seq, last)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
}

// TestGatewayAgentModel: agent/{id} answers with the agent's instructions before the
// client's system prompt, on the agent's model, with its temperature unless the client set
// one; /v1/models lists providers' models and the tenant's agents, and no other tenant's.
func TestGatewayAgentModel(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		agent := g.ts.with(t).createID("/api/v1/agents", g.ts.Key, map[string]any{
			"name": "Front desk", "instructions": "You are Ada, the receptionist of Hotel Lumen.", "model": "ant/claude-test", "temperature": 0.25,
		})
		model := "agent/" + agent

		g.an.Enqueue(llmtest.Reply{Text: "Welcome to Hotel Lumen."})
		body := gwTurns[0].body(gwOpenAI, model, false)
		delete(body, "temperature")
		o := gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", g.ts.Key, body), model)
		if o.Text != "Welcome to Hotel Lumen." {
			t.Errorf("answer %+v", o)
		}
		up := g.an.Last().Map()
		if up["system"] != "You are Ada, the receptionist of Hotel Lumen.\n\nBe brief." || up["model"] != "claude-test" || up["temperature"] != 0.25 {
			t.Errorf("upstream system %q model %v temperature %v", up["system"], up["model"], up["temperature"])
		}

		// The Anthropic dialect, streaming, without a system prompt of its own.
		g.an.Enqueue(llmtest.Reply{Text: "Welcome."})
		body = gwTurns[0].body(gwAnthropic, model, true)
		delete(body, "system")
		gwAnthropicStream(t, g.post(t, "/v1/messages", g.ts.Key, body), model, -1)
		up = g.an.Last().Map()
		if up["system"] != "You are Ada, the receptionist of Hotel Lumen." || up["temperature"] != 0.5 {
			t.Errorf("upstream system %q temperature %v", up["system"], up["temperature"])
		}

		// Agent of an OpenAI-kind model: instructions become the system message.
		agent2 := g.ts.with(t).createID("/api/v1/agents", g.ts.Key, map[string]any{
			"name": "Night desk", "instructions": "You are Bo.", "model": "oai/gpt-test",
		})
		g.oa.Enqueue(llmtest.Reply{Text: "Hi."})
		gwAnthropicAnswer(t, g.post(t, "/v1/messages", g.ts.Key, gwTurns[0].body(gwAnthropic, "agent/"+agent2, false)), "agent/"+agent2)
		msgs, _ := g.oa.Last().Map()["messages"].([]any)
		if len(msgs) == 0 || fmt.Sprint(msgs[0]) != "map[content:You are Bo.\n\nBe brief. role:system]" {
			t.Errorf("upstream messages %v", msgs)
		}

		// The models list.
		r := g.ts.with(t).request(http.MethodGet, "/v1/models", nil, bearer(g.ts.Key))
		wantStatus(t, r, http.StatusOK, "GET /v1/models")
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				Created int64  `json:"created"`
				OwnedBy string `json:"owned_by"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &list); err != nil || list.Object != "list" {
			t.Fatalf("models list: %s", r.Body)
		}
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
			if m.Object != "model" || m.Created <= 0 || m.OwnedBy == "" {
				t.Errorf("model %+v", m)
			}
		}
		for _, want := range []string{"oai/gpt-test", "oai/fast", "oai/priced", "ant/claude-test", model, "agent/" + agent2} {
			if !slices.Contains(ids, want) {
				t.Errorf("models %v lack %s", ids, want)
			}
		}
		if slices.Contains(ids, "keyless/hidden") {
			t.Errorf("models %v list a provider without its key", ids)
		}
		// Another tenant sees the providers, not these agents, and cannot use them.
		other := g.ts.tenantAdmin("gw-other")
		r = g.ts.with(t).request(http.MethodGet, "/v1/models", nil, hdr("X-API-Key", other))
		if strings.Contains(string(r.Body), agent) || !strings.Contains(string(r.Body), "oai/gpt-test") {
			t.Errorf("another tenant's models: %s", r.Body)
		}
		gwOpenAIError(t, g.post(t, "/v1/chat/completions", other, gwTurns[0].body(gwOpenAI, model, false)), http.StatusBadRequest)
		// An alias goes upstream by the upstream's name.
		g.oa.Enqueue(llmtest.Reply{Text: "fast"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", g.ts.Key, gwTurns[0].body(gwOpenAI, "oai/fast", false)), "oai/fast")
		if m := g.oa.Last().Map()["model"]; m != "gpt-test-mini" {
			t.Errorf("alias upstream model %v", m)
		}
	})
}

// TestGatewayFallback: a model whose upstream fails before answering is answered by its
// fallback, in either dialect, streaming or not.
func TestGatewayFallback(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			for _, stream := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/stream=%v", surface, stream), func(t *testing.T) {
					oaBefore, anBefore := len(g.oa.Requests()), len(g.an.Requests())
					g.oa.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "primary down"})
					g.an.Enqueue(llmtest.Reply{Text: "From the fallback."})
					r := g.post(t, gwPath(surface), g.ts.Key, gwTurns[0].body(surface, "oai/flaky", stream))
					var o gwOutcome
					switch {
					case surface == gwOpenAI && stream:
						o = gwOpenAIStream(t, r, "oai/flaky", true)
					case surface == gwOpenAI:
						o = gwOpenAIAnswer(t, r, "oai/flaky")
					case stream:
						o = gwAnthropicStream(t, r, "oai/flaky", -1)
					default:
						o = gwAnthropicAnswer(t, r, "oai/flaky")
					}
					if o.Text != "From the fallback." {
						t.Errorf("answer %+v", o)
					}
					if oa, an := g.oa.Requests()[oaBefore:], g.an.Requests()[anBefore:]; len(oa) != 1 || len(an) != 1 ||
						oa[0].Map()["model"] != "flaky" || an[0].Map()["model"] != "claude-test" {
						t.Errorf("upstream requests: %d to oai, %d to ant", len(oa), len(an))
					}
				})
			}
		}
		t.Run("recorded as the fallback's", func(t *testing.T) {
			recs, _, err := store.List[store.UsageRecord](context.Background(), g.ts.Store, g.ts.Default.ID, store.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rec := range recs {
				if rec.Model == "oai/flaky" {
					n++
					if rec.Provider != "ant" || rec.UpstreamModel != "claude-test" || rec.Status != http.StatusOK || rec.OutputTokens == 0 {
						t.Errorf("record %+v", rec)
					}
				}
			}
			if n != 4 {
				t.Errorf("%d records of oai/flaky", n)
			}
		})
		t.Run("both fail", func(t *testing.T) {
			g.an.Enqueue(llmtest.Reply{Status: http.StatusServiceUnavailable, ErrorMessage: "primary down"})
			g.oa.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError, ErrorMessage: "fallback down too"})
			e := gwOpenAIError(t, g.post(t, "/v1/chat/completions", g.ts.Key, gwTurns[0].body(gwOpenAI, "ant/flaky", false)), http.StatusBadGateway)
			if !strings.Contains(e.Message, "fallback down too") {
				t.Errorf("error %+v", e)
			}
		})
	})
}

// gwUsageItem is one row of GET /api/v1/usage.
type gwUsageItem struct {
	KeyID        string  `json:"key_id"`
	Model        string  `json:"model"`
	Day          string  `json:"day"`
	Requests     int     `json:"requests"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

// usage reads the usage report and returns the rows of one key, waiting (for streams, which
// are recorded once their last byte is out) until it has made n requests.
func (g *gwServer) usage(t *testing.T, keyID string, n int) []gwUsageItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := g.ts.with(t).request(http.MethodGet, "/api/v1/usage", nil, hdr("X-API-Key", g.ts.Key))
		wantStatus(t, r, http.StatusOK, "GET /api/v1/usage")
		var rep struct {
			From, To string
			Items    []gwUsageItem
			Total    gwUsageItem
		}
		if err := json.Unmarshal(r.Body, &rep); err != nil || rep.Items == nil {
			t.Fatalf("usage report: %s", r.Body)
		}
		var mine []gwUsageItem
		got := 0
		for _, it := range rep.Items {
			if it.KeyID == keyID {
				mine = append(mine, it)
				got += it.Requests
			}
		}
		if got >= n || time.Now().After(deadline) {
			return mine
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGatewayUsage: requests are recorded by key, model and day with their tokens and cost.
func TestGatewayUsage(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		key, keyID := g.newKey(t, nil)
		u := llm.Usage{InputTokens: 1000, OutputTokens: 500}
		for i := range 3 {
			g.oa.Enqueue(llmtest.Reply{Text: "priced", Usage: u})
			stream := i == 2
			surface := gwOpenAI
			if i == 1 {
				surface = gwAnthropic
			}
			r := g.post(t, gwPath(surface), key, gwTurns[0].body(surface, "oai/priced", stream))
			wantStatus(t, r, http.StatusOK, "priced request")
		}
		g.an.Enqueue(llmtest.Reply{Text: "free", Usage: llm.Usage{InputTokens: 7, OutputTokens: 3}})
		wantStatus(t, g.post(t, "/v1/messages", key, gwTurns[0].body(gwAnthropic, "ant/claude-test", true)), http.StatusOK, "free request")
		// A request that failed upstream counts as a request without tokens.
		g.an.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError})
		wantStatus(t, g.post(t, "/v1/messages", key, gwTurns[0].body(gwAnthropic, "ant/claude-test", false)), http.StatusBadGateway, "failed request")

		items := g.usage(t, keyID, 5)
		today := time.Now().UTC().Format("2006-01-02")
		byModel := map[string]gwUsageItem{}
		for _, it := range items {
			if it.Day != today && it.Day != time.Now().UTC().Add(-time.Minute).Format("2006-01-02") {
				t.Errorf("day %q, today is %s", it.Day, today)
			}
			byModel[it.Model] = it
		}
		priced := byModel["oai/priced"]
		wantCost := 3 * (1000*10.0 + 500*40.0) / 1e6
		if priced.Requests != 3 || priced.InputTokens != 3000 || priced.OutputTokens != 1500 || math.Abs(priced.CostUSD-wantCost) > 1e-9 {
			t.Errorf("oai/priced usage %+v, want 3 requests, 3000/1500 tokens, $%v", priced, wantCost)
		}
		free := byModel["ant/claude-test"]
		if free.Requests != 2 || free.InputTokens != 7 || free.OutputTokens != 3 || free.CostUSD != 0 {
			t.Errorf("ant/claude-test usage %+v", free)
		}
		if len(items) != 2 {
			t.Errorf("usage rows %+v", items)
		}
		// Each request's record says where it went, how, and how long it took.
		recs, _, err := store.List[store.UsageRecord](context.Background(), g.ts.Store, g.ts.Default.ID, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rec := range recs {
			if rec.KeyID != keyID {
				continue
			}
			got = append(got, fmt.Sprintf("%s %s %s→%s stream=%v %d", rec.Surface, rec.Model, rec.Provider, rec.UpstreamModel, rec.Stream, rec.Status))
			if rec.LatencyMS < 0 || rec.TTFTMS < 0 || rec.TTFTMS > rec.LatencyMS+1 {
				t.Errorf("record latency %d ms, first byte %d ms", rec.LatencyMS, rec.TTFTMS)
			}
		}
		slices.Sort(got)
		want := []string{
			"anthropic ant/claude-test ant→claude-test stream=false 502",
			"anthropic ant/claude-test ant→claude-test stream=true 200",
			"anthropic oai/priced oai→priced stream=false 200",
			"openai oai/priced oai→priced stream=false 200",
			"openai oai/priced oai→priced stream=true 200",
		}
		if !slices.Equal(got, want) {
			t.Errorf("records\n got %q\nwant %q", got, want)
		}
		// Ranges.
		r := g.ts.with(t).request(http.MethodGet, "/api/v1/usage?from=2000-01-01&to=2000-01-02", nil, hdr("X-API-Key", g.ts.Key))
		if wantStatus(t, r, http.StatusOK, "old range"); strings.Contains(string(r.Body), keyID) {
			t.Errorf("an old range holds today's usage: %s", r.Body)
		}
		r = g.ts.with(t).request(http.MethodGet, "/api/v1/usage?from=yesterday", nil, hdr("X-API-Key", g.ts.Key))
		wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "from")
		// Another tenant sees none of it.
		r = g.ts.with(t).request(http.MethodGet, "/api/v1/usage", nil, hdr("X-API-Key", g.ts.tenantAdmin("gw-usage-other")))
		if wantStatus(t, r, http.StatusOK, "other tenant"); strings.Contains(string(r.Body), keyID) {
			t.Errorf("another tenant sees the usage: %s", r.Body)
		}
	})
}

// TestGatewayTokenLimit: a key with a token limit is refused with 429 and Retry-After once
// the minute's tokens are used, in the dialect of the surface.
func TestGatewayTokenLimit(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		waitOutMinuteEdge(10 * time.Second)
		key, _ := g.newKey(t, map[string]any{"token_limit": 50})
		other, _ := g.newKey(t, nil)
		// Each answer uses 30 tokens: the first two fit, the third finds 60 used.
		for range 2 {
			g.oa.Enqueue(llmtest.Reply{Text: "ok", Usage: llm.Usage{InputTokens: 10, OutputTokens: 20}})
			gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", key, gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)), "oai/gpt-test")
		}
		before := len(g.oa.Requests())
		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			r := g.post(t, gwPath(surface), key, gwTurns[0].body(surface, "oai/gpt-test", true))
			e := gwDialectError(t, surface, r, http.StatusTooManyRequests)
			if e.Type != "rate_limit_error" || !strings.Contains(e.Message, "50") {
				t.Errorf("%s: error %+v", surface, e)
			}
			retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || retry < 1 || retry > 61 {
				t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		}
		if n := len(g.oa.Requests()); n != before {
			t.Errorf("refused requests reached the upstream")
		}
		// Other keys are not affected.
		g.oa.Enqueue(llmtest.Reply{Text: "ok"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", other, gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)), "oai/gpt-test")
	})
}

// TestGatewayBudget: a key with a spending budget is refused with 402 once it is spent.
func TestGatewayBudget(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		// Each answer costs $0.05 (1000 tokens in at $10, 1000 out at $40 a million).
		key, _ := g.newKey(t, map[string]any{"budget_usd": 0.09})
		for range 2 {
			g.oa.Enqueue(llmtest.Reply{Text: "ok", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 1000}})
			gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", key, gwTurns[0].body(gwOpenAI, "oai/priced", false)), "oai/priced")
		}
		before := len(g.oa.Requests())
		e := gwOpenAIError(t, g.post(t, "/v1/chat/completions", key, gwTurns[0].body(gwOpenAI, "oai/priced", false)), http.StatusPaymentRequired)
		if e.Type != "insufficient_quota" || !strings.Contains(e.Message, "budget") {
			t.Errorf("error %+v", e)
		}
		e = gwAnthropicError(t, g.post(t, "/v1/messages", key, gwTurns[0].body(gwAnthropic, "ant/claude-test", true)), http.StatusPaymentRequired)
		if e.Type != "billing_error" {
			t.Errorf("error %+v", e)
		}
		if len(g.oa.Requests()) != before {
			t.Errorf("refused requests reached the upstream")
		}
	})
}

// TestGatewayTenantProviders: a tenant's own provider, created through the API with its key
// (which is never shown again), is used for "<name>/<model>" by that tenant only.
func TestGatewayTenantProviders(t *testing.T) {
	t.Parallel()
	eachGW(t, func(t *testing.T, g *gwServer) {
		mine := llmtest.NewAnthropic(t)
		mine.RequireKey("sk-ant-tenant-secret")
		admin := g.ts.tenantAdmin("gw-byok")
		ts := g.ts.with(t)
		p := ts.create("/api/v1/providers", admin, map[string]any{
			"name": "mine", "kind": "anthropic", "base_url": mine.URL, "api_key": "sk-ant-tenant-secret",
			"models": []string{"claude-mine"}, "prices": map[string]any{"claude-mine": map[string]any{"input_per_mtok": 1, "output_per_mtok": 2}},
		})
		if _, ok := p["api_key"]; ok || p["has_api_key"] != true {
			t.Errorf("created provider %v", p)
		}
		id := p["id"].(string)
		for _, r := range []response{ts.do(http.MethodGet, "/api/v1/providers/"+id, admin, nil), ts.do(http.MethodGet, "/api/v1/providers", admin, nil)} {
			wantStatus(t, r, http.StatusOK, "read provider")
			if strings.Contains(string(r.Body), "sk-ant-tenant-secret") || !strings.Contains(string(r.Body), `"has_api_key":true`) {
				t.Errorf("provider as read: %s", r.Body)
			}
		}

		for _, surface := range []string{gwOpenAI, gwAnthropic} {
			mine.Enqueue(llmtest.Reply{Text: "From my own key."})
			r := g.post(t, gwPath(surface), admin, gwTurns[0].body(surface, "mine/claude-mine", false))
			var o gwOutcome
			if surface == gwOpenAI {
				o = gwOpenAIAnswer(t, r, "mine/claude-mine")
			} else {
				o = gwAnthropicAnswer(t, r, "mine/claude-mine")
			}
			if o.Text != "From my own key." {
				t.Errorf("answer %+v", o)
			}
			if last := mine.Last(); last.Header.Get("X-Api-Key") != "sk-ant-tenant-secret" || last.Map()["model"] != "claude-mine" {
				t.Errorf("tenant upstream got key %q model %v", last.Header.Get("X-Api-Key"), last.Map()["model"])
			}
		}
		r := ts.request(http.MethodGet, "/v1/models", nil, hdr("X-API-Key", admin))
		if !strings.Contains(string(r.Body), `"mine/claude-mine"`) || !strings.Contains(string(r.Body), `"oai/gpt-test"`) {
			t.Errorf("models of the tenant: %s", r.Body)
		}
		// The server's providers stay usable beside the tenant's.
		g.oa.Enqueue(llmtest.Reply{Text: "server"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", admin, gwTurns[0].body(gwOpenAI, "oai/gpt-test", false)), "oai/gpt-test")
		// Another tenant does not have it.
		e := gwOpenAIError(t, g.post(t, "/v1/chat/completions", g.ts.Key, gwTurns[0].body(gwOpenAI, "mine/claude-mine", false)), http.StatusBadRequest)
		if !strings.Contains(e.Message, "mine") {
			t.Errorf("error %+v", e)
		}
		// A changed key is used at once; a deleted provider is gone at once.
		r = ts.request(http.MethodPatch, "/api/v1/providers/"+id, map[string]any{"api_key": "sk-ant-rotated"}, hdr("X-API-Key", admin))
		wantStatus(t, r, http.StatusOK, "PATCH provider")
		mine.RequireKey("sk-ant-rotated")
		mine.Enqueue(llmtest.Reply{Text: "rotated"})
		gwOpenAIAnswer(t, g.post(t, "/v1/chat/completions", admin, gwTurns[0].body(gwOpenAI, "mine/claude-mine", false)), "mine/claude-mine")
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/providers/"+id, admin, nil), http.StatusNoContent, "DELETE provider")
		gwOpenAIError(t, g.post(t, "/v1/chat/completions", admin, gwTurns[0].body(gwOpenAI, "mine/claude-mine", false)), http.StatusBadRequest)
		// Validation, in the canonical shape.
		r = ts.do(http.MethodPost, "/api/v1/providers", admin, map[string]any{"name": "agent", "kind": "openai", "base_url": "http://x"})
		wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "name")
		r = ts.do(http.MethodPost, "/api/v1/providers", admin, map[string]any{"name": "bad", "kind": "cohere", "base_url": "ftp://x"})
		wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "kind")
	})
}
