package loadgen

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// The audio every call sends, and how its round trip is found in what comes back.
//
// A call plays a loop of 20 ms frames encoded once, before the first call, and shared by all
// calls: by default a 1 kHz burst of 100 ms every second (400 ms into it), silence between.
// An onset is a frame with a loud sample after at least 100 ms of quiet frames; its time is
// that of its frame (sent: when the packet left; heard: when it arrived) plus the position
// of the first loud sample in it. The sender's onsets are found by running the receiver's
// detector over the loop decoded with the call's codec, so codec delay and shape cancel
// out; round trip is the arrival of a heard onset minus the sending of the onset it echoes.

const (
	// detectRate is the rate the detector hears at: G.711's, and the cheapest Opus decode.
	detectRate = media.Rate8k
	// onsetLevel is the magnitude a sample must reach to make its frame loud (−24 dBFS).
	onsetLevel = 2000
	// quietLevel is the peak magnitude under which a frame is quiet (−38 dBFS).
	quietLevel = 400
	// minQuiet is how many quiet frames must precede a loud one for an onset.
	minQuiet = 5

	toneHz       = 1000
	toneAmp      = 8000 // −12 dBFS
	burstFrames  = 5    // 100 ms
	periodFrames = 50   // 1 s
	// burstAt is where in the loop the burst starts: not at the very start of a call, whose
	// first packets a server may not be ready for.
	burstAt = 20 // 400 ms

	// maxRxSamples holds one packet decoded at detectRate: 120 ms, Opus's longest.
	maxRxSamples = 960
)

// onsetDetector finds onsets in a stream of frames. Its zero value is not ready: use
// newOnsetDetector, for which the start of a stream counts as quiet.
type onsetDetector struct{ quiet int }

func newOnsetDetector() onsetDetector { return onsetDetector{quiet: minQuiet} }

// frame takes the next frame and returns the index of the onset's first loud sample in it,
// or -1 when the frame holds no onset.
func (d *onsetDetector) frame(pcm []int16) int {
	first, peak := -1, 0
	for i, s := range pcm {
		a := int(s)
		if a < 0 {
			a = -a
		}
		if a >= onsetLevel && first < 0 {
			first = i
		}
		peak = max(peak, a)
	}
	switch {
	case first >= 0:
		onset := d.quiet >= minQuiet
		d.quiet = 0
		if onset {
			return first
		}
	case peak < quietLevel:
		d.quiet++
	default:
		d.quiet = 0
	}
	return -1
}

// codecSpec is what a codec name stands for on the wire.
type codecSpec struct {
	name        string // as in Config.Codec
	rtpmap      string // SDP encoding name/clock[/channels]
	pt          uint8  // payload type we offer
	clockRate   int    // RTP clock
	encodeRate  int    // rate of the PCM we encode
	dynamicOpus bool
}

func lookupCodec(name string) (codecSpec, error) {
	switch strings.ToLower(name) {
	case "", "pcmu":
		return codecSpec{name: "pcmu", rtpmap: "PCMU/8000", pt: media.PayloadTypePCMU, clockRate: media.ClockRateG711, encodeRate: media.Rate8k}, nil
	case "pcma":
		return codecSpec{name: "pcma", rtpmap: "PCMA/8000", pt: media.PayloadTypePCMA, clockRate: media.ClockRateG711, encodeRate: media.Rate8k}, nil
	case "opus":
		return codecSpec{name: "opus", rtpmap: "opus/48000/2", pt: 111, clockRate: media.ClockRateOpus, encodeRate: media.Rate48k, dynamicOpus: true}, nil
	}
	return codecSpec{}, fmt.Errorf("%w: codec %q, want pcmu, pcma or opus", ErrConfig, name)
}

// pattern is the loop of encoded frames every call sends, read-only once built.
type pattern struct {
	codec    codecSpec
	payloads [][]byte
	// onsets holds, for each frame, the sample (at detectRate) where an onset begins in it,
	// or -1.
	onsets []int
	// turnEnds holds, for each frame, the sample (at detectRate) after the last sound of a
	// stretch of speech that turnQuiet of quiet follows (a caller's last word), or -1.
	turnEnds []int
	// spacing is the shortest time between two onsets of the loop (the loop's length when
	// it has one); a heard onset is matched to a sent one less than this before it.
	spacing time.Duration
	// maxPayload is the largest payload, for the size of packet buffers.
	maxPayload int
}

// tonePCM is one loop of the default audio at rate: a burst of toneHz, then silence.
func tonePCM(rate int) []int16 {
	spf := media.SamplesPerFrame(rate)
	pcm := make([]int16, periodFrames*spf)
	burst := pcm[burstAt*spf : (burstAt+burstFrames)*spf]
	for i := range burst {
		burst[i] = int16(toneAmp * math.Sin(2*math.Pi*toneHz*float64(i)/float64(rate)))
	}
	return pcm
}

// wavPCM reads a PCM16 WAV file (its first channel) and resamples it to rate.
func wavPCM(path string, rate int) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: audio file: %w", err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("loadgen: audio file %s: %w", path, err)
	}
	src := w.Channel(0)
	if w.Rate == rate {
		return src, nil
	}
	rs, err := media.NewResampler(w.Rate, rate)
	if err != nil {
		return nil, fmt.Errorf("loadgen: audio file %s at %d Hz: %w", path, w.Rate, err)
	}
	in := media.SamplesPerFrame(w.Rate)
	out := make([]int16, 0, len(src)/in*media.SamplesPerFrame(rate)+media.SamplesPerFrame(rate))
	buf := make([]int16, rs.OutLen(in)+1)
	for off := 0; off < len(src); off += in {
		n, err := rs.Resample(buf, src[off:min(off+in, len(src))])
		if err != nil {
			return nil, fmt.Errorf("loadgen: resample %s: %w", path, err)
		}
		out = append(out, buf[:n]...)
	}
	return out, nil
}

// newPattern encodes pcm (at codec.encodeRate; nil for the default tone) into the loop of
// frames and finds its onsets.
func newPattern(codec codecSpec, pcm []int16) (*pattern, error) {
	if pcm == nil {
		pcm = tonePCM(codec.encodeRate)
	}
	spf := media.SamplesPerFrame(codec.encodeRate)
	frames := (len(pcm) + spf - 1) / spf
	if frames == 0 {
		return nil, fmt.Errorf("%w: the audio is empty", ErrConfig)
	}
	if rem := len(pcm) % spf; rem != 0 { // pad the last frame with silence
		pcm = append(pcm[:len(pcm):len(pcm)], make([]int16, spf-rem)...)
	}
	p := &pattern{codec: codec, payloads: make([][]byte, frames), onsets: make([]int, frames)}

	encode, err := newEncoder(codec)
	if err != nil {
		return nil, err
	}
	decode, err := newDecoder(codec)
	if err != nil {
		return nil, err
	}
	// Encode the loop twice and keep the second pass, so that a stateful encoder (Opus)
	// starts each loop from where the previous one left it, as it will be heard.
	var enc [media.OpusMaxPacket]byte
	for pass := range 2 {
		for i := range frames {
			n, err := encode(enc[:], pcm[i*spf:(i+1)*spf])
			if err != nil {
				return nil, err
			}
			if pass == 1 {
				p.payloads[i] = append([]byte(nil), enc[:n]...)
				p.maxPayload = max(p.maxPayload, n)
			}
		}
	}
	p.turnEnds = make([]int, frames)
	// Decode and detect twice for the same reason; the second pass gives the onsets.
	det := newOnsetDetector()
	var dec [maxRxSamples]int16
	for pass := range 2 {
		for i, pl := range p.payloads {
			n, err := decode(dec[:], pl)
			if err != nil {
				return nil, err
			}
			off := det.frame(dec[:n])
			if pass == 1 {
				p.onsets[i] = off
				p.turnEnds[i] = lastSound(dec[:n])
			}
		}
	}
	markTurnEnds(p.turnEnds)
	p.spacing = time.Duration(frames) * media.FrameDuration
	last, first := -1, -1
	for i, off := range p.onsets {
		if off < 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		if last >= 0 {
			p.spacing = min(p.spacing, time.Duration(i-last)*media.FrameDuration)
		}
		last = i
	}
	if first >= 0 && first != last {
		p.spacing = min(p.spacing, time.Duration(frames-last+first)*media.FrameDuration)
	}
	return p, nil
}

type (
	encodeFunc func(dst []byte, pcm []int16) (int, error)
	// decodeFunc decodes a payload at detectRate.
	decodeFunc func(dst []int16, payload []byte) (int, error)
)

// newEncoder returns an encoder at codec.encodeRate for one stream.
func newEncoder(codec codecSpec) (encodeFunc, error) {
	switch codec.name {
	case "pcmu":
		return func(dst []byte, pcm []int16) (int, error) { return media.EncodePCMU(dst, pcm), nil }, nil
	case "pcma":
		return func(dst []byte, pcm []int16) (int, error) { return media.EncodePCMA(dst, pcm), nil }, nil
	}
	enc, err := media.NewOpusEncoder(media.OpusConfig{Rate: codec.encodeRate})
	if err != nil {
		return nil, err
	}
	return enc.Encode, nil
}

// newDecoder returns a decoder at detectRate for one received stream.
func newDecoder(codec codecSpec) (decodeFunc, error) {
	switch codec.name {
	case "pcmu":
		return func(dst []int16, pl []byte) (int, error) { return media.DecodePCMU(dst, pl), nil }, nil
	case "pcma":
		return func(dst []int16, pl []byte) (int, error) { return media.DecodePCMA(dst, pl), nil }, nil
	}
	dec, err := media.NewOpusDecoder(detectRate)
	if err != nil {
		return nil, err
	}
	return dec.Decode, nil
}

// turnQuiet is the quiet after speech that ends a caller's turn in the audio (Config.Turns).
const turnQuiet = 25 // frames: 500 ms

// lastSound is the index after the frame's last sample above quietLevel, or -1 when the
// frame is quiet.
func lastSound(pcm []int16) int {
	for i := len(pcm) - 1; i >= 0; i-- {
		if v := int(pcm[i]); v >= quietLevel || v <= -quietLevel {
			return i + 1
		}
	}
	return -1
}

// markTurnEnds turns each frame's last sound (or -1) into the ends of turns: a frame with
// sound that turnQuiet quiet frames follow (around the loop) keeps its offset, every other
// frame gets -1.
func markTurnEnds(last []int) {
	n := len(last)
	sound := make([]bool, n)
	for i, off := range last {
		sound[i] = off >= 0
	}
	for i := range last {
		if !sound[i] {
			continue
		}
		for k := 1; k <= turnQuiet && k < n; k++ {
			if sound[(i+k)%n] {
				last[i] = -1
				break
			}
		}
	}
}
