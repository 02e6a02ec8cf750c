package knowledge

import (
	"container/heap"
	"context"
	"encoding/binary"
	"math"
	"sync"

	"github.com/switchboard-go/switchboard/store"
)

// DefaultMaxCachedVectors bounds the floats a node keeps of its bases' vectors: 32 Mi floats
// (128 MiB), for example 21,000 chunks of 1,536 dimensions or 87,000 of 384.
const DefaultMaxCachedVectors = 32 << 20

// The in-process scan reads a base's vectors into memory once (again when the base's
// revision moves: a document indexed or deleted on any node) and compares the query with
// each. Its cost grows with chunks × dimensions (BenchmarkVectorScan, BENCHMARKS.md). Past
// the point where one scan costs a voice turn more than a few milliseconds (some tens of
// thousands of chunks of a 1,536-dimension model), or bases that together outgrow the cache,
// an approximate index (pgvector's HNSW where the extension is installed) is the right
// choice; it replaces SearchVector behind Index and nothing else changes.

// encodeVector is the stored form of a vector: little-endian float32s.
func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte, into []float32) {
	for i := range into {
		into[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// normalize scales v to unit length in place, so that a dot product is the cosine.
func normalize(v []float32) {
	var sum float64
	for _, f := range v {
		sum += float64(f) * float64(f)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
}

// baseVectors is one base's unit vectors, row after row, at a revision.
type baseVectors struct {
	tenantID string
	revision int64
	dim      int
	ids      []int64
	data     []float32
}

type vectorCache struct {
	st    *store.Store
	max   int
	mu    sync.Mutex
	bases map[string]*baseVectors
	held  int
	// loading serializes reads of one base, so that a burst of searches reads it once.
	loading sync.Map
}

func newVectorCache(st *store.Store, max int) *vectorCache {
	return &vectorCache{st: st, max: max, bases: map[string]*baseVectors{}}
}

type scoredChunk struct {
	id    int64
	score float32
}

// search returns the limit chunks of the bases most similar to q, best first.
func (vc *vectorCache) search(ctx context.Context, tenantID string, baseIDs []string, q []float32, limit int) ([]scoredChunk, error) {
	states, err := store.KnowledgeBaseStates(ctx, vc.st, tenantID, baseIDs)
	if err != nil {
		return nil, err
	}
	query := append([]float32(nil), q...)
	normalize(query)
	top := &minHeap{}
	for _, id := range baseIDs {
		st, ok := states[id]
		if !ok {
			continue
		}
		bv, err := vc.get(ctx, tenantID, id, st.Revision)
		if err != nil {
			return nil, err
		}
		// Vectors of another size came from another model; they cannot be compared.
		if bv.dim != len(query) {
			continue
		}
		bv.scan(query, limit, top)
	}
	out := make([]scoredChunk, top.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(top).(scoredChunk)
	}
	return out, nil
}

// scan keeps in top the limit chunks of the base most similar to query (a unit vector).
func (bv *baseVectors) scan(query []float32, limit int, top *minHeap) {
	for i, cid := range bv.ids {
		dot := dot(bv.data[i*bv.dim:(i+1)*bv.dim], query)
		if top.Len() < limit {
			heap.Push(top, scoredChunk{cid, dot})
		} else if dot > (*top)[0].score {
			(*top)[0] = scoredChunk{cid, dot}
			heap.Fix(top, 0)
		}
	}
}

// dot is the dot product of two vectors of the same length, four lanes at a time: the
// compiler keeps the four sums in registers and checks bounds once a step.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		a4, b4 := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += a4[0] * b4[0]
		s1 += a4[1] * b4[1]
		s2 += a4[2] * b4[2]
		s3 += a4[3] * b4[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// get returns the base's vectors at revision rev, reading them when the cache holds none or
// older ones.
func (vc *vectorCache) get(ctx context.Context, tenantID, baseID string, rev int64) (*baseVectors, error) {
	vc.mu.Lock()
	bv := vc.bases[baseID]
	vc.mu.Unlock()
	if bv != nil && bv.tenantID == tenantID && bv.revision >= rev {
		return bv, nil
	}
	lk, _ := vc.loading.LoadOrStore(baseID, &sync.Mutex{})
	mu := lk.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	vc.mu.Lock()
	bv = vc.bases[baseID]
	vc.mu.Unlock()
	if bv != nil && bv.tenantID == tenantID && bv.revision >= rev {
		return bv, nil
	}
	rows, readRev, err := store.KnowledgeVectors(ctx, vc.st, tenantID, baseID)
	if err != nil {
		return nil, err
	}
	bv = &baseVectors{tenantID: tenantID, revision: readRev}
	if len(rows) > 0 {
		bv.dim = len(rows[0].Vector) / 4
		bv.ids = make([]int64, 0, len(rows))
		bv.data = make([]float32, 0, len(rows)*bv.dim)
		for _, r := range rows {
			if len(r.Vector) != 4*bv.dim {
				continue
			}
			bv.ids = append(bv.ids, r.ChunkID)
			bv.data = append(bv.data, make([]float32, bv.dim)...)
			row := bv.data[len(bv.data)-bv.dim:]
			decodeVector(r.Vector, row)
			normalize(row)
		}
	}
	vc.mu.Lock()
	if old := vc.bases[baseID]; old != nil {
		vc.held -= len(old.data)
	}
	// Past the bound, the other bases are forgotten: they are read again when searched.
	if vc.held+len(bv.data) > vc.max {
		vc.bases, vc.held = map[string]*baseVectors{}, 0
	}
	vc.bases[baseID] = bv
	vc.held += len(bv.data)
	vc.mu.Unlock()
	return bv, nil
}

// minHeap keeps the best chunks seen so far, the worst of them on top.
type minHeap []scoredChunk

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].score < h[j].score }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(scoredChunk)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
