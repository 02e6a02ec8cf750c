package media

import (
	"fmt"
	"strings"
	"time"
)

// The coders of an RTPSession: a codec as the SDP agreed it, turned into frames at the
// stream's rate and back, with the concealment of lost packets.

type codecKind uint8

const (
	codecPCMU codecKind = iota + 1
	codecPCMA
	codecOpus
)

// resolveCodec checks spec and fills its clock rate.
func resolveCodec(spec CodecSpec) (CodecSpec, codecKind, error) {
	var kind codecKind
	var clock int
	switch strings.ToUpper(spec.Name) {
	case "PCMU":
		kind, clock = codecPCMU, ClockRateG711
	case "PCMA":
		kind, clock = codecPCMA, ClockRateG711
	case "OPUS":
		kind, clock = codecOpus, ClockRateOpus
	default:
		return spec, 0, fmt.Errorf("%w: %q", ErrUnknownCodec, spec.Name)
	}
	if spec.ClockRate == 0 {
		spec.ClockRate = clock
	}
	if spec.ClockRate != clock {
		return spec, 0, fmt.Errorf("%w: %s at %d Hz", ErrUnknownCodec, spec.Name, spec.ClockRate)
	}
	if spec.PayloadType > 127 {
		return spec, 0, fmt.Errorf("%w: payload type %d", ErrUnknownCodec, spec.PayloadType)
	}
	return spec, kind, nil
}

// rxCodec turns the jitter buffer's output into frames at the stream's rate. ReadFrame's
// goroutine owns it.
type rxCodec struct {
	kind    codecKind
	opus    *OpusDecoder
	rs      *Resampler // G.711's 8 kHz to the stream's rate; nil when they are equal
	pcm     []int16    // one decoded G.711 frame
	last    []int16    // the last good G.711 frame, repeated with a fade over a loss
	lossRun int
	silent  bool // the last frame produced was silence
}

func newRxCodec(kind codecKind, rate int) (*rxCodec, error) {
	c := &rxCodec{kind: kind}
	if kind == codecOpus {
		dec, err := NewOpusDecoder(rate)
		if err != nil {
			return nil, err
		}
		c.opus = dec
		return c, nil
	}
	if rate != ClockRateG711 {
		rs, err := NewResampler(ClockRateG711, rate)
		if err != nil {
			return nil, err
		}
		c.rs = rs
	}
	c.pcm = make([]int16, SamplesPerFrame(ClockRateG711))
	c.last = make([]int16, SamplesPerFrame(ClockRateG711))
	return c, nil
}

// decode writes one frame into out for what the jitter buffer gave: p's payload, and for
// a loss the next packet when the buffer holds it (Opus recovers the lost frame from it).
func (c *rxCodec) decode(out []int16, p Popped, payload, next []byte, haveNext bool) {
	audio := p.Status == PopFrame && len(payload) > 0
	if p.Status == PopEmpty || (p.Status == PopFrame && len(payload) == 0) {
		// Nothing playing, or the slot of a telephone-event packet: silence.
		clear(out)
		if !c.silent && c.rs != nil {
			c.rs.Reset()
		}
		c.silent, c.lossRun = true, 0
		if c.kind != codecOpus {
			clear(c.last)
		}
		return
	}
	c.silent = false
	if c.kind == codecOpus {
		var n int
		var err error
		switch {
		case audio:
			n, err = c.opus.Decode(out, payload)
		case haveNext:
			n, err = c.opus.DecodeFEC(out, next)
		default:
			n, err = c.opus.Decode(out, nil)
		}
		if err != nil {
			// A packet libopus refuses is concealed like a lost one.
			if n, err = c.opus.Decode(out, nil); err != nil {
				n = 0
			}
		}
		clear(out[n:])
		return
	}
	if audio {
		var n int
		if c.kind == codecPCMU {
			n = DecodePCMU(c.pcm, payload)
		} else {
			n = DecodePCMA(c.pcm, payload)
		}
		clear(c.pcm[n:])
		copy(c.last, c.pcm)
		c.lossRun = 0
	} else {
		// G.711 has no concealment of its own: repeat the last frame, fading it out over
		// three frames, then silence.
		c.lossRun++
		g := int32(4 - min(c.lossRun, 4)) // quarters
		for i, v := range c.last {
			c.pcm[i] = int16(int32(v) * g / 4)
		}
	}
	if c.rs == nil {
		copy(out, c.pcm)
		return
	}
	if _, err := c.rs.Resample(out, c.pcm); err != nil {
		clear(out)
	}
}

// txCodec encodes frames at the stream's rate into payloads. The send lock guards it.
type txCodec struct {
	kind    codecKind
	opus    *OpusEncoder
	rs      *Resampler // the stream's rate to G.711's 8 kHz; nil when they are equal
	pcm     []int16
	payload []byte
}

func newTxCodec(kind codecKind, rate, complexity, bandwidth int) (*txCodec, error) {
	c := &txCodec{kind: kind}
	if kind == codecOpus {
		if complexity == 0 {
			complexity = defaultOpusCplx
			if rate == Rate8k {
				complexity = defaultOpusCplx8k
			}
		}
		if bandwidth == 0 {
			bandwidth = defaultOpusBW
		}
		// In-band FEC lets the far end recover a lost frame from the next packet; libopus
		// adds it only with enough bits and an expected loss of 10% or more.
		enc, err := NewOpusEncoder(OpusConfig{Rate: rate, Complexity: complexity, MaxBandwidth: bandwidth,
			Bitrate: opusBitrate, FEC: true, PacketLossPercent: opusExpectedLoss})
		if err != nil {
			return nil, err
		}
		c.opus = enc
		c.payload = make([]byte, OpusMaxPacket)
		return c, nil
	}
	if rate != ClockRateG711 {
		rs, err := NewResampler(rate, ClockRateG711)
		if err != nil {
			return nil, err
		}
		c.rs = rs
	}
	c.pcm = make([]int16, SamplesPerFrame(ClockRateG711))
	c.payload = make([]byte, SamplesPerFrame(ClockRateG711))
	return c, nil
}

// encode writes the payload of one frame into c.payload and returns its length.
func (c *txCodec) encode(samples []int16) (int, error) {
	if c.kind == codecOpus {
		return c.opus.Encode(c.payload, samples)
	}
	pcm := samples
	if c.rs != nil {
		n, err := c.rs.Resample(c.pcm, samples)
		if err != nil {
			return 0, err
		}
		pcm = c.pcm[:n]
	}
	if c.kind == codecPCMU {
		return EncodePCMU(c.payload, pcm), nil
	}
	return EncodePCMA(c.payload, pcm), nil
}

func newSessionJitter(kind codecKind, depth time.Duration) *JitterBuffer {
	frames := max(1, int((depth+FrameDuration-1)/FrameDuration))
	return NewJitterBuffer(JitterConfig{Initial: frames, Min: frames, Max: frames + 6, Adaptive: true, MaxPayload: rxPayloadSize(kind)})
}

// rxPayloadSize is the largest payload a session of kind buffers and plays: G.711 comes cut
// into 20 ms frames (g711Chunker), Opus as it was sent. Buffers sized by it, not by the
// largest datagram, keep an 8 kHz call's memory to what 8 kHz needs.
func rxPayloadSize(kind codecKind) int {
	if kind == codecOpus {
		return maxDatagram
	}
	return g711Frame
}

// rtpHeaderSize is the header of the packets a session sends: no CSRC, no extension.
const rtpHeaderSize = 12

// srtpTagRoom is what SRTP adds to an RTP packet encrypted in place: its authentication
// tag (10 bytes for _80, 4 for _32).
const srtpTagRoom = 10

// txPacketSize is the largest RTP packet a session of kind sends: a header, one 20 ms frame
// (txCodec.payload's) and room for SRTP's tag, so that encrypting it in place allocates
// nothing.
func txPacketSize(kind codecKind) int {
	if kind == codecOpus {
		return maxDatagram
	}
	return rtpHeaderSize + g711Frame + srtpTagRoom
}
