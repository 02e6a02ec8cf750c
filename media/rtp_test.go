package media

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func TestPacketizerRoundTrip(t *testing.T) {
	t.Parallel()
	p := NewPacketizer(0, Rate8k, 0)
	seq0, ts0 := p.SequenceNumber(), p.Timestamp()
	buf := make([]byte, 1500)
	payload := bytes.Repeat([]byte{0xff}, 160)
	var got rtp.Packet
	for i := range 5 {
		if i == 3 {
			p.Skip(2) // silence: two frames not sent
		}
		n, err := p.Packetize(buf, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := ParseRTP(&got, buf[:n]); err != nil {
			t.Fatal(err)
		}
		wantTS := ts0 + uint32(i)*160
		if i >= 3 {
			wantTS += 320
		}
		if got.SequenceNumber != seq0+uint16(i) || got.Timestamp != wantTS || got.SSRC != p.SSRC() || got.PayloadType != 0 {
			t.Fatalf("packet %d: seq %d ts %d ssrc %x pt %d; want seq %d ts %d", i, got.SequenceNumber, got.Timestamp, got.SSRC, got.PayloadType, seq0+uint16(i), wantTS)
		}
		if wantMarker := i == 0 || i == 3; got.Marker != wantMarker {
			t.Fatalf("packet %d: marker %v, want %v", i, got.Marker, wantMarker)
		}
		if !bytes.Equal(got.Payload, payload) {
			t.Fatalf("packet %d: payload differs", i)
		}
	}
	// A telephone-event shares the sequence space but keeps its own timestamp.
	ts := p.Timestamp()
	n, err := p.PacketizeEvent(buf, 101, true, ts, []byte{5, 10, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := ParseRTP(&got, buf[:n]); err != nil {
		t.Fatal(err)
	}
	if got.PayloadType != 101 || !got.Marker || got.Timestamp != ts || got.SequenceNumber != seq0+5 {
		t.Fatalf("event packet: %+v", got.Header)
	}
	if p.Timestamp() != ts {
		t.Fatal("event moved the audio timestamp")
	}
	n, _ = p.Packetize(buf, payload)
	_ = ParseRTP(&got, buf[:n])
	if got.PayloadType != 0 || got.Marker || got.SequenceNumber != seq0+6 {
		t.Fatalf("audio after event: %+v", got.Header)
	}
}

func TestPacketizerOpusClock(t *testing.T) {
	t.Parallel()
	p := NewPacketizer(111, Rate48k, 42)
	ts := p.Timestamp()
	buf := make([]byte, 64)
	if _, err := p.Packetize(buf, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if p.Timestamp()-ts != 960 || p.SSRC() != 42 {
		t.Fatalf("advance %d, ssrc %d", p.Timestamp()-ts, p.SSRC())
	}
	if _, err := p.Packetize(make([]byte, 10), make([]byte, 160)); err == nil {
		t.Fatal("short buffer accepted")
	}
}

func TestParseRTPRejects(t *testing.T) {
	t.Parallel()
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short":         {0x80, 0, 0, 1},
		"version 1":     append([]byte{0x40, 0}, make([]byte, 10)...),
		"csrc past end": {0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
		"zero padding":  {0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0},
	} {
		var p rtp.Packet
		if err := ParseRTP(&p, b); !errors.Is(err, ErrRTP) {
			t.Errorf("%s: err %v, want ErrRTP", name, err)
		}
	}
}

func TestSequenceTracker(t *testing.T) {
	t.Parallel()
	type step struct {
		ssrc uint32
		seq  uint16
		want SeqResult
	}
	tests := []struct {
		name                       string
		steps                      []step
		extMax, expected, received uint32
		lost                       int64
	}{
		{
			name:   "probation then in order",
			steps:  []step{{1, 100, SeqProbation}, {1, 101, SeqValid}, {1, 102, SeqValid}, {1, 103, SeqValid}},
			extMax: 103, expected: 3, received: 3,
		},
		{
			name:   "probation restarts on a gap",
			steps:  []step{{1, 100, SeqProbation}, {1, 105, SeqProbation}, {1, 106, SeqValid}},
			extMax: 106, expected: 1, received: 1,
		},
		{
			name:   "wrap around",
			steps:  []step{{1, 65534, SeqProbation}, {1, 65535, SeqValid}, {1, 0, SeqValid}, {1, 1, SeqValid}},
			extMax: 1<<16 + 1, expected: 3, received: 3,
		},
		{
			name: "loss, reorder and duplicate",
			steps: []step{{1, 10, SeqProbation}, {1, 11, SeqValid}, {1, 13, SeqValid}, {1, 12, SeqValid},
				{1, 16, SeqValid}, {1, 16, SeqValid}},
			// 11..16 expected 6, received 5 (one duplicate counted, 14 and 15 lost).
			extMax: 16, expected: 6, received: 5, lost: 1,
		},
		{
			name:   "reordered across the wrap",
			steps:  []step{{1, 65533, SeqProbation}, {1, 65534, SeqValid}, {1, 0, SeqValid}, {1, 65535, SeqValid}, {1, 1, SeqValid}},
			extMax: 1<<16 + 1, expected: 4, received: 4,
		},
		{
			name:   "single stray jump ignored",
			steps:  []step{{1, 10, SeqProbation}, {1, 11, SeqValid}, {1, 30000, SeqJump}, {1, 12, SeqValid}},
			extMax: 12, expected: 2, received: 2,
		},
		{
			name:   "confirmed jump restarts",
			steps:  []step{{1, 10, SeqProbation}, {1, 11, SeqValid}, {1, 30000, SeqJump}, {1, 30001, SeqRestart}, {1, 30002, SeqValid}},
			extMax: 30002, expected: 2, received: 2,
		},
		{
			name:   "ssrc change resets",
			steps:  []step{{1, 10, SeqProbation}, {1, 11, SeqValid}, {1, 12, SeqValid}, {2, 500, SeqNewSource}, {2, 501, SeqValid}},
			extMax: 501, expected: 1, received: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s SequenceTracker
			for i, st := range tt.steps {
				if got := s.Update(st.ssrc, st.seq); got != st.want {
					t.Fatalf("step %d (ssrc %d seq %d): %d, want %d", i, st.ssrc, st.seq, got, st.want)
				}
			}
			if s.ExtendedMax() != tt.extMax || s.Expected() != tt.expected || s.Received() != tt.received || s.Lost() != tt.lost {
				t.Fatalf("extMax %d expected %d received %d lost %d; want %d %d %d %d",
					s.ExtendedMax(), s.Expected(), s.Received(), s.Lost(), tt.extMax, tt.expected, tt.received, tt.lost)
			}
		})
	}
}

func TestRTPZeroAllocs(t *testing.T) {
	p := NewPacketizer(0, Rate8k, 0)
	buf := make([]byte, 1500)
	payload := make([]byte, 160)
	var pkt rtp.Packet
	var st SequenceTracker
	allocs := testing.AllocsPerRun(1000, func() {
		n, err := p.Packetize(buf, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := ParseRTP(&pkt, buf[:n]); err != nil {
			t.Fatal(err)
		}
		st.Update(pkt.SSRC, pkt.SequenceNumber)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

func FuzzParseRTP(f *testing.F) {
	p := NewPacketizer(0, Rate8k, 1234)
	buf := make([]byte, 1500)
	n, _ := p.Packetize(buf, make([]byte, 160))
	f.Add(append([]byte(nil), buf[:n]...))
	// With a CSRC, a one-byte header extension and padding.
	f.Add([]byte{0xb1, 0x80, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 1, 2, 0, 0, 2})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pkt rtp.Packet
		if err := ParseRTP(&pkt, b); err != nil {
			if !errors.Is(err, ErrRTP) {
				t.Fatalf("error %v is not ErrRTP", err)
			}
			return
		}
		var st SequenceTracker
		st.Update(pkt.SSRC, pkt.SequenceNumber)
		// Whatever parsed must marshal again and parse to the same header fields.
		out := make([]byte, pkt.MarshalSize())
		n, err := pkt.MarshalTo(out)
		if err != nil {
			return // pion refuses some headers it accepts (e.g. oversize extensions)
		}
		var again rtp.Packet
		if err := ParseRTP(&again, out[:n]); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.SequenceNumber != pkt.SequenceNumber || again.Timestamp != pkt.Timestamp || again.SSRC != pkt.SSRC ||
			!bytes.Equal(again.Payload, pkt.Payload) {
			t.Fatalf("round trip changed the packet")
		}
	})
}

func BenchmarkRTPParse(b *testing.B) {
	p := NewPacketizer(0, Rate8k, 0)
	buf := make([]byte, 1500)
	n, _ := p.Packetize(buf, make([]byte, 160))
	var pkt rtp.Packet
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		if err := ParseRTP(&pkt, buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRTPMarshal(b *testing.B) {
	p := NewPacketizer(0, Rate8k, 0)
	buf := make([]byte, 1500)
	payload := make([]byte, 160)
	b.ReportAllocs()
	b.SetBytes(172)
	for b.Loop() {
		if _, err := p.Packetize(buf, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPacketizerSetFormat(t *testing.T) {
	t.Parallel()
	p := NewPacketizer(PayloadTypePCMU, Rate8k, 0)
	buf := make([]byte, 1500)
	var got rtp.Packet
	n, _ := p.Packetize(buf, make([]byte, 160))
	_ = ParseRTP(&got, buf[:n])
	ssrc, seq := got.SSRC, got.SequenceNumber
	p.SetFormat(111, ClockRateOpus)
	ts := p.Timestamp()
	for i := range 2 {
		n, _ = p.Packetize(buf, []byte{0x78})
		if err := ParseRTP(&got, buf[:n]); err != nil {
			t.Fatal(err)
		}
		if got.PayloadType != 111 || got.SSRC != ssrc || got.SequenceNumber != seq+1+uint16(i) || got.Marker != (i == 0) {
			t.Fatalf("packet %d after the change: %+v", i, got.Header)
		}
	}
	if p.Timestamp()-ts != 2*960 {
		t.Fatalf("timestamp advanced %d, want two 20 ms frames at 48 kHz", p.Timestamp()-ts)
	}
}
