package knowledge

import (
	"container/heap"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// DefaultMaxCachedPostings bounds the (chunk, count) pairs a node keeps of its bases' words,
// six bytes each: 8 Mi pairs (48 MiB), for example the 400 commonest words of a base of
// 100,000 chunks of help-centre text. Past it, the words are read again when searched.
const DefaultMaxCachedPostings = 8 << 20

// A lexical search is ranked in memory. The database's own ranking (FTS5's bm25(), or
// PostgreSQL's ts_rank) counted, on every search, the chunks that have each word of the
// query, and read every candidate chunk's position lists and size: at 100,000 chunks of help
// text, whose common words are in tens of thousands of chunks, that was 12 to 16 ms of CPU a
// search in SQLite (BENCHMARKS.md). The words a caller asks about are few and asked again,
// so a node reads, once per base revision, each chunk's length and, for each word when
// first asked, its chunks with how often each has it, from the index itself (the same
// tokenizer, so the same words MATCH and @@ find); a search is then a pass over the query
// words' lists. BM25 with each base's own document counts ranks the chunks: PostgreSQL's
// ts_rank knew nothing of how rare a word is, and FTS5's counted every tenant's chunks.
//
// Reading a common word's list costs several milliseconds in SQLite and a few hundred in
// PostgreSQL at 100,000 chunks, more than a voice turn should wait. So a search never
// waits for it: while a base's lengths or a word of the query are not in memory (the first
// searches after a document is indexed or deleted), the search is the database's own
// (store.SearchKnowledge, as fast as it ever was) and the lists are read in the background,
// one base at a time, for the searches after it.

const (
	bm25K1 = 1.2
	bm25B  = 0.75
	// maxCachedStems bounds the words whose index terms a node remembers.
	maxCachedStems = 1 << 16
)

// lexicalCache keeps, per base, what ranking needs: the chunks' lengths and the words' lists.
type lexicalCache struct {
	st  *store.Store
	max int

	mu    sync.Mutex
	bases map[string]*baseLexicon
	held  int // postings held by every base's words
	stems map[string][]string
	// loading serializes reads of one base, so that a burst of searches reads it once.
	loading sync.Map
	scratch sync.Pool

	// warming holds, by base, what a background reader (one a base) has still to read;
	// closed stops new readers, and close waits for those running. Guarded by mu.
	warming map[string]*warmJob
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// warmJob is what a base's background reader has still to read: the lengths at rev at
// least, and the terms' lists.
type warmJob struct {
	tenantID string
	rev      int64
	terms    []string
}

// maxWarmTerms bounds the words waiting for one base's reader; past it a word is left for a
// later search to ask again.
const maxWarmTerms = 1024

// warmTimeout bounds one base's background read.
const warmTimeout = time.Minute

// baseLexicon is one base's chunks at a revision, by chunk ID ascending; a chunk is known by
// its place in ids.
type baseLexicon struct {
	tenantID string
	revision int64
	ids      []int64
	// norm is BM25's length term of each chunk: k1 × (1 − b + b × length / average length).
	norm  []float32
	terms map[string]*postings // guarded by lexicalCache.mu
}

// postings are the chunks (places in the base) that have a word, and how often each has it.
type postings struct {
	at []uint32
	tf []uint16
}

func newLexicalCache(st *store.Store, max int) *lexicalCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &lexicalCache{st: st, max: max, bases: map[string]*baseLexicon{}, stems: map[string][]string{},
		warming: map[string]*warmJob{}, ctx: ctx, cancel: cancel}
}

// close stops the background reads and waits for them.
func (lc *lexicalCache) close() {
	lc.mu.Lock()
	lc.closed = true
	lc.mu.Unlock()
	lc.cancel()
	lc.wg.Wait()
}

// warm reads, in the background, the base's lengths at revision rev and the terms' lists;
// when the base's reader is already running it reads them next. When the base has changed
// since its lists were read, the reader reads again the words the cache held.
//
//nolint:contextcheck // the cache is warmed in the background for later searches, not the one that asked
func (lc *lexicalCache) warm(tenantID, baseID string, rev int64, terms []string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.closed {
		return
	}
	if job := lc.warming[baseID]; job != nil {
		if job.tenantID == tenantID && len(job.terms)+len(terms) <= maxWarmTerms {
			job.rev = max(job.rev, rev)
			job.terms = append(job.terms, terms...)
		}
		return
	}
	job := &warmJob{tenantID: tenantID, rev: rev, terms: slices.Clone(terms)}
	lc.warming[baseID] = job
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		ctx, cancel := context.WithTimeout(lc.ctx, warmTimeout)
		defer cancel()
		for {
			lc.mu.Lock()
			rev, terms := job.rev, job.terms
			job.terms = nil
			if len(terms) == 0 {
				delete(lc.warming, baseID)
				lc.mu.Unlock()
				return
			}
			lc.mu.Unlock()
			// A failed read leaves the cache as it was: searches stay with the
			// database's ranking and ask again.
			bl, err := lc.base(ctx, tenantID, baseID, rev)
			for _, t := range terms {
				if err == nil {
					_, err = lc.postings(ctx, bl, baseID, t)
				}
			}
			if err != nil {
				lc.mu.Lock()
				delete(lc.warming, baseID)
				lc.mu.Unlock()
				return
			}
		}
	}()
}

// lexicalHit is a chunk a lexical search found: how many of the query's words it has, and
// its BM25 score.
type lexicalHit struct {
	id    int64
	words int
	score float64
}

// search ranks the bases' chunks by the query's words, best first, as store.SearchKnowledge
// does (coordination levels, then BM25): only the chunks with the most of the words that the
// bases have are answered, however many or few they are, up to limit. warm is false when
// what the search needs is not all in memory yet: the caller searches the database instead,
// and the missing lists are being read.
func (lc *lexicalCache) search(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) (hits []lexicalHit, warm bool, err error) {
	words := store.QueryTerms(query)
	if len(words) == 0 || len(baseIDs) == 0 || limit <= 0 {
		return nil, true, nil
	}
	terms, err := lc.termsOf(ctx, words)
	if err != nil || len(terms) == 0 {
		return nil, err == nil, err
	}
	states, err := store.KnowledgeBaseStates(ctx, lc.st, tenantID, baseIDs)
	if err != nil {
		return nil, false, err
	}
	type ready struct {
		bl    *baseLexicon
		lists []*postings
	}
	var bases []ready
	warm = true
	seen := map[string]bool{}
	for _, id := range baseIDs {
		st, ok := states[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		bl, lists := lc.cached(tenantID, id, st.Revision, terms)
		if lists == nil {
			lc.warm(tenantID, id, st.Revision, terms)
			warm = false
			continue
		}
		bases = append(bases, ready{bl, lists})
	}
	if !warm {
		return nil, false, nil
	}
	top := &lexicalHeap{}
	for _, b := range bases {
		lc.rank(b.bl, b.lists, limit, top)
	}
	out := make([]lexicalHit, top.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(top).(lexicalHit)
	}
	// Only the chunks with the most words answer (the heap put them first).
	for i := range out {
		if out[i].words < out[0].words {
			out = out[:i]
			break
		}
	}
	return out, true, nil
}

// cached returns the base's lexicon at revision rev and the lists of the terms the base has,
// or no lists when the lexicon or a term's list is not in memory.
func (lc *lexicalCache) cached(tenantID, baseID string, rev int64, terms []string) (*baseLexicon, []*postings) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	bl := lc.bases[baseID]
	if bl == nil || bl.tenantID != tenantID || bl.revision < rev {
		return nil, nil
	}
	lists := make([]*postings, 0, len(terms))
	for _, t := range terms {
		p := bl.terms[t]
		if p == nil {
			return nil, nil
		}
		if len(p.at) > 0 {
			lists = append(lists, p)
		}
	}
	return bl, lists
}

// scratch is one search's per-chunk sums over a base, reset after use.
type scratch struct {
	score   []float32
	words   []uint8
	touched []uint32
}

// rank adds to top the limit best chunks of the base by (words, BM25).
func (lc *lexicalCache) rank(bl *baseLexicon, lists []*postings, limit int, top *lexicalHeap) {
	n := len(bl.ids)
	if n == 0 || len(lists) == 0 {
		return
	}
	sc, _ := lc.scratch.Get().(*scratch)
	if sc == nil || len(sc.score) < n {
		sc = &scratch{score: make([]float32, n), words: make([]uint8, n)}
	}
	for _, p := range lists {
		df := float64(len(p.at))
		// The +1 keeps a word in most chunks worth a little: it still tells a chunk that
		// has it from one that has not.
		idf := float32(math.Log(1 + (float64(n)-df+0.5)/(df+0.5)))
		for j, at := range p.at {
			tf := float32(p.tf[j])
			if sc.words[at] == 0 {
				sc.touched = append(sc.touched, at)
			}
			sc.words[at]++
			sc.score[at] += idf * tf * (bm25K1 + 1) / (tf + bl.norm[at])
		}
	}
	for _, at := range sc.touched {
		h := lexicalHit{id: bl.ids[at], words: int(sc.words[at]), score: float64(sc.score[at])}
		if top.Len() < limit {
			heap.Push(top, h)
		} else if better(h, (*top)[0]) {
			(*top)[0] = h
			heap.Fix(top, 0)
		}
		sc.score[at], sc.words[at] = 0, 0
	}
	sc.touched = sc.touched[:0]
	lc.scratch.Put(sc)
}

// better orders hits: more of the query's words, then a higher score, then the older chunk.
func better(a, b lexicalHit) bool {
	if a.words != b.words {
		return a.words > b.words
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.id < b.id
}

// lexicalHeap keeps the best hits so far, the worst on top.
type lexicalHeap []lexicalHit

func (h lexicalHeap) Len() int           { return len(h) }
func (h lexicalHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h lexicalHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *lexicalHeap) Push(x any)        { *h = append(*h, x.(lexicalHit)) }
func (h *lexicalHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// termsOf returns the index terms of the words, without repeats ("refund" and "refunds" are
// one), asking the database only for words it has not seen.
func (lc *lexicalCache) termsOf(ctx context.Context, words []string) ([]string, error) {
	var missing []string
	lc.mu.Lock()
	for _, w := range words {
		if _, ok := lc.stems[w]; !ok {
			missing = append(missing, w)
		}
	}
	lc.mu.Unlock()
	if len(missing) > 0 {
		stems, err := store.KnowledgeStems(ctx, lc.st, missing)
		if err != nil {
			return nil, err
		}
		lc.mu.Lock()
		if len(lc.stems)+len(missing) > maxCachedStems {
			lc.stems = map[string][]string{}
		}
		for i, w := range missing {
			lc.stems[w] = stems[i]
		}
		lc.mu.Unlock()
	}
	var out []string
	lc.mu.Lock()
	for _, w := range words {
		for _, t := range lc.stems[w] {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	lc.mu.Unlock()
	return out, nil
}

// base returns the base's lexicon at revision rev, reading its chunks' lengths when the
// cache holds none or older ones.
func (lc *lexicalCache) base(ctx context.Context, tenantID, baseID string, rev int64) (*baseLexicon, error) {
	fresh := func() *baseLexicon {
		lc.mu.Lock()
		defer lc.mu.Unlock()
		if bl := lc.bases[baseID]; bl != nil && bl.tenantID == tenantID && bl.revision >= rev {
			return bl
		}
		return nil
	}
	if bl := fresh(); bl != nil {
		return bl, nil
	}
	mu := lc.loadLock(baseID)
	mu.Lock()
	defer mu.Unlock()
	if bl := fresh(); bl != nil {
		return bl, nil
	}
	// The revision was read before the lengths: lengths newer than it are read again by
	// the next search, which is safe; older ones could not be.
	ids, lens, err := store.KnowledgeChunkLengths(ctx, lc.st, baseID)
	if err != nil {
		return nil, err
	}
	bl := &baseLexicon{tenantID: tenantID, revision: rev, ids: ids, norm: make([]float32, len(ids)), terms: map[string]*postings{}}
	var sum float64
	for _, n := range lens {
		sum += float64(n)
	}
	avg := max(sum/float64(max(len(lens), 1)), 1)
	for i, n := range lens {
		bl.norm[i] = float32(bm25K1 * (1 - bm25B + bm25B*float64(n)/avg))
	}
	lc.mu.Lock()
	if old := lc.bases[baseID]; old != nil {
		for t, p := range old.terms {
			lc.held -= len(p.at)
			// The words searched before the base changed are likely searched again: its
			// reader reads them after the words it was asked for.
			if job := lc.warming[baseID]; job != nil && old.tenantID == tenantID && len(job.terms) < maxWarmTerms {
				job.terms = append(job.terms, t)
			}
		}
	}
	lc.bases[baseID] = bl
	lc.mu.Unlock()
	return bl, nil
}

// postings returns the base's chunks that have the term, reading them when first asked.
func (lc *lexicalCache) postings(ctx context.Context, bl *baseLexicon, baseID, term string) (*postings, error) {
	lc.mu.Lock()
	p := bl.terms[term]
	lc.mu.Unlock()
	if p != nil {
		return p, nil
	}
	mu := lc.loadLock(baseID)
	mu.Lock()
	defer mu.Unlock()
	lc.mu.Lock()
	p = bl.terms[term]
	lc.mu.Unlock()
	if p != nil {
		return p, nil
	}
	ids, tfs, err := store.KnowledgeTermChunks(ctx, lc.st, baseID, term)
	if err != nil {
		return nil, err
	}
	// Both lists are by chunk ID: one pass keeps the base's chunks (SQLite's list has every
	// base's) and finds each one's place.
	p = &postings{}
	j := 0
	for i, id := range ids {
		for j < len(bl.ids) && bl.ids[j] < id {
			j++
		}
		if j == len(bl.ids) {
			break
		}
		if bl.ids[j] == id {
			p.at = append(p.at, uint32(j))
			p.tf = append(p.tf, uint16(min(tfs[i], math.MaxUint16)))
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.bases[baseID] != bl {
		// A newer revision replaced the base while its word was read: this search uses
		// the list, the cache does not keep it.
		return p, nil
	}
	// Past the bound, every base's words are forgotten: they are read again when searched.
	if lc.held+len(p.at) > lc.max {
		for _, b := range lc.bases {
			b.terms = map[string]*postings{}
		}
		lc.held = 0
	}
	bl.terms[term] = p
	lc.held += len(p.at)
	return p, nil
}

func (lc *lexicalCache) loadLock(baseID string) *sync.Mutex {
	lk, _ := lc.loading.LoadOrStore(baseID, &sync.Mutex{})
	return lk.(*sync.Mutex)
}
