package media

import "time"

// Pacer is the 20 ms clock one side of a stream keeps: every frame read or written has its
// slot, a caller ahead of the clock waits for its slot, and one that fell behind resumes on
// the clock rather than catching up in a burst. The RTP session of a SIP call and a WebRTC
// peer pace their reading and their writing with one each.
//
// The clock (ReadSlot, WriteSlot, SkipTo, Next) is guarded by its owner (a writer's by its
// write lock); Wait belongs to the goroutine that reads or writes.
type Pacer struct {
	next    time.Time
	started bool
	timer   *time.Timer
}

// NewPacer returns a clock that starts at the first slot asked for.
func NewPacer() *Pacer { return &Pacer{timer: stoppedTimer()} }

// ReadSlot is the slot of the next frame read at now. The clock starts at the first read,
// and starts over at now when the reader fell more than maxLag behind: what it missed is
// not played in a burst.
func (p *Pacer) ReadSlot(now time.Time, maxLag time.Duration) time.Time {
	if !p.started || now.Sub(p.next) > maxLag {
		p.started, p.next = true, now
	}
	slot := p.next
	p.next = slot.Add(FrameDuration)
	return slot
}

// WriteSlot is the slot of the next frame written at now. The clock starts at the first
// write (first is true); a writer more than maxLag behind resumes on the clock in phase,
// the whole frames it missed counted in skipped, so that its timestamps skip them too (and
// the packet after the gap carries the marker bit).
func (p *Pacer) WriteSlot(now time.Time, maxLag time.Duration) (slot time.Time, skipped int, first bool) {
	if !p.started {
		p.started, p.next, first = true, now, true
	}
	if lag := now.Sub(p.next); lag > maxLag {
		skipped = int(lag / FrameDuration)
		p.next = p.next.Add(time.Duration(skipped) * FrameDuration)
	}
	slot = p.next
	p.next = slot.Add(FrameDuration)
	return slot, skipped, first
}

// SkipTo moves the clock to the first slot at or after t and returns how many slots it
// skipped (a telephone event starts on the clock, and audio resumes after it).
func (p *Pacer) SkipTo(t time.Time) int {
	if !p.started {
		p.started, p.next = true, t
		return 0
	}
	lag := t.Sub(p.next)
	if lag <= 0 {
		return 0
	}
	k := int((lag + FrameDuration - 1) / FrameDuration)
	p.next = p.next.Add(time.Duration(k) * FrameDuration)
	return k
}

// SetNext moves the clock to t: the next frame's slot (an eager reader's deadline for it).
func (p *Pacer) SetNext(t time.Time) { p.started, p.next = true, t }

// Next is the slot the clock is at: that of the next frame.
func (p *Pacer) Next() time.Time { return p.next }

// Wait sleeps until t, or returns ErrClosed once done is closed.
func (p *Pacer) Wait(t time.Time, done <-chan struct{}) error {
	return sleepUntil(p.timer, t, done)
}

// WaitOr sleeps until t or until wake has a token (woken), or returns ErrClosed once done
// is closed.
func (p *Pacer) WaitOr(t time.Time, wake <-chan struct{}, done <-chan struct{}) (woken bool, err error) {
	return waitUntil(p.timer, t, wake, done)
}

// sleepUntil waits on timer until the deadline, or returns ErrClosed once done is closed.
func sleepUntil(timer *time.Timer, until time.Time, done <-chan struct{}) error {
	_, err := waitUntil(timer, until, nil, done)
	return err
}

// waitUntil waits on timer until the deadline or until wake has a token (woken; a nil wake
// never does), or returns ErrClosed once done is closed.
func waitUntil(timer *time.Timer, until time.Time, wake, done <-chan struct{}) (woken bool, err error) {
	d := time.Until(until)
	if d <= 0 {
		select {
		case <-done:
			return false, ErrClosed
		default:
			return false, nil
		}
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return false, nil
	case <-wake:
		timer.Stop()
		return true, nil
	case <-done:
		timer.Stop()
		return false, ErrClosed
	}
}
