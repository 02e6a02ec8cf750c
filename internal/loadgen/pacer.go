package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// maxBurst is how many overdue frames of a call a pacer sends in one tick; a pacer further
// behind skips the older ones (the RTP timestamp still advances) rather than flood.
const maxBurst = 3

// pacer sends the RTP of its share of the calls: one goroutine and one 20 ms ticker for
// hundreds of calls, instead of a ticker per call. On each tick it sends every frame that
// has come due. A call's sending state belongs to its pacer from add until the pacer closes
// the call's sent channel; the call's owner asks it to stop with call.stop.
type pacer struct {
	mu      sync.Mutex
	pending []*call // added since the last tick

	calls []*call // owned by run

	// Health of the pacer itself, for the report: frames sent more than a frame late,
	// frames skipped, and the worst lateness seen.
	late, skipped atomic.Int64
	maxLag        atomic.Int64
}

// add hands c to the pacer; its first frame goes at the next tick.
func (p *pacer) add(c *call) {
	p.mu.Lock()
	p.pending = append(p.pending, c)
	p.mu.Unlock()
}

// run ticks until ctx ends, then releases the calls it still holds.
func (p *pacer) run(ctx context.Context) {
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.calls = append(p.calls, p.pending...)
			p.pending = p.pending[:0]
			p.mu.Unlock()
			for _, c := range p.calls {
				close(c.sent)
			}
			p.calls = nil
			return
		case now := <-tick.C:
			p.tick(now)
		}
	}
}

func (p *pacer) tick(now time.Time) {
	p.mu.Lock()
	p.calls = append(p.calls, p.pending...)
	clear(p.pending)
	p.pending = p.pending[:0]
	p.mu.Unlock()
	var lag time.Duration
	for i := 0; i < len(p.calls); {
		c := p.calls[i]
		l, more := c.pace(now, p)
		lag = max(lag, l)
		if more {
			i++
			continue
		}
		close(c.sent)
		last := len(p.calls) - 1
		p.calls[i], p.calls[last] = p.calls[last], nil
		p.calls = p.calls[:last]
	}
	if int64(lag) > p.maxLag.Load() {
		p.maxLag.Store(int64(lag)) // only run stores
	}
}
