package media

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtcp"
)

// ErrRTCP is a datagram that is not a valid RTCP compound packet.
var ErrRTCP = errors.New("media: malformed RTCP packet")

// ReceiverStats keeps the RFC 3550 reception statistics of one inbound stream: packets
// received and expected, cumulative and fractional loss, and interarrival jitter (§6.4.1,
// appendix A.3 and A.8), and the far end's last Sender Report for LSR/DLSR.
type ReceiverStats struct {
	clockRate int
	seq       SequenceTracker

	base        time.Time // arrival clock origin
	haveBase    bool
	transit     uint32
	haveTransit bool
	jitter      uint32 // scaled by 16 (A.8)

	expectedPrior, receivedPrior uint32
	fraction                     uint8 // of the last report

	lastSR   uint32 // middle 32 bits of the far end's last SR NTP timestamp
	lastSRAt time.Time
}

// NewReceiverStats returns statistics for a stream at RTP clockRate.
func NewReceiverStats(clockRate int) *ReceiverStats {
	if clockRate <= 0 {
		clockRate = Rate8k
	}
	return &ReceiverStats{clockRate: clockRate}
}

// Update accounts for a packet arriving at arrival (a monotonic time.Now() reading). On
// SeqNewSource the statistics start over for the new source.
func (r *ReceiverStats) Update(ssrc uint32, seq uint16, timestamp uint32, arrival time.Time) SeqResult {
	res := r.seq.Update(ssrc, seq)
	switch res {
	case SeqNewSource, SeqRestart:
		r.haveTransit, r.jitter = false, 0
		r.expectedPrior, r.receivedPrior, r.fraction = 0, 0, 0
		if res == SeqNewSource {
			r.lastSR, r.lastSRAt = 0, time.Time{}
		}
	case SeqValid:
		r.updateJitter(timestamp, arrival)
	}
	return res
}

func (r *ReceiverStats) updateJitter(timestamp uint32, arrival time.Time) {
	if !r.haveBase {
		r.base, r.haveBase = arrival, true
	}
	// Arrival in timestamp units; only differences matter, so uint32 wrap-around is fine.
	el := arrival.Sub(r.base)
	units := uint32(el/time.Second)*uint32(r.clockRate) + uint32(int64(el%time.Second)*int64(r.clockRate)/int64(time.Second))
	transit := units - timestamp
	if !r.haveTransit {
		r.transit, r.haveTransit = transit, true
		return
	}
	d := int32(transit - r.transit)
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += uint32(d) - ((r.jitter + 8) >> 4)
}

// ReceiverSnapshot is the state of the reception statistics, for call records and logs.
type ReceiverSnapshot struct {
	SSRC               uint32
	Received, Expected uint32
	Lost               int64
	// FractionLost is the loss in the interval before the last report, 0 to 1.
	FractionLost float64
	// Jitter is the interarrival jitter in timestamp units, JitterMs in milliseconds.
	Jitter   uint32
	JitterMs float64
}

// Snapshot returns the statistics so far.
func (r *ReceiverStats) Snapshot() ReceiverSnapshot {
	return ReceiverSnapshot{
		SSRC:         r.seq.SSRC(),
		Received:     r.seq.Received(),
		Expected:     r.seq.Expected(),
		Lost:         r.seq.Lost(),
		FractionLost: float64(r.fraction) / 256,
		Jitter:       r.jitter >> 4,
		JitterMs:     float64(r.jitter) / 16 * 1000 / float64(r.clockRate),
	}
}

// HandleSenderReport records the far end's Sender Report, received at arrival, for the
// LSR and DLSR of the next report.
func (r *ReceiverStats) HandleSenderReport(sr *rtcp.SenderReport, arrival time.Time) {
	r.lastSR = uint32(sr.NTPTime >> 16)
	r.lastSRAt = arrival
}

// ReceptionReport builds the report block about the stream at now and starts a new
// interval for the fraction lost. ok is false while no source is validated.
func (r *ReceiverStats) ReceptionReport(now time.Time) (rtcp.ReceptionReport, bool) {
	if !r.seq.Valid() {
		return rtcp.ReceptionReport{}, false
	}
	expected, received := r.seq.Expected(), r.seq.Received()
	expInt, recvInt := expected-r.expectedPrior, received-r.receivedPrior
	r.expectedPrior, r.receivedPrior = expected, received
	r.fraction = 0
	if lostInt := int64(expInt) - int64(recvInt); expInt != 0 && lostInt > 0 {
		r.fraction = uint8(lostInt << 8 / int64(expInt))
	}
	lost := min(max(r.seq.Lost(), -0x800000), 0x7fffff)
	rr := rtcp.ReceptionReport{
		SSRC:               r.seq.SSRC(),
		FractionLost:       r.fraction,
		TotalLost:          uint32(lost) & 0xffffff,
		LastSequenceNumber: r.seq.ExtendedMax(),
		Jitter:             r.jitter >> 4,
	}
	if !r.lastSRAt.IsZero() {
		rr.LastSenderReport = r.lastSR
		rr.Delay = uint32(now.Sub(r.lastSRAt) * 65536 / time.Second)
	}
	return rr, true
}

// ReceiverReport builds a Receiver Report from localSSRC (an endpoint that does not send).
func (r *ReceiverStats) ReceiverReport(localSSRC uint32, now time.Time) *rtcp.ReceiverReport {
	rep := &rtcp.ReceiverReport{SSRC: localSSRC}
	if rr, ok := r.ReceptionReport(now); ok {
		rep.Reports = []rtcp.ReceptionReport{rr}
	}
	return rep
}

// SenderStats keeps the counts of one outbound stream for its Sender Reports.
type SenderStats struct {
	clockRate int
	packets   uint32
	octets    uint32
	lastTS    uint32
	lastAt    time.Time
}

// NewSenderStats returns the sender counts of a stream at RTP clockRate.
func NewSenderStats(clockRate int) *SenderStats {
	if clockRate <= 0 {
		clockRate = Rate8k
	}
	return &SenderStats{clockRate: clockRate}
}

// Sent accounts for a packet with timestamp and payloadLen bytes of payload sent at at.
func (s *SenderStats) Sent(timestamp uint32, payloadLen int, at time.Time) {
	s.packets++
	s.octets += uint32(payloadLen)
	s.lastTS, s.lastAt = timestamp, at
}

// SenderReport builds a Sender Report of ssrc at now, with a report block about recv's
// stream when recv is not nil and has a source. Its RTP timestamp is the last one sent
// extrapolated to now, so the far end can relate it to the NTP time.
func (s *SenderStats) SenderReport(ssrc uint32, now time.Time, recv *ReceiverStats) *rtcp.SenderReport {
	rtpTime := s.lastTS
	if !s.lastAt.IsZero() {
		rtpTime += uint32(int64(now.Sub(s.lastAt)) * int64(s.clockRate) / int64(time.Second))
	}
	sr := &rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     NTPTime(now),
		RTPTime:     rtpTime,
		PacketCount: s.packets,
		OctetCount:  s.octets,
	}
	if recv != nil {
		if rr, ok := recv.ReceptionReport(now); ok {
			sr.Reports = []rtcp.ReceptionReport{rr}
		}
	}
	return sr
}

// NTPTime is t as a 64-bit NTP timestamp (seconds since 1900 in the high 32 bits).
func NTPTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// RemoteReport is the far end's view of the stream we send, from its SR or RR.
type RemoteReport struct {
	// Reporter is the far end's SSRC.
	Reporter     uint32
	FractionLost float64
	TotalLost    int32
	// Jitter is in timestamp units of our stream, JitterMs in milliseconds.
	Jitter   uint32
	JitterMs float64
	// RTT is the round-trip time from LSR and DLSR; zero when the far end has not yet
	// received a Sender Report of ours.
	RTT time.Duration
}

// ParseRTCP reads a compound RTCP packet from the far end received at now. A Sender
// Report feeds recv (may be nil) for our LSR/DLSR; the report block about localSSRC, if
// any, is returned with the round-trip time computed from its LSR and DLSR (RFC 3550
// §6.4.1). clockRate is our outbound stream's RTP clock rate.
func ParseRTCP(buf []byte, now time.Time, localSSRC uint32, clockRate int, recv *ReceiverStats) (RemoteReport, bool, error) {
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		return RemoteReport{}, false, fmt.Errorf("%w: %w", ErrRTCP, err)
	}
	if clockRate <= 0 {
		clockRate = Rate8k
	}
	var out RemoteReport
	var found bool
	use := func(reporter uint32, reports []rtcp.ReceptionReport) {
		for _, rr := range reports {
			if rr.SSRC != localSSRC {
				continue
			}
			found = true
			lost := int32(rr.TotalLost<<8) >> 8 // sign-extend the 24-bit field
			out = RemoteReport{
				Reporter:     reporter,
				FractionLost: float64(rr.FractionLost) / 256,
				TotalLost:    lost,
				Jitter:       rr.Jitter,
				JitterMs:     float64(rr.Jitter) * 1000 / float64(clockRate),
			}
			if rr.LastSenderReport != 0 {
				a := uint32(NTPTime(now) >> 16)
				if rtt := int32(a - rr.LastSenderReport - rr.Delay); rtt >= 0 {
					out.RTT = time.Duration(int64(rtt) * int64(time.Second) / 65536)
				}
			}
		}
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			if recv != nil {
				recv.HandleSenderReport(p, now)
			}
			use(p.SSRC, p.Reports)
		case *rtcp.ReceiverReport:
			use(p.SSRC, p.Reports)
		}
	}
	return out, found, nil
}
