package sip

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

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
	ip := netip.MustParseAddr("127.0.0.1")
	seen := map[int]bool{}
	for range 2 {
		c, err := s.listenRTP(ip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		p := c.port
		if p%2 != 0 || p < base || p > base+3 || seen[p] || c.rtcp.LocalAddr().(*net.UDPAddr).Port != p+1 {
			t.Fatalf("ports %d/%d, want a new even port in %d-%d and the next for RTCP", p, c.rtcp.LocalAddr().(*net.UDPAddr).Port, base, base+3)
		}
		seen[p] = true
	}
	if _, err := s.listenRTP(ip); !errors.Is(err, ErrNoPort) {
		t.Fatalf("third socket: %v, want ErrNoPort", err)
	}
}
