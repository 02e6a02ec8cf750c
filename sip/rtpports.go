package sip

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
)

// rtpPorts is a call's RTP socket on an even port and its RTCP socket on the next one.
type rtpPorts struct {
	rtp, rtcp *net.UDPConn
	port      int
}

// listenRTP opens a call's RTP and RTCP sockets in the configured range.
func (s *Server) listenRTP(ip netip.Addr) (*rtpPorts, error) {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	try := func(p int) *rtpPorts {
		rtp, err := net.ListenUDP(network, &net.UDPAddr{Port: p})
		if err != nil {
			return nil
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port == 65535 {
			_ = rtp.Close()
			return nil
		}
		rtcp, err := net.ListenUDP(network, &net.UDPAddr{Port: port + 1})
		if err != nil {
			_ = rtp.Close()
			return nil
		}
		return &rtpPorts{rtp: rtp, rtcp: rtcp, port: port}
	}
	lo, hi := s.cfg.RTPPortMin, s.cfg.RTPPortMax
	if lo == 0 && hi == 0 {
		for range 50 {
			if p := try(0); p != nil {
				return p, nil
			}
		}
		return nil, ErrNoPort
	}
	lo += lo & 1
	n := (hi-lo)/2 + 1
	if n <= 0 {
		return nil, ErrNoPort
	}
	start := rand.IntN(n)
	for i := range n {
		if p := try(lo + 2*((start+i)%n)); p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w in %d-%d", ErrNoPort, s.cfg.RTPPortMin, s.cfg.RTPPortMax)
}

func (p *rtpPorts) close() {
	_ = p.rtp.Close()
	_ = p.rtcp.Close()
}
