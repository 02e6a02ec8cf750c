package media

// G.711 packets of other than 20 ms (ptime 10, 30, 40 or 60, which some gateways send
// whatever the SDP says) do not fit the jitter buffer, which holds one 20 ms frame a slot.
// The session re-cuts such a stream into 20 ms frames in arrival order, numbered by a
// sequence of its own: a packet arriving after a later one is dropped as late, and a gap in
// the sequence numbers becomes as many missing frames for the jitter buffer to conceal.

// g711Chunker is the re-cutting state of one source; the receive lock guards it.
type g711Chunker struct {
	active  bool   // the source sent a packet of other than 20 ms
	buf     []byte // samples not yet a whole frame
	nextRTP uint16 // the RTP sequence number expected next
	nextTS  uint32 // the RTP timestamp of the first sample not yet received
	seq     uint16 // the sequence number of the next 20 ms frame pushed
	ts      uint32 // its timestamp
	late    uint64
}

const g711Frame = 160 // bytes (and samples) of 20 ms of G.711

func newG711Chunker() *g711Chunker {
	return &g711Chunker{buf: make([]byte, 0, g711Frame)}
}

// reset forgets the source (a new SSRC, a restart).
func (c *g711Chunker) reset() {
	c.active, c.buf = false, c.buf[:0]
}

// skip accounts for a packet that is not audio (a telephone event) in the sequence space.
func (c *g711Chunker) skip(seq uint16) {
	if c.active && int16(seq-c.nextRTP) >= 0 {
		c.nextRTP = seq + 1
	}
}

// push cuts payload, the packet seq of timestamp ts, into frames for jb.
func (c *g711Chunker) push(jb *JitterBuffer, payload []byte, seq uint16, ts uint32) {
	if !c.active {
		c.active = true
		c.buf = c.buf[:0]
		c.nextRTP, c.nextTS, c.seq, c.ts = seq, ts, seq, ts
	}
	switch d := int16(seq - c.nextRTP); {
	case d < 0:
		c.late++ // behind what was already cut: late or duplicate
		return
	case d > 0 || ts != c.nextTS:
		// Packets lost: the partial frame goes, and the frames the gap covered are left
		// missing for the jitter buffer to conceal.
		gap := int32(ts - c.nextTS)
		if gap < 0 || gap > 50*g711Frame {
			gap = 0 // a jump of the clock: start the frames over from here
		}
		c.buf = c.buf[:0]
		c.seq += uint16((int(gap) + g711Frame - 1) / g711Frame)
		c.ts = ts
	}
	c.nextRTP, c.nextTS = seq+1, ts+uint32(len(payload))
	for len(payload) > 0 {
		n := min(len(payload), g711Frame-len(c.buf))
		c.buf = append(c.buf, payload[:n]...)
		payload = payload[n:]
		if len(c.buf) == g711Frame {
			jb.Push(c.buf, c.seq, c.ts)
			c.seq++
			c.ts += g711Frame
			c.buf = c.buf[:0]
		}
	}
}
