package media

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/pion/rtp"
)

// ErrRTP is a datagram that is not a valid RTP packet.
var ErrRTP = errors.New("media: malformed RTP packet")

// ParseRTP parses buf into p, which the caller owns and reuses for every packet of a stream:
// pion reuses p's CSRC and extension slices, so a steady stream parses without allocating.
// p.Payload aliases buf and is valid only until buf is reused.
func ParseRTP(p *rtp.Packet, buf []byte) error {
	if len(buf) < 12 || buf[0]>>6 != 2 {
		return ErrRTP
	}
	if err := p.Unmarshal(buf); err != nil {
		return fmt.Errorf("%w: %w", ErrRTP, err)
	}
	return nil
}

// Packetizer builds the outbound RTP packets of one stream: it owns the SSRC, the sequence
// number and the timestamp (both starting at random values, RFC 3550 §5.1) and marshals into
// the caller's buffer without allocating. It is not safe for concurrent use.
type Packetizer struct {
	pkt             rtp.Packet
	samplesPerFrame uint32
	marker          bool
}

// NewPacketizer returns a Packetizer for payloadType at clockRate (the RTP clock rate of the
// codec: 8000 for PCMU/PCMA, 48000 for Opus), sending one 20 ms frame per packet. ssrc 0
// picks a random SSRC.
func NewPacketizer(payloadType uint8, clockRate int, ssrc uint32) *Packetizer {
	for ssrc == 0 {
		ssrc = rand.Uint32()
	}
	return &Packetizer{
		pkt: rtp.Packet{Header: rtp.Header{
			Version:        2,
			PayloadType:    payloadType & 0x7f,
			SSRC:           ssrc,
			SequenceNumber: uint16(rand.Uint32()),
			Timestamp:      rand.Uint32(),
		}},
		samplesPerFrame: uint32(SamplesPerFrame(clockRate)),
		marker:          true, // the first packet of a stream begins a talkspurt
	}
}

// SSRC is the synchronisation source of the packets.
func (p *Packetizer) SSRC() uint32 { return p.pkt.SSRC }

// Timestamp is the RTP timestamp the next audio packet will carry.
func (p *Packetizer) Timestamp() uint32 { return p.pkt.Timestamp }

// SequenceNumber is the sequence number the next packet will carry.
func (p *Packetizer) SequenceNumber() uint16 { return p.pkt.SequenceNumber }

// SetFormat switches the audio payload type and RTP clock rate (a re-INVITE changed the
// codec) while keeping the SSRC and sequence numbers; the next audio packet carries the
// marker bit.
func (p *Packetizer) SetFormat(payloadType uint8, clockRate int) {
	p.pkt.PayloadType = payloadType & 0x7f
	p.samplesPerFrame = uint32(SamplesPerFrame(clockRate))
	p.marker = true
}

// Packetize marshals one 20 ms frame's payload into buf and returns the packet's length;
// buf needs 12+len(payload) bytes. The timestamp then advances by one frame.
func (p *Packetizer) Packetize(buf, payload []byte) (int, error) {
	n, err := p.write(buf, p.pkt.PayloadType, p.marker, p.pkt.Timestamp, payload)
	if err != nil {
		return 0, err
	}
	p.marker = false
	p.pkt.Timestamp += p.samplesPerFrame
	return n, nil
}

// Skip advances the timestamp over frames that are not sent (silence suppression, a DTMF
// event in progress, hold) and marks the next audio packet as the start of a talkspurt, so
// the far end's jitter buffer can re-anchor (RFC 3551 §4.1).
func (p *Packetizer) Skip(frames int) {
	if frames <= 0 {
		return
	}
	p.pkt.Timestamp += uint32(frames) * p.samplesPerFrame
	p.marker = true
}

// PacketizeEvent marshals a packet of another payload type (an RFC 4733 telephone-event)
// in the same sequence space, with an explicit timestamp and marker; the audio timestamp
// is left alone (call Skip for the audio frames the event replaces).
func (p *Packetizer) PacketizeEvent(buf []byte, payloadType uint8, marker bool, timestamp uint32, payload []byte) (int, error) {
	return p.write(buf, payloadType&0x7f, marker, timestamp, payload)
}

func (p *Packetizer) write(buf []byte, pt uint8, marker bool, ts uint32, payload []byte) (int, error) {
	audioPT, audioTS := p.pkt.PayloadType, p.pkt.Timestamp
	p.pkt.PayloadType, p.pkt.Marker, p.pkt.Timestamp, p.pkt.Payload = pt, marker, ts, payload
	n, err := p.pkt.MarshalTo(buf)
	p.pkt.PayloadType, p.pkt.Timestamp, p.pkt.Payload = audioPT, audioTS, nil
	if err != nil {
		return 0, fmt.Errorf("media: marshal RTP: %w", err)
	}
	p.pkt.SequenceNumber++
	return n, nil
}

// SeqResult is what SequenceTracker.Update made of a packet.
type SeqResult uint8

const (
	// SeqValid is a packet of the validated source, in order, reordered or duplicated.
	SeqValid SeqResult = iota
	// SeqProbation is a packet of a source not yet validated (RFC 3550 A.1 needs two
	// sequential packets); it is not counted in the statistics.
	SeqProbation
	// SeqNewSource is the first packet of a new SSRC (a re-INVITE or transfer changed the
	// sender): the tracker restarted, in probation; the caller resets its jitter buffer.
	SeqNewSource
	// SeqRestart is a confirmed big jump in sequence numbers of the same SSRC (the sender
	// restarted): the tracker restarted; the caller resets its jitter buffer.
	SeqRestart
	// SeqJump is a single packet far from the expected sequence number, ignored until a
	// second, sequential one confirms the jump.
	SeqJump
)

// RFC 3550 A.1 constants.
const (
	seqMod        = 1 << 16
	maxDropout    = 3000
	maxMisorder   = 100
	minSequential = 2
)

// SequenceTracker follows the sequence numbers of one inbound RTP stream per RFC 3550
// appendix A.1: extended sequence number across wrap-arounds, probation of a new source,
// and re-synchronisation on an SSRC change or a confirmed jump.
type SequenceTracker struct {
	ssrc      uint32
	started   bool
	maxSeq    uint16
	cycles    uint32 // count of wraps, shifted left by 16
	baseSeq   uint32
	badSeq    uint32
	probation int
	received  uint32
}

// Update accounts for a packet of ssrc with sequence number seq.
func (s *SequenceTracker) Update(ssrc uint32, seq uint16) SeqResult {
	if !s.started || ssrc != s.ssrc {
		changed := s.started
		*s = SequenceTracker{ssrc: ssrc, started: true}
		s.init(seq)
		s.maxSeq = seq - 1
		s.probation = minSequential
		s.update(seq)
		if changed {
			return SeqNewSource
		}
		return SeqProbation
	}
	return s.update(seq)
}

func (s *SequenceTracker) init(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.received = 0
}

func (s *SequenceTracker) update(seq uint16) SeqResult {
	udelta := seq - s.maxSeq
	switch {
	case s.probation > 0:
		if seq == s.maxSeq+1 {
			s.probation--
			s.maxSeq = seq
			if s.probation == 0 {
				s.init(seq)
				s.received++
				return SeqValid
			}
		} else {
			s.probation = minSequential - 1
			s.maxSeq = seq
		}
		return SeqProbation
	case udelta < maxDropout:
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	case udelta <= seqMod-maxMisorder:
		if uint32(seq) != s.badSeq {
			s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return SeqJump
		}
		// Two sequential packets after a jump: the sender restarted.
		s.init(seq)
		s.received++
		return SeqRestart
	default:
		// Duplicate or reordered packet.
	}
	s.received++
	return SeqValid
}

// SSRC is the source being tracked.
func (s *SequenceTracker) SSRC() uint32 { return s.ssrc }

// Valid reports whether the source has passed probation.
func (s *SequenceTracker) Valid() bool { return s.started && s.probation == 0 }

// ExtendedMax is the highest sequence number received, extended with the wrap-around count.
func (s *SequenceTracker) ExtendedMax() uint32 { return s.cycles + uint32(s.maxSeq) }

// Received is how many packets were counted since the source was validated (duplicates
// included, as RFC 3550 does).
func (s *SequenceTracker) Received() uint32 { return s.received }

// Expected is how many packets the sequence numbers say were sent.
func (s *SequenceTracker) Expected() uint32 {
	if !s.Valid() {
		return 0
	}
	return s.ExtendedMax() - s.baseSeq + 1
}

// Lost is the cumulative number of packets lost (negative when duplicates outnumber losses).
func (s *SequenceTracker) Lost() int64 { return int64(s.Expected()) - int64(s.received) }
