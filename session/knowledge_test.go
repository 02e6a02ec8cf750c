package session_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/session"
	"github.com/switchboard-go/switchboard/store"
)

// A session's agent uses its knowledge as on a call, through the node's knowledge service
// on a real store: in auto mode the chunk that answers the message is in the model's
// context, and the stored answer's metadata says what was found and how long it took.
func TestEngineUsesKnowledge(t *testing.T) {
	eachDialect(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		svc := knowledge.New(knowledge.Config{Store: r.st})
		t.Cleanup(svc.Close)
		base := store.NewKnowledgeBase()
		base.Name = "FAQ"
		if err := store.Create(ctx, r.st, r.tenant, base); err != nil {
			t.Fatal(err)
		}
		doc, _, err := svc.Upload(ctx, r.tenant, base.ID, "faq.md", "text/markdown",
			[]byte("# FAQ\n\n## Parking\n\nVisitors park free of charge in the blue garage on Elm Street.\n\n## Hours\n\nWe open at nine.\n"))
		if err != nil {
			t.Fatal(err)
		}
		for doc.Status != store.DocumentReady {
			if doc.Status == store.DocumentFailed || ctx.Err() != nil {
				t.Fatalf("document %+v", doc)
			}
			time.Sleep(20 * time.Millisecond)
			if doc, err = store.GetKnowledgeDocument(ctx, r.st, r.tenant, base.ID, doc.ID); err != nil {
				t.Fatal(err)
			}
		}
		r.agent.KnowledgeBaseIDs = []string{base.ID}
		if err := store.Update(ctx, r.st, r.agent); err != nil {
			t.Fatal(err)
		}
		reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: r.up.URL, APIKey: "k"}})
		if err != nil {
			t.Fatal(err)
		}
		eng := session.New(session.Config{Store: r.st, Knowledge: svc,
			Models: func(context.Context, string) (*llm.Registry, error) { return reg, nil }})
		t.Cleanup(func() { eng.Shutdown(context.Background()) })

		r.up.Enqueue(llmtest.Reply{Text: "In the blue garage on Elm Street."})
		sess := r.session(t)
		turn, err := eng.Send(ctx, sess, session.TextInput("Where can visitors park?"), nil)
		if err != nil {
			t.Fatal(err)
		}
		reqs := r.up.Requests()
		if body := string(reqs[len(reqs)-1].Body); !strings.Contains(body, "blue garage on Elm Street") || !strings.Contains(body, "[1] faq.md › FAQ") {
			t.Errorf("the model's request lacks the chunk:\n%s", body)
		}
		// What was stored, read back: the search with the answer.
		stored, err := store.ListSessionMessages(ctx, r.st, r.tenant, sess.ID, "", 0, 10)
		if err != nil || len(stored) != 2 || stored[1].ID != turn.Answer.ID {
			t.Fatalf("stored %+v %v", stored, err)
		}
		raw, _ := json.Marshal(stored[1].Meta)
		var meta struct {
			Knowledge []agent.Retrieval `json:"knowledge"`
			TookMS    float64           `json:"knowledge_ms"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil || len(meta.Knowledge) != 1 || meta.TookMS <= 0 {
			t.Fatalf("metadata %s: %v", raw, err)
		}
		k := meta.Knowledge[0]
		if k.Source != agent.RetrievalAuto || k.Query != "Where can visitors park?" || len(k.Hits) == 0 ||
			k.Hits[0].DocumentID != doc.ID || k.Hits[0].ChunkID == "" || k.Hits[0].DocumentName != "faq.md" {
			t.Errorf("retrieval %+v", k)
		}
	})
}
