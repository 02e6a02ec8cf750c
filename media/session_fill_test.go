package media

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fillPeer is a raw RTP receiver: it keeps every packet a session sends it.
func fillPeer(t *testing.T) (*net.UDPConn, chan rtp.Packet) {
	t.Helper()
	c, _ := udpPair(t, false)
	pkts := make(chan rtp.Packet, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
				select {
				case pkts <- p:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return c, pkts
}

// silent says whether a PCMU payload is silence (PCMU has two zeros).
func silent(payload []byte) bool {
	for _, b := range payload {
		if b != 0xff && b != 0x7f {
			return false
		}
	}
	return true
}

// collect takes the packets that arrive within d.
func collect(pkts chan rtp.Packet, d time.Duration) []rtp.Packet {
	var out []rtp.Packet
	deadline := time.After(d)
	for {
		select {
		case p := <-pkts:
			out = append(out, p)
		case <-deadline:
			return out
		}
	}
}

// A session with FillSilence that is listened to and that nobody writes to still sends:
// silence, one packet a 20 ms slot, on one sequence and clock; a writer that starts and
// stops speaks on that same sequence and clock; on hold nothing goes.
func TestRTPSessionFillSilence(t *testing.T) {
	peer, pkts := fillPeer(t)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer), Codec: specPCMU, Rate: Rate8k, MediaTimeout: -1, FillSilence: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	startReader(t, s) // the filler runs on the reader's clock

	idle := collect(pkts, time.Second)
	// 50 slots in a second; a busy machine may skip some, never send more.
	if len(idle) < 25 || len(idle) > 52 {
		t.Fatalf("%d packets in a second of listening, want about 50", len(idle))
	}
	for i, p := range idle {
		if !silent(p.Payload) {
			t.Fatalf("packet %d is not silence: % x", i, p.Payload[:8])
		}
		if i > 0 {
			q := idle[i-1]
			if p.SequenceNumber != q.SequenceNumber+1 || (p.Timestamp-q.Timestamp)%160 != 0 || p.Timestamp == q.Timestamp {
				t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d; want one sequence on the 8 kHz clock",
					i, p.SequenceNumber, p.Timestamp, q.SequenceNumber, q.Timestamp)
			}
		}
	}

	// Speaking, then listening again: one sequence throughout, the tone between silences.
	stop := toneWriter(t, s, 1000)
	speech := collect(pkts, 500*time.Millisecond)
	stop()
	after := collect(pkts, 500*time.Millisecond)
	all := append(append(idle, speech...), after...)
	for i := 1; i < len(all); i++ {
		if all[i].SequenceNumber != all[i-1].SequenceNumber+1 {
			t.Fatalf("sequence jumps from %d to %d at packet %d", all[i-1].SequenceNumber, all[i].SequenceNumber, i)
		}
	}
	if len(after) < 12 {
		t.Fatalf("%d packets in the half second after speaking, want the silence to go on", len(after))
	}
	loud := 0
	for _, p := range speech {
		if !silent(p.Payload) {
			loud++
		}
	}
	if loud < len(speech)/2 {
		t.Fatalf("%d of %d packets while writing carry the tone", loud, len(speech))
	}

	if err := s.Update(RTPUpdate{Send: false, Receive: true}); err != nil {
		t.Fatal(err)
	}
	collect(pkts, 100*time.Millisecond) // in flight
	if held := collect(pkts, 400*time.Millisecond); len(held) > 1 {
		t.Fatalf("%d packets sent on hold", len(held))
	}
}

// Filling a slot allocates nothing: it runs every 20 ms of every listening call.
func TestRTPSessionFillZeroAllocs(t *testing.T) {
	for _, spec := range []CodecSpec{specPCMU, specOpus} {
		t.Run(spec.Name, func(t *testing.T) {
			peer, _ := fillPeer(t)
			c, _ := udpPair(t, false)
			rate := Rate8k
			if spec.Name == "opus" {
				rate = Rate16k
			}
			s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer), Codec: spec, Rate: rate, MediaTimeout: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			// The filler's buffers, without its goroutine: the test drives the slots.
			s.fillPkt, s.fillPCM = make([]byte, maxDatagram), make([]int16, s.frameLen)
			now := time.Now()
			for range 5 {
				now = now.Add(FrameDuration)
				s.fillSlot(now)
			}
			sent := s.Stats().PacketsSent
			// AllocsPerRun counts every goroutine's allocations, and goroutines of the tests
			// before this one may still be winding down: an allocation of fillSlot's own
			// shows in every attempt, theirs in one at most.
			allocs := -1.0
			for attempt := 0; attempt < 3 && allocs != 0; attempt++ {
				allocs = testing.AllocsPerRun(200, func() {
					now = now.Add(FrameDuration)
					s.fillSlot(now)
				})
			}
			if allocs != 0 {
				t.Fatalf("%.1f allocations per filled slot, want 0", allocs)
			}
			if s.Stats().PacketsSent < sent+190 {
				t.Fatalf("%d packets sent for at least 200 slots", s.Stats().PacketsSent-sent)
			}
		})
	}
}

// BenchmarkRTPSessionFill is the cost of one slot of silence sent while an agent listens:
// encoding, packetizing and sending a frame, with no allocation.
func BenchmarkRTPSessionFill(b *testing.B) {
	for _, spec := range []CodecSpec{specPCMU, specOpus} {
		b.Run(spec.Name, func(b *testing.B) {
			peer, _ := udpPair(b, false)
			b.Cleanup(func() { _ = peer.Close() })
			c, _ := udpPair(b, false)
			rate := Rate8k
			if spec.Name == "opus" {
				rate = Rate16k
			}
			s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer), Codec: spec, Rate: rate, MediaTimeout: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			s.fillPkt, s.fillPCM = make([]byte, maxDatagram), make([]int16, s.frameLen)
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				now = now.Add(FrameDuration)
				s.fillSlot(now)
			}
		})
	}
}
