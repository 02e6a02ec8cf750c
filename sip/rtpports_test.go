package sip

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/switchboard-go/switchboard/internal/testnet"
)

// RTP sockets come from the configured range, on even ports, until it is used up.
func TestListenRTPRange(t *testing.T) {
	base := testnet.Ports(t, 4) // four free ports, from an even one
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
