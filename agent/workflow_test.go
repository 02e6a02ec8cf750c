package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// workflow builds a workflow and checks that the store would accept it.
func workflow(t *testing.T, start string, nodes []store.Node, edges []store.Edge) *store.Workflow {
	t.Helper()
	w := &store.Workflow{Name: "test", Graph: store.Graph{Start: start, Nodes: nodes, Edges: edges}}
	if err := w.Validate(); err != nil {
		t.Fatalf("the test's workflow is not valid: %v", err)
	}
	return w
}

func when(c store.Condition) *store.Condition { return &c }

// voicemails keeps what SaveVoicemail is given.
type voicemails struct {
	mu   sync.Mutex
	recs []agent.Recording
	fail error
}

func (v *voicemails) save(_ context.Context, rec agent.Recording) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail != nil {
		return v.fail
	}
	v.recs = append(v.recs, rec)
	return nil
}

func (v *voicemails) saved() []agent.Recording {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]agent.Recording(nil), v.recs...)
}

// menu is a phone menu: welcome → gather a key → branch on it → sales (transfer),
// voicemail, or back to the menu after "not an option"; no key at all says goodbye.
func menu(t *testing.T) *store.Workflow {
	return workflow(t, "welcome", []store.Node{
		{ID: "welcome", Type: "say", Text: "Welcome to Acme, {{caller_name}}."},
		{ID: "menu", Type: "gather", Input: "dtmf", MaxDigits: 1, TimeoutMS: 200, Variable: "choice",
			Text: "Press 1 for sales or 2 to leave a message."},
		{ID: "route", Type: "branch"},
		{ID: "invalid", Type: "say", Text: "Sorry, {{choice}} is not an option."},
		{ID: "sales", Type: "transfer", To: "+15551230000", Text: "Connecting you to sales."},
		{ID: "vm", Type: "voicemail"},
		{ID: "bye", Type: "hangup", Text: "Goodbye."},
	}, []store.Edge{
		{From: "welcome", To: "menu"},
		{From: "menu", To: "bye", When: when(store.Condition{Timeout: true})},
		{From: "menu", To: "route"},
		{From: "route", To: "sales", When: when(store.Condition{Variable: "choice", Equals: "1"})},
		{From: "route", To: "vm", When: when(store.Condition{Variable: "choice", Equals: "2"})},
		{From: "route", To: "invalid", When: when(store.Condition{NoMatch: true})},
		{From: "invalid", To: "menu"},
	})
}

func TestWorkflowDTMFMenu(t *testing.T) {
	t.Parallel()
	const prompt = "Press 1 for sales or 2 to leave a message."
	cases := []struct {
		name     string
		keys     []string
		saveErr  error
		refuse   error
		said     []string
		transfer string
		reason   string
		saved    int
	}{
		{name: "sales", keys: []string{"1"}, said: []string{"Welcome to Acme, Ada.", prompt, "Connecting you to sales."}, transfer: "+15551230000"},
		{name: "sales refused", keys: []string{"1"}, refuse: errors.New("486 Busy Here"),
			said: []string{"Welcome to Acme, Ada.", prompt, "Connecting you to sales.", agent.DefaultTransferFailed}, reason: "error"},
		{name: "voicemail", keys: []string{"2"}, said: []string{"Welcome to Acme, Ada.", prompt, agent.DefaultVoicemailPrompt, agent.DefaultVoicemailThanks},
			reason: "agent-hangup", saved: 1},
		{name: "voicemail not saved", keys: []string{"2"}, saveErr: errors.New("disk full"),
			said: []string{"Welcome to Acme, Ada.", prompt, agent.DefaultVoicemailPrompt, agent.DefaultVoicemailFailed}, reason: "agent-hangup"},
		{name: "no key", said: []string{"Welcome to Acme, Ada.", prompt, "Goodbye."}, reason: "agent-hangup"},
		{name: "wrong key, then sales", keys: []string{"9", "1"},
			said: []string{"Welcome to Acme, Ada.", prompt, "Sorry, 9 is not an option.", prompt, "Connecting you to sales."}, transfer: "+15551230000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vm := &voicemails{fail: tc.saveErr}
			c := agent.NewTextConversation()
			c.TransferError = tc.refuse
			c.SendText("speech is not what the menu waits for")
			for _, k := range tc.keys {
				c.SendDigits(k)
			}
			c.SendRecording(agent.Recording{WAV: []byte("RIFF....WAVE"), Duration: 3 * time.Second})
			s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: menu(t), SaveVoicemail: vm.save,
				Variables: map[string]any{"caller_name": "Ada"}}), c)
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			tr := c.Transcript()
			equalLines(t, "said", tr.Said, tc.said)
			if tr.TransferredTo != tc.transfer || tr.HangupReason != tc.reason {
				t.Fatalf("transferred to %q, hung up %q", tr.TransferredTo, tr.HangupReason)
			}
			saved := vm.saved()
			if len(saved) != tc.saved || (tc.saved > 0 && (string(saved[0].WAV) != "RIFF....WAVE" || tr.Beeps != 1)) {
				t.Fatalf("voicemails %+v, beeps %d", saved, tr.Beeps)
			}
			if (tc.saveErr != nil || tc.refuse != nil) && !hasEvent(tr, "agent.error") {
				t.Fatalf("a lost voicemail was not reported: %+v", tr.Events)
			}
		})
	}
}

func hasEvent(tr agent.TextTranscript, typ string) bool {
	for _, e := range tr.Events {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// Keywords match whole words (or phrases) of what the caller said, in any case.
func TestWorkflowKeywords(t *testing.T) {
	t.Parallel()
	wf := workflow(t, "ask", []store.Node{
		{ID: "ask", Type: "gather", Input: "speech", Text: "Sales or support?"},
		{ID: "sales", Type: "hangup", Text: "Sales it is."},
		{ID: "support", Type: "hangup", Text: "Support it is."},
		{ID: "other", Type: "hangup", Text: "I did not get that."},
	}, []store.Edge{
		{From: "ask", To: "sales", When: when(store.Condition{Keywords: []string{"sales", "buy"}})},
		{From: "ask", To: "support", When: when(store.Condition{Keywords: []string{"support", "help desk"}})},
		{From: "ask", To: "other", When: when(store.Condition{NoMatch: true})},
	})
	for said, want := range map[string]string{
		"I'd like to BUY a lamp":                  "Sales it is.",
		"Put me through to the Help Desk, please": "Support it is.",
		"Salesforce integration":                  "I did not get that.",
		"help me, my desk broke":                  "I did not get that.",
	} {
		t.Run(said, func(t *testing.T) {
			t.Parallel()
			c := agent.NewTextConversation()
			c.SendDigits("5")
			c.SendText(said)
			s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf}), c)
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			equalLines(t, "said", c.Transcript().Said, []string{"Sales or support?", want})
		})
	}
}

// A condition with a key and words is answered by either: "press 1 or say hours".
func TestWorkflowKeyOrWord(t *testing.T) {
	t.Parallel()
	wf := workflow(t, "menu", []store.Node{
		{ID: "menu", Type: "gather", Input: "any", MaxDigits: 1, Text: "Press 1 or say hours."},
		{ID: "hours", Type: "hangup", Text: "Nine to five."},
		{ID: "other", Type: "hangup", Text: "I did not get that."},
	}, []store.Edge{
		{From: "menu", To: "hours", When: when(store.Condition{DTMF: "1", Keywords: []string{"hours"}})},
		{From: "menu", To: "other", When: when(store.Condition{NoMatch: true})},
	})
	for name, send := range map[string]func(c *agent.TextConversation){
		"key":  func(c *agent.TextConversation) { c.SendDigits("1") },
		"word": func(c *agent.TextConversation) { c.SendText("what are your hours") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := agent.NewTextConversation()
			send(c)
			s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf}), c)
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			equalLines(t, "said", c.Transcript().Said, []string{"Press 1 or say hours.", "Nine to five."})
		})
	}
}

// A tool node runs its webhook with arguments filled in from variables, keeps the JSON
// result in a variable, and a branch and later text read its fields.
func TestWorkflowToolVariables(t *testing.T) {
	t.Parallel()
	ts := newToolServer(t, 0, `{"status":"shipped","shipped_on":"May 3","items":[{"name":"a lamp \"Luxo\""}]}`)
	tl := orderTool(ts.URL)
	tl.ID = "tool_01jbq000000000000000000000"
	missing := "tool_01jbq000000000000000000001"
	nodes := func(toolID string) []store.Node {
		return []store.Node{
			{ID: "ask", Type: "gather", Input: "dtmf", MaxDigits: 8, Terminator: "#", Variable: "order_id", Text: "Your order number, then pound."},
			{ID: "look", Type: "tool", ToolID: toolID, Arguments: `{"id":"{{order_id}}","note":"{{note}}"}`, Variable: "order"},
			{ID: "check", Type: "branch"},
			{ID: "shipped", Type: "hangup", Text: "Order {{order_id}} with {{order.items.0.name}} shipped on {{ order.shipped_on }}."},
			{ID: "other", Type: "hangup", Text: "Order {{order_id}}: {{order.status}}{{order.error}}."},
			{ID: "failed", Type: "hangup", Text: "I can't look orders up right now."},
		}
	}
	edges := []store.Edge{
		{From: "ask", To: "look"},
		{From: "look", To: "failed", When: when(store.Condition{NoMatch: true})},
		{From: "look", To: "check"},
		{From: "check", To: "shipped", When: when(store.Condition{Variable: "order.status", Equals: "SHIPPED"})},
		{From: "check", To: "other"},
	}
	t.Run("found", func(t *testing.T) {
		t.Parallel()
		c := agent.NewTextConversation()
		c.SendDigits("123#")
		s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: workflow(t, "ask", nodes(tl.ID), edges),
			Tools: []*store.Tool{tl}, Webhooks: agent.NewWebhooks(true), Variables: map[string]any{"note": `say "hi"`}}), c)
		if err := s.end(t); err != nil {
			t.Fatal(err)
		}
		tr := c.Transcript()
		equalLines(t, "said", tr.Said, []string{"Your order number, then pound.", `Order 123 with a lamp "Luxo" shipped on May 3.`})
		equalLines(t, "webhook bodies", ts.received(), []string{`{"id":"123","note":"say \"hi\""}`})
		if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Name != "lookup_order" || !strings.Contains(tr.ToolCalls[0].Result, "shipped") {
			t.Fatalf("tool calls %+v", tr.ToolCalls)
		}
	})
	t.Run("tool missing", func(t *testing.T) {
		t.Parallel()
		c := agent.NewTextConversation()
		c.SendDigits("9")
		s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: workflow(t, "ask", nodes(missing), edges),
			Tools: []*store.Tool{tl}, Webhooks: agent.NewWebhooks(true)}), c)
		if err := s.end(t); err != nil {
			t.Fatal(err)
		}
		tr := c.Transcript()
		equalLines(t, "said", tr.Said, []string{"Your order number, then pound.", "I can't look orders up right now."})
		if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Error == "" {
			t.Fatalf("tool calls %+v", tr.ToolCalls)
		}
	})
}

// A graph that loops without the caller is stopped after MaxSteps and the call ends with
// an error.
func TestWorkflowLoopProtection(t *testing.T) {
	t.Parallel()
	wf := workflow(t, "a", []store.Node{
		{ID: "a", Type: "say", Text: "Ping."},
		{ID: "b", Type: "branch"},
	}, []store.Edge{{From: "a", To: "b"}, {From: "b", To: "a"}})
	c := agent.NewTextConversation()
	s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf}), c)
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	tr := c.Transcript()
	if len(tr.Said) != agent.DefaultMaxSteps/2 || tr.HangupReason != "error" || !hasEvent(tr, "agent.error") {
		t.Fatalf("said %d times, hung up %q, events %d", len(tr.Said), tr.HangupReason, len(tr.Events))
	}
}

// An llm node answers the caller with the node's instructions; without a model it says
// the fallback and takes the no_match edge, as a knowledge node without a knowledge service does.
func TestWorkflowLLMAndKnowledgeNodes(t *testing.T) {
	t.Parallel()
	wf := func(t *testing.T) *store.Workflow {
		return workflow(t, "ask", []store.Node{
			{ID: "ask", Type: "gather", Input: "speech", Text: "What would you like to know?"},
			{ID: "answer", Type: "llm", Instructions: "Answer questions about opening hours.", Variable: "answer"},
			{ID: "kb", Type: "knowledge", KnowledgeBaseID: "kb_0hours00000000000000000000"},
			{ID: "bye", Type: "hangup", Text: "Goodbye."},
			{ID: "sorry", Type: "hangup", Text: "Sorry about that."},
		}, []store.Edge{
			{From: "ask", To: "answer"},
			{From: "answer", To: "sorry", When: when(store.Condition{NoMatch: true})},
			{From: "answer", To: "kb"},
			{From: "kb", To: "sorry", When: when(store.Condition{NoMatch: true})},
			{From: "kb", To: "bye"},
		})
	}
	t.Run("with a model", func(t *testing.T) {
		t.Parallel()
		srv, p := openAI(t)
		srv.Enqueue(llmtest.Reply{Text: "We open at nine."})
		a := testAgent()
		c := agent.NewTextConversation()
		c.SendText("When do you open?")
		s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf(t), Agent: a, Provider: p, Model: "m"}), c)
		if err := s.end(t); err != nil {
			t.Fatal(err)
		}
		tr := c.Transcript()
		equalLines(t, "said", tr.Said, []string{"What would you like to know?", "We open at nine.", agent.DefaultKnowledgeUnavailable, "Sorry about that."})
		equalLines(t, "request", lines(t, srv.Last()), []string{
			"system: " + a.Instructions + "\n\nAnswer questions about opening hours.",
			"user: [conversation started]", "assistant: What would you like to know?", "user: When do you open?"})
		if tr.Usage.OutputTokens == 0 {
			t.Fatalf("usage %+v", tr.Usage)
		}
	})
	t.Run("without a model", func(t *testing.T) {
		t.Parallel()
		c := agent.NewTextConversation()
		c.SendText("When do you open?")
		s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf(t)}), c)
		if err := s.end(t); err != nil {
			t.Fatal(err)
		}
		equalLines(t, "said", c.Transcript().Said, []string{"What would you like to know?", agent.DefaultLLMFallback, "Sorry about that."})
	})
}

// An intent edge is chosen by the model's reading of what the caller said.
func TestWorkflowIntent(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Text: "Billing."})
	wf := workflow(t, "ask", []store.Node{
		{ID: "ask", Type: "gather", Input: "speech", Text: "How can I help?"},
		{ID: "sales", Type: "hangup", Text: "Sales."},
		{ID: "billing", Type: "hangup", Text: "Billing."},
	}, []store.Edge{
		{From: "ask", To: "sales", When: when(store.Condition{Intent: "sales"})},
		{From: "ask", To: "billing", When: when(store.Condition{Intent: "billing"})},
	})
	c := agent.NewTextConversation()
	c.SendText("I was charged twice this month")
	s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf, Provider: p, Model: "m"}), c)
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "said", c.Transcript().Said, []string{"How can I help?", "Billing."})
	if reqs := srv.Requests(); len(reqs) != 1 || !strings.Contains(lines(t, reqs[0])[0], "sales, billing") {
		t.Fatalf("requests %d: %q", len(reqs), lines(t, srv.Last()))
	}
}

// A prompt the caller answers over is cut short, and the answer is the gather's input.
func TestWorkflowGatherPromptInterrupted(t *testing.T) {
	t.Parallel()
	wf := workflow(t, "menu", []store.Node{
		{ID: "menu", Type: "gather", Input: "dtmf", MaxDigits: 1, Text: "For sales press 1, for support press 2, for anything else stay on the line."},
		{ID: "support", Type: "hangup", Text: "Support."},
	}, []store.Edge{{From: "menu", To: "support", When: when(store.Condition{DTMF: "2"})}})
	c := agent.NewTextConversation()
	c.InterruptNext(4, agent.Input{Kind: agent.InputDTMF, Digits: "2"})
	s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf}), c)
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "said", c.Transcript().Said, []string{"For sales press 1,", "Support."})
}
