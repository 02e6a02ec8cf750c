package knowledge_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// warmSearch searches in memory, waiting (up to a deadline) for the index to read what the
// search needs: the first search of a word answers from the database and reads the word's
// list in the background.
func warmSearch(t *testing.T, ix knowledge.Index, tenantID string, baseIDs []string, query string, limit int) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ids, warm, err := knowledge.SearchInMemory(ix, ctx, tenantID, baseIDs, query, limit)
		if err != nil {
			t.Fatalf("%q: %v", query, err)
		}
		if warm {
			return ids
		}
		knowledge.IdleIndex(ix)
		if ctx.Err() != nil {
			t.Fatalf("%q: the index never read what the search needs", query)
		}
	}
}

// TestKnowledgeLexicalInMemory: the known answers come first from the in-memory ranking as
// from the database's, on both databases, through the service (whose first search of a word
// is the database's) and straight from the in-memory ranking; a deleted document leaves the
// answers at once though its words are in memory; another tenant finds nothing.
func TestKnowledgeLexicalInMemory(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			ev := newEvents()
			svc := knowledge.New(knowledge.Config{Store: st, Events: ev})
			t.Cleanup(svc.Close)
			ix := knowledge.ServiceIndex(svc)
			base := newBase(t, st, tenant, "")
			upload(t, svc, ev, tenant, base.ID)
			ctx := context.Background()
			for round := range 2 {
				for _, a := range answers {
					hits, err := svc.Search(ctx, tenant, []string{base.ID}, a.query, 3)
					if err != nil || len(hits) == 0 || hits[0].DocumentName != a.doc {
						t.Errorf("round %d, %q: %v, first hit %+v, want %s", round, a.query, err, first(hits), a.doc)
					}
				}
				knowledge.IdleIndex(ix)
			}
			for _, a := range answers {
				ids := warmSearch(t, ix, tenant, []string{base.ID}, a.query, 3)
				hits, err := ix.SearchLexical(ctx, tenant, []string{base.ID}, a.query, 3)
				if err != nil || len(ids) == 0 || len(hits) != len(ids) || hits[0].ChunkID != fmt.Sprintf("kch_%d", ids[0]) || hits[0].DocumentName != a.doc {
					t.Errorf("in memory, %q: %v ids %v, first hit %+v, want %s", a.query, err, ids, first(hits), a.doc)
				}
			}
			// Another tenant's search of the base finds nothing, warm as its words are.
			other, err := st.EnsureTenant(ctx, "other")
			if err != nil {
				t.Fatal(err)
			}
			if ids, _, err := knowledge.SearchInMemory(ix, ctx, other.ID, []string{base.ID}, answers[0].query, 3); err != nil || len(ids) != 0 {
				t.Fatalf("another tenant: %v %v", err, ids)
			}
			if hits, err := ix.SearchLexical(ctx, other.ID, []string{base.ID}, answers[0].query, 3); err != nil || len(hits) != 0 {
				t.Fatalf("another tenant: %v %+v", err, hits)
			}
			docs, _, err := store.ListKnowledgeDocuments(ctx, st, tenant, base.ID, store.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range docs {
				if doc.FileName != "hours.md" {
					continue
				}
				if err := svc.Delete(ctx, tenant, base.ID, doc.ID); err != nil {
					t.Fatal(err)
				}
			}
			hits, err := svc.Search(ctx, tenant, []string{base.ID}, answers[0].query, 3)
			if err != nil || slices.ContainsFunc(hits, func(h knowledge.Hit) bool { return h.DocumentName == "hours.md" }) {
				t.Fatalf("after delete: %v %+v", err, hits)
			}
			ids := warmSearch(t, ix, tenant, []string{base.ID}, answers[0].query, 3)
			hits, err = ix.SearchLexical(ctx, tenant, []string{base.ID}, answers[0].query, 3)
			if err != nil || len(hits) != len(ids) || slices.ContainsFunc(hits, func(h knowledge.Hit) bool { return h.DocumentName == "hours.md" }) {
				t.Fatalf("after delete, in memory: %v %+v", err, hits)
			}
		})
	}
}

// TestKnowledgeLexicalRareWordFirst: of two words never in one chunk, the chunks of the rare
// one come first on both databases (BM25's document counts; PostgreSQL's ts_rank knew
// nothing of rarity), and a word in most chunks still decides between two chunks alike but
// for it.
func TestKnowledgeLexicalRareWordFirst(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			doc := &store.KnowledgeDocument{BaseID: base.ID, FileName: "bulk.txt", MediaType: "text/plain", Checksum: strings.Repeat("c", 64)}
			if _, err := store.CreateKnowledgeDocument(ctx, st, tenant, doc, []byte("x"), "n", time.Hour); err != nil {
				t.Fatal(err)
			}
			texts := []string{"Zebra team desk handles refunds for widgets.", "Zebra order desk handles refunds for widgets."}
			for i := range 3_000 {
				texts = append(texts, fmt.Sprintf("Widget delivery number %d is on its way with the order.", i))
			}
			chunks := make([]store.KnowledgeChunk, len(texts))
			for i, text := range texts {
				chunks[i] = store.KnowledgeChunk{DocumentID: doc.ID, BaseID: base.ID, TenantID: tenant, Position: i, Text: text}
			}
			if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
				t.Fatal(err)
			}
			ix := knowledge.NewIndex(st, 0)
			t.Cleanup(ix.(interface{ Close() }).Close)
			text := func(ids []int64) []string {
				ms, err := store.KnowledgeChunksByID(ctx, st, tenant, ids)
				if err != nil {
					t.Fatal(err)
				}
				byID := map[int64]string{}
				for _, m := range ms {
					byID[m.ChunkID] = m.Text
				}
				out := make([]string, len(ids))
				for i, id := range ids {
					out[i] = byID[id]
				}
				return out
			}
			got := text(warmSearch(t, ix, tenant, []string{base.ID}, "zebra delivery", 3))
			if len(got) != 3 || !strings.HasPrefix(got[0], "Zebra") || !strings.HasPrefix(got[1], "Zebra") {
				t.Fatalf("zebra delivery: %q", got)
			}
			got = text(warmSearch(t, ix, tenant, []string{base.ID}, "zebra order", 3))
			if len(got) != 1 || !strings.HasPrefix(got[0], "Zebra order") {
				t.Fatalf("zebra order: only one chunk has both words: %q", got)
			}
		})
	}
}

// TestKnowledgeLexicalAgreesWithDatabase: on a help centre of a few thousand chunks, the
// in-memory ranking answers each question with chunks of as many of its words as the
// database's ranking does, and mostly the same chunks (SQLite's BM25 differs only in how a
// word's rarity is weighed: each base's own counts, and a common word never worth nothing).
func TestKnowledgeLexicalAgreesWithDatabase(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			doc := &store.KnowledgeDocument{BaseID: base.ID, FileName: "help.txt", MediaType: "text/plain", Checksum: strings.Repeat("d", 64)}
			if _, err := store.CreateKnowledgeDocument(ctx, st, tenant, doc, []byte("x"), "n", time.Hour); err != nil {
				t.Fatal(err)
			}
			vocab := make([]string, 2_000)
			for i := range vocab {
				vocab[i] = fmt.Sprintf("name%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676)
			}
			corpus := newHelpCorpus(vocab)
			var chunks []store.KnowledgeChunk
			var asks []sample
			for i := range 3_000 {
				text, topic, subject := corpus.chunk()
				chunks = append(chunks, store.KnowledgeChunk{DocumentID: doc.ID, BaseID: base.ID, TenantID: tenant, Position: i, Text: text})
				if i%30 == 0 {
					asks = append(asks, sample{text, subject, topic})
				}
			}
			if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
				t.Fatal(err)
			}
			ix := knowledge.NewIndex(st, 0)
			t.Cleanup(ix.(interface{ Close() }).Close)
			same, firsts, total := 0, 0, 0
			words := &chunkWords{t: t, st: st, tenant: tenant, base: base.ID, matched: map[string]map[int64]bool{}}
			for _, a := range asks {
				q := corpus.question(a.text, a.topic, a.subject)
				mem := warmSearch(t, ix, tenant, []string{base.ID}, q, 5)
				db, err := store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, q, 5)
				if err != nil {
					t.Fatal(err)
				}
				if len(db) == 0 || len(mem) == 0 {
					t.Fatalf("%q: %d chunks from the database, %d in memory", q, len(db), len(mem))
				}
				if words.count(q, mem[0]) != words.count(q, db[0].ChunkID) {
					t.Errorf("%q: the first chunks have different numbers of the words", q)
				}
				if mem[0] == db[0].ChunkID {
					firsts++
				}
				for _, m := range db {
					if slices.Contains(mem, m.ChunkID) {
						same++
					}
				}
				total += len(db)
			}
			t.Logf("%d questions: the same first chunk %d times, %d of %d chunks the same", len(asks), firsts, same, total)
			// SQLite's bm25() is BM25 too: the two mostly agree. PostgreSQL's ts_rank
			// weighs no word by its rarity, so it agrees less, on the same words.
			want := 8
			if d == store.Postgres {
				want = 5
			}
			if firsts*10 < len(asks)*want || same*10 < total*want {
				t.Errorf("the rankings disagree: the same first chunk %d of %d times, %d of %d chunks the same", firsts, len(asks), same, total)
			}
		})
	}
}

// chunkWords counts how many of a question's words a chunk of one base has, by the
// database's own matching. What the database matched for a word is kept: the questions
// share most of their words, and a common word matches most of the base.
type chunkWords struct {
	t       *testing.T
	st      *store.Store
	tenant  string
	base    string
	matched map[string]map[int64]bool
}

func (c *chunkWords) count(query string, id int64) int {
	c.t.Helper()
	n := 0
	for _, w := range store.QueryTerms(query) {
		m, ok := c.matched[w]
		if !ok {
			ms, err := store.SearchKnowledge(context.Background(), c.st, c.tenant, []string{c.base}, w, 1_000_000)
			if err != nil {
				c.t.Fatal(err)
			}
			m = make(map[int64]bool, len(ms))
			for _, x := range ms {
				m[x.ChunkID] = true
			}
			c.matched[w] = m
		}
		if m[id] {
			n++
		}
	}
	return n
}

// TestKnowledgeLexicalBounded: with room for fewer word lists than a search needs, the
// index holds no more than its bound (and the list being read) and searches still answer,
// from the database.
func TestKnowledgeLexicalBounded(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			ev := newEvents()
			ix := knowledge.NewIndexHolding(st, 4)
			svc := knowledge.New(knowledge.Config{Store: st, Events: ev, Index: ix})
			t.Cleanup(svc.Close)
			t.Cleanup(ix.(interface{ Close() }).Close)
			base := newBase(t, st, tenant, "")
			upload(t, svc, ev, tenant, base.ID)
			for range 3 {
				for _, a := range answers {
					hits, err := svc.Search(context.Background(), tenant, []string{base.ID}, a.query, 3)
					if err != nil || len(hits) == 0 || hits[0].DocumentName != a.doc {
						t.Errorf("%q: %v, first hit %+v, want %s", a.query, err, first(hits), a.doc)
					}
					knowledge.IdleIndex(ix)
					if n := knowledge.HeldPostings(ix); n > 4+len(corpus) {
						t.Fatalf("%d pairs held, bound 4", n)
					}
				}
			}
		})
	}
}

// TestKnowledgeTermChunks: a word's chunks come with how often each has it, in the index's
// own terms ("refunds" and "refunded" are the word "refund"), on both databases.
func TestKnowledgeTermChunks(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			base := newBase(t, st, tenant, "")
			ctx := context.Background()
			doc := &store.KnowledgeDocument{BaseID: base.ID, FileName: "r.txt", MediaType: "text/plain", Checksum: strings.Repeat("e", 64)}
			if _, err := store.CreateKnowledgeDocument(ctx, st, tenant, doc, []byte("x"), "n", time.Hour); err != nil {
				t.Fatal(err)
			}
			texts := []string{"Refunds are refunded as a refund.", "No money back here.", "One refund."}
			chunks := make([]store.KnowledgeChunk, len(texts))
			for i, text := range texts {
				chunks[i] = store.KnowledgeChunk{DocumentID: doc.ID, BaseID: base.ID, TenantID: tenant, Position: i, Text: text}
			}
			if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
				t.Fatal(err)
			}
			stems, err := store.KnowledgeStems(ctx, st, []string{"refunds", "the", "money"})
			if err != nil || len(stems) != 3 || len(stems[0]) != 1 || len(stems[2]) != 1 {
				t.Fatalf("stems: %v %q", err, stems)
			}
			ids, tfs, err := store.KnowledgeTermChunks(ctx, st, base.ID, stems[0][0])
			if err != nil || len(ids) != 2 || ids[0] >= ids[1] || !slices.Equal(tfs, []int32{3, 1}) {
				t.Fatalf("%q: %v %v %v", stems[0][0], err, ids, tfs)
			}
			ids, lens, err := store.KnowledgeChunkLengths(ctx, st, base.ID)
			if err != nil || len(ids) != 3 || lens[0] <= lens[2] {
				t.Fatalf("lengths: %v %v %v", err, ids, lens)
			}
		})
	}
}

// TestKnowledgeLexicalConcurrent: searches running while documents are indexed and deleted
// answer without error, and once a delete returns, no search finds its document, in memory
// or from the database.
func TestKnowledgeLexicalConcurrent(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			ev := newEvents()
			svc := knowledge.New(knowledge.Config{Store: st, Events: ev})
			t.Cleanup(svc.Close)
			base := newBase(t, st, tenant, "")
			upload(t, svc, ev, tenant, base.ID)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			stop := make(chan struct{})
			errs := make(chan error, 4)
			for g := range 4 {
				go func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							errs <- nil
							return
						default:
						}
						a := answers[(g+i)%len(answers)]
						if _, err := svc.Search(ctx, tenant, []string{base.ID}, a.query+" parking", 3); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			for i := range 5 {
				data := []byte(fmt.Sprintf("# Parking %d\n\nVisitors park in zone %d behind the station.", i, i))
				doc, _, err := svc.Upload(ctx, tenant, base.ID, fmt.Sprintf("parking-%d.md", i), "", data)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := ev.wait(t, doc.ID); got.Status != store.DocumentReady {
					t.Fatalf("parking %d: %+v", i, got)
				}
				if err := svc.Delete(ctx, tenant, base.ID, doc.ID); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					hits, err := svc.Search(ctx, tenant, []string{base.ID}, "where do visitors park", 5)
					if err != nil || len(hits) != 0 {
						t.Fatalf("after deleting parking %d: %v %+v", i, err, hits)
					}
				}
			}
			close(stop)
			for range 4 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestKnowledgeLexicalRereadsAfterChange: when a base changes, the words searched before it
// are read again with the first search after it, so that they are in memory before they are
// asked again.
func TestKnowledgeLexicalRereadsAfterChange(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenant := openStore(t, d)
			ev := newEvents()
			svc := knowledge.New(knowledge.Config{Store: st, Events: ev})
			t.Cleanup(svc.Close)
			ix := knowledge.ServiceIndex(svc)
			base := newBase(t, st, tenant, "")
			upload(t, svc, ev, tenant, base.ID)
			warmSearch(t, ix, tenant, []string{base.ID}, "express delivery", 3)
			ctx := context.Background()
			doc, _, err := svc.Upload(ctx, tenant, base.ID, "parking.md", "", []byte("# Parking\n\nVisitors park behind the station."))
			if err != nil {
				t.Fatal(err)
			}
			ev.wait(t, doc.ID)
			// The base changed: the first search is the database's, and its reader reads
			// "parking" and the words the cache held.
			if _, warm, err := knowledge.SearchInMemory(ix, ctx, tenant, []string{base.ID}, "parking", 3); err != nil || warm {
				t.Fatalf("first search after the change: warm=%v %v", warm, err)
			}
			knowledge.IdleIndex(ix)
			ids, warm, err := knowledge.SearchInMemory(ix, ctx, tenant, []string{base.ID}, "express delivery", 3)
			if err != nil || !warm || len(ids) == 0 {
				t.Fatalf("a word searched before the change: warm=%v %v %v", warm, err, ids)
			}
		})
	}
}
