package media

import "time"

// While an agent listens it writes nothing, and an RTP session sends only what is written:
// a call would carry RTCP only, and relays that end calls without RTP, and NAT bindings
// that expire, would drop it. With RTPConfig.FillSilence the session fills the slots of
// its send clock that nobody writes for with frames of silence, on the same clock and
// sequence, so that the far end hears one steady stream whoever speaks.
//
// The filler takes over once the writer has stopped (more than writeMaxLag behind the
// clock, when WriteFrame would skip the missed slots too), and then fills each slot as it
// comes due, until a frame is written again. A writer that is merely late keeps its slots:
// its speech is never cut by silence.

// The filler runs on the reader's clock: ReadFrame, which whatever talks on a call calls
// every 20 ms (an agent listens while it speaks), fills the slots that came due since, so
// that the filler costs no goroutine and no wake-up of its own. A slot is sent within a
// frame of its time; the RTP timestamps keep the send clock's.

// fillFirst is when a session nobody has written to yet starts sending silence.
const fillFirst = 2 * FrameDuration

// fillCatchUp bounds the slots one ReadFrame fills: a reader that stalled longer has its
// missed slots skipped (fillSlot), as a writer's are.
const fillCatchUp = 3

// fillDue fills the slots due by now. ReadFrame's goroutine calls it.
func (s *RTPSession) fillDue(now time.Time) {
	for i := 0; i < fillCatchUp && !now.Before(s.nextFill); i++ {
		s.nextFill = s.fillSlot(now)
	}
}

// fillSlot sends silence in the slot due at now, unless a writer keeps the clock or we are
// not sending (hold, a telephone event playing), and says when to look again. It
// allocates nothing.
func (s *RTPSession) fillSlot(now time.Time) time.Time {
	s.wmu.Lock()
	if s.writeClock.started {
		lag := now.Sub(s.writeClock.Next())
		if s.filling && lag < 0 {
			next := s.writeClock.Next()
			s.wmu.Unlock()
			return next
		}
		if !s.filling && lag <= writeMaxLag {
			next := s.writeClock.Next().Add(writeMaxLag + time.Millisecond) // the writer may be late
			s.wmu.Unlock()
			return next
		}
	}
	if s.dtmfActive || !s.sending {
		s.filling = false
		s.wmu.Unlock()
		return now.Add(FrameDuration)
	}
	_, skipped, _ := s.writeClock.WriteSlot(now, writeMaxLag)
	if skipped > 0 {
		s.pz.Skip(skipped)
	}
	s.filling = true
	next := s.writeClock.Next()
	n, err := s.tx.encode(s.fillPCM)
	if err != nil {
		s.pz.Skip(1)
		s.wmu.Unlock()
		return next
	}
	ts := s.pz.Timestamp()
	pkt := s.fillPkt // Update may replace it once wmu is let go
	m, err := s.pz.Packetize(pkt, s.tx.payload[:n])
	if err != nil {
		s.wmu.Unlock()
		return next
	}
	s.sstats.Sent(ts, n, now)
	s.wmu.Unlock()
	_ = s.send(pkt[:m])
	return next
}
