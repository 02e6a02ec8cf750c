package sip

import (
	"errors"
	"net"
	"testing"
	"time"
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
