package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// TestMain fails the package if a test leaves a goroutine behind: a brain that outlives its
// conversation, a stream or a tool that is never released.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// upstream is one of the two model protocols, for tests that run against both.
type upstream struct {
	name  string
	kind  llm.Kind
	start func(testing.TB) *llmtest.Server
}

var upstreams = []upstream{
	{"openai", llm.KindOpenAI, llmtest.NewOpenAI},
	{"anthropic", llm.KindAnthropic, llmtest.NewAnthropic},
}

func (u upstream) provider(t *testing.T) (*llmtest.Server, llm.Provider) {
	t.Helper()
	srv := u.start(t)
	p, err := llm.New(llm.ProviderConfig{Name: "standin", Kind: u.kind, BaseURL: srv.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, p
}

func openAI(t *testing.T) (*llmtest.Server, llm.Provider) { return upstreams[0].provider(t) }

func testAgent() *store.Agent {
	a := store.NewAgent()
	a.Name = "Front desk"
	a.Instructions = "You are the front desk of Acme. Be brief."
	a.FirstMessage = "Hello, Acme front desk."
	a.Temperature = 0.3
	return a
}

// started is a brain running on a text conversation.
type started struct {
	c    *agent.TextConversation
	done chan error
}

// start runs brain on a new text conversation; the test waits for it to end, and ends it
// (the caller leaves) if it is still running when the test is over.
func start(t *testing.T, brain agent.Brain, c *agent.TextConversation) *started {
	t.Helper()
	if c == nil {
		c = agent.NewTextConversation()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s := &started{c: c, done: make(chan error, 1)}
	go func() { s.done <- brain.Run(ctx, c) }()
	t.Cleanup(func() {
		c.Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("the brain did not stop when the caller left")
		}
		cancel()
	})
	return s
}

// wait returns the transcript once cond holds for it.
func (s *started) wait(t *testing.T, what string, cond func(agent.TextTranscript) bool) agent.TextTranscript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := s.c.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v; transcript %+v", what, err, tr)
	}
	return tr
}

// end waits for the brain to return by itself.
func (s *started) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("the brain did not end; transcript %+v", s.c.Transcript())
		return nil
	}
}

func saidCount(n int) func(agent.TextTranscript) bool {
	return func(tr agent.TextTranscript) bool { return len(tr.Said) >= n }
}

// line is a message of a model request, in neither dialect: "system: …", "user: …",
// "assistant: …", "call name {args}", "tool: result".
func lines(t *testing.T, r llmtest.Request) []string {
	t.Helper()
	var body struct {
		System   string `json:"system"`
		Messages []struct {
			Role       string          `json:"role"`
			Content    json.RawMessage `json:"content"`
			ToolCallID string          `json:"tool_call_id"`
			ToolCalls  []struct {
				Function struct{ Name, Arguments string } `json:"function"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	if err := r.Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []string
	if body.System != "" {
		out = append(out, "system: "+body.System)
	}
	for _, m := range body.Messages {
		role := m.Role
		if m.ToolCallID != "" {
			role = "tool"
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			if s != "" {
				out = append(out, role+": "+s)
			}
		} else {
			var blocks []struct {
				Type    string          `json:"type"`
				Text    string          `json:"text"`
				Name    string          `json:"name"`
				Input   json.RawMessage `json:"input"`
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			}
			if err := json.Unmarshal(m.Content, &blocks); err != nil && len(m.Content) > 0 && string(m.Content) != "null" {
				t.Fatalf("content %s: %v", m.Content, err)
			}
			for _, b := range blocks {
				switch b.Type {
				case "text":
					out = append(out, role+": "+b.Text)
				case "tool_use":
					out = append(out, "call "+b.Name+" "+string(b.Input))
				case "tool_result":
					var text []string
					for _, c := range b.Content {
						text = append(text, c.Text)
					}
					out = append(out, "tool: "+strings.Join(text, ""))
				}
			}
		}
		for _, c := range m.ToolCalls {
			out = append(out, "call "+c.Function.Name+" "+c.Function.Arguments)
		}
	}
	return out
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// A conversation with the model in both dialects: the first message, the caller's words
// sent with the instructions as system prompt, the answer spoken, the usage counted.
func TestLLMBrainConversation(t *testing.T) {
	t.Parallel()
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			srv, p := u.provider(t)
			srv.Enqueue(llmtest.Reply{Text: "We open at nine. We close at five."},
				llmtest.Reply{Text: "You're welcome.", Usage: llm.Usage{InputTokens: 40, OutputTokens: 5}})
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m-1"}), nil)
			s.wait(t, "the first message", saidCount(1))
			s.c.SendText("When are you open?")
			s.wait(t, "the answer", saidCount(2))
			s.c.SendDigits("12")
			tr := s.wait(t, "the second answer", saidCount(3))
			equalLines(t, "said", tr.Said, []string{"Hello, Acme front desk.", "We open at nine. We close at five.", "You're welcome."})
			if tr.Usage != (llm.Usage{InputTokens: 50, OutputTokens: 25}) {
				t.Errorf("usage %+v", tr.Usage)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			// The agent spoke first; the model is shown a conversation that starts with the
			// user, as Anthropic's API requires.
			want := []string{"system: You are the front desk of Acme. Be brief.", "user: [conversation started]",
				"assistant: Hello, Acme front desk.", "user: When are you open?"}
			equalLines(t, "first request", lines(t, reqs[0]), want)
			want = append(want, "assistant: We open at nine. We close at five.", "user: [keys pressed: 1 2]")
			equalLines(t, "second request", lines(t, reqs[1]), want)
			m := reqs[0].Map()
			if m["model"] != "m-1" || m["temperature"] != 0.3 || m["stream"] != true {
				t.Errorf("request %v", m)
			}
			var names []string
			for _, tl := range m["tools"].([]any) {
				tm := tl.(map[string]any)
				if f, ok := tm["function"].(map[string]any); ok {
					tm = f
				}
				names = append(names, tm["name"].(string))
			}
			// No transfer targets, no transfer_call: the model cannot be talked into one.
			equalLines(t, "tools", names, []string{"end_call", "send_dtmf"})
		})
	}
}

// speakTimes is a conversation that notes when each piece of text reached Speak.
type speakTimes struct {
	*agent.TextConversation
	mu    sync.Mutex
	times []time.Time
	parts []string
}

func (s *speakTimes) Speak(ctx context.Context, text <-chan string) (agent.Spoken, error) {
	relay := make(chan string)
	go func() {
		defer close(relay)
		for d := range text {
			s.mu.Lock()
			s.times, s.parts = append(s.times, time.Now()), append(s.parts, d)
			s.mu.Unlock()
			relay <- d
		}
	}()
	return s.TextConversation.Speak(ctx, relay)
}

// The answer reaches Speak as it is written, in order: the first words can be spoken while
// the rest is still being generated.
func TestLLMBrainStreamsIntoSpeak(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	chunks := []string{"One, ", "two, ", "three, ", "four, ", "five."}
	srv.Enqueue(llmtest.Reply{Chunks: chunks, Delay: 80 * time.Millisecond})
	a := testAgent()
	a.FirstMessage = ""
	c := &speakTimes{TextConversation: agent.NewTextConversation()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- agent.NewLLMBrain(agent.LLMBrainConfig{Agent: a, Provider: p, Model: "m"}).Run(ctx, c) }()
	c.SendText("Count to five.")
	tr, err := c.Wait(ctx, saidCount(1))
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err != nil || tr.Said[0] != "One, two, three, four, five." {
		t.Fatalf("said %q: %v", tr.Said, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	equalLines(t, "parts", c.parts, chunks)
	if spread := c.times[len(c.times)-1].Sub(c.times[0]); spread < 200*time.Millisecond {
		t.Fatalf("the text reached Speak within %s: it was not streamed", spread)
	}
}

// toolServer is a webhook tool endpoint that records what it is sent.
type toolServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newToolServer(t *testing.T, delay time.Duration, answer string) *toolServer {
	t.Helper()
	ts := &toolServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts.mu.Lock()
		ts.bodies = append(ts.bodies, string(b))
		ts.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *toolServer) received() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.bodies)
}

func orderTool(url string) *store.Tool {
	tl := store.NewTool()
	tl.ID, tl.Name, tl.Description = "tool_order", "lookup_order", "Look up an order by its number."
	tl.Parameters = map[string]any{"type": "object", "properties": map[string]any{"order_id": map[string]any{"type": "string"}}}
	tl.Webhook.URL = url
	tl.Webhook.TimeoutMS = 5000
	return tl
}

// A webhook tool the model calls runs, is recorded, and its answer goes back to the model,
// which then answers the caller; a quick tool needs no filler phrase.
func TestLLMBrainWebhookTool(t *testing.T) {
	t.Parallel()
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			srv, p := u.provider(t)
			ts := newToolServer(t, 0, `{"status":"shipped"}`)
			srv.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "lookup_order", Arguments: `{"order_id":"42"}`}}},
				llmtest.Reply{Text: "Your order has shipped."})
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m",
				Tools: []*store.Tool{orderTool(ts.URL)}, Webhooks: agent.NewWebhooks(true)}), nil)
			s.c.SendText("Where is order 42?")
			tr := s.wait(t, "the answer", saidCount(2))
			equalLines(t, "said", tr.Said, []string{"Hello, Acme front desk.", "Your order has shipped."})
			equalLines(t, "webhook bodies", ts.received(), []string{`{"order_id":"42"}`})
			if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Name != "lookup_order" || tr.ToolCalls[0].Result != `{"status":"shipped"}` || tr.ToolCalls[0].Error != "" {
				t.Fatalf("tool calls %+v", tr.ToolCalls)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			got := lines(t, reqs[1])
			equalLines(t, "second request", got[len(got)-2:], []string{`call lookup_order {"order_id":"42"}`, `tool: {"status":"shipped"}`})
			var def map[string]any
			for _, tl := range reqs[0].Map()["tools"].([]any) {
				tm := tl.(map[string]any)
				if f, ok := tm["function"].(map[string]any); ok {
					tm = f
				}
				if tm["name"] == "lookup_order" {
					def = tm
				}
			}
			if def == nil || def["description"] != "Look up an order by its number." {
				t.Fatalf("tool definition %v", def)
			}
		})
	}
}

// A tool that takes longer than the filler delay gets the filler phrase said while it runs.
func TestLLMBrainFillerForSlowTool(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	ts := newToolServer(t, 700*time.Millisecond, `{"status":"ready"}`)
	srv.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "lookup_order", Arguments: `{"order_id":"7"}`}}},
		llmtest.Reply{Text: "It's ready."})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m",
		Tools: []*store.Tool{orderTool(ts.URL)}, Webhooks: agent.NewWebhooks(true), FillerDelay: 150 * time.Millisecond}), nil)
	s.c.SendText("Is order 7 ready?")
	tr := s.wait(t, "the filler", saidCount(2))
	if tr.Said[1] != agent.DefaultFillerPhrase || len(tr.ToolCalls) != 0 {
		t.Fatalf("the filler was not said while the tool ran: %+v", tr)
	}
	tr = s.wait(t, "the answer", saidCount(3))
	equalLines(t, "said", tr.Said, []string{"Hello, Acme front desk.", "One moment.", "It's ready."})
	if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Result != `{"status":"ready"}` || tr.ToolCalls[0].Duration < 600*time.Millisecond {
		t.Fatalf("tool calls %+v", tr.ToolCalls)
	}
}

// end_call says the goodbye and hangs up.
func TestLLMBrainEndCall(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "end_call", Arguments: `{"goodbye":"Goodbye, have a nice day."}`}}})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m"}), nil)
	s.c.SendText("That's all, thanks.")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	tr := s.c.Transcript()
	if !tr.HungUp || tr.HangupReason != "agent-hangup" || tr.Said[len(tr.Said)-1] != "Goodbye, have a nice day." {
		t.Fatalf("transcript %+v", tr)
	}
	if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Name != "end_call" {
		t.Fatalf("tool calls %+v", tr.ToolCalls)
	}
}

// transfer_call transfers; a destination outside the allowed ones is refused, and the
// model is told why.
func TestLLMBrainTransferCall(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "transfer_call", Arguments: `{"to":"+19005550000"}`}}},
		llmtest.Reply{Text: "Transferring you to sales.", ToolCalls: []llmtest.ToolCall{{ID: "c2", Name: "transfer_call", Arguments: `{"to":"+15551230000"}`}}},
	)
	ag := testAgent()
	ag.TransferTargets = []string{"+15551230000"}
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: ag, Provider: p, Model: "m"}), nil)
	s.c.SendText("Sales, please.")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	tr := s.c.Transcript()
	if tr.TransferredTo != "+15551230000" || tr.HungUp {
		t.Fatalf("transcript %+v", tr)
	}
	if len(tr.ToolCalls) != 2 || !strings.Contains(tr.ToolCalls[0].Error, "not a destination") || tr.ToolCalls[1].Error != "" {
		t.Fatalf("tool calls %+v", tr.ToolCalls)
	}
	got := lines(t, srv.Requests()[1])
	if last := got[len(got)-1]; !strings.HasPrefix(last, "tool: Error: ") {
		t.Fatalf("the model was not told the transfer was refused: %q", got)
	}
	if !strings.Contains(string(srv.Requests()[0].Body), `"enum":["+15551230000"]`) {
		t.Fatalf("the allowed destinations were not offered: %s", srv.Requests()[0].Body)
	}
}

// send_dtmf plays the keys and the model goes on.
func TestLLMBrainSendDTMF(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "send_dtmf", Arguments: `{"digits":"12#"}`}}},
		llmtest.Reply{Text: "Done."})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m"}), nil)
	s.c.SendText("Press one, two, pound.")
	tr := s.wait(t, "the answer", saidCount(2))
	if tr.DTMF != "12#" || tr.Said[1] != "Done." {
		t.Fatalf("transcript %+v", tr)
	}
	got := lines(t, srv.Requests()[1])
	equalLines(t, "result", got[len(got)-1:], []string{"tool: pressed 12#"})
}

// A caller who speaks over the answer cuts it: the model is told only what was heard, then
// what the caller said.
func TestLLMBrainInterruption(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Text: "Our store opens at nine in the morning every day of the week.", Delay: 10 * time.Millisecond},
		llmtest.Reply{Text: "Sure, go ahead."})
	c := agent.NewTextConversation()
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m"}), c)
	s.wait(t, "the first message", saidCount(1))
	c.InterruptNext(3, agent.Input{Kind: agent.InputSpeech, Text: "Wait, one question."})
	c.SendText("When do you open?")
	tr := s.wait(t, "the answer to the interruption", saidCount(3))
	equalLines(t, "said", tr.Said, []string{"Hello, Acme front desk.", "Our store opens", "Sure, go ahead."})
	got := lines(t, srv.Requests()[1])
	equalLines(t, "second request", got[3:], []string{"user: When do you open?", "assistant: Our store opens", "user: Wait, one question."})
}

func failing(srv *llmtest.Server) {
	srv.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Status: http.StatusServiceUnavailable, ErrorMessage: "overloaded"}
	})
}

// A failure before anything was said is asked again; the caller hears nothing of it.
func TestLLMBrainRetriesBeforeSpeaking(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusInternalServerError},
		llmtest.Reply{Fault: llmtest.FaultMalformed, FaultAfter: 1},
		llmtest.Reply{Text: "Here I am."})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m", RetryDelay: 10 * time.Millisecond}), nil)
	s.c.SendText("Hello?")
	tr := s.wait(t, "the answer", saidCount(2))
	if tr.Said[1] != "Here I am." || len(srv.Requests()) != 3 || len(tr.Events) != 0 {
		t.Fatalf("transcript %+v after %d requests", tr, len(srv.Requests()))
	}
}

// A failure after some text was spoken is not asked again (the caller would hear it
// twice): the caller gets an apology, and the conversation goes on.
func TestLLMBrainFailureAfterSpeaking(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Chunks: []string{"Let me ", "check ", "that ", "for you."}, Fault: llmtest.FaultStreamError, FaultAfter: 3},
		llmtest.Reply{Text: "Better now."})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m", RetryDelay: 10 * time.Millisecond}), nil)
	s.c.SendText("Hello?")
	tr := s.wait(t, "the apology", saidCount(3))
	if !strings.HasPrefix(tr.Said[1], "Let me") || tr.Said[2] != agent.DefaultApology || len(srv.Requests()) != 1 {
		t.Fatalf("transcript %+v after %d requests", tr, len(srv.Requests()))
	}
	if len(tr.Events) != 1 || tr.Events[0].Type != "agent.error" {
		t.Fatalf("events %+v", tr.Events)
	}
	s.c.SendText("Again?")
	tr = s.wait(t, "the next answer", saidCount(4))
	if tr.Said[3] != "Better now." {
		t.Fatalf("said %q", tr.Said)
	}
}

// Every failure is apologised for and published; the third in a row ends the call.
func TestLLMBrainHangsUpAfterThreeFailures(t *testing.T) {
	t.Parallel()
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			srv, p := u.provider(t)
			failing(srv)
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m", RetryDelay: 5 * time.Millisecond}), nil)
			for _, say := range []string{"Hello?", "Anyone there?", "Hello??"} {
				s.c.SendText(say)
			}
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			tr := s.c.Transcript()
			equalLines(t, "said", tr.Said, []string{"Hello, Acme front desk.", agent.DefaultApology, agent.DefaultApology, agent.DefaultErrorGoodbye})
			if !tr.HungUp || tr.HangupReason != "error" || len(tr.Events) != 3 {
				t.Fatalf("transcript %+v", tr)
			}
			// Each turn was tried three times: once and two retries.
			if n := len(srv.Requests()); n != 9 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

// A caller who hangs up while the model is answering ends the brain without error, and
// the upstream request is released.
func TestLLMBrainCallerHangsUpMidAnswer(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Text: "This is a long answer that takes a while to write out.", Delay: 3 * time.Second})
	c := agent.NewTextConversation()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m"}).Run(ctx, c)
	}()
	c.SendText("Tell me everything.")
	for len(srv.Requests()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	c.Close()
	closed := time.Now()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, agent.ErrHangup) {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the brain did not end")
	}
	select {
	case <-srv.Aborted():
	case <-ctx.Done():
		t.Fatal("the upstream request was not released")
	}
	// Not waiting for the upstream's next delta, 3 s away (the bound leaves a busy machine
	// room, and is still well short of it).
	if d := time.Since(closed); d > 2*time.Second {
		t.Fatalf("the upstream request was released %s after the caller left", d)
	}
}

// A model that answers nothing leaves the caller in silence: that is published.
func TestLLMBrainEmptyAnswerIsReported(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Text: ""})
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent(), Provider: p, Model: "m"}), nil)
	s.c.SendText("Hello?")
	tr := s.wait(t, "the event", func(tr agent.TextTranscript) bool { return len(tr.Events) > 0 })
	if tr.Events[0].Type != "agent.error" || len(tr.Said) != 1 {
		t.Fatalf("transcript %+v", tr)
	}
}

// An agent without a model says so and ends the call, rather than listening forever.
func TestLLMBrainWithoutProvider(t *testing.T) {
	t.Parallel()
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: testAgent()}), nil)
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	if tr := s.c.Transcript(); tr.HangupReason != "error" || !hasEvent(tr, "agent.error") {
		t.Fatalf("transcript %+v", tr)
	}
}
