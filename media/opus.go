package media

import (
	"fmt"

	"github.com/hraban/opus"
)

// Opus (RFC 6716) through libopus via github.com/hraban/opus (cgo). The encoder is set up
// for speech (OPUS_APPLICATION_VOIP) at 20 ms a packet; the decoder conceals lost packets
// by PLC or, when the next packet carries in-band FEC, by recovering the lost frame from it.
// Both are stateful, so each stream owns one of each.

const (
	// ClockRateOpus is the RTP clock rate of Opus whatever the sample rate (RFC 7587).
	ClockRateOpus = Rate48k
	// OpusMaxPacket is the largest packet the encoder is allowed to produce; libopus
	// recommends 4000 bytes, and a 20 ms speech packet is far smaller.
	OpusMaxPacket = 4000
)

// OpusConfig configures an OpusEncoder.
type OpusConfig struct {
	// Rate is the sample rate of the PCM: 8, 16, 24 or 48 kHz.
	Rate int
	// Complexity is 0 (cheapest) to 10 (best); 0 means the default of 5, a fair trade for
	// many concurrent calls on few cores.
	Complexity int
	// Bitrate in bit/s; 0 lets libopus choose for the rate.
	Bitrate int
	// FEC enables in-band forward error correction, worth it only if PacketLossPercent > 0.
	FEC bool
	// PacketLossPercent is the loss the encoder should expect (tunes FEC).
	PacketLossPercent int
	// DTX lets the encoder send almost nothing during silence.
	DTX bool
	// MaxBandwidth caps the audio bandwidth coded, in Hz: 4000 (narrowband), 6000
	// (medium), 8000 (wideband), 12000 (super-wideband) or 20000 (fullband); 0: no cap.
	// Speech capped at wideband stays in SILK mode, several times cheaper to encode than
	// fullband CELT or hybrid, whatever the sample rate.
	MaxBandwidth int
}

// OpusEncoder encodes 20 ms PCM16 frames into Opus packets. Not safe for concurrent use.
type OpusEncoder struct {
	enc  *opus.Encoder
	rate int
}

func opusRate(rate int) error {
	switch rate {
	case Rate8k, Rate16k, Rate24k, Rate48k:
		return nil
	}
	return fmt.Errorf("%w: Opus at %d Hz", ErrUnsupportedRate, rate)
}

// NewOpusEncoder returns a mono encoder configured by cfg.
func NewOpusEncoder(cfg OpusConfig) (*OpusEncoder, error) {
	if err := opusRate(cfg.Rate); err != nil {
		return nil, err
	}
	enc, err := opus.NewEncoder(cfg.Rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("media: opus encoder: %w", err)
	}
	complexity := cfg.Complexity
	if complexity == 0 {
		complexity = 5
	}
	if complexity < 0 || complexity > 10 {
		return nil, fmt.Errorf("media: opus complexity %d, want 0..10", cfg.Complexity)
	}
	steps := []struct {
		what string
		err  func() error
	}{
		{"complexity", func() error { return enc.SetComplexity(complexity) }},
		{"fec", func() error { return enc.SetInBandFEC(cfg.FEC) }},
		{"packet loss", func() error { return enc.SetPacketLossPerc(cfg.PacketLossPercent) }},
		{"dtx", func() error { return enc.SetDTX(cfg.DTX) }},
		{"bandwidth", func() error {
			switch cfg.MaxBandwidth {
			case 0:
				return nil
			case 4000:
				return enc.SetMaxBandwidth(opus.Narrowband)
			case 6000:
				return enc.SetMaxBandwidth(opus.Mediumband)
			case 8000:
				return enc.SetMaxBandwidth(opus.Wideband)
			case 12000:
				return enc.SetMaxBandwidth(opus.SuperWideband)
			case 20000:
				return enc.SetMaxBandwidth(opus.Fullband)
			}
			return fmt.Errorf("%d Hz, want 4000, 6000, 8000, 12000 or 20000", cfg.MaxBandwidth)
		}},
		{"bitrate", func() error {
			if cfg.Bitrate == 0 {
				return enc.SetBitrateToAuto()
			}
			return enc.SetBitrate(cfg.Bitrate)
		}},
	}
	for _, s := range steps {
		if err := s.err(); err != nil {
			return nil, fmt.Errorf("media: opus %s: %w", s.what, err)
		}
	}
	return &OpusEncoder{enc: enc, rate: cfg.Rate}, nil
}

// SampleRate is the rate of the PCM the encoder takes.
func (e *OpusEncoder) SampleRate() int { return e.rate }

// Encode writes the packet for one 20 ms frame pcm into dst (OpusMaxPacket bytes is always
// enough) and returns its length. With DTX on, a packet of 1–2 bytes during silence need not
// be sent.
func (e *OpusEncoder) Encode(dst []byte, pcm []int16) (int, error) {
	if len(pcm) != SamplesPerFrame(e.rate) {
		return 0, fmt.Errorf("media: opus encode: %d samples, want %d", len(pcm), SamplesPerFrame(e.rate))
	}
	n, err := e.enc.Encode(pcm, dst)
	if err != nil {
		return 0, fmt.Errorf("media: opus encode: %w", err)
	}
	return n, nil
}

// OpusDecoder decodes Opus packets into PCM16 at a rate of its choosing (Opus decodes any
// packet at any of its rates). Not safe for concurrent use.
type OpusDecoder struct {
	dec  *opus.Decoder
	rate int
}

// NewOpusDecoder returns a mono decoder producing samples at rate.
func NewOpusDecoder(rate int) (*OpusDecoder, error) {
	if err := opusRate(rate); err != nil {
		return nil, err
	}
	dec, err := opus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder: %w", err)
	}
	return &OpusDecoder{dec: dec, rate: rate}, nil
}

// SampleRate is the rate of the PCM the decoder writes.
func (d *OpusDecoder) SampleRate() int { return d.rate }

// Decode writes the samples of packet into dst and returns how many. A nil or empty packet
// is a lost one: dst (sized for one frame) is filled by packet-loss concealment.
func (d *OpusDecoder) Decode(dst []int16, packet []byte) (int, error) {
	if len(packet) == 0 {
		return d.conceal(dst)
	}
	n, err := d.dec.Decode(packet, dst)
	if err != nil {
		return 0, fmt.Errorf("media: opus decode: %w", err)
	}
	return n, nil
}

// DecodeFEC recovers the frame lost just before next from the FEC data next carries,
// writing one frame into dst; without FEC data libopus falls back to concealment. Decode
// next itself afterwards as usual.
func (d *OpusDecoder) DecodeFEC(dst []int16, next []byte) (int, error) {
	f := SamplesPerFrame(d.rate)
	if len(dst) < f {
		return 0, fmt.Errorf("%w: %d samples, need %d", ErrShortBuffer, len(dst), f)
	}
	if len(next) == 0 {
		return d.conceal(dst)
	}
	// hraban/opus sizes the decode by the slice's capacity, hence the full slice expression:
	// FEC and PLC must produce exactly the missing duration.
	if err := d.dec.DecodeFEC(next, dst[:f:f]); err != nil {
		return 0, fmt.Errorf("media: opus fec: %w", err)
	}
	return f, nil
}

func (d *OpusDecoder) conceal(dst []int16) (int, error) {
	f := SamplesPerFrame(d.rate)
	if len(dst) < f {
		return 0, fmt.Errorf("%w: %d samples, need %d", ErrShortBuffer, len(dst), f)
	}
	if err := d.dec.DecodePLC(dst[:f:f]); err != nil {
		return 0, fmt.Errorf("media: opus plc: %w", err)
	}
	return f, nil
}
