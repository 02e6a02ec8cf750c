package media

// recordHeard writes one stereo frame of the recording: what was heard, and what was sent
// in the same tick (silence if nothing).
func (s *RTPSession) recordHeard(left []int16) {
	if s.recRing == nil {
		return
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.rec == nil {
		return
	}
	right := s.recSilence
	if s.recN > 0 {
		right = s.recRing[s.recHead*s.frameLen : (s.recHead+1)*s.frameLen]
		s.recHead = (s.recHead + 1) % recordFrames
		s.recN--
	}
	if err := s.rec.WriteStereo(left, right); err != nil {
		s.log.Warn("recording stopped", "error", err)
		_ = s.rec.Close()
		s.rec = nil
	}
}

// recordSent keeps a frame we sent (nil: silence) for the recording's right channel.
func (s *RTPSession) recordSent(samples []int16) {
	if s.recRing == nil {
		return
	}
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if s.rec == nil {
		return
	}
	if s.recN == recordFrames { // nobody reads: drop the oldest
		s.recHead = (s.recHead + 1) % recordFrames
		s.recN--
	}
	slot := (s.recHead + s.recN) % recordFrames
	dst := s.recRing[slot*s.frameLen : (slot+1)*s.frameLen]
	if samples == nil {
		clear(dst)
	} else {
		copy(dst, samples)
	}
	s.recN++
}
