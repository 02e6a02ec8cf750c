// Package amd tells who answered an outbound call from the first seconds of its audio: a
// person (a short "hello?" and then silence, waiting for us), an answering machine (a long
// uninterrupted greeting, or the beep that invites a message) or neither in time. It is
// pure DSP over the call's decoded 20 ms PCM16 frames: an energy VAD with a tracked noise
// floor for the greeting's pattern, and a Goertzel bank over 900–2100 Hz for the beep. A
// Detector allocates only when it is made; each frame it is fed costs no allocation.
package amd

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Result is who answered.
type Result string

// The results of a detection.
const (
	Human   Result = "human"
	Machine Result = "machine"
	Unknown Result = "unknown"
)

// Why a decision was made (Decision.Reason).
const (
	ReasonShortGreeting = "short-greeting" // speech, then the silence of someone waiting for an answer
	ReasonLongGreeting  = "long-greeting"  // more uninterrupted speech than a person says before pausing
	ReasonBeep          = "beep"           // a steady 900–2100 Hz tone: the machine's invitation to speak
	ReasonTimeout       = "timeout"        // nothing told in time (silence, or speech too broken up to judge)
	ReasonTranscript    = "transcript"     // the greeting's words (see MachineWords)
)

// Config tunes a Detector; zero fields take the defaults, which follow the proven shape of
// Asterisk's AMD (silence after a greeting 0.8 s), with a longer greeting (2 s against its 1.5 s): people
// who answer with their name ("Hello, Sam speaking.") speak for up to 1.6 s.
type Config struct {
	// Rate is the sample rate of the frames: 8000, 16000, 24000 or 48000.
	Rate int
	// Timeout ends the detection as unknown; default 10 s.
	Timeout time.Duration
	// Greeting is how much speech makes a greeting a machine's; default 2 s.
	Greeting time.Duration
	// AfterGreeting is the silence after a shorter greeting that makes it a person's:
	// someone who said hello and waits; default 800 ms.
	AfterGreeting time.Duration
	// BeepMin is how long a steady tone lasts before it is a beep; default 240 ms (machines'
	// beeps last 0.3 to 1 s).
	BeepMin time.Duration
}

func (c *Config) defaults() error {
	switch c.Rate {
	case 8000, 16000, 24000, 48000:
	default:
		return fmt.Errorf("%w: %d Hz (want 8000, 16000, 24000 or 48000)", ErrRate, c.Rate)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Greeting <= 0 {
		c.Greeting = 2 * time.Second
	}
	if c.AfterGreeting <= 0 {
		c.AfterGreeting = 800 * time.Millisecond
	}
	if c.BeepMin <= 0 {
		c.BeepMin = 240 * time.Millisecond
	}
	return nil
}

// ErrRate is a sample rate the detector does not take.
var ErrRate = errors.New("amd: unsupported sample rate")

// ErrFrame is a frame that is not 20 ms at the detector's rate.
var ErrFrame = errors.New("amd: frame is not 20 ms at the detector's rate")

// Decision is what a Detector found.
type Decision struct {
	Result Result
	// Confidence is how sure the decision is, 0 to 1 (0 for unknown).
	Confidence float64
	// At is how much audio the decision took, from the first frame fed.
	At time.Duration
	// Reason says which signal decided (Reason… constants).
	Reason string
	// Speech is how much speech was heard by then.
	Speech time.Duration
	// Beep says a beep was heard by then.
	Beep bool
}

const (
	frameMS = 20
	// Beep bank: Goertzel bins every 25 Hz over 900–2100 Hz. A 20 ms frame resolves 50 Hz
	// whatever the rate, so a tone is never more than a quarter bin from one: it keeps at
	// least 81% of its power in that bin.
	beepLowHz  = 900
	beepHighHz = 2100
	beepStepHz = 25
	beepBins   = (beepHighHz-beepLowHz)/beepStepHz + 1
	// bankBins rounds the bank up to groups of four, run side by side (the filters are
	// independent, so the processor overlaps them); the bins past beepBins are not read.
	bankBins = (beepBins + 3) / 4 * 4
	// The bank runs at telephone rate, whatever the call's (narrowband).
	narrowRate    = 8000
	narrowSamples = narrowRate * frameMS / 1000
	// toneRatio is the share of a frame's power one bin must hold for the frame to be tone.
	// Speech spreads its power over harmonics and formants and never comes close.
	toneRatio = 0.55
	// minSpeechRMS is the floor of the speech threshold (about -42 dBFS): quieter frames
	// are silence whatever the noise floor says.
	minSpeechRMS = 250
	// noiseFactor puts the speech threshold this far above the tracked noise floor.
	noiseFactor = 3
	// noiseFrames is the window of the noise floor: half a second.
	noiseFrames = 25
	// hangover bridges dips in speech shorter than this (stops, short pauses between words)
	// so that they are not silence.
	hangoverFrames = 5
)

// Detector classifies one call's answer; it is fed the call's frames in order, from the
// answer on. It is not safe for concurrent use.
type Detector struct {
	cfg      Config
	n        int // samples per frame
	coeff    [bankBins]float32
	narrow   [narrowSamples]float32 // the frame at 8 kHz, for the bank
	decided  bool
	decision Decision

	frames      int
	noise       float64              // tracked noise floor (RMS)
	recent      [noiseFrames]float64 // the RMS of the last frames
	speechStart bool
	voiced      int // frames of speech (hangover included) since the first
	quiet       int // frames of silence in a row
	hang        int // hangover frames left

	frameBin   int // bin of the tone in the frame being fed; -1 for none
	toneBin    int // bin of the tone being heard; -1 for none
	toneFrames int // frames of that tone in a row
	toneMiss   int // frames in a row that broke it
	beep       bool
	beepEnded  bool
}

// New is a detector of cfg.
func New(cfg Config) (*Detector, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, n: cfg.Rate * frameMS / 1000, toneBin: -1, frameBin: -1, noise: minSpeechRMS / noiseFactor}
	for i := range d.recent {
		d.recent[i] = d.noise
	}
	for i := range d.coeff {
		f := float64(beepLowHz + i*beepStepHz)
		d.coeff[i] = float32(2 * math.Cos(2*math.Pi*f/narrowRate))
	}
	return d, nil
}

// Feed takes the next 20 ms frame. It returns the decision on the frame that makes it,
// with true; before and after, false. A Detector goes on listening after its decision:
// BeepEnded and Quiet say when a machine's greeting is over.
func (d *Detector) Feed(pcm []int16) (Decision, bool, error) {
	if len(pcm) != d.n {
		return Decision{}, false, ErrFrame
	}
	d.frames++
	var sum float64
	for _, s := range pcm {
		v := float64(s)
		sum += v * v
	}
	rms := math.Sqrt(sum / float64(d.n))
	loud := rms > d.threshold()
	tone := false
	if loud {
		energy := d.narrowband(pcm)
		tone = d.tonal() && d.tone(energy)
	}
	d.trackTone(tone)
	if tone {
		rms = d.noise // a beep, however long, is not the line's noise
	}
	d.trackNoise(rms)

	if loud {
		d.hang = hangoverFrames
	}
	voiced := loud || d.hang > 0
	if !loud && d.hang > 0 {
		d.hang--
	}
	if voiced {
		d.speechStart = true
		d.voiced++
		d.quiet = 0
	} else {
		d.quiet++
	}
	if d.decided {
		return Decision{}, false, nil
	}
	return d.decide()
}

// decide makes the decision when the audio so far tells it.
func (d *Detector) decide() (Decision, bool, error) {
	at := time.Duration(d.frames) * frameMS * time.Millisecond
	speech := time.Duration(d.voiced) * frameMS * time.Millisecond
	dec := Decision{At: at, Speech: speech, Beep: d.beep}
	switch {
	case d.beep:
		dec.Result, dec.Reason, dec.Confidence = Machine, ReasonBeep, 0.95
	case speech >= d.cfg.Greeting:
		dec.Result, dec.Reason = Machine, ReasonLongGreeting
		// Speech that went on without any pause is a recording's more surely than speech
		// broken by pauses, which a person's "hello … hello?" is too.
		dec.Confidence = 0.6 + 0.3*float64(speech)/float64(at)
	case d.speechStart && d.quietFor() >= d.cfg.AfterGreeting:
		dec.Result, dec.Reason = Human, ReasonShortGreeting
		// The shorter the greeting, the surer: "hello?" rather than a sentence cut short.
		dec.Confidence = 0.9 - 0.4*float64(speech)/float64(d.cfg.Greeting)
	case at >= d.cfg.Timeout:
		dec.Result, dec.Reason = Unknown, ReasonTimeout
	default:
		return Decision{}, false, nil
	}
	dec.Confidence = math.Round(dec.Confidence*100) / 100
	d.decided, d.decision = true, dec
	return dec, true, nil
}

// threshold is the RMS above which a frame is speech (or tone).
func (d *Detector) threshold() float64 {
	return math.Max(minSpeechRMS, d.noise*noiseFactor)
}

// trackNoise follows the line's noise floor: the quietest frame of the last noiseFrames,
// which speech, always broken by quieter frames between its syllables, never holds up, and
// a steady hiss does. It starts at the threshold's floor, so that speech from the first
// frame is speech.
func (d *Detector) trackNoise(rms float64) {
	d.recent[d.frames%noiseFrames] = rms
	d.noise = d.recent[0]
	for _, v := range d.recent[1:] {
		d.noise = min(d.noise, v)
	}
}

// narrowband puts the frame at telephone rate into d.narrow, where the beep is looked for
// whatever the call's rate: a wider frame's groups of samples are averaged, a low-pass
// that keeps 900–2100 Hz (within 4 dB at 16 kHz) and costs the bank nothing more at 16 or
// 48 kHz than at 8. It returns the narrowed frame's energy.
func (d *Detector) narrowband(pcm []int16) float64 {
	k := len(pcm) / narrowSamples
	var energy float64
	for i := range d.narrow {
		var v int32
		for _, s := range pcm[i*k : (i+1)*k] {
			v += int32(s)
		}
		x := float32(v) / float32(k)
		d.narrow[i] = x
		energy += float64(x) * float64(x)
	}
	return energy
}

// tonal is the bank's cheap gate: a tone of 900–2100 Hz crosses zero 36 to 84 times in
// 20 ms, and voiced speech (its power low, at the pitch and first formant) far fewer, so
// most speech frames never reach the bank.
func (d *Detector) tonal() bool {
	crossings := 0
	for i := 1; i < len(d.narrow); i++ {
		if (d.narrow[i-1] < 0) != (d.narrow[i] < 0) {
			crossings++
		}
	}
	ms := frameMS
	lo, hi := 2*beepLowHz*ms/1000, 2*beepHighHz*ms/1000
	return crossings >= lo-6 && crossings <= hi+6
}

// tone reports whether the frame's power is nearly all at one frequency of the bank,
// keeping that bin.
func (d *Detector) tone(energy float64) bool {
	best, bestBin := float32(0), -1
	for b := 0; b < bankBins; b += 4 {
		c0, c1, c2, c3 := d.coeff[b], d.coeff[b+1], d.coeff[b+2], d.coeff[b+3]
		var a1, a2, b1, b2, e1, e2, f1, f2 float32
		for _, x := range d.narrow {
			a1, a2 = x+c0*a1-a2, a1
			b1, b2 = x+c1*b1-b2, b1
			e1, e2 = x+c2*e1-e2, e1
			f1, f2 = x+c3*f1-f2, f1
		}
		for i, p := range [4]float32{a1*a1 + a2*a2 - c0*a1*a2, b1*b1 + b2*b2 - c1*b1*b2, e1*e1 + e2*e2 - c2*e1*e2, f1*f1 + f2*f2 - c3*f1*f2} {
			if p > best && b+i < beepBins {
				best, bestBin = p, b+i
			}
		}
	}
	// A pure tone on a bin has |X|² = (A·N/2)² and energy A²·N/2: the ratio below is 1.
	ratio := 2 * float64(best) / (narrowSamples * energy)
	if ratio < toneRatio {
		return false
	}
	d.frameBin = bestBin
	return true
}

// trackTone follows a steady tone across frames: the same frequency (within 50 Hz) for
// BeepMin is a beep; a beep is over once two frames in a row lack it. One odd frame (a
// lost packet) does not break a tone.
func (d *Detector) trackTone(tone bool) {
	bin := d.frameBin
	d.frameBin = -1
	if tone && d.toneBin >= 0 && absInt(bin-d.toneBin) <= 2 {
		d.toneFrames++
		d.toneMiss = 0
		d.toneBin = bin
	} else if tone {
		d.toneBin, d.toneFrames, d.toneMiss = bin, 1, 0
	} else if d.toneBin >= 0 {
		d.toneMiss++
		if d.toneMiss >= 2 {
			if d.beep {
				d.beepEnded = true
			}
			d.toneBin, d.toneFrames = -1, 0
		}
	}
	if !d.beep && d.toneFrames*frameMS >= int(d.cfg.BeepMin/time.Millisecond) {
		d.beep = true
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// Decided returns the decision once it is made.
func (d *Detector) Decided() (Decision, bool) { return d.decision, d.decided }

// Beep reports whether a beep was heard.
func (d *Detector) Beep() bool { return d.beep }

// BeepEnded reports whether a beep was heard and is over: a message said now is recorded.
func (d *Detector) BeepEnded() bool { return d.beepEnded }

// Quiet is how long the line has been silent, up to the last frame fed.
func (d *Detector) Quiet() time.Duration { return d.quietFor() }

func (d *Detector) quietFor() time.Duration {
	return time.Duration(d.quiet) * frameMS * time.Millisecond
}

// Elapsed is how much audio was fed.
func (d *Detector) Elapsed() time.Duration {
	return time.Duration(d.frames) * frameMS * time.Millisecond
}
