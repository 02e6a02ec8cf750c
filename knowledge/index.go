package knowledge

import (
	"context"

	"github.com/switchboard-go/switchboard/store"
)

// Index is where a base's chunks are kept and searched. The store's implementation (NewIndex)
// keeps them in the database: FTS5 or PostgreSQL full text for words (ranked in process by
// BM25 over the index's own word lists, lexical.go), an in-process cosine scan over the
// base's vectors for meaning. A vector engine (pgvector where the extension is
// installed) can take SearchVector over behind this interface without callers changing.
type Index interface {
	// Put indexes a processing document's chunks and makes it ready, all at once: a
	// document is never ready with part of its chunks. node must hold the document
	// (store.ErrLeaseLost otherwise, and nothing is written).
	Put(ctx context.Context, doc *store.KnowledgeDocument, node string, chunks []IndexedChunk, pages int) error
	// Delete removes a document of a base of the tenant and its chunks at once.
	Delete(ctx context.Context, tenantID, baseID, documentID string) error
	// SearchLexical ranks the bases' chunks by the words of query (BM25-style), best first.
	SearchLexical(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]Hit, error)
	// SearchVector ranks the bases' chunks by cosine similarity to vector, best first.
	SearchVector(ctx context.Context, tenantID string, baseIDs []string, vector []float32, limit int) ([]Hit, error)
}

// IndexedChunk is a chunk with its embedding (nil when its base has no embedding model).
type IndexedChunk struct {
	Chunk
	Vector []float32
}

// storeIndex is the Index of the database every node shares.
type storeIndex struct {
	st      *store.Store
	vectors *vectorCache
	lexical *lexicalCache
}

// NewIndex returns the index kept in st. maxVectors bounds the floats its vector cache holds
// in memory (0: DefaultMaxCachedVectors).
func NewIndex(st *store.Store, maxVectors int) Index {
	if maxVectors <= 0 {
		maxVectors = DefaultMaxCachedVectors
	}
	return &storeIndex{st: st, vectors: newVectorCache(st, maxVectors), lexical: newLexicalCache(st, DefaultMaxCachedPostings)}
}

func (ix *storeIndex) Put(ctx context.Context, doc *store.KnowledgeDocument, node string, chunks []IndexedChunk, pages int) error {
	rows := make([]store.KnowledgeChunk, len(chunks))
	for i, c := range chunks {
		rows[i] = store.KnowledgeChunk{Position: c.Position, HeadingPath: c.HeadingPath, Page: c.Page, Text: c.Text}
		if c.Vector != nil {
			rows[i].Vector = encodeVector(c.Vector)
		}
	}
	return store.FinishKnowledgeDocument(ctx, ix.st, doc, node, rows, pages)
}

func (ix *storeIndex) Delete(ctx context.Context, tenantID, baseID, documentID string) error {
	return store.DeleteKnowledgeDocument(ctx, ix.st, tenantID, baseID, documentID)
}

func (ix *storeIndex) SearchLexical(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]Hit, error) {
	found, warm, err := ix.lexical.search(ctx, tenantID, baseIDs, query, limit)
	if err != nil {
		return nil, err
	}
	if !warm {
		return ix.searchDatabase(ctx, tenantID, baseIDs, query, limit)
	}
	if len(found) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(found))
	for i, f := range found {
		ids[i] = f.id
	}
	return ix.hits(ctx, tenantID, ids, func(i int) float64 { return found[i].score })
}

// searchDatabase is the search ranked by the database (FTS5's bm25(), PostgreSQL's ts_rank),
// while the in-memory ranking's lists are being read.
func (ix *storeIndex) searchDatabase(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]Hit, error) {
	ms, err := store.SearchKnowledge(ctx, ix.st, tenantID, baseIDs, query, limit)
	if err != nil {
		return nil, err
	}
	hits := make([]Hit, len(ms))
	for i := range ms {
		hits[i] = hitOf(&ms[i])
	}
	return hits, nil
}

// Close stops the index's background reads and waits for them.
func (ix *storeIndex) Close() { ix.lexical.close() }

// hits reads the chunks by ID and returns them in that order with their scores; a chunk
// deleted since it was ranked is left out.
func (ix *storeIndex) hits(ctx context.Context, tenantID string, ids []int64, score func(i int) float64) ([]Hit, error) {
	ms, err := store.KnowledgeChunksByID(ctx, ix.st, tenantID, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]*store.KnowledgeMatch, len(ms))
	for i := range ms {
		byID[ms[i].ChunkID] = &ms[i]
	}
	hits := make([]Hit, 0, len(ids))
	for i, id := range ids {
		if m, ok := byID[id]; ok {
			h := hitOf(m)
			h.Score = score(i)
			hits = append(hits, h)
		}
	}
	return hits, nil
}

func (ix *storeIndex) SearchVector(ctx context.Context, tenantID string, baseIDs []string, vector []float32, limit int) ([]Hit, error) {
	scored, err := ix.vectors.search(ctx, tenantID, baseIDs, vector, limit)
	if err != nil || len(scored) == 0 {
		return nil, err
	}
	ids := make([]int64, len(scored))
	for i, sc := range scored {
		ids[i] = sc.id
	}
	return ix.hits(ctx, tenantID, ids, func(i int) float64 { return float64(scored[i].score) })
}

func hitOf(m *store.KnowledgeMatch) Hit {
	hp := m.HeadingPath
	if hp == nil {
		hp = []string{}
	}
	return Hit{BaseID: m.BaseID, DocumentID: m.DocumentID, DocumentName: m.DocumentName, ChunkID: chunkID(m.ChunkID),
		Position: m.Position, HeadingPath: hp, Page: m.Page, Text: m.Text, Score: m.Score}
}

func chunkID(id int64) string { return "kch_" + itoa(id) }

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
