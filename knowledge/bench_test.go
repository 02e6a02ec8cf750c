package knowledge_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkKnowledgeSearch measures a search's latency, p50 and p99, over bases of 1,000,
// 10,000 and 100,000 chunks, by words (lexical) and by words and meaning (hybrid: the query
// embedded by the stand-in over loopback HTTP, the in-process cosine scan, fusion), on each
// database. The chunks are seeded straight through the store: help-centre articles of an
// online shop's and a software service's (bench_corpus_test.go), about 120 words each, of
// 26 topics of Zipf-distributed size, in sentences with their stop words, and names (products,
// places, plans) drawn from a Zipf-distributed vocabulary of 50,000 made-up words. A query is
// a spoken question about a random chunk, in two or three of its topic's words ("why can't I
// reset the password on my account"), half the time naming the chunk's subject ("... for
// Kelvor"): a caller asking about something the base holds, whose topic words are in
// thousands of chunks of a big base. Run with -benchtime=1x: each
// sub-benchmark times its own queries.
//
// lexical-db is the database's own ranking (store.SearchKnowledge: FTS5's bm25(), PostgreSQL's
// ts_rank), what a search is while the index reads its words' lists; warmup is the time until
// the index holds every list the queries need (their first searches, then the background
// reads); lexical and hybrid are the searches after it, ranked in memory.
//
//	go test -run '^$' -bench BenchmarkKnowledgeSearch -benchtime=1x -timeout 30m ./knowledge/
func BenchmarkKnowledgeSearch(b *testing.B) {
	for _, d := range dialects {
		b.Run(string(d), func(b *testing.B) { benchSearch(b, d) })
	}
}

const benchQueries = 400

func benchSearch(b *testing.B, d store.Dialect) {
	st, tenant := openStore(b, d)
	emb := llmtest.NewOpenAI(b)
	ctx := context.Background()
	base := newBase(b, st, tenant, "standin/embed")
	svc := knowledge.New(knowledge.Config{Store: st, Embedder: standinEmbedder(emb.URL)})
	b.Cleanup(svc.Close)
	vocab := benchVocabulary()
	rng := rand.New(rand.NewPCG(1, 2))
	corpus := newHelpCorpus(vocab)
	seeded := 0
	var samples []sample
	for _, size := range benchSizes() {
		for seeded < size {
			n := min(2_000, size-seeded)
			samples = append(samples, seedChunks(b, st, tenant, base.ID, seeded, n, corpus)...)
			seeded += n
		}
		queries := make([]string, benchQueries)
		for i := range queries {
			sm := samples[rng.IntN(len(samples))]
			queries[i] = corpus.question(sm.text, sm.topic, sm.subject)
		}
		ix := knowledge.ServiceIndex(svc)
		for _, mode := range []string{"lexical-db", "warmup", "lexical", "hybrid"} {
			if mode == "warmup" {
				// The first searches of the base's words are the database's while the
				// index reads the words' lists in the background: the time until every
				// list the queries need is in memory.
				b.Run(fmt.Sprintf("%s/%d", mode, size), func(b *testing.B) {
					cpu0, srv0 := cpuTime(), serverCPU(b, st)
					start := time.Now()
					for _, q := range queries {
						if _, err := svc.Search(ctx, tenant, []string{base.ID}, q, 5); err != nil {
							b.Fatal(err)
						}
					}
					knowledge.IdleIndex(ix)
					b.ReportMetric(time.Since(start).Seconds(), "s")
					b.ReportMetric(float64((cpuTime() - cpu0).Milliseconds()), "cpu-ms")
					if d == store.Postgres {
						var srv time.Duration
						for pid, t := range serverCPU(b, st) {
							srv += t - srv0[pid]
						}
						b.ReportMetric(float64(srv.Milliseconds()), "server-cpu-ms")
					}
					b.ReportMetric(0, "ns/op")
				})
				continue
			}
			b.Run(fmt.Sprintf("%s/%d", mode, size), func(b *testing.B) {
				search := func(q string) {
					var err error
					switch mode {
					case "lexical-db":
						_, err = store.SearchKnowledge(ctx, st, tenant, []string{base.ID}, q, 5)
					case "lexical":
						_, err = ix.SearchLexical(ctx, tenant, []string{base.ID}, q, 5)
					default:
						_, err = svc.Search(ctx, tenant, []string{base.ID}, q, 5)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				search(queries[0]) // warms the vector cache and the connection pool
				runtime.GC()       // the seeding's garbage is not the search's
				took := make([]time.Duration, len(queries))
				cpu0, srv0 := cpuTime(), serverCPU(b, st)
				b.ResetTimer()
				for i, q := range queries {
					start := time.Now()
					search(q)
					took[i] = time.Since(start)
				}
				b.StopTimer()
				// The process's CPU time a search: on a machine shared with other work
				// the wall-clock percentiles include waiting for a core; this does not (for
				// SQLite it is the whole search; for PostgreSQL only the client's part, and
				// server-cpu-ms/search the server's).
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(queries)), "cpu-ms/search")
				if d == store.Postgres {
					var srv time.Duration
					for pid, t := range serverCPU(b, st) {
						srv += t - srv0[pid]
					}
					b.ReportMetric(float64(srv.Microseconds())/1000/float64(len(queries)), "server-cpu-ms/search")
				}
				slices.Sort(took)
				ms := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000 }
				b.ReportMetric(ms(0.50), "p50-ms")
				b.ReportMetric(ms(0.99), "p99-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// benchSizes are the base sizes to measure: KNOWLEDGE_BENCH_SIZES (comma-separated) or
// 1,000, 10,000 and 100,000.
func benchSizes() []int {
	env := os.Getenv("KNOWLEDGE_BENCH_SIZES")
	if env == "" {
		return []int{1_000, 10_000, 100_000}
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// serverCPU is the CPU time (user and system) of each PostgreSQL backend serving the
// benchmark's database, by process ID, read from /proc (the server runs on this machine in
// the benchmark's setting); a backend that is not readable counts zero. SQLite has none.
func serverCPU(b *testing.B, st *store.Store) map[int]time.Duration {
	out := map[int]time.Duration{}
	if st.Dialect() != store.Postgres {
		return out
	}
	var pids []int
	if err := st.DB().NewRaw("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").Scan(context.Background(), &pids); err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields 14 and 15 (utime, stime, in clock ticks of 1/100 s) follow the
		// parenthesised command name.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		out[pid] = time.Duration(u+s) * 10 * time.Millisecond
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchVocabulary is 50,000 distinct made-up words, the first the most common.
func benchVocabulary() []string {
	rng := rand.New(rand.NewPCG(5, 6))
	const letters = "abcdefghiklmnoprstuvw"
	seen := map[string]bool{}
	var out []string
	for len(out) < 50_000 {
		n := 4 + rng.IntN(7)
		var sb strings.Builder
		for range n {
			sb.WriteByte(letters[rng.IntN(len(letters))])
		}
		w := sb.String()
		if !seen[w] && len(store.QueryTerms(w)) == 1 {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// sample is a seeded chunk a query asks about.
type sample struct {
	text, subject string
	topic         int
}

// seedChunks writes n chunks (one document of them) with the stand-in's vectors, and returns
// every tenth.
func seedChunks(b *testing.B, st *store.Store, tenantID, baseID string, from, n int, corpus *helpCorpus) []sample {
	b.Helper()
	ctx := context.Background()
	doc := &store.KnowledgeDocument{BaseID: baseID, FileName: fmt.Sprintf("seed-%d.txt", from), MediaType: "text/plain",
		Checksum: fmt.Sprintf("%064x", from)}
	if _, err := store.CreateKnowledgeDocument(ctx, st, tenantID, doc, []byte("seeded"), "bench", time.Hour); err != nil {
		b.Fatal(err)
	}
	chunks := make([]store.KnowledgeChunk, n)
	var samples []sample
	for i := range chunks {
		text, topic, subject := corpus.chunk()
		if i%10 == 0 {
			samples = append(samples, sample{text, subject, topic})
		}
		v := llmtest.Embed(text)
		chunks[i] = store.KnowledgeChunk{DocumentID: doc.ID, BaseID: baseID, TenantID: tenantID, Position: i,
			HeadingPath: []string{"Seed"}, Text: text, Vector: encode(v)}
	}
	if err := store.SeedKnowledgeChunks(ctx, st, chunks); err != nil {
		b.Fatal(err)
	}
	return samples
}

func encode(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, f := range v {
		u := math.Float32bits(f)
		out = append(out, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return out
}
