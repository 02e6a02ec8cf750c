package sip

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-go/switchboard/media"
)

// A caller sending 30 ms packets gets the same samples back, in order, in 20 ms frames,
// and nothing before the echo delay.
func TestEchoReframes(t *testing.T) {
	var e echo
	var in [3][240]byte
	for i := range in {
		for j := range in[i] {
			in[i][j] = byte(i*240 + j)
		}
		e.push(in[i][:])
	}
	var f [frameBytes]byte
	if e.pop(&f, time.Now()) {
		t.Fatal("played back before the echo delay")
	}
	later := time.Now().Add(echoDelay)
	for k := range 4 {
		if !e.pop(&f, later) {
			t.Fatalf("frame %d missing", k)
		}
		for j, b := range f {
			if want := byte(k*frameBytes + j); b != want {
				t.Fatalf("frame %d byte %d = %d, want %d", k, j, b, want)
			}
		}
	}
	if e.pop(&f, later) {
		t.Fatal("a fifth frame from 720 bytes")
	}
}

// A full ring drops the oldest samples and never allocates per packet.
func TestEchoRingSteadyState(t *testing.T) {
	var e echo
	payload := make([]byte, frameBytes)
	var f [frameBytes]byte
	later := time.Now().Add(time.Hour)
	for range echoRing/frameBytes + 10 {
		e.push(payload)
	}
	if e.n != echoRing {
		t.Fatalf("ring holds %d bytes, want %d", e.n, echoRing)
	}
	allocs := testing.AllocsPerRun(100, func() {
		e.push(payload)
		e.pop(&f, later)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// RTP sockets come from the configured range, on even ports, until it is used up.
func TestListenRTPRange(t *testing.T) {
	base := 0
	for p := 20000; p < 60000; p += 100 { // find four free even ports in a row
		ok := true
		for q := p; q < p+4; q++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: q})
			if err != nil {
				ok = false
				break
			}
			_ = c.Close()
		}
		if ok {
			base = p
			break
		}
	}
	if base == 0 {
		t.Skip("no free port block")
	}
	s := &Server{cfg: Config{RTPPortMin: base, RTPPortMax: base + 3}}
	ip := net.IPv4(127, 0, 0, 1)
	seen := map[int]bool{}
	for range 2 {
		c, err := s.listenRTP(ip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p := c.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p < base || p > base+3 || seen[p] {
			t.Fatalf("port %d, want a new even port in %d-%d", p, base, base+3)
		}
		seen[p] = true
	}
	if _, err := s.listenRTP(ip); !errors.Is(err, ErrNoPort) {
		t.Fatalf("third socket: %v, want ErrNoPort", err)
	}
}

// The first RTP packet latches the caller's media source; packets from anywhere else are
// dropped and counted, unless they carry the latched SSRC (the caller's NAT rebinding).
func TestEchoLatchesItsSource(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	b, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer a.Close()
	defer b.Close()
	sdpSays := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9} // behind NAT: not where RTP comes from
	e := newEcho(slog.New(slog.DiscardHandler), conn, offer{Remote: sdpSays, Codec: media.PCMU{}}, make(chan media.Event, 1))
	done := make(chan struct{})
	go func() { e.readLoop(); close(done) }()
	defer func() { conn.Close(); <-done }()

	send := func(from *net.UDPConn, ssrc uint32, seq uint16) {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, SSRC: ssrc}, Payload: make([]byte, 160)}
		raw, _ := pkt.Marshal()
		if _, err := from.WriteTo(raw, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (remote %v, rx %d, dropped %d)", what, *e.remote.Load(), e.rx.Load(), e.foreign.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	addrOf := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

	send(a, 1, 1)
	waitFor("the caller's source to latch", func() bool { return *e.remote.Load() == addrOf(a) })
	send(b, 2, 1) // someone else
	waitFor("the stranger's packet to be dropped", func() bool { return e.foreign.Load() == 1 })
	if *e.remote.Load() != addrOf(a) {
		t.Fatal("a stranger's packet moved the call's media")
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 99, SSRC: 1}, Payload: []byte{1}}
	raw, _ := pkt.Marshal()
	_, _ = a.WriteTo(raw, conn.LocalAddr()) // a payload type the answer did not agree
	waitFor("the foreign payload type to be dropped", func() bool { return e.foreign.Load() == 2 })
	send(b, 1, 2) // the caller, from a new NAT binding
	waitFor("the source to move with the caller's SSRC", func() bool { return *e.remote.Load() == addrOf(b) })
	if e.rx.Load() != 2 {
		t.Fatalf("received %d audio packets, want 2", e.rx.Load())
	}
}
