package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"
)

// The model gateway's test bench: a Switchboard server whose registry holds two providers,
// "oai" (an OpenAI-compatible stand-in) and "ant" (an Anthropic stand-in), both real HTTP
// servers on loopback that record what they receive; the conversations the tests hold in
// each dialect; and parsers that check each dialect's answers and streams for exactness and
// reduce them to what was said.

// Upstream keys: the stand-ins refuse requests without them, as the real platforms do.
const (
	gwOAIKey = "sk-upstream-oai"
	gwAntKey = "sk-upstream-ant"
	// gwStall is the stall timeout of the "slow" providers.
	gwStall = 300 * time.Millisecond
)

// gateway is a test server with the two stand-ins behind it.
type gwServer struct {
	ts     *testServer
	oa, an *llmtest.Server
}

// gwProviders are the providers of the test registry over the two stand-ins:
//   - oai/gpt-test, ant/claude-test: plain models;
//   - oai/priced: $10 in, $40 out a million tokens; oai/fast: an alias of gpt-test-mini;
//   - oai/flaky falls back to ant/claude-test, ant/flaky to oai/gpt-test;
//   - slow, slowant: the same stand-ins with a short stall timeout;
//   - keyless: a provider that needs a key it has not got.
func gwProviders(oa, an *llmtest.Server) []llm.ProviderConfig {
	return []llm.ProviderConfig{
		{Name: "oai", Kind: llm.KindOpenAI, BaseURL: oa.URL, APIKey: gwOAIKey, Models: []string{"gpt-test"},
			Aliases:   map[string]string{"fast": "gpt-test-mini"},
			Prices:    map[string]llm.Price{"priced": {InputPerMTok: 10, OutputPerMTok: 40}},
			Fallbacks: map[string][]string{"flaky": {"ant/claude-test"}}},
		{Name: "ant", Kind: llm.KindAnthropic, BaseURL: an.URL, APIKey: gwAntKey, Models: []string{"claude-test"},
			Fallbacks: map[string][]string{"flaky": {"oai/gpt-test"}}},
		{Name: "slow", Kind: llm.KindOpenAI, BaseURL: oa.URL, APIKey: gwOAIKey, StallTimeout: gwStall},
		{Name: "slowant", Kind: llm.KindAnthropic, BaseURL: an.URL, APIKey: gwAntKey, StallTimeout: gwStall},
		{Name: "keyless", Kind: llm.KindOpenAI, BaseURL: oa.URL, KeyRequired: true, KeyEnv: "KEYLESS_API_KEY", Models: []string{"hidden"}},
	}
}

func newGW(t testing.TB, d store.Dialect) *gwServer {
	t.Helper()
	oa, an := llmtest.NewOpenAI(t), llmtest.NewAnthropic(t)
	oa.RequireKey(gwOAIKey)
	an.RequireKey(gwAntKey)
	// Tenants' providers here are stand-ins on loopback: the operator allows them.
	tenantHTTP := netguard.NewTenantClient(true)
	t.Cleanup(tenantHTTP.CloseIdleConnections)
	reg, err := llm.NewRegistry(gwProviders(oa, an), llm.WithTenantClient(tenantHTTP))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, d, api.Config{DefaultRateLimit: 1_000_000, Models: reg, AllowPrivateProviders: true})
	return &gwServer{ts: ts, oa: oa, an: an}
}

// eachGateway runs f on a gateway over SQLite and one over PostgreSQL, in parallel.
func eachGW(t *testing.T, f func(t *testing.T, g *gwServer)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newGW(t, d))
		})
	}
}

// upstream is the stand-in a provider name leads to.
func (g *gwServer) upstream(provider string) *llmtest.Server {
	if provider == "ant" || provider == "slowant" {
		return g.an
	}
	return g.oa
}

// post sends a JSON body with the key as X-API-Key.
func (g *gwServer) post(t testing.TB, path, key string, body any) response {
	t.Helper()
	return g.ts.with(t).request(http.MethodPost, path, body, hdr("X-API-Key", key))
}

// newKey creates a key through the API with the given extra fields (token_limit,
// budget_usd…) and returns its secret and ID.
func (g *gwServer) newKey(t testing.TB, fields map[string]any) (secret, id string) {
	t.Helper()
	body := map[string]any{"name": "gateway", "scopes": []string{store.ScopeWrite}}
	for k, v := range fields {
		body[k] = v
	}
	m := g.ts.with(t).create("/api/v1/keys", g.ts.Key, body)
	return m["key"].(string), m["id"].(string)
}

// The two compatible surfaces.
const (
	gwOpenAI    = "openai"
	gwAnthropic = "anthropic"
)

func gwPath(surface string) string {
	if surface == gwAnthropic {
		return "/v1/messages"
	}
	return "/v1/chat/completions"
}

// outcome is what an answer said, in neither dialect: the text, the tool calls, the stop
// reason as llm names it, and the usage.
type gwOutcome struct {
	Text  string
	Calls []gwCall
	Stop  llm.StopReason
	In    int
	Out   int
}

type gwCall struct {
	ID, Name string
	// Args is compact JSON.
	Args string
}

// compactJSON compacts JSON text; text that is not JSON stays as it is, to be shown.
func gwCompact(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}

// sameJSON fails the test unless got and want are the same JSON value.
func gwSameJSON(t testing.TB, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the wanted JSON is not JSON: %v: %s", what, err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, gwCompact(string(got)), gwCompact(want))
	}
}

// sseEvent is one event of a response stream.
type gwEvent struct {
	Name string
	Data string
}

// readSSE splits a whole text/event-stream body into events, failing on lines that are
// neither event:, data:, a comment nor blank.
func gwReadSSE(t testing.TB, body []byte) []gwEvent {
	t.Helper()
	var out []gwEvent
	var cur gwEvent
	has := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if has {
				out = append(out, cur)
			}
			cur, has = gwEvent{}, false
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if has {
				cur.Data += "\n"
			}
			cur.Data += strings.TrimPrefix(line, "data: ")
			has = true
		default:
			t.Fatalf("stream line %q is not server-sent events", line)
		}
	}
	if has {
		t.Errorf("stream ends inside an event (no blank line after %q)", cur.Data)
		out = append(out, cur)
	}
	return out
}

func gwObj(t testing.TB, what, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v: %s", what, err, s)
	}
	return m
}

func gwNum(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// jsonArgs is a tool call's arguments, compact.
func gwArgs(v any) string {
	switch a := v.(type) {
	case string:
		return gwCompact(a)
	default:
		b, _ := json.Marshal(a)
		return string(b)
	}
}

// openAIAnswer checks a chat.completion answer and reduces it.
func gwOpenAIAnswer(t testing.TB, r response, model string) gwOutcome {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "chat completion")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	m := r.JSON(t)
	if id, _ := m["id"].(string); !strings.HasPrefix(id, "chatcmpl-") {
		t.Errorf("id %v", m["id"])
	}
	if m["object"] != "chat.completion" || m["model"] != model || gwNum(m["created"]) <= 0 {
		t.Errorf("object %v model %v created %v", m["object"], m["model"], m["created"])
	}
	choices, _ := m["choices"].([]any)
	if len(choices) != 1 {
		t.Fatalf("choices: %s", r.Body)
	}
	ch := choices[0].(map[string]any)
	msg, _ := ch["message"].(map[string]any)
	if gwNum(ch["index"]) != 0 || msg == nil || msg["role"] != "assistant" {
		t.Fatalf("choice %v", ch)
	}
	var o gwOutcome
	if c, ok := msg["content"].(string); ok {
		o.Text = c
	} else if msg["content"] != nil {
		t.Errorf("content %v", msg["content"])
	}
	tcs, _ := msg["tool_calls"].([]any)
	for _, x := range tcs {
		tc := x.(map[string]any)
		fn, _ := tc["function"].(map[string]any)
		if tc["type"] != "function" || fn == nil {
			t.Errorf("tool call %v", tc)
			continue
		}
		args, ok := fn["arguments"].(string)
		if !ok {
			t.Errorf("arguments are not a string: %v", fn["arguments"])
		}
		o.Calls = append(o.Calls, gwCall{ID: tc["id"].(string), Name: fn["name"].(string), Args: gwCompact(args)})
	}
	finish, _ := ch["finish_reason"].(string)
	o.Stop = llm.StopReasonFromOpenAI(finish)
	if finish == "" {
		t.Errorf("no finish_reason")
	}
	u, _ := m["usage"].(map[string]any)
	o.In, o.Out = gwNum(u["prompt_tokens"]), gwNum(u["completion_tokens"])
	if gwNum(u["total_tokens"]) != o.In+o.Out {
		t.Errorf("usage %v: total is not the sum", u)
	}
	return o
}

// openAIStream checks a chat.completion.chunk stream and reduces it: every chunk names the
// same id and the model, the first gives the role, tool-call deltas carry their index (the
// first of each its id, type and name), one chunk has the finish_reason, the usage chunk
// follows it when asked for, then data: [DONE].
func gwOpenAIStream(t testing.TB, r response, model string, includeUsage bool) gwOutcome {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "chat completion stream")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	evs := gwReadSSE(t, r.Body)
	if len(evs) < 3 {
		t.Fatalf("%d events: %s", len(evs), r.Body)
	}
	if last := evs[len(evs)-1]; last.Data != "[DONE]" || last.Name != "" {
		t.Fatalf("the stream does not end with data: [DONE]: %s", r.Body)
	}
	var (
		o        gwOutcome
		id       string
		finished bool
		usage    bool
		args     []strings.Builder
	)
	for i, ev := range evs[:len(evs)-1] {
		if ev.Name != "" {
			t.Errorf("event %d is named %q: OpenAI streams are unnamed", i, ev.Name)
		}
		c := gwObj(t, "chunk", ev.Data)
		if c["object"] != "chat.completion.chunk" || c["model"] != model || gwNum(c["created"]) <= 0 {
			t.Errorf("chunk %d: object %v model %v created %v", i, c["object"], c["model"], c["created"])
		}
		cid, _ := c["id"].(string)
		if i == 0 {
			id = cid
			if !strings.HasPrefix(id, "chatcmpl-") {
				t.Errorf("id %q", id)
			}
		} else if cid != id {
			t.Errorf("chunk %d id %q, first %q", i, cid, id)
		}
		choices, _ := c["choices"].([]any)
		if u, ok := c["usage"].(map[string]any); ok && u != nil {
			if !finished || len(choices) != 0 || usage {
				t.Errorf("chunk %d: a usage chunk must come once, after the finish, with no choices: %s", i, ev.Data)
			}
			usage = true
			o.In, o.Out = gwNum(u["prompt_tokens"]), gwNum(u["completion_tokens"])
			if gwNum(u["total_tokens"]) != o.In+o.Out {
				t.Errorf("usage %v: total is not the sum", u)
			}
			continue
		}
		if len(choices) != 1 {
			t.Fatalf("chunk %d: choices %v", i, c["choices"])
		}
		ch := choices[0].(map[string]any)
		delta, _ := ch["delta"].(map[string]any)
		if gwNum(ch["index"]) != 0 || delta == nil {
			t.Fatalf("chunk %d: choice %v", i, ch)
		}
		if finished {
			t.Errorf("chunk %d comes after the finish_reason: %s", i, ev.Data)
		}
		if role, ok := delta["role"]; ok != (i == 0) || (ok && role != "assistant") {
			t.Errorf("chunk %d: role %v (the role comes first, once)", i, role)
		}
		if s, ok := delta["content"].(string); ok {
			o.Text += s
		}
		tcs, _ := delta["tool_calls"].([]any)
		for _, x := range tcs {
			tc := x.(map[string]any)
			idx, ok := tc["index"].(float64)
			if !ok {
				t.Fatalf("chunk %d: a tool call delta without index: %v", i, tc)
			}
			fn, _ := tc["function"].(map[string]any)
			switch n := int(idx); {
			case n == len(o.Calls):
				if tc["type"] != "function" || tc["id"] == nil || fn == nil || fn["name"] == nil {
					t.Fatalf("chunk %d: the first delta of tool call %d lacks id, type or name: %v", i, n, tc)
				}
				o.Calls = append(o.Calls, gwCall{ID: tc["id"].(string), Name: fn["name"].(string)})
				args = append(args, strings.Builder{})
				if a, _ := fn["arguments"].(string); a != "" {
					args[n].WriteString(a)
				}
			case n < len(o.Calls):
				if tc["id"] != nil || (fn != nil && fn["name"] != nil) {
					t.Errorf("chunk %d: tool call %d named again: %v", i, n, tc)
				}
				if fn != nil {
					a, _ := fn["arguments"].(string)
					args[n].WriteString(a)
				}
			default:
				t.Fatalf("chunk %d: tool call index %d skips ahead", i, n)
			}
		}
		if f, ok := ch["finish_reason"].(string); ok {
			finished = true
			o.Stop = llm.StopReasonFromOpenAI(f)
		} else if ch["finish_reason"] != nil {
			t.Errorf("chunk %d: finish_reason %v", i, ch["finish_reason"])
		}
	}
	if !finished {
		t.Errorf("no chunk has a finish_reason")
	}
	if usage != includeUsage {
		t.Errorf("usage chunk: %v, asked for: %v", usage, includeUsage)
	}
	for i := range o.Calls {
		o.Calls[i].Args = gwCompact(args[i].String())
	}
	return o
}

// anthropicAnswer checks a message answer and reduces it.
func gwAnthropicAnswer(t testing.TB, r response, model string) gwOutcome {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "message")
	m := r.JSON(t)
	if id, _ := m["id"].(string); !strings.HasPrefix(id, "msg_") {
		t.Errorf("id %v", m["id"])
	}
	if m["type"] != "message" || m["role"] != "assistant" || m["model"] != model {
		t.Errorf("type %v role %v model %v", m["type"], m["role"], m["model"])
	}
	if v, ok := m["stop_sequence"]; !ok || v != nil {
		t.Errorf("stop_sequence %v (present: %v)", v, ok)
	}
	var o gwOutcome
	blocks, ok := m["content"].([]any)
	if !ok {
		t.Fatalf("content is not an array: %s", r.Body)
	}
	for _, x := range blocks {
		b := x.(map[string]any)
		switch b["type"] {
		case "text":
			o.Text += b["text"].(string)
		case "tool_use":
			if _, ok := b["input"].(map[string]any); !ok {
				t.Errorf("tool_use input is not an object: %v", b)
			}
			o.Calls = append(o.Calls, gwCall{ID: b["id"].(string), Name: b["name"].(string), Args: gwArgs(b["input"])})
		default:
			t.Errorf("block %v", b)
		}
	}
	stop, _ := m["stop_reason"].(string)
	o.Stop = llm.StopReasonFromAnthropic(stop)
	if stop == "" {
		t.Errorf("no stop_reason")
	}
	u, _ := m["usage"].(map[string]any)
	o.In, o.Out = gwNum(u["input_tokens"]), gwNum(u["output_tokens"])
	return o
}

// anthropicStream checks Anthropic's event sequence and reduces it: every event named as its
// type; message_start first and once, with usage; content blocks numbered from 0, each
// started, given deltas of its kind and stopped before the next starts; message_delta with
// the stop_reason and usage after the blocks; message_stop last. Pings may come anywhere.
// startIn, when not negative, is the input tokens message_start must say.
func gwAnthropicStream(t testing.TB, r response, model string, startIn int) gwOutcome {
	t.Helper()
	wantStatus(t, r, http.StatusOK, "message stream")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	evs := gwReadSSE(t, r.Body)
	var (
		o       gwOutcome
		starts  int
		open    = -1
		kind    string
		next    int
		deltaAt = -1
		args    = map[int]*strings.Builder{}
		order   []int
		names   []string
	)
	for i, ev := range evs {
		names = append(names, ev.Name)
		e := gwObj(t, ev.Name, ev.Data)
		if e["type"] != ev.Name {
			t.Errorf("event %d: event: %s carries type %v", i, ev.Name, e["type"])
		}
		if i == 0 && ev.Name != "message_start" {
			t.Fatalf("the stream starts with %s: %s", ev.Name, r.Body)
		}
		switch ev.Name {
		case "ping":
		case "message_start":
			starts++
			msg, _ := e["message"].(map[string]any)
			if msg == nil || msg["type"] != "message" || msg["role"] != "assistant" || msg["model"] != model {
				t.Errorf("message_start %s", ev.Data)
				continue
			}
			if id, _ := msg["id"].(string); !strings.HasPrefix(id, "msg_") {
				t.Errorf("message id %v", msg["id"])
			}
			if c, ok := msg["content"].([]any); !ok || len(c) != 0 {
				t.Errorf("message_start content %v", msg["content"])
			}
			u, ok := msg["usage"].(map[string]any)
			if _, has := u["input_tokens"]; !ok || !has {
				t.Errorf("message_start without usage.input_tokens: %s", ev.Data)
			}
			o.In = gwNum(u["input_tokens"])
			if startIn >= 0 && o.In != startIn {
				t.Errorf("message_start input_tokens %d, want %d", o.In, startIn)
			}
		case "content_block_start":
			idx := gwNum(e["index"])
			if open >= 0 || idx != next || deltaAt >= 0 {
				t.Fatalf("content_block_start %d while block %d is open (next %d): %s", idx, open, next, r.Body)
			}
			cb, _ := e["content_block"].(map[string]any)
			kind, _ = cb["type"].(string)
			open, next = idx, idx+1
			switch kind {
			case "text":
				if cb["text"] != "" {
					t.Errorf("text block starts with %v", cb["text"])
				}
			case "tool_use":
				if in, ok := cb["input"].(map[string]any); !ok || len(in) != 0 {
					t.Errorf("tool_use block starts with input %v", cb["input"])
				}
				o.Calls = append(o.Calls, gwCall{ID: cb["id"].(string), Name: cb["name"].(string)})
				args[idx] = &strings.Builder{}
				order = append(order, idx)
			default:
				t.Errorf("block type %q", kind)
			}
		case "content_block_delta":
			idx := gwNum(e["index"])
			if idx != open {
				t.Fatalf("a delta of block %d while block %d is open", idx, open)
			}
			d, _ := e["delta"].(map[string]any)
			switch {
			case kind == "text" && d["type"] == "text_delta":
				o.Text += d["text"].(string)
			case kind == "tool_use" && d["type"] == "input_json_delta":
				args[idx].WriteString(d["partial_json"].(string))
			default:
				t.Errorf("a %v delta in a %s block", d["type"], kind)
			}
		case "content_block_stop":
			if idx := gwNum(e["index"]); idx != open {
				t.Fatalf("content_block_stop %d while block %d is open", idx, open)
			}
			open = -1
		case "message_delta":
			if open >= 0 || deltaAt >= 0 {
				t.Errorf("message_delta while block %d is open, or twice", open)
			}
			deltaAt = i
			d, _ := e["delta"].(map[string]any)
			stop, _ := d["stop_reason"].(string)
			if stop == "" {
				t.Errorf("message_delta without stop_reason: %s", ev.Data)
			}
			o.Stop = llm.StopReasonFromAnthropic(stop)
			u, ok := e["usage"].(map[string]any)
			if _, has := u["output_tokens"]; !ok || !has {
				t.Errorf("message_delta without usage.output_tokens: %s", ev.Data)
			}
			o.Out = gwNum(u["output_tokens"])
			if in, ok := u["input_tokens"]; ok && in != nil {
				o.In = gwNum(in)
			}
		case "message_stop":
			if i != len(evs)-1 {
				t.Errorf("message_stop is not the last event")
			}
			if deltaAt < 0 {
				t.Errorf("message_stop before message_delta")
			}
		default:
			t.Errorf("event %q: %s", ev.Name, ev.Data)
		}
	}
	if starts != 1 {
		t.Errorf("%d message_start events", starts)
	}
	if len(evs) == 0 || evs[len(evs)-1].Name != "message_stop" {
		t.Errorf("the stream does not end with message_stop: %v", names)
	}
	for i, idx := range order {
		o.Calls[i].Args = gwCompact(args[idx].String())
	}
	return o
}

// errorShape is an error answer of a dialect, decoded.
type gwErr struct {
	Status  int
	Type    string
	Message string
}

// openAIError checks {"error":{"message","type","param","code"}} (all four present) with
// that status.
func gwOpenAIError(t testing.TB, r response, status int) gwErr {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 1 || body["error"] == nil {
		t.Fatalf("not an OpenAI error: %s", r.Body)
	}
	e := body["error"]
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Errorf("OpenAI error without %q: %s", k, r.Body)
		}
	}
	msg, _ := e["message"].(string)
	typ, _ := e["type"].(string)
	if msg == "" || typ == "" {
		t.Errorf("OpenAI error without message or type: %s", r.Body)
	}
	return gwErr{Status: r.Status, Type: typ, Message: msg}
}

// anthropicError checks {"type":"error","error":{"type","message"}} with that status.
func gwAnthropicError(t testing.TB, r response, status int) gwErr {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body struct {
		Type  string            `json:"type"`
		Error map[string]string `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Type != "error" || body.Error["type"] == "" || body.Error["message"] == "" {
		t.Fatalf("not an Anthropic error: %s", r.Body)
	}
	return gwErr{Status: r.Status, Type: body.Error["type"], Message: body.Error["message"]}
}

// dialectError checks the error shape of a surface.
func gwDialectError(t testing.TB, surface string, r response, status int) gwErr {
	t.Helper()
	if surface == gwAnthropic {
		return gwAnthropicError(t, r, status)
	}
	return gwOpenAIError(t, r, status)
}

// amaError checks AmaStudio's {"error":{"message","code":<status>}}.
func gwAmaError(t testing.TB, r response, status int) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || body["error"] == nil {
		t.Fatalf("not an AmaStudio error: %s", r.Body)
	}
	msg, _ := body["error"]["message"].(string)
	if code, ok := body["error"]["code"].(float64); !ok || int(code) != status || msg == "" || len(body["error"]) != 2 {
		t.Fatalf("AmaStudio error %s, want message and code %d", r.Body, status)
	}
	return msg
}

// streamStart opens a streaming request and returns the response as soon as its headers are
// in, with the cancel that drops the connection.
func (g *gwServer) streamStart(t testing.TB, path, key string, body any) (*http.Response, *bufio.Reader, context.CancelFunc) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.ts.URL+path, bytes.NewReader(raw))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body), cancel
}

// readEvent reads one event's lines, up to its blank line.
func gwReadEvent(t testing.TB, rd *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := rd.ReadString('\n')
		b.WriteString(line)
		if line == "\n" && b.Len() > 1 {
			return b.String()
		}
		if err != nil {
			if err == io.EOF {
				t.Fatalf("the stream ended after %q", b.String())
			}
			t.Fatalf("reading the stream: %v (after %q)", err, b.String())
		}
	}
}
