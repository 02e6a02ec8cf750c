package media

// Playout is the decoding half of a receive side: each 20 ms tick it takes one slot from a
// jitter buffer and turns it into a frame at the stream's rate, concealing what was lost
// (Opus recovers a lost frame from the next packet's in-band FEC when the buffer already
// holds it, or conceals it; G.711 repeats the last frame, fading out). The RTP session of
// a SIP call and a WebRTC peer play out through it alike.
//
// The jitter buffer is filled by the transport's network goroutine under the transport's
// lock: Take runs under that lock and copies the slot out, Play decodes it after. Both
// belong to the goroutine that reads frames.
type Playout struct {
	rx       *rxCodec
	popped   Popped
	buf      []byte
	next     []byte
	n        int
	haveNext bool
}

// NewOpusPlayout returns the playout of an Opus stream heard at rate (8, 16, 24 or
// 48 kHz), whose packets are at most maxPayload bytes.
func NewOpusPlayout(rate, maxPayload int) (*Playout, error) {
	return newPlayout(codecOpus, rate, maxPayload)
}

func newPlayout(kind codecKind, rate, maxPayload int) (*Playout, error) {
	rx, err := newRxCodec(kind, rate)
	if err != nil {
		return nil, err
	}
	return &Playout{rx: rx, buf: make([]byte, maxPayload), next: make([]byte, maxPayload)}, nil
}

// Take pops this tick's slot from jb, and for a lost Opus packet peeks at the next one for
// its FEC. The caller holds the lock under which jb is filled.
func (p *Playout) Take(jb *JitterBuffer) {
	p.popped = jb.Pop(p.buf)
	p.n, p.haveNext = 0, false
	if p.popped.Status == PopLost && p.rx.kind == codecOpus {
		p.n, p.haveNext = jb.Peek(p.next)
	}
}

// Came says whether the slot Take took is a frame that came, not concealment or silence.
func (p *Playout) Came() bool { return p.popped.Status == PopFrame }

// Play decodes the slot Take took into out, one frame at the stream's rate: audio,
// concealment, or silence when nothing is playing.
func (p *Playout) Play(out []int16) {
	p.rx.decode(out, p.popped, p.buf[:p.popped.N], p.next[:p.n], p.haveNext)
}
