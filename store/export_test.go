package store

import (
	"context"
	"encoding/json"
	"time"
)

// SetClock replaces the store's clock (the time it writes into rows) for a test.
func SetClock(s *Store, now func() time.Time) { s.now = now }

// SetFailBatch sets how many calls one transaction fails, and returns what puts it back.
func SetFailBatch(n int) func() {
	old := failBatch.Swap(int64(n))
	return func() { failBatch.Store(old) }
}

// RebuildRollups replaces every call rollup with the sums of the calls' rows, as the
// migration that made them does.
func RebuildRollups(ctx context.Context, s *Store) error {
	return rebuildRollups(ctx, s.db, s.dialect, time.Time{}, time.Time{})
}

// Rollups reads every call rollup as JSON lines in the order of their keys.
func Rollups(ctx context.Context, s *Store) ([]string, error) {
	var rows []*callRollup
	if err := s.db.NewSelect().Model(&rows).Order("tenant_id", "hour", "agent_id").Scan(ctx); err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		r.init()
		r.Hour = r.Hour.UTC()
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

// ReadRawCalls makes the analytics read the calls' rows for the whole range, not the
// rollups, and returns what puts them back.
func ReadRawCalls(s *Store) func() {
	s.rawCalls.Store(true)
	return func() { s.rawCalls.Store(false) }
}
