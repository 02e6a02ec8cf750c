package session_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// TestEngineAnswersWithAVersionAndCloses: an input with a Version is answered by that
// version of the agent (its instructions and tools, not the stored agent's), and an input
// with Close closes the session with its turn: stored closed, with both messages counted,
// session.closed published, and no further message taken.
func TestEngineAnswersWithAVersionAndCloses(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		published := *r.agent
		published.Instructions, published.ToolIDs = "Speak like a pirate.", []string{}
		sess := r.session(t)
		r.up.Enqueue(llmtest.Reply{Text: "Arr."})
		turn, err := r.eng.Send(ctx, sess, session.Input{Parts: session.TextInput("Hi").Parts,
			Version: &session.Version{Agent: &published}, Close: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !turn.Closed || turn.Answer.Status != store.MessageCompleted || turn.Answer.Text() != "Arr." {
			t.Fatalf("turn %+v %+v", turn, turn.Answer)
		}
		if body := string(r.up.Last().Body); !strings.Contains(body, "Speak like a pirate.") || strings.Contains(body, "Be brief.") {
			t.Fatalf("the model was asked %s", body)
		}
		got, err := r.eng.Get(ctx, r.tenant, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.SessionClosed || got.ClosedAt == nil || got.MessageCount != 2 {
			t.Fatalf("session %+v", got)
		}
		if !r.events.has(session.TypeClosed + "@session:" + sess.ID) {
			t.Fatal("session.closed was not published")
		}
		if _, err := r.eng.Send(ctx, got, session.TextInput("Again"), nil); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("a message after the run: %v", err)
		}
	})
}
