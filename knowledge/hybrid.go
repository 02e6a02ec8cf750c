package knowledge

import "sort"

// rrfK is reciprocal-rank fusion's constant: 60, as Cormack, Clarke and Büttcher chose it,
// damps the difference between the first few ranks so that a chunk both lists agree on
// beats one that only one list puts first.
const rrfK = 60

// fuse merges ranked lists by reciprocal rank: a chunk scores the sum of 1/(k+rank) over
// the lists that have it. Scores of different lists (BM25, cosine) are not comparable;
// ranks are.
func fuse(limit int, lists ...[]Hit) []Hit {
	type entry struct {
		hit   Hit
		score float64
		first int
	}
	byID := map[string]*entry{}
	order := 0
	for _, list := range lists {
		for rank, h := range list {
			e := byID[h.ChunkID]
			if e == nil {
				e = &entry{hit: h, first: order}
				byID[h.ChunkID] = e
				order++
			}
			e.score += 1 / float64(rrfK+rank+1)
		}
	}
	out := make([]*entry, 0, len(byID))
	for _, e := range byID {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].score != out[j].score {
			return out[i].score > out[j].score
		}
		return out[i].first < out[j].first
	})
	hits := make([]Hit, 0, min(limit, len(out)))
	for _, e := range out[:min(limit, len(out))] {
		e.hit.Score = e.score
		hits = append(hits, e.hit)
	}
	return hits
}
