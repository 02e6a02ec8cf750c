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
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// shelf is a small in-memory knowledge: chunks found by the words they share with the
// query, the way a lexical index would rank them, and every search it was asked.
type shelf struct {
	chunks []knowledge.Hit
	fail   error
	// block makes a search wait for its context to end.
	block bool

	mu       sync.Mutex
	searches []shelfSearch
}

type shelfSearch struct {
	tenantID string
	bases    []string
	query    string
	limit    int
}

func (s *shelf) Search(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]knowledge.Hit, error) {
	s.mu.Lock()
	s.searches = append(s.searches, shelfSearch{tenantID, append([]string(nil), baseIDs...), query, limit})
	s.mu.Unlock()
	if s.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.fail != nil {
		return nil, s.fail
	}
	words := strings.Fields(strings.ToLower(strings.Trim(query, "?.!")))
	var hits []knowledge.Hit
	for _, c := range s.chunks {
		found := false
		for _, b := range baseIDs {
			found = found || b == c.BaseID
		}
		if !found {
			continue
		}
		score := 0.0
		for _, w := range words {
			if len(w) > 3 && strings.Contains(strings.ToLower(c.Text), w) {
				score++
			}
		}
		if score > 0 {
			c.Score = score
			hits = append(hits, c)
		}
	}
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && hits[j].Score > hits[j-1].Score; j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits, nil
}

func (s *shelf) asked() []shelfSearch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shelfSearch(nil), s.searches...)
}

// The bases of the tests' knowledge (IDs as the store makes them).
const (
	kbFAQ   = "kb_0faq0000000000000000000000"
	kbOther = "kb_0other00000000000000000000"
)

const (
	hoursText  = "The Acme office opens at nine in the morning and closes at five in the afternoon, Monday to Friday."
	refundText = "Refunds are paid within fourteen days of the returned parcel reaching the warehouse."
)

func acmeShelf() *shelf {
	return &shelf{chunks: []knowledge.Hit{
		{BaseID: kbFAQ, DocumentID: "doc_faq", DocumentName: "faq.md", ChunkID: "chk_hours", HeadingPath: []string{"Visiting", "Opening hours"}, Text: hoursText},
		{BaseID: kbFAQ, DocumentID: "doc_faq", DocumentName: "faq.md", ChunkID: "chk_refunds", HeadingPath: []string{"Refunds"}, Text: refundText},
		{BaseID: kbOther, DocumentID: "doc_x", DocumentName: "other.md", ChunkID: "chk_x", Text: "The office of another tenant opens at noon."},
	}}
}

func knowledgeAgent(mode string) *store.Agent {
	a := testAgent()
	a.TenantID = "ten_acme"
	a.KnowledgeBaseIDs = []string{kbFAQ}
	a.Knowledge.Mode = mode
	return a
}

// In auto mode the chunks that match the caller's words are in the model's context, cited
// by document, before the model is asked: one request, no tool round trip. The search is in
// the transcript with the chunk it found and its time, and published as an event.
func TestLLMBrainKnowledgeAuto(t *testing.T) {
	t.Parallel()
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			srv, p := u.provider(t)
			srv.Enqueue(llmtest.Reply{Text: "We open at nine."})
			kb := acmeShelf()
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: knowledgeAgent(""), Provider: p, Model: "m", Knowledge: kb}), nil)
			s.wait(t, "the first message", saidCount(1))
			s.c.SendText("When does the office open?")
			tr := s.wait(t, "the answer", saidCount(2))
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d model requests, want 1", len(reqs))
			}
			system := lines(t, reqs[0])[0]
			for _, want := range []string{"You are the front desk of Acme.", "faq.md › Visiting › Opening hours", hoursText} {
				if !strings.Contains(system, want) {
					t.Errorf("the system prompt lacks %q:\n%s", want, system)
				}
			}
			if strings.Contains(system, "another tenant") {
				t.Errorf("a base the agent does not have was searched:\n%s", system)
			}
			if got := kb.asked(); len(got) != 1 || got[0].tenantID != "ten_acme" || got[0].query != "When does the office open?" ||
				len(got[0].bases) != 1 || got[0].bases[0] != kbFAQ || got[0].limit != store.DefaultKnowledgeLimit {
				t.Errorf("searches %+v", got)
			}
			if len(tr.Knowledge) != 1 {
				t.Fatalf("retrievals %+v", tr.Knowledge)
			}
			r := tr.Knowledge[0]
			if r.Source != agent.RetrievalAuto || r.Query != "When does the office open?" || len(r.Hits) != 1 ||
				r.Hits[0].ChunkID != "chk_hours" || r.Hits[0].DocumentName != "faq.md" || r.Hits[0].Score <= 0 || r.DurationMS < 0 || r.Error != "" {
				t.Errorf("retrieval %+v", r)
			}
			if !hasEvent(tr, agent.EventKnowledge) {
				t.Errorf("no %s event: %+v", agent.EventKnowledge, tr.Events)
			}
			// The chunks are the turn's: the history the next turn is made over does not keep them.
			srv.Enqueue(llmtest.Reply{Text: "Goodbye."})
			s.c.SendText("Thanks a lot")
			s.wait(t, "the second answer", saidCount(3))
			if next := lines(t, srv.Requests()[1]); strings.Contains(strings.Join(next, "\n"), hoursText) {
				t.Errorf("the chunks of the last turn are still in the context: %q", next)
			}
		})
	}
}

// In tool mode the model is offered knowledge_search, and what it finds comes back to it as
// the tool's result, cited; nothing is searched before the model asks.
func TestLLMBrainKnowledgeTool(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: agent.ToolKnowledgeSearch, Arguments: `{"query":"refunds returned parcel"}`}}},
		llmtest.Reply{Text: "Refunds take up to fourteen days."},
	)
	kb := acmeShelf()
	s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: knowledgeAgent(store.KnowledgeTool), Provider: p, Model: "m", Knowledge: kb}), nil)
	s.wait(t, "the first message", saidCount(1))
	s.c.SendText("How long does a refund take?")
	tr := s.wait(t, "the answer", saidCount(2))
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model requests, want 2", len(reqs))
	}
	if strings.Contains(lines(t, reqs[0])[0], refundText) {
		t.Error("tool mode put the chunks in the context before the model asked")
	}
	var tools []string
	for _, tl := range reqs[0].Map()["tools"].([]any) {
		tools = append(tools, tl.(map[string]any)["function"].(map[string]any)["name"].(string))
	}
	if !strings.Contains(strings.Join(tools, " "), agent.ToolKnowledgeSearch) {
		t.Fatalf("tools offered %v", tools)
	}
	second := strings.Join(lines(t, reqs[1]), "\n")
	if !strings.Contains(second, "tool: [1] faq.md › Refunds\n"+refundText) {
		t.Fatalf("the tool's result is not the cited chunk:\n%s", second)
	}
	if len(tr.Knowledge) != 1 || tr.Knowledge[0].Source != agent.RetrievalTool || tr.Knowledge[0].Query != "refunds returned parcel" ||
		tr.Knowledge[0].Hits[0].ChunkID != "chk_refunds" {
		t.Fatalf("retrievals %+v", tr.Knowledge)
	}
	if len(tr.ToolCalls) != 1 || tr.ToolCalls[0].Name != agent.ToolKnowledgeSearch || tr.ToolCalls[0].Error != "" {
		t.Fatalf("tool calls %+v", tr.ToolCalls)
	}
}

// A search that fails or hangs costs the turn its documents, not its answer: the caller is
// answered, the failure is an event and in the transcript, and a hung search is given up
// after the knowledge timeout.
func TestLLMBrainKnowledgeFailureAnswersAnyway(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		kb    *shelf
		error string
	}{
		{"failing", &shelf{fail: errors.New("index unavailable")}, "index unavailable"},
		{"hung", &shelf{block: true}, "took longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, p := openAI(t)
			srv.Enqueue(llmtest.Reply{Text: "Let me think. We open at nine."})
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: knowledgeAgent(store.KnowledgeAuto), Provider: p, Model: "m",
				Knowledge: tc.kb, KnowledgeTimeout: 100 * time.Millisecond}), nil)
			s.wait(t, "the first message", saidCount(1))
			s.c.SendText("When do you open?")
			tr := s.wait(t, "the answer", saidCount(2))
			if len(tr.Knowledge) != 1 || !strings.Contains(tr.Knowledge[0].Error, tc.error) || len(tr.Knowledge[0].Hits) != 0 {
				t.Fatalf("retrievals %+v", tr.Knowledge)
			}
			if !hasEvent(tr, "agent.error") {
				t.Errorf("no agent.error event: %+v", tr.Events)
			}
			if sys := lines(t, srv.Requests()[0])[0]; sys != "system: You are the front desk of Acme. Be brief." {
				t.Errorf("system prompt %q", sys)
			}
		})
	}
}

// Keys pressed are not searched for, an agent without bases or in mode off searches nothing,
// and a brain without a searcher works as before.
func TestLLMBrainKnowledgeNotUsed(t *testing.T) {
	t.Parallel()
	noBases := knowledgeAgent(store.KnowledgeAuto)
	noBases.KnowledgeBaseIDs = nil
	for _, tc := range []struct {
		name  string
		agent *store.Agent
		send  func(*agent.TextConversation)
	}{
		{"keys", knowledgeAgent(store.KnowledgeAuto), func(c *agent.TextConversation) { c.SendDigits("1") }},
		{"no bases", noBases, func(c *agent.TextConversation) { c.SendText("When do you open?") }},
		{"off", knowledgeAgent(store.KnowledgeOff), func(c *agent.TextConversation) { c.SendText("When do you open?") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, p := openAI(t)
			srv.Enqueue(llmtest.Reply{Text: "Hello."})
			kb := acmeShelf()
			s := start(t, agent.NewLLMBrain(agent.LLMBrainConfig{Agent: tc.agent, Provider: p, Model: "m", Knowledge: kb}), nil)
			s.wait(t, "the first message", saidCount(1))
			tc.send(s.c)
			tr := s.wait(t, "the answer", saidCount(2))
			if n := len(kb.asked()); n != 0 || len(tr.Knowledge) != 0 {
				t.Fatalf("%d searches, retrievals %+v", n, tr.Knowledge)
			}
			if strings.Contains(string(srv.Requests()[0].Body), agent.ToolKnowledgeSearch) {
				t.Fatal("knowledge_search offered")
			}
		})
	}
}

// faqFlow asks what the caller wants to know, looks it up in kb_faq and reads out what it
// found, or says so and offers voicemail when there is nothing.
func faqFlow(t *testing.T, node store.Node) *store.Workflow {
	node.ID, node.Type, node.KnowledgeBaseID = "lookup", "knowledge", kbFAQ
	return workflow(t, "ask", []store.Node{
		{ID: "ask", Type: "gather", Input: "speech", Text: "What would you like to know?"},
		node,
		{ID: "more", Type: "hangup", Text: "Anything else, call again. Goodbye."},
		{ID: "nothing", Type: "hangup", Text: "I have nothing on that. Goodbye."},
	}, []store.Edge{
		{From: "ask", To: "lookup"},
		{From: "lookup", To: "more"},
		{From: "lookup", To: "nothing", When: when(store.Condition{NoMatch: true})},
	})
}

// The workflow knowledge node searches its base with the caller's words, reads out the best
// chunk and leaves by the found edge; with nothing found it leaves by no_match.
func TestWorkflowKnowledgeNode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		node   store.Node
		words  string
		said   []string
		query  string
		hitIDs []string
	}{
		{name: "found", words: "When does the office open?", query: "When does the office open?", hitIDs: []string{"chk_hours"},
			said: []string{"What would you like to know?", hoursText, "Anything else, call again. Goodbye."}},
		{name: "not found", words: "Do you sell bicycles?", query: "Do you sell bicycles?", hitIDs: []string{},
			said: []string{"What would you like to know?", "I have nothing on that. Goodbye."}},
		{name: "not found, the node's own words", words: "Do you sell bicycles?", query: "Do you sell bicycles?", hitIDs: []string{},
			node: store.Node{Text: "Sorry, I don't know about {{lookup.query}}."},
			said: []string{"What would you like to know?", "Sorry, I don't know about Do you sell bicycles?.", "I have nothing on that. Goodbye."}},
		{name: "query template", words: "refunds please", node: store.Node{Query: "how are {{topic}} paid for a returned parcel"},
			query: "how are refunds paid for a returned parcel", hitIDs: []string{"chk_refunds"},
			said: []string{"What would you like to know?", refundText, "Anything else, call again. Goodbye."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kb := acmeShelf()
			wf := faqFlow(t, tc.node)
			wf.TenantID = "ten_acme"
			s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf, Knowledge: kb,
				Variables: map[string]any{"topic": "refunds"}}), nil)
			s.wait(t, "the question", saidCount(1))
			s.c.SendText(tc.words)
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			tr := s.c.Transcript()
			equalLines(t, "said", tr.Said, tc.said)
			asked := kb.asked()
			if len(asked) != 1 || asked[0].query != tc.query || asked[0].tenantID != "ten_acme" || len(asked[0].bases) != 1 || asked[0].bases[0] != kbFAQ {
				t.Fatalf("searches %+v", asked)
			}
			if len(tr.Knowledge) != 1 || tr.Knowledge[0].Source != agent.RetrievalWorkflow || tr.Knowledge[0].Node != "lookup" {
				t.Fatalf("retrievals %+v", tr.Knowledge)
			}
			var ids []string
			for _, h := range tr.Knowledge[0].Hits {
				ids = append(ids, h.ChunkID)
			}
			equalLines(t, "chunks found", ids, tc.hitIDs)
		})
	}
}

// A knowledge node with instructions has the model answer from what it found: the model sees
// the chunks and the caller's question; the caller hears the model.
func TestWorkflowKnowledgeNodeAnswersWithTheModel(t *testing.T) {
	t.Parallel()
	srv, p := openAI(t)
	srv.Enqueue(llmtest.Reply{Text: "We are open nine to five on weekdays."})
	wf := faqFlow(t, store.Node{Instructions: "Answer in one short sentence."})
	s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: wf, Provider: p, Model: "m", Knowledge: acmeShelf()}), nil)
	s.wait(t, "the question", saidCount(1))
	s.c.SendText("When does the office open?")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "said", s.c.Transcript().Said, []string{"What would you like to know?", "We are open nine to five on weekdays.", "Anything else, call again. Goodbye."})
	req := strings.Join(lines(t, srv.Requests()[0]), "\n")
	for _, want := range []string{"Answer in one short sentence.", hoursText, "faq.md › Visiting › Opening hours", "user: When does the office open?"} {
		if !strings.Contains(req, want) {
			t.Errorf("the model's request lacks %q:\n%s", want, req)
		}
	}
}

// Without a searcher the node says knowledge is not available and leaves by no_match; a
// failing search says the same.
func TestWorkflowKnowledgeNodeUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kb   agent.KnowledgeSearcher
	}{{"no searcher", nil}, {"failing", &shelf{fail: errors.New("index unavailable")}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, agent.NewWorkflowBrain(agent.WorkflowBrainConfig{Workflow: faqFlow(t, store.Node{}), Knowledge: tc.kb}), nil)
			s.wait(t, "the question", saidCount(1))
			s.c.SendText("When does the office open?")
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			equalLines(t, "said", s.c.Transcript().Said, []string{"What would you like to know?", agent.DefaultKnowledgeUnavailable, "I have nothing on that. Goodbye."})
		})
	}
}
