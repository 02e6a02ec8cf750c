package media

// recordHeard records a frame heard, with what was sent in the same tick.
func (s *RTPSession) recordHeard(left []int16) {
	if s.rec != nil {
		s.rec.Heard(left)
	}
}

// recordSent keeps a frame we sent (nil: silence) for the recording's right channel.
func (s *RTPSession) recordSent(samples []int16) {
	if s.rec != nil {
		s.rec.Sent(samples)
	}
}
