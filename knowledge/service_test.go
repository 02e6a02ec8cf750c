package knowledge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var dialects = []store.Dialect{store.SQLite, store.Postgres}

// openStore opens a migrated store of the dialect and a tenant in it.
func openStore(t testing.TB, d store.Dialect) (*store.Store, string) {
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
	return st, ten.ID
}

// events records what the service publishes, and lets a test wait for a document's fate.
type events struct {
	mu   sync.Mutex
	got  []knowledge.DocumentEvent
	typ  []string
	wake chan struct{}
}

func newEvents() *events { return &events{wake: make(chan struct{}, 1)} }

func (e *events) Publish(_ context.Context, _, topic, typ string, data any) {
	e.mu.Lock()
	e.got = append(e.got, data.(knowledge.DocumentEvent))
	e.typ = append(e.typ, typ+" "+topic)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// wait returns the event of the document, waiting for it up to the deadline.
func (e *events) wait(t testing.TB, docID string) (knowledge.DocumentEvent, string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		for i, ev := range e.got {
			if ev.DocumentID == docID {
				e.mu.Unlock()
				return ev, e.typ[i]
			}
		}
		e.mu.Unlock()
		select {
		case <-e.wake:
		case <-deadline:
			t.Fatalf("no event for document %s", docID)
		}
	}
}

func newBase(t testing.TB, st *store.Store, tenantID, embedding string) *store.KnowledgeBase {
	t.Helper()
	b := store.NewKnowledgeBase()
	b.Name, b.EmbeddingModel = "Help centre", embedding
	if err := store.Create(context.Background(), st, tenantID, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// corpus is a small help centre whose right answers are known: one topic a file, so that
// the answer is the document whatever the chunker makes of it.
var corpus = map[string]string{
	"hours.md":     "# Opening hours\n\nThe shop opens at nine in the morning and closes at six in the evening, Monday to Saturday.",
	"holidays.md":  "# Holidays\n\nOn public holidays the shop stays closed all day.",
	"refunds.md":   "# Refunds\n\nA refund is paid back to the original card within five working days of the return arriving.",
	"exchanges.md": "# Exchanges\n\nAn exchange for another size is free when the item is unworn and has its labels.",
	"delivery.md":  "# Delivery\n\nStandard delivery takes three to five days; express delivery arrives the next day if ordered before noon.",
	"tracking.md":  "# Tracking\n\nEvery parcel has a tracking number sent by email when it leaves the warehouse.",
	"warranty.md":  "# Warranty\n\nElectronics carry a two year warranty covering faults in manufacture, not accidental damage.",
}

// answers are queries with the document that answers each.
var answers = []struct{ query, doc string }{
	{"when does the shop open in the morning", "hours.md"},
	{"how long until my refund reaches my card", "refunds.md"},
	{"express delivery next day", "delivery.md"},
	{"where is my parcel tracking number", "tracking.md"},
	{"is accidental damage covered by the warranty", "warranty.md"},
	{"exchange for a different size", "exchanges.md"},
	{"closed on public holidays", "holidays.md"},
}

func upload(t testing.TB, svc *knowledge.Service, ev *events, tenantID, baseID string) {
	t.Helper()
	for name, text := range corpus {
		doc, _, err := svc.Upload(context.Background(), tenantID, baseID, name, "text/markdown", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if got, typ := ev.wait(t, doc.ID); got.Status != store.DocumentReady {
			t.Fatalf("%s: %s %+v", name, typ, got)
		}
	}
}

// TestKnowledgeRanking: on a small corpus, each query's right chunk comes first, by words
// alone and by words and meaning fused (the embeddings stand-in), on both databases.
func TestKnowledgeRanking(t *testing.T) {
	for _, d := range dialects {
		for _, hybrid := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/hybrid=%v", d, hybrid), func(t *testing.T) {
				st, tenant := openStore(t, d)
				emb := llmtest.NewOpenAI(t)
				ev := newEvents()
				model := ""
				if hybrid {
					model = "standin/embed-small"
				}
				svc := knowledge.New(knowledge.Config{Store: st, Events: ev, Embedder: standinEmbedder(emb.URL)})
				t.Cleanup(svc.Close)
				base := newBase(t, st, tenant, model)
				upload(t, svc, ev, tenant, base.ID)
				for _, a := range answers {
					hits, err := svc.Search(context.Background(), tenant, []string{base.ID}, a.query, 3)
					if err != nil {
						t.Fatal(err)
					}
					if len(hits) == 0 || hits[0].DocumentName != a.doc {
						t.Errorf("%q: first hit %+v, want %s", a.query, first(hits), a.doc)
					}
				}
				embeds := 0
				for _, r := range emb.Requests() {
					if r.Path == "/v1/embeddings" {
						embeds++
					}
				}
				if hybrid != (embeds > 0) {
					t.Errorf("hybrid=%v but %d embedding requests", hybrid, embeds)
				}
			})
		}
	}
}

func first(h []knowledge.Hit) any {
	if len(h) == 0 {
		return "none"
	}
	return h[0]
}

func standinEmbedder(url string) knowledge.Embedder {
	return &knowledge.EmbeddingsClient{Resolve: func(_ context.Context, _, provider string) (knowledge.EmbeddingEndpoint, error) {
		if provider != "standin" {
			return knowledge.EmbeddingEndpoint{}, fmt.Errorf("no provider %q", provider)
		}
		return knowledge.EmbeddingEndpoint{BaseURL: url, Client: http.DefaultClient}, nil
	}}
}

// TestKnowledgeDedupeAndDelete: the same file twice is one document; deleting it takes its
// chunks out of search at once; another tenant finds nothing of it.
func TestKnowledgeDedupeAndDelete(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			ev := newEvents()
			svc := knowledge.New(knowledge.Config{Store: st, Events: ev})
			t.Cleanup(svc.Close)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			data := []byte("# Parking\n\nVisitors park in the blue zone behind the station.")
			doc, existing, err := svc.Upload(ctx, tenant, base.ID, "parking.md", "", data)
			if err != nil || existing {
				t.Fatal(err, existing)
			}
			ev.wait(t, doc.ID)
			again, existing, err := svc.Upload(ctx, tenant, base.ID, "copy.md", "", data)
			if err != nil || !existing || again.ID != doc.ID {
				t.Fatalf("second upload: %v existing=%v id=%s want %s", err, existing, again.ID, doc.ID)
			}
			hits, err := svc.Search(ctx, tenant, []string{base.ID}, "where do visitors park", 5)
			if err != nil || len(hits) != 1 {
				t.Fatalf("search: %v %d hits", err, len(hits))
			}
			other, err := st.EnsureTenant(ctx, "other")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Search(ctx, other.ID, []string{base.ID}, "park", 5); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("another tenant's search: %v, want not found", err)
			}
			if err := svc.Delete(ctx, other.ID, base.ID, doc.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("another tenant's delete: %v", err)
			}
			if err := svc.Delete(ctx, tenant, base.ID, doc.ID); err != nil {
				t.Fatal(err)
			}
			hits, err = svc.Search(ctx, tenant, []string{base.ID}, "where do visitors park", 5)
			if err != nil || len(hits) != 0 {
				t.Fatalf("after delete: %v %d hits", err, len(hits))
			}
			var n int
			if err := st.DB().NewSelect().Table("knowledge_chunks").ColumnExpr("count(*)").Scan(ctx, &n); err != nil || n != 0 {
				t.Fatalf("chunks left: %d %v", n, err)
			}
		})
	}
}

// TestKnowledgeRestart: a node stopped mid-ingestion takes its document up again when it
// starts; a node that died leaves its document to another once the lease runs out; and a
// document interrupted too often fails rather than staying processing.
func TestKnowledgeRestart(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			entered := make(chan struct{}, 8)
			blocking := func(ctx context.Context, name, mt string, data []byte, lim knowledge.Limits) (*knowledge.Document, error) {
				entered <- struct{}{}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			lease := 400 * time.Millisecond
			a := knowledge.New(knowledge.Config{Store: st, Node: "a", Extract: blocking, Lease: lease})
			doc, _, err := a.Upload(ctx, tenant, base.ID, "notes.txt", "text/plain", []byte("The alarm code is changed every month."))
			if err != nil {
				t.Fatal(err)
			}
			waitEntered(t, entered)
			a.Close() // stops mid-ingestion

			ev := newEvents()
			a2 := knowledge.New(knowledge.Config{Store: st, Node: "a", Events: ev, Lease: lease})
			t.Cleanup(a2.Close)
			a2.Start(ctx)
			if got, typ := ev.wait(t, doc.ID); got.Status != store.DocumentReady {
				t.Fatalf("after restart: %s %+v", typ, got)
			}
			a2.Close()

			// A node that dies (never closes) mid-ingestion: another takes the document up
			// once its lease runs out.
			dead := knowledge.New(knowledge.Config{Store: st, Node: "dead", Extract: blocking, Lease: lease})
			doc2, _, err := dead.Upload(ctx, tenant, base.ID, "more.txt", "text/plain", []byte("Deliveries use the side gate."))
			if err != nil {
				t.Fatal(err)
			}
			waitEntered(t, entered)
			// Its lease is never renewed again: stop its renewals by taking the database
			// row's lease back in time, as a node frozen or unplugged would leave it.
			if _, err := st.DB().NewUpdate().Table("knowledge_documents").Set("node = 'gone'").Where("id = ?", doc2.ID).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			ev2 := newEvents()
			b := knowledge.New(knowledge.Config{Store: st, Node: "b", Events: ev2, Lease: lease})
			t.Cleanup(b.Close)
			b.Start(ctx)
			if got, typ := ev2.wait(t, doc2.ID); got.Status != store.DocumentReady {
				t.Fatalf("taken over: %s %+v", typ, got)
			}
			dead.Close()
			b.Close()

			// Interrupted too often: failed with the reason.
			c := knowledge.New(knowledge.Config{Store: st, Node: "c", Extract: blocking, Lease: lease, MaxAttempts: 1})
			doc3, _, err := c.Upload(ctx, tenant, base.ID, "third.txt", "text/plain", []byte("The lift is out of order."))
			if err != nil {
				t.Fatal(err)
			}
			waitEntered(t, entered)
			c.Close()
			ev3 := newEvents()
			c2 := knowledge.New(knowledge.Config{Store: st, Node: "c", Events: ev3, Lease: lease, MaxAttempts: 1})
			t.Cleanup(c2.Close)
			c2.Start(ctx)
			got, _ := ev3.wait(t, doc3.ID)
			if got.Status != store.DocumentFailed || !strings.Contains(got.Reason, "interrupted") {
				t.Fatalf("interrupted document: %+v", got)
			}
		})
	}
}

func waitEntered(t testing.TB, c chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatal("ingestion did not start")
	}
}

// TestKnowledgeDocumentDeadline: a document whose ingestion outlasts the per-document
// deadline fails with the reason, and nothing of it is indexed.
func TestKnowledgeDocumentDeadline(t *testing.T) {
	st, tenant := openStore(t, store.SQLite)
	base := newBase(t, st, tenant, "")
	ev := newEvents()
	slow := func(ctx context.Context, name, mt string, data []byte, lim knowledge.Limits) (*knowledge.Document, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	svc := knowledge.New(knowledge.Config{Store: st, Events: ev, Extract: slow, DocumentTimeout: 200 * time.Millisecond})
	t.Cleanup(svc.Close)
	doc, _, err := svc.Upload(context.Background(), tenant, base.ID, "slow.txt", "text/plain", []byte("Anything at all."))
	if err != nil {
		t.Fatal(err)
	}
	got, typ := ev.wait(t, doc.ID)
	if got.Status != store.DocumentFailed || !strings.Contains(got.Reason, "longer than the limit") || !strings.HasPrefix(typ, knowledge.EventDocumentFailed+" knowledge:"+base.ID) {
		t.Fatalf("slow document: %s %+v", typ, got)
	}
}

// TestKnowledgeCommonTerms: in a base where two words of the query are in thousands of
// chunks, the rare third word decides; a query of the common words alone still answers.
func TestKnowledgeCommonTerms(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			doc := &store.KnowledgeDocument{BaseID: base.ID, FileName: "bulk.txt", MediaType: "text/plain", Checksum: strings.Repeat("a", 64)}
			if _, err := store.CreateKnowledgeDocument(ctx, st, tenant, doc, []byte("x"), "n", time.Hour); err != nil {
				t.Fatal(err)
			}
			n := 2_010
			chunks := make([]store.KnowledgeChunk, n)
			for i := range chunks {
				text := fmt.Sprintf("Widget order number %d is confirmed.", i)
				if i == n/2 {
					text = "Widget order number refund: the zebra team pays refunds."
				}
				chunks[i] = store.KnowledgeChunk{DocumentID: doc.ID, BaseID: base.ID, TenantID: tenant, Position: i, Text: text}
			}
			if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
				t.Fatal(err)
			}
			svc := knowledge.New(knowledge.Config{Store: st})
			t.Cleanup(svc.Close)
			hits, err := svc.Search(ctx, tenant, []string{base.ID}, "widget order zebra", 3)
			if err != nil || len(hits) == 0 || !strings.Contains(hits[0].Text, "zebra") {
				t.Fatalf("rare word: %v %+v", err, first(hits))
			}
			hits, err = svc.Search(ctx, tenant, []string{base.ID}, "widget order", 3)
			if err != nil || len(hits) != 3 {
				t.Fatalf("common words: %v %d hits", err, len(hits))
			}
		})
	}
}

// TestKnowledgeCommonWordRanks: a word in thousands of chunks (a third of the base) still
// counts: of two chunks alike but for it, the one with the caller's common word ranks first
// (it alone has every word of the question); a word no chunk has does not stop the others
// from matching, and words never together still find the chunks with some of them.
func TestKnowledgeCommonWordRanks(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			doc := &store.KnowledgeDocument{BaseID: base.ID, FileName: "bulk.txt", MediaType: "text/plain", Checksum: strings.Repeat("b", 64)}
			if _, err := store.CreateKnowledgeDocument(ctx, st, tenant, doc, []byte("x"), "n", time.Hour); err != nil {
				t.Fatal(err)
			}
			// The chunk without the common word comes first, so that a ranking that left
			// the word out would tie them and answer with it.
			texts := []string{"Zebra team desk handles refunds for widgets.", "Zebra order desk handles refunds for widgets."}
			for i := range 6_000 {
				if i%3 == 0 {
					texts = append(texts, fmt.Sprintf("Widget order number %d is confirmed.", i))
				} else {
					texts = append(texts, fmt.Sprintf("Widget delivery number %d is on its way.", i))
				}
			}
			chunks := make([]store.KnowledgeChunk, len(texts))
			for i, text := range texts {
				chunks[i] = store.KnowledgeChunk{DocumentID: doc.ID, BaseID: base.ID, TenantID: tenant, Position: i, Text: text}
			}
			if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
				t.Fatal(err)
			}
			for _, limit := range []int{1, 3} {
				hits, err := store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, "zebra order", limit)
				if err != nil || len(hits) == 0 || !strings.Contains(hits[0].Text, "Zebra order") {
					t.Fatalf("limit %d: %v %+v", limit, err, hits)
				}
				if len(hits) != 1 {
					t.Fatalf("limit %d: only one chunk has every word: %+v", limit, hits)
				}
			}
			hits, err := store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, "is it possible to get the zebra order", 3)
			if err != nil || len(hits) != 1 || !strings.Contains(hits[0].Text, "Zebra order") {
				t.Fatalf("with words no chunk has: %v %+v", err, hits)
			}
			hits, err = store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, "zebra order delivery", 3)
			if err != nil || len(hits) != 1 || !strings.Contains(hits[0].Text, "Zebra order") {
				t.Fatalf("no chunk has all three words; one has two: %v %+v", err, hits)
			}
			hits, err = store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, "zebra delivery", 3)
			// BM25 puts the rare word's chunk first; PostgreSQL's ts_rank knows no rarity.
			if err != nil || len(hits) != 3 || (d == store.SQLite && !strings.Contains(hits[0].Text, "Zebra")) {
				t.Fatalf("words never together: %v %+v", err, hits)
			}
		})
	}
}
