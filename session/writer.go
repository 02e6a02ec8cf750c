package session

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// turnWriter stores finished turns. While one answer writes its turn, the turns of others
// that finish meanwhile wait and are then written together, in one transaction: under load,
// many answers cost one commit, and on SQLite they do not queue one by one for its single
// writer while holding connections that readers need.
type turnWriter struct {
	st *store.Store

	mu       sync.Mutex
	pending  []*turnWrite
	flushing bool
}

type turnWrite struct {
	append store.SessionAppend
	err    error
	done   chan struct{}
}

// write stores the messages of a session's turn, releasing the answer's lease with them
// (Lease: "" for none), closing the session with them when Close and inserting it first when
// New, and returns once they are committed (or not, with why): ErrNotFound when the session
// is gone, a *store.ValidationError when a new session's agent is.
func (w *turnWriter) write(ap store.SessionAppend) error {
	tw := &turnWrite{append: ap, done: make(chan struct{})}
	w.mu.Lock()
	w.pending = append(w.pending, tw)
	if w.flushing {
		w.mu.Unlock()
		<-tw.done
		return tw.err
	}
	w.flushing = true
	w.mu.Unlock()
	for {
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		if len(batch) == 0 {
			w.flushing = false
			w.mu.Unlock()
			return tw.err
		}
		w.mu.Unlock()
		w.flush(batch)
	}
}

//nolint:contextcheck // a batch holds several sessions' turns and has a deadline of its own
func (w *turnWriter) flush(batch []*turnWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	appends := make([]*store.SessionAppend, len(batch))
	for i, tw := range batch {
		appends[i] = &tw.append
	}
	err := store.AppendSessionBatch(ctx, w.st, appends)
	for _, tw := range batch {
		tw.err = err
		if err == nil {
			tw.err = tw.append.Err
		}
		close(tw.done)
	}
}
