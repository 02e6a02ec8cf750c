package media

import "time"

// EagerRead is the part of a receive side that lets its reader take each frame as soon as
// it is next in order (EagerReader): the transport's network goroutine wakes the reader
// when it buffers a packet, and the reader waits for a missing frame only until that
// frame's slot of the read clock, which each frame played puts the jitter buffer's depth
// after it. The RTP session of a SIP call and a WebRTC peer read eagerly through it alike.
//
// Start and Arrived run under the lock under which the jitter buffer is filled, as does the
// reader's look at On; Wait belongs to the reader's goroutine and runs without the lock.
type EagerRead struct {
	on      bool
	arrived chan struct{}
}

// Start switches jb to eager playout and the reader to eager reading.
func (e *EagerRead) Start(jb *JitterBuffer) {
	if e.arrived == nil {
		e.arrived = make(chan struct{}, 1)
	}
	e.on = true
	jb.SetEager(true)
}

// On says whether the reader reads eagerly.
func (e *EagerRead) On() bool { return e.on }

// Arrived wakes a reader waiting for a frame, once a packet is buffered.
func (e *EagerRead) Arrived() {
	if !e.on {
		return
	}
	select {
	case e.arrived <- struct{}{}:
	default:
	}
}

// Wait waits until ready (which takes the lock) says the next frame is held, or the clock
// reaches slot, whichever is first; it returns ErrClosed once done is closed.
func (e *EagerRead) Wait(clock *Pacer, slot time.Time, ready func() bool, done <-chan struct{}) error {
	for !ready() {
		woken, err := clock.WaitOr(slot, e.arrived, done)
		if err != nil || !woken {
			return err
		}
	}
	return nil
}

// Played moves clock on after a frame that came was played at now: the next frame is due a
// frame later, and the jitter buffer's depth (depth frames) is how much later than that it
// may come before it is concealed, at most maxLag.
func (e *EagerRead) Played(clock *Pacer, now time.Time, depth int, maxLag time.Duration) {
	clock.SetNext(now.Add(min(time.Duration(depth)*FrameDuration, maxLag)))
}
