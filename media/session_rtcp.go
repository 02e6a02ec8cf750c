package media

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pion/rtcp"
)

// rtcpLoop reads the peer's RTCP until the socket is closed and sends our report every
// interval (randomised by ±50%, RFC 3550 §6.2), the first after half of one.
func (s *RTPSession) rtcpLoop() {
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	next := s.start.Add(s.rtcpInterval / 2)
	_ = s.rtcpConn.SetReadDeadline(next)
	for {
		n, from, err := s.rtcpConn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
			case errors.Is(err, net.ErrClosed), s.isDone():
				return
			default:
				s.log.Debug("rtcp read failed", "error", err)
				continue
			}
		} else if b, ok := s.unprotectRTCP(buf[:n]); ok {
			s.handleRTCP(b, from, now)
		}
		if !now.Before(next) {
			s.sendRTCP(now)
			next = now.Add(s.rtcpInterval/2 + rand.N(s.rtcpInterval))
			_ = s.rtcpConn.SetReadDeadline(next)
		}
	}
}

// unprotectRTCP authenticates and decrypts an SRTCP packet when the session carries SRTP;
// one that does not authenticate is dropped and counted.
func (s *RTPSession) unprotectRTCP(b []byte) ([]byte, bool) {
	if s.srtp == nil {
		return b, true
	}
	b, err := s.srtp.unprotectRTCP(b)
	if err != nil {
		s.mu.Lock()
		s.dropped++
		s.statsChangedLocked()
		s.mu.Unlock()
		return nil, false
	}
	return b, true
}

// handleRTCP takes the peer's reports: loss and round-trip time of what we send, the
// peer's SR for our next report, liveness for the media timeout.
func (s *RTPSession) handleRTCP(b []byte, from netip.AddrPort, now time.Time) {
	from = unmapAddrPort(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	// RTCP latches like RTP, but only to the host the RTP latched to: before that, only the
	// address the SDP gave is believed, so a stranger's report cannot take the latch first.
	switch {
	case s.rtcpLatched && from != *s.rtcpRemote.Load(),
		!s.rtcpLatched && s.latched && from.Addr() != s.remote.Load().Addr(),
		!s.rtcpLatched && !s.latched && from != *s.rtcpRemote.Load():
		s.dropped++
		s.statsChangedLocked()
		return
	}
	rep, found, err := ParseRTCP(b, now, s.ssrc, s.sendClock, s.rstats)
	if err != nil {
		s.dropped++
		s.statsChangedLocked()
		return
	}
	if !s.rtcpLatched && s.latched {
		s.rtcpLatched = true
		if cur := *s.rtcpRemote.Load(); cur != from {
			to := from
			s.rtcpRemote.Store(&to)
		}
	}
	s.lastAlive.Store(int64(now.Sub(s.start)))
	if found {
		s.remoteLoss = rep.FractionLost
		if rep.RTT > 0 {
			s.rtt = rep.RTT
			s.statsChangedLocked()
		}
	}
	if !s.bye && hasRTCPBye(b) {
		s.bye = true
		s.log.Info("rtcp bye from the peer")
	}
}

// hasRTCPBye reports whether a compound RTCP packet holds a BYE.
func hasRTCPBye(b []byte) bool {
	for len(b) >= 4 {
		if b[1] == byte(rtcp.TypeGoodbye) {
			return true
		}
		l := (int(b[2])<<8 | int(b[3]) + 1) * 4
		if l > len(b) {
			return false
		}
		b = b[l:]
	}
	return false
}

// sendRTCP sends our report: a Sender Report once we have sent, a Receiver Report before,
// each with a block about the peer's stream, and our CNAME.
func (s *RTPSession) sendRTCP(now time.Time) {
	s.wmu.Lock()
	ss := *s.sstats
	s.wmu.Unlock()
	var report rtcp.Packet
	s.mu.Lock()
	if ss.packets > 0 {
		report = ss.SenderReport(s.ssrc, now, s.rstats)
	} else {
		report = s.rstats.ReceiverReport(s.ssrc, now)
	}
	s.mu.Unlock()
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: s.ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: s.cname}},
	}}}
	b, err := rtcp.Marshal([]rtcp.Packet{report, sdes})
	if err != nil {
		s.log.Debug("rtcp marshal failed", "error", err)
		return
	}
	to := *s.rtcpRemote.Load()
	if !to.IsValid() {
		return
	}
	if s.srtp != nil {
		if b, err = s.srtp.protectRTCP(b); err != nil {
			s.log.Debug("srtcp encryption failed", "error", err)
			return
		}
	}
	if _, err := s.rtcpConn.WriteToUDPAddrPort(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("rtcp write failed", "error", err)
	}
}
