package voice

import "math"

// The voice activity detector works on 20 ms frames of 16 kHz audio. Each frame is
// band-passed to the telephone speech band (200–3600 Hz: hum, DC and anything an 8 kHz line
// cannot carry are gone), and its energy compared with a tracked noise floor:
//
//   - Onset: two consecutive frames at least vadOnsetDB above the floor, or three at least
//     vadWeakDB above it (a slow glide into a word), one of them voiced (a low zero-crossing
//     rate, which white-ish line and comfort noise never have), start speech; the onset is
//     dated to the first of them, so it is declared 40–60 ms after the energy rose.
//   - Hysteresis: once speaking, a frame counts as speech while it stays vadHoldDB above the
//     floor; after a short gap a single loud frame resumes speech.
//   - The floor falls fast to quieter frames, rises slowly outside speech, and never stays
//     below the quietest frame of the last two seconds, so a line that gets noisier is
//     learnt within two seconds even while the noise is mistaken for speech.
//
// All state lives in the struct; Process allocates nothing.

const (
	vadRate        = 16000
	vadFrame       = vadRate / 50
	vadOnsetDB     = 8.0
	vadWeakDB      = 5.0
	vadHoldDB      = 6.0
	vadMinDB       = -65.0 // the floor never goes lower: digital silence is not a noise floor
	vadSilenceDB   = -100.0
	vadVoicedZCR   = 0.2 // zero crossings per sample: voiced speech ~0.05–0.15, white noise ~0.27 in band
	vadFallRate    = 0.3
	vadRiseRate    = 0.03
	vadWindow      = 100 // frames of the floor's minimum window (2 s)
	vadResumeAfter = 15  // frames of silence within which one loud frame resumes speech
)

// vadFrameResult is the detector's verdict on one frame.
type vadFrameResult struct {
	// Speech says the frame is part of speech.
	Speech bool
	// Start says speech began; it began OnsetFrames frames ago (this one included), so the
	// caller can date it and take the frames before it from its pre-roll.
	Start       bool
	OnsetFrames int
	// Level is the frame's in-band energy in dBFS; Floor the noise floor.
	Level, Floor float64
}

type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

// newBiquad returns an RBJ cookbook high-pass (high) or low-pass filter at f0 Hz with Q 0.707.
func newBiquad(high bool, f0, fs float64) biquad {
	w := 2 * math.Pi * f0 / fs
	alpha := math.Sin(w) / (2 * 0.7071)
	cw := math.Cos(w)
	var b0, b1, b2 float64
	if high {
		b0, b1, b2 = (1+cw)/2, -(1 + cw), (1+cw)/2
	} else {
		b0, b1, b2 = (1-cw)/2, 1-cw, (1-cw)/2
	}
	a0 := 1 + alpha
	return biquad{b0: b0 / a0, b1: b1 / a0, b2: b2 / a0, a1: -2 * cw / a0, a2: (1 - alpha) / a0}
}

func (q *biquad) step(x float64) float64 {
	y := q.b0*x + q.b1*q.x1 + q.b2*q.x2 - q.a1*q.y1 - q.a2*q.y2
	// After speech, digital silence (what many phones and trunks send between words) lets
	// the state decay into subnormal floats, on which the CPU is twenty times slower: a
	// silent frame cost 179 µs instead of 8. Far below one sample's step, they are zero.
	if y < 1e-20 && y > -1e-20 {
		y = 0
	}
	q.x2, q.x1 = q.x1, x
	q.y2, q.y1 = q.y1, y
	return y
}

type vad struct {
	hp, lp   biquad
	floor    float64
	started  bool
	speaking bool
	// cand and weak count consecutive frames above the onset and weak thresholds while not
	// speaking; voiced and weakVoiced say one of them was voiced.
	cand, weak         int
	voiced, weakVoiced bool
	gap                int // frames since the last speech frame
	// win holds the levels of the last vadWindow frames, for the floor's minimum.
	win  [vadWindow]float64
	wpos int
	wn   int
}

func newVAD() *vad {
	v := &vad{}
	v.reset()
	return v
}

func (v *vad) reset() {
	*v = vad{
		hp:  newBiquad(true, 200, vadRate),
		lp:  newBiquad(false, 3600, vadRate),
		gap: vadResumeAfter + 1,
	}
}

// Process classifies one frame of 16 kHz samples (any length; 320 is a frame).
func (v *vad) Process(samples []int16) vadFrameResult {
	var sum float64
	crossings := 0
	prev := 0.0
	for i, s := range samples {
		y := v.lp.step(v.hp.step(float64(s)))
		sum += y * y
		if i > 0 && (y >= 0) != (prev >= 0) {
			crossings++
		}
		prev = y
	}
	level := vadSilenceDB
	if n := len(samples); n > 0 && sum > 0 {
		level = max(10*math.Log10(sum/float64(n)/(32768.0*32768.0)), vadSilenceDB)
	}
	zcr := 1.0
	if len(samples) > 1 {
		zcr = float64(crossings) / float64(len(samples)-1)
	}
	isVoiced := zcr < vadVoicedZCR

	if !v.started {
		v.started = true
		v.floor = max(level, vadMinDB)
	}
	v.win[v.wpos] = level
	v.wpos = (v.wpos + 1) % vadWindow
	if v.wn < vadWindow {
		v.wn++
	}

	res := vadFrameResult{Level: level, Floor: v.floor}
	above := func(db float64) bool { return level > v.floor+db && level > vadMinDB+db }
	switch {
	case v.speaking && above(vadHoldDB):
		res.Speech = true
	case v.speaking:
		v.speaking = false
	case v.gap <= vadResumeAfter && above(vadOnsetDB) && isVoiced:
		// A loud voiced frame right after speech: the same utterance goes on.
		v.speaking, res.Speech = true, true
	case above(vadWeakDB):
		v.weak++
		v.weakVoiced = v.weakVoiced || isVoiced
		if above(vadOnsetDB) {
			v.cand++
			v.voiced = v.voiced || isVoiced
		} else {
			v.cand, v.voiced = 0, false
		}
		switch {
		case v.cand >= 2 && v.voiced:
			v.speaking, res.Speech, res.Start, res.OnsetFrames = true, true, true, v.weak
		case v.weak >= 3 && v.weakVoiced:
			v.speaking, res.Speech, res.Start, res.OnsetFrames = true, true, true, v.weak
		}
	default:
		v.cand, v.voiced, v.weak, v.weakVoiced = 0, false, 0, false
	}
	if res.Speech {
		v.gap = 0
		v.cand, v.voiced, v.weak, v.weakVoiced = 0, false, 0, false
	} else if v.gap <= vadResumeAfter {
		v.gap++
	}

	// The floor: fast down, slowly up outside speech, and at least the window's minimum.
	switch {
	case level < v.floor:
		v.floor += (level - v.floor) * vadFallRate
	case !res.Speech:
		v.floor += (level - v.floor) * vadRiseRate
	}
	if v.wn == vadWindow {
		lo := v.win[0]
		for _, l := range v.win[1:] {
			lo = min(lo, l)
		}
		v.floor = max(v.floor, lo)
	}
	v.floor = max(v.floor, vadMinDB)
	return res
}
