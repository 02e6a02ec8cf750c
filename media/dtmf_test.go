package media

import (
	"errors"
	"testing"
	"time"
)

func TestTelephoneEventRoundTrip(t *testing.T) {
	t.Parallel()
	for code := uint8(0); code < 16; code++ {
		e := TelephoneEvent{Event: code, End: code%2 == 0, Volume: 10, Duration: 800 + uint16(code)}
		var b [TelephoneEventSize]byte
		if _, err := e.MarshalTo(b[:]); err != nil {
			t.Fatal(err)
		}
		var got TelephoneEvent
		if err := got.Unmarshal(b[:]); err != nil || got != e {
			t.Fatalf("code %d: got %+v (%v), want %+v", code, got, err, e)
		}
		digit, ok := EventDigit(code)
		back, ok2 := DigitEvent(digit)
		if !ok || !ok2 || back != code {
			t.Fatalf("code %d -> %q -> %d", code, digit, back)
		}
	}
	if got := string([]rune{mustDigit(t, 10), mustDigit(t, 11), mustDigit(t, 12), mustDigit(t, 15)}); got != "*#AD" {
		t.Fatalf("digits %q", got)
	}
	if _, ok := EventDigit(16); ok {
		t.Fatal("flash taken as a digit")
	}
	// RFC 4733 §2.3: the reserved bit is ignored on receipt.
	var e TelephoneEvent
	_ = e.Unmarshal([]byte{5, 0xca, 0x03, 0x20})
	if e.Event != 5 || !e.End || e.Volume != 10 || e.Duration != 800 {
		t.Fatalf("parsed %+v", e)
	}
}

func mustDigit(t *testing.T, code uint8) rune {
	t.Helper()
	d, ok := EventDigit(code)
	if !ok {
		t.Fatalf("no digit for %d", code)
	}
	return d
}

type tePacket struct {
	ts      uint32
	payload []byte
}

func te(ts uint32, code uint8, end bool, dur uint16) tePacket {
	var b [4]byte
	_, _ = TelephoneEvent{Event: code, End: end, Volume: 10, Duration: dur}.MarshalTo(b[:])
	return tePacket{ts, b[:]}
}

func TestDTMFDetector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		packets []tePacket
		flush   bool
		want    string
		durMs   []int
	}{
		{
			name: "one press, three ends",
			packets: []tePacket{te(1000, 5, false, 0), te(1000, 5, false, 400), te(1000, 5, false, 800),
				te(1000, 5, true, 1280), te(1000, 5, true, 1280), te(1000, 5, true, 1280)},
			want: "5", durMs: []int{160},
		},
		{
			name: "repeated start packets",
			packets: []tePacket{te(1000, 1, false, 0), te(1000, 1, false, 0), te(1000, 1, false, 0),
				te(1000, 1, true, 800)},
			want: "1",
		},
		{
			name: "same key twice",
			packets: []tePacket{te(1000, 9, false, 0), te(1000, 9, true, 800), te(1000, 9, true, 800),
				te(3000, 9, false, 0), te(3000, 9, true, 800), te(3000, 9, true, 800)},
			want: "99",
		},
		{
			name: "ends lost: reported when the next begins",
			packets: []tePacket{te(1000, 11, false, 0), te(1000, 11, false, 400),
				te(3000, 10, false, 0), te(3000, 10, true, 800)},
			want: "#*", durMs: []int{50, 100},
		},
		{
			name:    "only end packets",
			packets: []tePacket{te(1000, 12, true, 960), te(1000, 12, true, 960), te(1000, 12, true, 960)},
			want:    "A",
		},
		{
			name:    "end lost, flushed",
			packets: []tePacket{te(1000, 3, false, 0), te(1000, 3, false, 400)},
			flush:   true, want: "3",
		},
		{
			name:    "reordered end after update",
			packets: []tePacket{te(1000, 7, false, 0), te(1000, 7, true, 800), te(1000, 7, false, 400), te(1000, 7, true, 800)},
			want:    "7",
		},
		{
			name:    "flash ignored",
			packets: []tePacket{te(1000, 16, false, 0), te(1000, 16, true, 800)},
			flush:   true, want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := NewDTMFDetector(Rate8k)
			var got []Event
			for _, p := range tt.packets {
				ev, ok, err := d.Push(p.ts, p.payload)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got = append(got, ev)
				}
			}
			for tt.flush || len(got) < len(tt.want) {
				ev, ok := d.Flush()
				if !ok {
					break
				}
				got = append(got, ev)
			}
			var digits string
			for _, ev := range got {
				if ev.Kind != EventDTMF {
					t.Fatalf("kind %d", ev.Kind)
				}
				digits += string(ev.Digit)
			}
			if digits != tt.want {
				t.Fatalf("digits %q, want %q", digits, tt.want)
			}
			for i, ms := range tt.durMs {
				if got[i].Duration != time.Duration(ms)*time.Millisecond {
					t.Fatalf("digit %d lasted %v, want %dms", i, got[i].Duration, ms)
				}
			}
		})
	}
}

func TestAppendDTMFPackets(t *testing.T) {
	t.Parallel()
	pkts, err := AppendDTMFPackets(nil, '#', 160*time.Millisecond, Rate8k, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 0, 50, 100, 150 ms then three ends at 160 ms.
	if len(pkts) != 7 {
		t.Fatalf("%d packets", len(pkts))
	}
	d := NewDTMFDetector(Rate8k)
	var digits []Event
	var prevDur uint16
	for i, p := range pkts {
		var e TelephoneEvent
		_ = e.Unmarshal(p.Payload[:])
		if e.Event != 11 || p.Marker != (i == 0) || e.End != (i >= 4) || (i > 0 && e.Duration < prevDur) {
			t.Fatalf("packet %d: %+v marker %v", i, e, p.Marker)
		}
		if i >= 1 && i <= 3 && p.At != time.Duration(i)*50*time.Millisecond {
			t.Fatalf("packet %d at %v", i, p.At)
		}
		prevDur = e.Duration
		if ev, ok, _ := d.Push(5000, p.Payload[:]); ok {
			digits = append(digits, ev)
		}
	}
	if prevDur != 1280 || len(digits) != 1 || digits[0].Digit != '#' || digits[0].Duration != 160*time.Millisecond {
		t.Fatalf("final duration %d, detected %+v", prevDur, digits)
	}
	if _, err := AppendDTMFPackets(nil, 'x', time.Second, Rate8k, 10); !errors.Is(err, ErrDTMF) {
		t.Fatalf("bad digit: %v", err)
	}
	// Through a Packetizer and RTP parsing, as it goes on the wire.
	buf := make([]byte, 64)
	p := NewPacketizer(0, Rate8k, 0)
	ts := p.Timestamp()
	n, err := p.PacketizeEvent(buf, 101, pkts[0].Marker, ts, pkts[0].Payload[:])
	if err != nil || n != 16 {
		t.Fatalf("n %d err %v", n, err)
	}
}

func TestParseDTMFInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct, body string
		digit    rune
		dur      time.Duration
		err      bool
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond, false},
		{"Application/DTMF-Relay; charset=utf-8", "signal= #\nduration = 250", '#', 250 * time.Millisecond, false},
		{"application/dtmf-relay", "Signal=*\r\n", '*', 0, false},
		{"application/dtmf-relay", "Signal=11\r\nDuration=100", '#', 100 * time.Millisecond, false},
		{"application/dtmf-relay", "Signal=d\r\nDuration=100", 'D', 100 * time.Millisecond, false},
		{"application/dtmf-relay", "Duration=160", 0, 0, true},
		{"application/dtmf-relay", "Signal=x\r\nDuration=160", 0, 0, true},
		{"application/dtmf-relay", "Signal=5\r\nDuration=-1", 0, 0, true},
		{"application/dtmf-relay", "Signal=16", 0, 0, true},
		{"application/dtmf", "5", '5', 0, false},
		{"application/dtmf", " 10\r\n", '*', 0, false},
		{"application/dtmf", "55", 0, 0, true},
		{"text/plain", "5", 0, 0, true},
	}
	for _, tt := range tests {
		ev, err := ParseDTMFInfo(tt.ct, []byte(tt.body))
		if tt.err {
			if !errors.Is(err, ErrDTMF) {
				t.Errorf("%s %q: err %v, want ErrDTMF", tt.ct, tt.body, err)
			}
			continue
		}
		if err != nil || ev.Kind != EventDTMF || ev.Digit != tt.digit || ev.Duration != tt.dur {
			t.Errorf("%s %q: %+v %v", tt.ct, tt.body, ev, err)
		}
	}
}

func TestDTMFDecodeZeroAllocs(t *testing.T) {
	d := NewDTMFDetector(Rate8k)
	pkts, _ := AppendDTMFPackets(nil, '5', 100*time.Millisecond, Rate8k, 10)
	ts := uint32(0)
	allocs := testing.AllocsPerRun(500, func() {
		ts += 8000
		for i := range pkts {
			if _, _, err := d.Push(ts, pkts[i].Payload[:]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per event, want 0", allocs)
	}
	dst := make([]DTMFPacket, 0, 16)
	allocs = testing.AllocsPerRun(500, func() {
		dst, _ = AppendDTMFPackets(dst[:0], '#', 200*time.Millisecond, Rate8k, 10)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encoded digit, want 0", allocs)
	}
}

func FuzzTelephoneEvent(f *testing.F) {
	f.Add(uint32(1000), []byte{5, 0x0a, 0, 0})
	f.Add(uint32(1000), []byte{11, 0x8a, 0x05, 0x00})
	f.Add(uint32(0), []byte{16, 0x80})
	f.Fuzz(func(t *testing.T, ts uint32, b []byte) {
		d := NewDTMFDetector(Rate8k)
		// Feed the payload as one packet and in four-byte pieces at successive timestamps.
		if _, _, err := d.Push(ts, b); err != nil && !errors.Is(err, ErrDTMF) {
			t.Fatal(err)
		}
		for i := 0; i+4 <= len(b); i += 4 {
			ev, ok, err := d.Push(ts+uint32(b[i]&3)*800, b[i:i+4])
			if err != nil {
				t.Fatal(err)
			}
			if ok && (ev.Kind != EventDTMF || ev.Digit == 0) {
				t.Fatalf("event %+v", ev)
			}
		}
		for {
			if _, ok := d.Flush(); !ok {
				break
			}
		}
		var e TelephoneEvent
		if e.Unmarshal(b) == nil {
			var out [4]byte
			_, _ = e.MarshalTo(out[:])
			var again TelephoneEvent
			if again.Unmarshal(out[:]) != nil || again != e {
				t.Fatalf("round trip %+v -> %+v", e, again)
			}
		}
	})
}

func FuzzParseDTMFRelay(f *testing.F) {
	f.Add("Signal=5\r\nDuration=160\r\n")
	f.Add("signal=#\nduration=40")
	f.Add("Signal=11")
	f.Add("=\n=\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := ParseDTMFRelay([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrDTMF) {
				t.Fatal(err)
			}
			return
		}
		if _, ok := DigitEvent(ev.Digit); !ok || ev.Duration < 0 {
			t.Fatalf("parsed %+v", ev)
		}
		_, _ = ParseDTMFInfo("application/dtmf", []byte(body))
	})
}

func BenchmarkDTMFDecode(b *testing.B) {
	d := NewDTMFDetector(Rate8k)
	pkts, _ := AppendDTMFPackets(nil, '5', 100*time.Millisecond, Rate8k, 10)
	ts := uint32(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := &pkts[i%len(pkts)]
		if i%len(pkts) == 0 {
			ts += 8000
		}
		if _, _, err := d.Push(ts, p.Payload[:]); err != nil {
			b.Fatal(err)
		}
	}
}
