package media

import "math"

// Tone is a sine generator for the tone destination and for tests: Fill continues the
// wave where the previous call left it, so consecutive frames join without a click.
type Tone struct {
	step  float64 // phase advance per sample, radians
	phase float64
	amp   float64
}

// NewTone returns a generator of freq Hz at rate samples per second with the given peak
// amplitude.
func NewTone(freq float64, rate int, amplitude int16) *Tone {
	if rate <= 0 {
		rate = Rate8k
	}
	return &Tone{step: 2 * math.Pi * freq / float64(rate), amp: float64(amplitude)}
}

// Fill writes the next len(samples) samples of the tone.
func (t *Tone) Fill(samples []int16) {
	for i := range samples {
		samples[i] = int16(math.Round(t.amp * math.Sin(t.phase)))
		t.phase += t.step
		if t.phase >= 2*math.Pi {
			// Keep the phase small so its float64 precision does not decay over a long call.
			t.phase -= 2 * math.Pi
		}
	}
}
