package media

// PopStatus says what JitterBuffer.Pop produced for a tick.
type PopStatus uint8

const (
	// PopEmpty: no stream is playing (start of call, after a long silence, or while the
	// buffer fills to its target depth); the caller plays silence or comfort noise.
	PopEmpty PopStatus = iota
	// PopFrame: the payload of the next frame, in order.
	PopFrame
	// PopLost: the frame due now is missing (lost, or late); the caller conceals it
	// (the decoder's packet-loss concealment).
	PopLost
)

// Popped is the result of one JitterBuffer.Pop.
type Popped struct {
	Status PopStatus
	// N is the payload's length in the caller's buffer when Status is PopFrame.
	N int
	// Seq is the sequence number of the frame due (PopFrame and PopLost). Timestamp is its
	// RTP timestamp for PopFrame, and the last frame played's for PopLost.
	Seq       uint16
	Timestamp uint32
}

// JitterConfig sizes a JitterBuffer. Depths are in 20 ms frames.
type JitterConfig struct {
	// Initial is the depth buffered before playout starts, and the starting target.
	Initial int
	// Min and Max bound the adaptive target; Max also bounds the memory held.
	Min, Max int
	// Adaptive lets the target grow when packets arrive too late and shrink after a
	// quiet period.
	Adaptive bool
	// MaxPayload is the largest payload kept; bigger ones are dropped (default 1500).
	MaxPayload int
}

// DefaultJitterConfig is 60 ms to start, between 40 and 200 ms, adaptive.
var DefaultJitterConfig = JitterConfig{Initial: 3, Min: 2, Max: 10, Adaptive: true, MaxPayload: 1500}

// JitterStats counts what happened to the packets of a JitterBuffer.
type JitterStats struct {
	Pushed, Played, Lost, Late, Duplicate, Oversized, Discarded, Resets uint64
	// Trimmed counts frames dropped unplayed to bring the delay back down after a burst:
	// audio that came, but too late to be played in its time.
	Trimmed uint64
	// Target is the current target depth in frames.
	Target int
}

// LatePackets counts the packets that came but too late to be played: after their
// playout time, or trimmed to bring the delay back down. RFC 3550 counts them received,
// though their audio never reached the call: every transport reports them in its
// quality (Quality.PacketsLate).
func (s JitterStats) LatePackets() uint64 { return s.Late + s.Trimmed }

type jitterSlot struct {
	full bool
	ext  int64
	ts   uint32
	n    int
	buf  []byte
}

const (
	// A packet this far behind the playout point is a restart, not a late packet.
	jitterMaxMisorder = 100
	// Frames of PopLost played with nothing buffered before the stream is taken as paused.
	jitterMaxLostRun = 50
	// Pops of steady excess depth before one frame is dropped to cut latency.
	jitterShrinkAfter = 50
	// Pops without a late packet before the adaptive target comes down by one frame.
	jitterCalmAfter = 500
)

// JitterBuffer reorders one inbound stream's packets (one 20 ms frame each) and plays them
// out one per tick. It drops duplicates and late packets, reports missing frames for
// concealment, and resets on a jump in sequence numbers (a new SSRC or a restarted sender).
// Its memory is allocated once by NewJitterBuffer. It is not safe for concurrent use: the
// stream's media goroutine owns it.
type JitterBuffer struct {
	cfg   JitterConfig
	slots []jitterSlot
	mask  int64

	playing   bool  // playout has started
	anchored  bool  // next is set
	next      int64 // extended sequence number due at the next Pop
	maxExt    int64 // highest extended sequence number stored
	count     int   // slots full
	target    int
	lastTS    uint32
	badSeq    int // -1, or the sequence number that confirms a jump
	grow      int // frames to insert (adaptive growth)
	lostRun   int
	excessRun int
	calmRun   int
	// lateBurst is set by a late packet and cleared by the next Pop: the late packets of
	// one burst grow the target once.
	lateBurst bool
	// eager is SetEager's: a frame is played as soon as it is next in order, and the target
	// is only how long its reader waits for a missing one (no frames inserted to grow).
	eager bool
	// maxRecv is the highest extended sequence number received (maxExt also moves with
	// playout), recvTS its timestamp, and tsStep the timestamp advance of one packet,
	// learnt from consecutive ones (0 until then): with them a sender's pause is told from
	// a late packet.
	maxRecv  int64
	recvTS   uint32
	tsStep   uint32
	recvSeen bool

	stats JitterStats
}

// NewJitterBuffer allocates a buffer sized by cfg (zero fields take DefaultJitterConfig's).
func NewJitterBuffer(cfg JitterConfig) *JitterBuffer {
	d := DefaultJitterConfig
	if cfg.Max <= 0 {
		cfg.Max = d.Max
	}
	if cfg.Min <= 0 {
		cfg.Min = min(d.Min, cfg.Max)
	}
	if cfg.Min > cfg.Max {
		cfg.Min = cfg.Max
	}
	if cfg.Initial <= 0 {
		cfg.Initial = d.Initial
	}
	cfg.Initial = max(cfg.Min, min(cfg.Initial, cfg.Max))
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = d.MaxPayload
	}
	size := 4
	for size < 2*cfg.Max {
		size <<= 1
	}
	slots := make([]jitterSlot, size)
	backing := make([]byte, size*cfg.MaxPayload)
	for i := range slots {
		slots[i].buf = backing[i*cfg.MaxPayload : (i+1)*cfg.MaxPayload : (i+1)*cfg.MaxPayload]
	}
	j := &JitterBuffer{cfg: cfg, slots: slots, mask: int64(size - 1)}
	j.Reset()
	return j
}

// Reset forgets every packet; the next Push starts a new stream. The caller calls it when
// the SSRC changes.
func (j *JitterBuffer) Reset() {
	for i := range j.slots {
		j.slots[i].full = false
	}
	j.playing, j.anchored = false, false
	j.count, j.grow, j.lostRun, j.excessRun, j.calmRun = 0, 0, 0, 0, 0
	j.lateBurst = false
	j.badSeq = -1
	if j.target == 0 || !j.cfg.Adaptive {
		j.target = j.cfg.Initial
	}
}

// Stats returns the counters.
func (j *JitterBuffer) Stats() JitterStats {
	s := j.stats
	s.Target = j.target
	return s
}

// SetEager switches between playout on the clock (the default: playing starts once the
// target depth is held, and the target grows by playing concealment) and eager playout,
// for a reader that takes each frame as soon as it is next in order (Ready) and waits for a
// missing one Target frames at most (its own deadline) before it pops its concealment.
func (j *JitterBuffer) SetEager(on bool) {
	j.eager = on
	if on {
		j.grow = 0
	}
}

// Ready says whether the next Pop plays a frame that is held: in eager playout, the reader
// need not wait for its deadline.
func (j *JitterBuffer) Ready() bool {
	if !j.anchored || j.grow > 0 {
		return false
	}
	s := &j.slots[j.next&j.mask]
	return s.full && s.ext == j.next
}

// Target is the depth the buffer holds, in frames: in eager playout, how many frames'
// time its reader waits for a missing one.
func (j *JitterBuffer) Target() int { return j.target }

// Len is the number of frames held.
func (j *JitterBuffer) Len() int { return j.count }

// Push stores a packet's payload (copied) with its RTP sequence number and timestamp.
func (j *JitterBuffer) Push(payload []byte, seq uint16, ts uint32) {
	j.stats.Pushed++
	if len(payload) > j.cfg.MaxPayload {
		j.stats.Oversized++
		return
	}
	if !j.anchored {
		j.anchor(seq)
		j.store(j.next, ts, payload)
		return
	}
	delta := int64(int16(seq - uint16(j.next)))
	ext := j.next + delta
	window := int64(len(j.slots))
	switch {
	case delta >= 0 && delta < window:
		j.badSeq = -1
		if s := &j.slots[ext&j.mask]; s.full && s.ext == ext {
			j.stats.Duplicate++
			return
		}
		j.store(ext, ts, payload)
	case delta < 0 && delta >= -jitterMaxMisorder:
		if !j.playing && j.maxExt-ext < window {
			// Still filling: an earlier packet overtaken in the network moves the start back.
			j.next = ext
			j.store(ext, ts, payload)
			return
		}
		if j.count == 0 && j.resumes(ext, ts) {
			// The sender paused (silence suppression, DTX, a muted browser) with its sequence
			// numbers running on, while playout went on concealing: its next talkspurt starts
			// the buffer again instead of being dropped frame after frame as late.
			j.next, j.maxExt, j.playing, j.lostRun = ext, ext, false, 0
			j.store(ext, ts, payload)
			return
		}
		j.stats.Late++
		j.calmRun = 0
		// The late packets that arrive together (a sender, a network or our own reader
		// that stalled, then delivered what it held) are one spike of delay: they grow the
		// target by one frame, not one each. Grown a frame a packet, one stall of 100 ms
		// left the call up to Max frames behind for a minute (the target comes down a
		// frame per jitterCalmAfter pops), and an agent heard the caller stop that much
		// later; delay that keeps coming late keeps growing it, a frame a burst.
		if j.cfg.Adaptive && j.target < j.cfg.Max && !j.lateBurst {
			j.target++
			if !j.eager {
				j.grow++
			}
		}
		j.lateBurst = true
	default:
		// Out of the window: a lone stray packet is dropped, a second sequential one means the
		// sender jumped (restart, new SSRC) and the buffer starts over from it.
		if j.badSeq != int(seq) {
			j.badSeq = int(seq + 1)
			j.stats.Discarded++
			return
		}
		j.stats.Resets++
		j.Reset()
		j.anchor(seq)
		j.store(j.next, ts, payload)
	}
}

func (j *JitterBuffer) anchor(seq uint16) {
	j.anchored = true
	j.playing = false
	// Keep extended numbers small and positive; only differences matter.
	j.next = int64(seq) + 1<<20
	j.maxExt = j.next
	j.maxRecv, j.recvSeen = j.next-1, false
}

// resumes says whether a packet behind the playout point, newer than any received, is the
// first of a talkspurt after the sender paused: its timestamp ran on further than its
// sequence number did, by at least a frame. A packet that was merely late keeps its
// timestamp in step with its sequence number.
func (j *JitterBuffer) resumes(ext int64, ts uint32) bool {
	if !j.recvSeen || j.tsStep == 0 || ext <= j.maxRecv {
		return false
	}
	return int64(int32(ts-j.recvTS)) > (ext-j.maxRecv+1)*int64(j.tsStep)
}

func (j *JitterBuffer) store(ext int64, ts uint32, payload []byte) {
	s := &j.slots[ext&j.mask]
	s.full, s.ext, s.ts = true, ext, ts
	s.n = copy(s.buf, payload)
	j.count++
	if ext > j.maxExt {
		j.maxExt = ext
	}
	if ext > j.maxRecv {
		if step := ts - j.recvTS; j.recvSeen && ext == j.maxRecv+1 && step > 0 && step < 1<<15 {
			j.tsStep = step
		}
		j.maxRecv, j.recvTS, j.recvSeen = ext, ts, true
	}
}

// Pop plays out the frame due at this 20 ms tick, copying its payload into dst (which
// needs room for MaxPayload bytes).
func (j *JitterBuffer) Pop(dst []byte) Popped {
	j.lateBurst = false
	if !j.anchored {
		return Popped{Status: PopEmpty}
	}
	if !j.playing {
		if j.maxExt-j.next+1 < int64(j.target) && !(j.eager && j.Ready()) {
			return Popped{Status: PopEmpty}
		}
		j.playing = true
	}
	if j.grow > 0 {
		// Adaptive growth: conceal one frame without advancing, adding a frame of delay.
		j.grow--
		return j.lost(false)
	}
	j.adapt()
	s := &j.slots[j.next&j.mask]
	if !s.full || s.ext != j.next {
		return j.lost(true)
	}
	p := Popped{Status: PopFrame, N: copy(dst, s.buf[:s.n]), Seq: uint16(j.next), Timestamp: s.ts}
	s.full = false
	j.count--
	j.lastTS = s.ts
	j.next++
	j.lostRun = 0
	j.stats.Played++
	return p
}

// Peek copies the payload of the frame due at the next Pop into dst, if it is held, without
// playing it: after a PopLost, an Opus decoder recovers the lost frame from the in-band FEC
// that the following packet carries.
func (j *JitterBuffer) Peek(dst []byte) (int, bool) {
	if !j.anchored || !j.playing || j.grow > 0 {
		return 0, false
	}
	s := &j.slots[j.next&j.mask]
	if !s.full || s.ext != j.next {
		return 0, false
	}
	return copy(dst, s.buf[:s.n]), true
}

func (j *JitterBuffer) lost(advance bool) Popped {
	p := Popped{Status: PopLost, Seq: uint16(j.next), Timestamp: j.lastTS}
	j.stats.Lost++
	if !advance {
		return p
	}
	if j.next > j.maxExt {
		j.maxExt = j.next
	}
	j.next++
	if j.count == 0 {
		j.lostRun++
		if j.lostRun >= jitterMaxLostRun {
			// Nothing for a second: the far end paused (hold, DTX); start over on its return.
			j.anchored, j.playing, j.lostRun = false, false, 0
		}
	}
	return p
}

// adapt drops one frame when the buffer has held more than its target for a while (the
// sender's clock runs fast, or a burst arrived), and lowers the adaptive target after a
// long calm.
func (j *JitterBuffer) adapt() {
	j.calmRun++
	if j.cfg.Adaptive && j.calmRun >= jitterCalmAfter {
		j.calmRun = 0
		if j.target > j.cfg.Min {
			j.target--
		}
	}
	depth := j.maxExt - j.next + 1
	if depth <= int64(j.target)+2 {
		j.excessRun = 0
		return
	}
	j.excessRun++
	if j.excessRun < jitterShrinkAfter && depth < int64(len(j.slots)) {
		return
	}
	j.excessRun = 0
	if s := &j.slots[j.next&j.mask]; s.full && s.ext == j.next {
		s.full = false
		j.count--
	}
	j.next++
	j.stats.Trimmed++
}
