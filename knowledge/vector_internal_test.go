package knowledge

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkVectorScan measures the in-process cosine scan alone: one query against a base's
// cached unit vectors, the top 20 kept, for bases of 10,000 and 100,000 chunks of the
// stand-in's 64 dimensions and of a 1,536-dimension model (OpenAI's text-embedding-3-small).
//
//	go test -run '^$' -bench VectorScan -benchtime 20x ./knowledge/
func BenchmarkVectorScan(b *testing.B) {
	for _, dim := range []int{64, 1536} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("dim=%d/chunks=%d", dim, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				bv := &baseVectors{dim: dim, ids: make([]int64, n), data: make([]float32, n*dim)}
				for i := range bv.ids {
					bv.ids[i] = int64(i)
					row := bv.data[i*dim : (i+1)*dim]
					for j := range row {
						row[j] = rng.Float32() - 0.5
					}
					normalize(row)
				}
				q := make([]float32, dim)
				for j := range q {
					q[j] = rng.Float32() - 0.5
				}
				normalize(q)
				b.ResetTimer()
				for range b.N {
					top := &minHeap{}
					bv.scan(q, 20, top)
				}
			})
		}
	}
}

// TestVectorScanTop: the scan keeps the most similar chunks, best first after search's
// ordering.
func TestVectorScanTop(t *testing.T) {
	bv := &baseVectors{dim: 2, ids: []int64{1, 2, 3}, data: []float32{1, 0, 0, 1, 0.6, 0.8}}
	top := &minHeap{}
	bv.scan([]float32{0, 1}, 2, top)
	got := map[int64]bool{}
	for _, s := range *top {
		got[s.id] = true
	}
	if len(got) != 2 || !got[2] || !got[3] {
		t.Fatalf("top %v, want chunks 2 and 3", *top)
	}
}
