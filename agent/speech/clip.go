package speech

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// clip is audio being synthesised by espeak: it grows while the library speaks and is
// immutable once done, when any number of readers share it without locks (the phrase
// cache hands the same clip to every call that says the phrase).
type clip struct {
	mu      sync.Mutex
	samples []int16
	err     error
	more    chan struct{} // closed and replaced when samples grow, closed when done
	done    atomic.Bool   // set, under mu, after the last change to samples and err
	readers int           // guarded by the Espeak's mu: live readers of a clip in flight
}

// newClip is an empty clip with room for about want samples.
func newClip(want int) *clip {
	return &clip{samples: make([]int16, 0, want), more: make(chan struct{})}
}

// doneClip is a finished clip of samples.
func doneClip(samples []int16) *clip {
	c := &clip{samples: samples, more: make(chan struct{})}
	close(c.more)
	c.done.Store(true)
	return c
}

func (c *clip) append(s []int16) {
	c.mu.Lock()
	c.samples = append(c.samples, s...)
	close(c.more)
	c.more = make(chan struct{})
	c.mu.Unlock()
}

func (c *clip) finish(err error) {
	c.mu.Lock()
	c.err = err
	// Drop the spare capacity of the growing slice: the cache counts what is kept.
	if cap(c.samples)-len(c.samples) > len(c.samples)/8 {
		c.samples = append([]int16(nil), c.samples...)
	}
	c.done.Store(true)
	close(c.more)
	c.mu.Unlock()
}

// clipReader is one listener's Audio over a clip.
type clipReader struct {
	c       *clip
	rate    int
	pos     int
	ctx     context.Context
	release func()
	closed  bool
}

func (r *clipReader) SampleRate() int { return r.rate }

func (r *clipReader) Read(p []int16) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	c := r.c
	for {
		if c.done.Load() {
			// Immutable from here on: no lock.
			if r.pos < len(c.samples) {
				n := copy(p, c.samples[r.pos:])
				r.pos += n
				return n, nil
			}
			if c.err != nil {
				return 0, c.err
			}
			return 0, io.EOF
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		c.mu.Lock()
		if r.pos < len(c.samples) {
			n := copy(p, c.samples[r.pos:])
			c.mu.Unlock()
			r.pos += n
			return n, nil
		}
		more := c.more
		c.mu.Unlock()
		select {
		case <-more:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *clipReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.release != nil {
		r.release()
	}
	return nil
}
