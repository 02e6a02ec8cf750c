package session_test

import (
	"context"
	"errors"
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

// node is one Switchboard node of a cluster: its own store (its own connections) on the
// shared PostgreSQL, and its own engine.
type node struct {
	st  *store.Store
	eng *session.Engine
}

// newCluster starts two nodes on one PostgreSQL database with one stand-in model, a tenant
// and an agent.
func newCluster(t *testing.T, leaseTTL time.Duration) (a, b *node, up *llmtest.Server, tenant, agentID string) {
	return newClusterPoll(t, leaseTTL, 50*time.Millisecond)
}

// newClusterPoll is newCluster with the nodes' lease poll interval.
func newClusterPoll(t *testing.T, leaseTTL, poll time.Duration) (a, b *node, up *llmtest.Server, tenant, agentID string) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	up = llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(name string) *node {
		st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		eng := session.New(session.Config{Store: st, Webhooks: agent.NewWebhooks(true), Node: name, LeaseTTL: leaseTTL,
			LeasePoll: poll, Models: func(context.Context, string) (*llm.Registry, error) { return reg, nil }})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			eng.Shutdown(ctx)
		})
		return &node{st: st, eng: eng}
	}
	a, b = open("node-a"), open("node-b")
	ten, err := a.st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ag := store.NewAgent()
	ag.Name, ag.Model, ag.Instructions = "Ala", "up/m", "Be brief."
	if err := store.Create(ctx, a.st, ten.ID, ag); err != nil {
		t.Fatal(err)
	}
	return a, b, up, ten.ID, ag.ID
}

// TestSessionAnsweredByOneNode: two nodes on one PostgreSQL. While node A answers a
// session, a message to it on node B is ErrBusy (the surfaces' 409); a cancel on node B
// stops the answer on node A (the stand-in sees its request closed) and returns once the
// canceled answer is stored; then node B answers the session's next message.
func TestSessionAnsweredByOneNode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, up, tenant, agentID := newCluster(t, time.Minute)
	sess := store.NewSession()
	sess.AgentID = &agentID
	if err := a.eng.Create(ctx, tenant, sess, session.Creator{}); err != nil {
		t.Fatal(err)
	}
	onB, err := b.eng.Get(ctx, tenant, sess.ID)
	if err != nil {
		t.Fatal(err)
	}

	up.Enqueue(llmtest.Reply{Chunks: []string{"never ", "more"}, Fault: llmtest.FaultStall, FaultAfter: 2})
	started := make(chan struct{})
	var once sync.Once
	sent := make(chan error, 1)
	go func() {
		_, err := a.eng.Send(ctx, sess, session.TextInput("stall"), session.SinkFunc(func(ev *session.Event) error {
			if ev.Type == session.EventTextDelta {
				once.Do(func() { close(started) })
			}
			return nil
		}))
		sent <- err
	}()
	select {
	case <-started:
	case err := <-sent:
		t.Fatalf("node A's send ended before a delta: %v", err)
	case <-ctx.Done():
		t.Fatal("no delta on node A")
	}
	if _, err := b.eng.Send(ctx, onB, session.TextInput("me too"), nil); !errors.Is(err, session.ErrBusy) {
		t.Fatalf("a message on node B while node A answers: %v, want ErrBusy", err)
	}
	if err := b.eng.Cancel(ctx, tenant, sess.ID); err != nil {
		t.Fatalf("cancel on node B: %v", err)
	}
	select {
	case <-up.Aborted():
	case <-ctx.Done():
		t.Fatal("the upstream request of node A's answer was not closed")
	}
	if err := <-sent; err != nil {
		t.Fatalf("node A's send: %v", err)
	}
	// Cancel returned once the canceled answer was stored.
	msgs, err := b.eng.Messages(ctx, tenant, sess.ID, session.MessagePage{Limit: 10})
	if err != nil || len(msgs) != 2 || msgs[1].Status != store.MessageCanceled || msgs[1].Text() != "never " {
		t.Fatalf("messages %+v (%v)", msgs, err)
	}
	if err := b.eng.Cancel(ctx, tenant, sess.ID); !errors.Is(err, session.ErrNotAnswering) {
		t.Fatalf("cancel with nothing answered: %v", err)
	}

	// The lease went with the stored turn: node B answers the next message.
	up.Enqueue(llmtest.Reply{Text: "Hello from B."})
	onB, _ = b.eng.Get(ctx, tenant, sess.ID)
	turn, err := b.eng.Send(ctx, onB, session.TextInput("hello?"), nil)
	if err != nil || turn.Answer.Text() != "Hello from B." {
		t.Fatalf("node B's answer: %+v, %v", turn, err)
	}
}

// TestSessionLeaseOfDeadNodeExpires: a node that claimed a session and died holds it until
// its lease expires, no longer: the session is busy on every node until then, and answered
// after.
func TestSessionLeaseOfDeadNodeExpires(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, up, tenant, agentID := newCluster(t, time.Minute)
	sess := store.NewSession()
	sess.AgentID = &agentID
	if err := a.eng.Create(ctx, tenant, sess, session.Creator{}); err != nil {
		t.Fatal(err)
	}
	// The dead node's claim, as its engine made it, with a short lease.
	const ttl = time.Second
	ok, err := store.ClaimSessionAnswer(ctx, a.st, tenant, sess.ID, "node-dead", store.NewMessageID(), ttl)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	claimed := time.Now()
	for _, n := range []*node{a, b} {
		if _, err := n.eng.Send(ctx, sess, session.TextInput("anyone?"), nil); !errors.Is(err, session.ErrBusy) {
			t.Fatalf("a message to a session another node holds: %v, want ErrBusy", err)
		}
	}
	up.Respond(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "Back."} })
	for {
		turn, err := b.eng.Send(ctx, sess, session.TextInput("anyone?"), nil)
		if err == nil {
			if held := time.Since(claimed); held < ttl {
				t.Fatalf("answered %v after the claim, before its lease of %v expired", held, ttl)
			}
			if turn.Answer.Text() != "Back." {
				t.Fatalf("answer %+v", turn.Answer)
			}
			break
		}
		if !errors.Is(err, session.ErrBusy) {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the dead node's lease never expired")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestSessionLeaseWatchSparesClaimsUnderWay: messages sent one after another to a session,
// while the node's lease watch runs at every millisecond beside other answers, are all
// answered whole: a claim still under way (the row still naming the previous answer's lease)
// is not taken for a lease lost to another node.
func TestSessionLeaseWatchSparesClaimsUnderWay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _, up, tenant, agentID := newClusterPoll(t, time.Minute, time.Millisecond)
	up.Respond(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "Yes."} })
	var sessions []*store.Session
	for range 4 {
		sess := store.NewSession()
		sess.AgentID = &agentID
		if err := a.eng.Create(ctx, tenant, sess, session.Creator{}); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(sessions))
	for _, sess := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				cur, err := a.eng.Get(ctx, tenant, sess.ID)
				if err != nil {
					errs <- err
					return
				}
				turn, err := a.eng.Send(ctx, cur, session.TextInput("again?"), nil)
				if err != nil {
					errs <- err
					return
				}
				if turn.Answer.Status != store.MessageCompleted {
					errs <- errors.New("answer " + turn.Answer.Status + ": " + turn.Answer.Error)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
