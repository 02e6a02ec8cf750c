package store

import "time"

// SetClock replaces the store's clock (the time it writes into rows) for a test.
func SetClock(s *Store, now func() time.Time) { s.now = now }

// SetFailBatch sets how many calls one transaction fails, and returns what puts it back.
func SetFailBatch(n int) func() {
	old := failBatch.Swap(int64(n))
	return func() { failBatch.Store(old) }
}
