package media

import (
	"encoding/binary"
	"slices"
	"testing"
)

// seqPayload is a payload that names its packet, so the tests can check what is played.
func seqPayload(b []byte, seq uint16) []byte {
	binary.BigEndian.PutUint16(b, seq)
	return b[:2]
}

func popAll(t *testing.T, j *JitterBuffer, ticks int) []Popped {
	t.Helper()
	dst := make([]byte, 1500)
	out := make([]Popped, 0, ticks)
	for range ticks {
		p := j.Pop(dst)
		if p.Status == PopFrame && binary.BigEndian.Uint16(dst) != p.Seq {
			t.Fatalf("payload of %d played as %d", binary.BigEndian.Uint16(dst), p.Seq)
		}
		out = append(out, p)
	}
	return out
}

func describe(ps []Popped) []int {
	// -1 empty, -2 lost, else the sequence number played.
	out := make([]int, len(ps))
	for i, p := range ps {
		switch p.Status {
		case PopEmpty:
			out[i] = -1
		case PopLost:
			out[i] = -2
		default:
			out[i] = int(p.Seq)
		}
	}
	return out
}

func TestJitterBuffer(t *testing.T) {
	t.Parallel()
	fixed := JitterConfig{Initial: 2, Min: 2, Max: 8}
	tests := []struct {
		name  string
		cfg   JitterConfig
		push  []uint16 // pushed all before popping
		ticks int
		want  []int
		check func(t *testing.T, s JitterStats)
	}{
		{
			name: "in order", cfg: fixed, push: []uint16{10, 11, 12, 13}, ticks: 5,
			want: []int{10, 11, 12, 13, -2},
		},
		{
			name: "reordered", cfg: fixed, push: []uint16{11, 10, 13, 12}, ticks: 4,
			want: []int{10, 11, 12, 13},
		},
		{
			name: "duplicates dropped", cfg: fixed, push: []uint16{10, 10, 11, 11, 12}, ticks: 3,
			want:  []int{10, 11, 12},
			check: func(t *testing.T, s JitterStats) { t.Helper(); eq(t, "duplicates", s.Duplicate, 2) },
		},
		{
			name: "loss concealed", cfg: fixed, push: []uint16{10, 11, 13, 14}, ticks: 5,
			want:  []int{10, 11, -2, 13, 14},
			check: func(t *testing.T, s JitterStats) { t.Helper(); eq(t, "lost", s.Lost, 1) },
		},
		{
			name: "wrap around", cfg: fixed, push: []uint16{65534, 65535, 0, 1}, ticks: 4,
			want: []int{65534, 65535, 0, 1},
		},
		{
			name: "reordered across the wrap", cfg: fixed, push: []uint16{65535, 0, 65534, 2, 1}, ticks: 5,
			want: []int{65534, 65535, 0, 1, 2},
		},
		{
			name: "waits for the initial depth", cfg: JitterConfig{Initial: 3, Min: 1, Max: 8}, push: []uint16{7, 8}, ticks: 2,
			want: []int{-1, -1},
		},
		{
			name: "jump confirmed by a second packet resets", cfg: fixed, push: []uint16{10, 11, 40000, 40001, 40002}, ticks: 2,
			want: []int{40001, 40002},
			check: func(t *testing.T, s JitterStats) {
				t.Helper()
				eq(t, "resets", s.Resets, 1)
				eq(t, "discarded", s.Discarded, 1) // the first packet after the jump
			},
		},
		{
			name: "stray packet ignored", cfg: fixed, push: []uint16{10, 11, 40000, 12}, ticks: 3,
			want: []int{10, 11, 12},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := NewJitterBuffer(tt.cfg)
			b := make([]byte, 2)
			for _, s := range tt.push {
				j.Push(seqPayload(b, s), s, uint32(s)*160)
			}
			got := describe(popAll(t, j, tt.ticks))
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Fatalf("played %v, want %v", got, tt.want)
				}
			}
			if tt.check != nil {
				tt.check(t, j.Stats())
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestJitterBufferLateAndAdaptive(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 6, Adaptive: true})
	b := make([]byte, 2)
	dst := make([]byte, 1500)
	j.Push(seqPayload(b, 0), 0, 0)
	j.Push(seqPayload(b, 1), 1, 160)
	if p := j.Pop(dst); p.Status != PopFrame || p.Seq != 0 {
		t.Fatalf("first pop %+v", p)
	}
	if p := j.Pop(dst); p.Status != PopFrame || p.Seq != 1 {
		t.Fatalf("second pop %+v", p)
	}
	if p := j.Pop(dst); p.Status != PopLost || p.Seq != 2 {
		t.Fatalf("third pop %+v", p)
	}
	j.Push(seqPayload(b, 2), 2, 320) // too late: 2 was already concealed
	s := j.Stats()
	eq(t, "late", s.Late, 1)
	eq(t, "target", s.Target, 3)
	// The grown target inserts one concealed frame before playing on.
	j.Push(seqPayload(b, 3), 3, 480)
	j.Push(seqPayload(b, 4), 4, 640)
	got := describe(popAll(t, j, 3))
	if got[0] != -2 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("played %v", got)
	}
	// A long calm brings the target down to Min again.
	for i := uint16(5); i < 2000; i++ {
		j.Push(seqPayload(b, i), i, uint32(i)*160)
		j.Pop(dst)
	}
	eq(t, "target after calm", j.Stats().Target, 2)
}

// A stall delivers its packets late and together: that is one spike of delay, and grows the
// target by one frame, where a frame a late packet used to take the buffer to Max at once
// and keep every frame heard (an agent's turn-taking too) that much later for a minute.
func TestJitterBufferLateBurstGrowsOnce(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 8, Adaptive: true})
	b := make([]byte, 2)
	dst := make([]byte, 1500)
	j.Push(seqPayload(b, 0), 0, 0)
	j.Push(seqPayload(b, 1), 1, 160)
	popAll(t, j, 2)
	// The sender stalls for five frames: the buffer conceals them, then all arrive at once.
	popAll(t, j, 5)
	for i := uint16(2); i < 9; i++ {
		j.Push(seqPayload(b, i), i, uint32(i)*160)
	}
	s := j.Stats()
	eq(t, "late", s.Late, 5)
	eq(t, "target after one stall", s.Target, 3)
	// A second stall, later, is more delay that keeps coming: one frame more.
	popAll(t, j, 6)
	j.Pop(dst)
	j.Pop(dst)
	for i := uint16(9); i < 13; i++ {
		j.Push(seqPayload(b, i), i, uint32(i)*160)
	}
	eq(t, "target after two stalls", j.Stats().Target, 4)
}

func TestJitterBufferPauseAndDrain(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 1, Max: 4})
	b := make([]byte, 2)
	j.Push(seqPayload(b, 100), 100, 0)
	j.Push(seqPayload(b, 101), 101, 160)
	popAll(t, j, 2)
	// A second of nothing: the stream is taken as paused and playout stops.
	got := describe(popAll(t, j, jitterMaxLostRun+2))
	if got[0] != -2 || got[len(got)-1] != -1 {
		t.Fatalf("pause played %v", got)
	}
	// It resumes from whatever sequence number comes next.
	j.Push(seqPayload(b, 9000), 9000, 0)
	j.Push(seqPayload(b, 9001), 9001, 160)
	got = describe(popAll(t, j, 2))
	if got[0] != 9000 || got[1] != 9001 {
		t.Fatalf("resume played %v", got)
	}
	// A burst beyond the window is drained rather than held as latency.
	for i := uint16(9002); i < 9002+16; i++ {
		j.Push(seqPayload(b, i), i, 0)
	}
	if j.Len() > len(j.slots) {
		t.Fatalf("holds %d frames in %d slots", j.Len(), len(j.slots))
	}
	popAll(t, j, 200)
	if s := j.Stats(); s.Trimmed+s.Discarded == 0 {
		t.Fatal("excess depth never drained")
	}
}

func TestJitterBufferOversized(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{MaxPayload: 4})
	j.Push(make([]byte, 5), 1, 0)
	eq(t, "oversized", j.Stats().Oversized, 1)
	eq(t, "len", j.Len(), 0)
}

func TestJitterBufferZeroAllocs(t *testing.T) {
	j := NewJitterBuffer(DefaultJitterConfig)
	payload := make([]byte, 160)
	dst := make([]byte, 1500)
	var seq uint16
	allocs := testing.AllocsPerRun(2000, func() {
		j.Push(payload, seq, uint32(seq)*160)
		seq++
		j.Pop(dst)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// FuzzJitterBuffer drives a buffer with a byte-coded sequence of pushes and pops: whatever
// the input, it never panics, never holds more than its slots, and between resets plays
// sequence numbers in increasing order, each at most once.
func FuzzJitterBuffer(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0xff, 0xff, 5, 4, 0xff, 0xff, 0xff})
	f.Add([]byte{0x10, 0x10, 0x11, 0xff, 0x90, 0x91, 0xff, 0xff, 0x20, 0xff})
	f.Add([]byte{0xfe, 0x01, 0xfe, 0x02, 0xff, 0xfe, 0x80, 0xfe, 0x81, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, ops []byte) {
		j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 1, Max: 6, Adaptive: len(ops)%2 == 0, MaxPayload: 8})
		dst := make([]byte, 8)
		b := make([]byte, 8)
		base := uint16(65500) // exercise the wrap
		var last uint16
		var played bool
		resets := uint64(0)
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			switch {
			case op == 0xff:
				p := j.Pop(dst)
				if s := j.Stats(); s.Resets != resets || p.Status == PopEmpty {
					resets, played = s.Resets, false
				}
				if p.Status == PopFrame {
					if got := binary.BigEndian.Uint16(dst); got != p.Seq {
						t.Fatalf("payload %d played as %d", got, p.Seq)
					}
					if played && int16(p.Seq-last) <= 0 {
						t.Fatalf("played %d after %d", p.Seq, last)
					}
					last, played = p.Seq, true
				}
			case op == 0xfe && i+1 < len(ops):
				// A jump: rebase the sequence numbers far away.
				i++
				base += uint16(ops[i]) << 8
			default:
				seq := base + uint16(op)
				j.Push(seqPayload(b, seq), seq, uint32(seq)*160)
			}
			if j.Len() > len(j.slots) || j.Len() < 0 {
				t.Fatalf("holds %d frames", j.Len())
			}
		}
	})
}

func BenchmarkJitterBufferPushPop(b *testing.B) {
	j := NewJitterBuffer(DefaultJitterConfig)
	payload := make([]byte, 160)
	dst := make([]byte, 1500)
	var seq uint16
	b.ReportAllocs()
	for b.Loop() {
		// Mild reordering: pairs swapped.
		s := seq ^ 1
		j.Push(payload, s, uint32(s)*160)
		seq++
		j.Pop(dst)
	}
}

func TestJitterBufferPeek(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 4})
	b, dst := make([]byte, 2), make([]byte, 1500)
	if _, ok := j.Peek(dst); ok {
		t.Fatal("peeked into an empty buffer")
	}
	for _, seq := range []uint16{10, 12, 13} { // 11 is lost
		j.Push(seqPayload(b, seq), seq, uint32(seq)*160)
	}
	if p := j.Pop(dst); p.Status != PopFrame || p.Seq != 10 {
		t.Fatalf("first pop %+v", p)
	}
	if _, ok := j.Peek(dst); ok {
		t.Fatal("peeked at the missing frame")
	}
	if p := j.Pop(dst); p.Status != PopLost || p.Seq != 11 {
		t.Fatalf("second pop %+v", p)
	}
	// After the loss, the next packet is there for Opus FEC, and stays for its own Pop.
	n, ok := j.Peek(dst)
	if !ok || n != 2 || binary.BigEndian.Uint16(dst) != 12 {
		t.Fatalf("peek after the loss: %d bytes, %v", n, ok)
	}
	if p := j.Pop(dst); p.Status != PopFrame || p.Seq != 12 {
		t.Fatalf("third pop %+v", p)
	}
}

// A sender that caught up in a burst leaves the buffer deeper than its target; the frames
// dropped to bring the delay back down are counted Trimmed (late audio), not Discarded
// (strays).
func TestJitterBufferTrimCounted(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 10, MaxPayload: 1500})
	b := make([]byte, 2)
	seq := uint16(100)
	for range 8 { // the burst: 160 ms at once
		j.Push(seqPayload(b, seq), seq, 0)
		seq++
	}
	dst := make([]byte, 1500)
	for range 120 { // then steady: one in, one out, the excess held until trimmed
		j.Pop(dst)
		j.Push(seqPayload(b, seq), seq, 0)
		seq++
	}
	s := j.Stats()
	if s.Trimmed == 0 || s.Discarded != 0 || s.Late != 0 || s.LatePackets() != s.Trimmed {
		t.Fatalf("stats %+v; want the excess trimmed (and so late), nothing discarded or played late", s)
	}
}

// TestJitterBufferTalkspurtAfterPause: a sender that pauses for less than a second with its
// sequence numbers running on (silence suppression, DTX) is heard from its first packet
// back, not dropped as late while playout conceals the gap; a late packet of a steady sender
// is still late.
func TestJitterBufferTalkspurtAfterPause(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 6})
	b := make([]byte, 2)
	for i := uint16(0); i < 10; i++ {
		j.Push(seqPayload(b, i), i, uint32(i)*160)
	}
	popAll(t, j, 10)
	// Half a second of nothing: playout conceals 25 frames.
	got := describe(popAll(t, j, 25))
	if got[0] != -2 || got[24] != -2 {
		t.Fatalf("pause played %v", got)
	}
	// The sender resumes with the next sequence numbers and timestamps half a second on.
	for i := uint16(10); i < 15; i++ {
		j.Push(seqPayload(b, i), i, uint32(i+25)*160)
	}
	got = describe(popAll(t, j, 5))
	if want := []int{10, 11, 12, 13, 14}; !slices.Equal(got, want) {
		t.Fatalf("talkspurt played %v, want %v", got, want)
	}
	if s := j.Stats(); s.Late != 0 {
		t.Fatalf("talkspurt counted %d late packets", s.Late)
	}
	// A packet that is only late (its timestamp in step) is still dropped.
	popAll(t, j, 1)
	j.Push(seqPayload(b, 15), 15, uint32(15+25)*160)
	eq(t, "late", j.Stats().Late, 1)
}

// Eager playout plays a frame as soon as it is next in order (one packet is enough to
// start), conceals a missing one only when popped for it (the reader's deadline), and grows
// its target on a late packet without inserting a frame.
func TestJitterBufferEager(t *testing.T) {
	t.Parallel()
	j := NewJitterBuffer(JitterConfig{Initial: 2, Min: 2, Max: 8, Adaptive: true})
	j.SetEager(true)
	b := make([]byte, 2)
	if j.Ready() {
		t.Fatal("ready with nothing held")
	}
	j.Push(seqPayload(b, 10), 10, 1600)
	if !j.Ready() {
		t.Fatal("one packet held, not ready")
	}
	if got := describe(popAll(t, j, 1)); !slices.Equal(got, []int{10}) {
		t.Fatalf("first pop %v, want 10 at once", got)
	}
	j.Push(seqPayload(b, 12), 12, 1920) // 11 is missing
	if j.Ready() {
		t.Fatal("ready with the next frame missing")
	}
	if got := describe(popAll(t, j, 2)); !slices.Equal(got, []int{-2, 12}) {
		t.Fatalf("pops %v, want 11 concealed at its deadline, then 12", got)
	}
	j.Push(seqPayload(b, 11), 11, 1760) // too late
	j.Push(seqPayload(b, 13), 13, 2080)
	if s := j.Stats(); s.Late != 1 || s.Target != 3 {
		t.Fatalf("stats %+v, want one late packet and the target grown to 3", s)
	}
	if !j.Ready() {
		t.Fatal("the target grew by inserting a frame: 13 is not ready")
	}
	if got := describe(popAll(t, j, 1)); !slices.Equal(got, []int{13}) {
		t.Fatalf("pop %v, want 13", got)
	}
}
