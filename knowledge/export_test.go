package knowledge

import (
	"context"

	"github.com/switchboard-go/switchboard/store"
)

// IdleIndex waits until the store index's background reads of word lists are done. No
// search may run meanwhile.
func IdleIndex(ix Index) { ix.(*storeIndex).lexical.wg.Wait() }

// ServiceIndex is the service's index.
func ServiceIndex(s *Service) Index { return s.index }

// SearchInMemory is the store index's in-memory lexical search: the chunks' IDs, best first,
// and whether everything it needed was in memory (when not, it is being read).
func SearchInMemory(ix Index, ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]int64, bool, error) {
	found, warm, err := ix.(*storeIndex).lexical.search(ctx, tenantID, baseIDs, query, limit)
	ids := make([]int64, len(found))
	for i, f := range found {
		ids[i] = f.id
	}
	return ids, warm, err
}

// NewIndexHolding is NewIndex with its word lists bounded to maxPostings pairs.
func NewIndexHolding(st *store.Store, maxPostings int) Index {
	ix := NewIndex(st, 0).(*storeIndex)
	ix.lexical.max = maxPostings
	return ix
}

// HeldPostings is how many pairs the store index's word lists hold.
func HeldPostings(ix Index) int {
	lc := ix.(*storeIndex).lexical
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.held
}
