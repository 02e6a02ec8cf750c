package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rig is an engine on a real store with a stand-in model.
type rig struct {
	st     *store.Store
	up     *llmtest.Server
	eng    *session.Engine
	tenant string
	agent  *store.Agent
	events *recorder
}

type recorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *recorder) PublishSession(_ context.Context, tenantID string, topics []string, typ string, _ any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range topics {
		r.evs = append(r.evs, typ+"@"+t)
	}
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e == s {
			return true
		}
	}
	return false
}

func eachDialect(t *testing.T, f func(t *testing.T, r *rig)) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, newRig(t, d))
		})
	}
}

func newRig(t *testing.T, d store.Dialect) *rig {
	t.Helper()
	ctx := context.Background()
	opts := store.Options{DataDir: t.TempDir()}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k",
		Prices: map[string]llm.Price{"m": {InputPerMTok: 1, OutputPerMTok: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	ag := store.NewAgent()
	ag.Name, ag.Model, ag.Instructions = "Ala", "up/m", "Be brief."
	if err := store.Create(ctx, st, ten.ID, ag); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	eng := session.New(session.Config{Store: st, Webhooks: agent.NewWebhooks(true), Publisher: rec,
		Models: func(context.Context, string) (*llm.Registry, error) { return reg, nil }})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	return &rig{st: st, up: up, eng: eng, tenant: ten.ID, agent: ag, events: rec}
}

func (r *rig) session(t *testing.T) *store.Session {
	t.Helper()
	s := store.NewSession()
	s.AgentID, s.Label = &r.agent.ID, "test"
	if err := r.eng.Create(context.Background(), r.tenant, s, session.Creator{KeyID: "key_x"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEngineAnswersWithToolsAndStoresTheTurn(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"temp":21}`))
		}))
		defer hook.Close()
		tool := store.NewTool()
		tool.Name, tool.Description, tool.Webhook.URL = "weather", "Weather", hook.URL
		if err := store.Create(ctx, r.st, r.tenant, tool); err != nil {
			t.Fatal(err)
		}
		r.agent.ToolIDs = []string{tool.ID}
		if err := store.Update(ctx, r.st, r.agent); err != nil {
			t.Fatal(err)
		}
		sess := r.session(t)
		r.up.Enqueue(
			llmtest.Reply{Text: "Let me look. ", ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "weather", Arguments: `{"city":"Oslo"}`}}},
			llmtest.Reply{Text: "It is 21 degrees."},
		)
		var types []session.EventType
		turn, err := r.eng.Send(ctx, sess, session.TextInput("Weather in Oslo?"), session.SinkFunc(func(ev *session.Event) error {
			types = append(types, ev.Type)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := turn.Answer.Text(); got != "Let me look. It is 21 degrees." {
			t.Fatalf("answer %q", got)
		}
		if turn.Answer.Status != store.MessageCompleted || turn.Answer.FinishReason != session.FinishStop {
			t.Fatalf("answer %+v", turn.Answer)
		}
		if types[0] != session.EventStart || types[len(types)-1] != session.EventFinish {
			t.Fatalf("events %v", types)
		}
		msgs, err := r.eng.Messages(ctx, r.tenant, sess.ID, session.MessagePage{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 2 || msgs[0].Role != "user" || msgs[1].Role != "assistant" || len(msgs[1].Parts) != 4 {
			t.Fatalf("messages %+v", msgs)
		}
		// The second turn is made over the stored history, tool call and result included.
		r.up.Enqueue(llmtest.Reply{Text: "Bye."})
		if _, err := r.eng.Send(ctx, sess, session.TextInput("Thanks"), nil); err != nil {
			t.Fatal(err)
		}
		body := r.up.Last().Map()
		if n := len(body["messages"].([]any)); n != 6 { // system, user, assistant+call, tool, assistant, user
			t.Fatalf("history sent: %d messages: %s", n, r.up.Last().Body)
		}
		got, _ := r.eng.Get(ctx, r.tenant, sess.ID)
		if got.MessageCount != 4 || got.CostUSD <= 0 {
			t.Fatalf("session %+v", got)
		}
		if !r.events.has("session.created@session:"+sess.ID) || !r.events.has("session.message@agent:"+r.agent.ID) {
			t.Fatalf("events %v", r.events.evs)
		}
	})
}

func TestEngineStoresAFailedAnswer(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sess := r.session(t)
		r.up.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "bad things"})
		turn, err := r.eng.Send(ctx, sess, session.TextInput("hi"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if turn.Answer.Status != store.MessageFailed || turn.Answer.Error == "" {
			t.Fatalf("answer %+v", turn.Answer)
		}
		msgs, _ := r.eng.Messages(ctx, r.tenant, sess.ID, session.MessagePage{Limit: 10})
		if len(msgs) != 2 || msgs[1].Status != store.MessageFailed {
			t.Fatalf("messages %+v", msgs)
		}
	})
}

func TestEngineEndCallClosesTheSession(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sess := r.session(t)
		r.up.Enqueue(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "e1", Name: "end_call", Arguments: `{"goodbye":"Goodbye!"}`}}})
		turn, err := r.eng.Send(ctx, sess, session.TextInput("bye"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !turn.Closed || turn.Answer.FinishReason != session.FinishEndCall || turn.Answer.Text() != "Goodbye!" {
			t.Fatalf("turn %+v %+v", turn, turn.Answer)
		}
		got, _ := r.eng.Get(ctx, r.tenant, sess.ID)
		if got.Status != store.SessionClosed {
			t.Fatalf("status %s", got.Status)
		}
		if _, err := r.eng.Send(ctx, got, session.TextInput("again"), nil); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("send to closed: %v", err)
		}
	})
}

func TestEngineDisconnectKeepsTheAnswerAndCancelStopsUpstream(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sess := r.session(t)
		// The client leaves after the first delta; the stand-in goes on and the answer is
		// stored whole.
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"one ", "two ", "three"}, Delay: 50 * time.Millisecond})
		reqCtx, leave := context.WithCancel(ctx)
		_, err := r.eng.Send(reqCtx, sess, session.TextInput("count"), session.SinkFunc(func(ev *session.Event) error {
			if ev.Type == session.EventTextDelta {
				leave()
			}
			return nil
		}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("send: %v", err)
		}
		if _, err := r.eng.Send(ctx, sess, session.TextInput("again"), nil); !errors.Is(err, session.ErrBusy) {
			t.Fatalf("second message while answering: %v", err)
		}
		for r.eng.Answering(sess.ID) {
			select {
			case <-ctx.Done():
				t.Fatal("answer never stored")
			case <-time.After(10 * time.Millisecond):
			}
		}
		msgs, _ := r.eng.Messages(ctx, r.tenant, sess.ID, session.MessagePage{Limit: 10})
		if len(msgs) != 2 || msgs[1].Text() != "one two three" || msgs[1].Status != store.MessageCompleted {
			t.Fatalf("messages %+v", msgs)
		}
		// A stalled answer canceled: the stand-in sees its request closed.
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"never ", "more"}, Fault: llmtest.FaultStall, FaultAfter: 2})
		started := make(chan struct{})
		var once sync.Once
		go func() {
			_, _ = r.eng.Send(ctx, sess, session.TextInput("stall"), session.SinkFunc(func(ev *session.Event) error {
				if ev.Type == session.EventTextDelta {
					once.Do(func() { close(started) })
				}
				return nil
			}))
		}()
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("no delta")
		}
		if err := r.eng.Cancel(ctx, r.tenant, sess.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.up.Aborted():
		case <-ctx.Done():
			t.Fatal("upstream request not closed")
		}
		msgs, _ = r.eng.Messages(ctx, r.tenant, sess.ID, session.MessagePage{Cursor: msgs[1].ID, Limit: 10})
		if len(msgs) != 2 || msgs[1].Status != store.MessageCanceled || msgs[1].Text() != "never " {
			t.Fatalf("messages %+v", msgs)
		}
	})
}

// A workflow agent answers a session as it answers a call: its graph keeps its place from
// one message to the next, keys and words are inputs, and its end closes the session.
func TestEngineWorkflowAgent(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		when := func(c store.Condition) *store.Condition { return &c }
		wf := &store.Workflow{Name: "menu", Graph: store.Graph{Start: "welcome", Nodes: []store.Node{
			{ID: "welcome", Type: "say", Text: "Welcome to Acme."},
			{ID: "menu", Type: "gather", Input: "any", MaxDigits: 1, Variable: "choice", Text: "Press 1 or say hours, or say bye."},
			{ID: "hours", Type: "say", Text: "We open at nine."},
			{ID: "ask", Type: "llm", Instructions: "Answer questions about Acme."},
			{ID: "bye", Type: "hangup", Text: "Goodbye."},
		}, Edges: []store.Edge{
			{From: "welcome", To: "menu"},
			{From: "menu", To: "hours", When: when(store.Condition{DTMF: "1"})},
			{From: "menu", To: "hours", When: when(store.Condition{Keywords: []string{"hours"}})},
			{From: "menu", To: "bye", When: when(store.Condition{Keywords: []string{"bye"}})},
			{From: "menu", To: "ask", When: when(store.Condition{Keywords: []string{"question"}})},
			{From: "ask", To: "menu"},
			{From: "menu", To: "menu", When: when(store.Condition{NoMatch: true})},
			{From: "hours", To: "menu"},
		}}}
		if err := store.Create(ctx, r.st, r.tenant, wf); err != nil {
			t.Fatal(err)
		}
		r.agent.WorkflowID = &wf.ID
		if err := store.Update(ctx, r.st, r.agent); err != nil {
			t.Fatal(err)
		}
		sess := r.session(t)
		send := func(text string) *session.Turn {
			t.Helper()
			cur, err := r.eng.Get(ctx, r.tenant, sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			turn, err := r.eng.Send(ctx, cur, session.TextInput(text), nil)
			if err != nil {
				t.Fatal(err)
			}
			return turn
		}
		if got := send("hello").Answer.Text(); got != "Welcome to Acme.\nPress 1 or say hours, or say bye.\nPress 1 or say hours, or say bye." {
			t.Fatalf("first answer %q", got)
		}
		if got := send("1").Answer.Text(); got != "We open at nine.\nPress 1 or say hours, or say bye." {
			t.Fatalf("keys answer %q", got)
		}
		if got := send("what are your hours").Answer.Text(); got != "We open at nine.\nPress 1 or say hours, or say bye." {
			t.Fatalf("words answer %q", got)
		}
		// An llm node answers with the agent's model, streamed into the message.
		r.up.Enqueue(llmtest.Reply{Chunks: []string{"We sell ", "anvils."}})
		var deltas []string
		cur, _ := r.eng.Get(ctx, r.tenant, sess.ID)
		turn, err := r.eng.Send(ctx, cur, session.TextInput("a question"), session.SinkFunc(func(ev *session.Event) error {
			if ev.Type == session.EventTextDelta {
				deltas = append(deltas, ev.Text)
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := turn.Answer.Text(); got != "We sell anvils.\nPress 1 or say hours, or say bye." || len(deltas) != 3 {
			t.Fatalf("llm node answer %q, deltas %q", got, deltas)
		}
		last := send("bye")
		if last.Answer.Text() != "Goodbye." || !last.Closed || last.Answer.FinishReason != session.FinishEndCall {
			t.Fatalf("last turn %+v %q", last, last.Answer.Text())
		}
	})
}
