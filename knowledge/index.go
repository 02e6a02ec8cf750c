package knowledge

import (
	"context"

	"github.com/switchboard-go/switchboard/store"
)

// Index is where a base's chunks are kept and searched. The store's implementation (NewIndex)
// keeps them in the database: FTS5 or PostgreSQL full text for words, an in-process cosine
// scan over the base's vectors for meaning. A vector engine (pgvector where the extension is
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
}

// NewIndex returns the index kept in st. maxVectors bounds the floats its vector cache holds
// in memory (0: DefaultMaxCachedVectors).
func NewIndex(st *store.Store, maxVectors int) Index {
	if maxVectors <= 0 {
		maxVectors = DefaultMaxCachedVectors
	}
	return &storeIndex{st: st, vectors: newVectorCache(st, maxVectors)}
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

func (ix *storeIndex) SearchVector(ctx context.Context, tenantID string, baseIDs []string, vector []float32, limit int) ([]Hit, error) {
	scored, err := ix.vectors.search(ctx, tenantID, baseIDs, vector, limit)
	if err != nil || len(scored) == 0 {
		return nil, err
	}
	ids := make([]int64, len(scored))
	for i, sc := range scored {
		ids[i] = sc.id
	}
	ms, err := store.KnowledgeChunksByID(ctx, ix.st, tenantID, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]*store.KnowledgeMatch, len(ms))
	for i := range ms {
		byID[ms[i].ChunkID] = &ms[i]
	}
	hits := make([]Hit, 0, len(scored))
	for _, sc := range scored {
		// A chunk deleted since the vectors were read is left out.
		if m, ok := byID[sc.id]; ok {
			h := hitOf(m)
			h.Score = float64(sc.score)
			hits = append(hits, h)
		}
	}
	return hits, nil
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
