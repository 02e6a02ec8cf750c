package media

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// TestInterarrivalJitter checks the RFC 3550 A.8 estimator against values worked by hand.
func TestInterarrivalJitter(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	ms := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }
	tests := []struct {
		name     string
		ts       []uint32
		arrivals []time.Time
		// jitter16 is J scaled by 16 as the integer form of A.8 keeps it.
		jitter16 uint32
	}{
		{
			// Perfect pacing: every transit time equal, D = 0.
			name:     "steady",
			ts:       []uint32{0, 160, 320, 480, 640},
			arrivals: []time.Time{ms(0), ms(20), ms(40), ms(60), ms(80)},
			jitter16: 0,
		},
		{
			// Transit (arrival - timestamp, 8 kHz units): 0, 0, 40, 0 (packet 3 is 5 ms late).
			// D: 0, 40, 40. J16: 0; 0 + 40 - ((0+8)>>4 = 0) = 40; 40 + 40 - ((40+8)>>4 = 3) = 77.
			// In floating point J = 0, 2.5, 2.5 + (40 - 2.5)/16 = 4.84; 77/16 = 4.81.
			name:     "one late packet",
			ts:       []uint32{0, 160, 320, 480},
			arrivals: []time.Time{ms(0), ms(20), ms(45), ms(60)},
			jitter16: 77,
		},
		{
			// The timestamp wraps: 4294967136, 0 (= +160), 160; transit 0, 0, -80 (10 ms early).
			// D: 0, 80. J16: 0, 80.
			name:     "timestamp wrap",
			ts:       []uint32{math.MaxUint32 - 159, 0, 160},
			arrivals: []time.Time{ms(0), ms(20), ms(30)},
			jitter16: 80,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewReceiverStats(Rate8k)
			// A first packet for probation, then the measured ones.
			r.Update(7, 99, tt.ts[0]-160, tt.arrivals[0].Add(-20*time.Millisecond))
			for i := range tt.ts {
				r.Update(7, 100+uint16(i), tt.ts[i], tt.arrivals[i])
			}
			if r.jitter != tt.jitter16 {
				t.Fatalf("jitter*16 = %d, want %d", r.jitter, tt.jitter16)
			}
			s := r.Snapshot()
			if s.Jitter != tt.jitter16>>4 || math.Abs(s.JitterMs-float64(tt.jitter16)/16/8) > 1e-9 {
				t.Fatalf("snapshot jitter %d (%.3f ms)", s.Jitter, s.JitterMs)
			}
		})
	}
}

func TestReceptionReportLoss(t *testing.T) {
	t.Parallel()
	r := NewReceiverStats(Rate8k)
	now := time.Unix(1_700_000_000, 0)
	if _, ok := r.ReceptionReport(now); ok {
		t.Fatal("report before any packet")
	}
	seq := uint16(65530) // crosses the wrap
	for i := range 100 {
		if i%10 != 3 { // lose one packet in ten
			r.Update(9, seq+uint16(i), uint32(i)*160, now.Add(time.Duration(i)*20*time.Millisecond))
		}
	}
	rr, ok := r.ReceptionReport(now.Add(2 * time.Second))
	if !ok {
		t.Fatal("no report")
	}
	// Probation takes packets 0 and 1; counted from 1 to 99: 99 expected, 10 lost.
	if rr.SSRC != 9 || rr.TotalLost != 10 || rr.LastSequenceNumber != 1<<16+uint32(uint16(seq+99)) {
		t.Fatalf("report %+v", rr)
	}
	if want := uint8(10 * 256 / 99); rr.FractionLost != want {
		t.Fatalf("fraction %d, want %d", rr.FractionLost, want)
	}
	s := r.Snapshot()
	if s.Expected != 99 || s.Received != 89 || s.Lost != 10 {
		t.Fatalf("snapshot %+v", s)
	}
	// The next interval has no loss.
	for i := 100; i < 150; i++ {
		r.Update(9, seq+uint16(i), uint32(i)*160, now.Add(time.Duration(i)*20*time.Millisecond))
	}
	rr, _ = r.ReceptionReport(now.Add(4 * time.Second))
	if rr.FractionLost != 0 || rr.TotalLost != 10 {
		t.Fatalf("second report %+v", rr)
	}
	// Duplicates make the cumulative loss negative; the 24-bit field carries the sign.
	r2 := NewReceiverStats(Rate8k)
	for range 3 {
		r2.Update(1, 5, 0, now)
		r2.Update(1, 6, 160, now)
	}
	// Expected 1 (seq 6, after probation), received 5 (6, then 5 and 6 twice as duplicates).
	rr, _ = r2.ReceptionReport(now)
	if rr.TotalLost != 0xfffffc { // -4
		t.Fatalf("negative loss encoded as %#x", rr.TotalLost)
	}
}

// TestReportsRoundTrip plays both ends: we send RTP and a Sender Report, the far end
// answers with a Receiver Report one second later, and we read its loss and the RTT.
func TestReportsRoundTrip(t *testing.T) {
	t.Parallel()
	const ourSSRC, theirSSRC = 0x1111, 0x2222
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	oneWay := 50 * time.Millisecond

	send := NewSenderStats(Rate8k)
	far := NewReceiverStats(Rate8k)
	for i := range 50 {
		at := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		send.Sent(uint32(i)*160, 160, at)
		if i != 20 {
			far.Update(ourSSRC, uint16(i), uint32(i)*160, at.Add(oneWay))
		}
	}
	srAt := t0.Add(time.Second)
	sr := send.SenderReport(ourSSRC, srAt, nil)
	if sr.PacketCount != 50 || sr.OctetCount != 8000 || sr.RTPTime != 49*160+160 {
		t.Fatalf("sender report %+v", sr)
	}
	raw, err := rtcp.Marshal([]rtcp.Packet{sr})
	if err != nil {
		t.Fatal(err)
	}
	// The far end receives our SR and answers one second later.
	if _, found, err := ParseRTCP(raw, srAt.Add(oneWay), theirSSRC, Rate8k, far); err != nil || found {
		t.Fatalf("far end parsing our SR: found %v err %v", found, err)
	}
	rrAt := srAt.Add(oneWay + time.Second)
	raw, err = rtcp.Marshal([]rtcp.Packet{far.ReceiverReport(theirSSRC, rrAt)})
	if err != nil {
		t.Fatal(err)
	}
	rep, found, err := ParseRTCP(raw, rrAt.Add(oneWay), ourSSRC, Rate8k, nil)
	if err != nil || !found {
		t.Fatalf("found %v err %v", found, err)
	}
	if rep.Reporter != theirSSRC || rep.TotalLost != 1 || rep.FractionLost == 0 {
		t.Fatalf("remote report %+v", rep)
	}
	if d := rep.RTT - 2*oneWay; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("RTT %v, want %v", rep.RTT, 2*oneWay)
	}
	// A Sender Report from the far end carries the same block.
	far2 := &rtcp.SenderReport{SSRC: theirSSRC, NTPTime: NTPTime(rrAt), Reports: []rtcp.ReceptionReport{{SSRC: ourSSRC, TotalLost: 0xffffff}}}
	raw, _ = rtcp.Marshal([]rtcp.Packet{far2})
	rep, found, _ = ParseRTCP(raw, rrAt, ourSSRC, Rate8k, nil)
	if !found || rep.TotalLost != -1 || rep.RTT != 0 {
		t.Fatalf("from SR: %+v found %v", rep, found)
	}
}

func TestNTPTime(t *testing.T) {
	t.Parallel()
	got := NTPTime(time.Unix(0, int64(500*time.Millisecond)))
	if got != 2208988800<<32|1<<31 {
		t.Fatalf("NTP %#x", got)
	}
}

func FuzzParseRTCP(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	r := NewReceiverStats(Rate8k)
	r.Update(1, 1, 0, now)
	r.Update(1, 2, 160, now)
	sr := NewSenderStats(Rate8k).SenderReport(2, now, r)
	b, _ := rtcp.Marshal([]rtcp.Packet{sr, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: 2, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "sb"}},
	}}}})
	f.Add(b)
	b, _ = rtcp.Marshal([]rtcp.Packet{r.ReceiverReport(3, now), &rtcp.Goodbye{Sources: []uint32{3}}})
	f.Add(b)
	f.Add([]byte{0x80, 0xc9, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recv := NewReceiverStats(Rate8k)
		rep, found, err := ParseRTCP(b, now, 1, Rate8k, recv)
		if err != nil {
			if !errors.Is(err, ErrRTCP) {
				t.Fatal(err)
			}
			return
		}
		if found && (rep.RTT < 0 || rep.FractionLost < 0 || rep.FractionLost >= 1) {
			t.Fatalf("report %+v", rep)
		}
	})
}
