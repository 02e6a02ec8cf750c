package media

import (
	"math"
	"testing"
)

// Audio is judged by what it sounds like: the frequency of a tone, and how far the signal
// is from the best-fitting ideal tone. Fitting the amplitude and phase of the tone absorbs
// a stage's delay, so no sample alignment is guessed.

// testTone returns n samples of a sine of freq Hz at rate, with amplitude amp, starting at
// sample offset start (so consecutive frames continue the same tone).
func testTone(freq float64, rate, n, start int, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(start+i)/float64(rate))))
	}
	return out
}

// fitToneSNR fits a*sin + b*cos + c at freq to y by least squares and returns the power of
// the fitted tone over the power of what is left, in dB, and the fitted amplitude.
func fitToneSNR(t testing.TB, y []int16, freq float64, rate int) (snrDB, amp float64) {
	t.Helper()
	w := 2 * math.Pi * freq / float64(rate)
	// Normal equations of the three basis functions.
	var m [3][4]float64
	for i, v := range y {
		b := [3]float64{math.Sin(w * float64(i)), math.Cos(w * float64(i)), 1}
		for r := range 3 {
			for c := range 3 {
				m[r][c] += b[r] * b[c]
			}
			m[r][3] += b[r] * float64(v)
		}
	}
	x := solve3(m)
	var sig, noise float64
	for i, v := range y {
		f := x[0]*math.Sin(w*float64(i)) + x[1]*math.Cos(w*float64(i))
		sig += f * f
		e := float64(v) - f - x[2]
		noise += e * e
	}
	if noise == 0 {
		return math.Inf(1), math.Hypot(x[0], x[1])
	}
	return 10 * math.Log10(sig/noise), math.Hypot(x[0], x[1])
}

func solve3(m [3][4]float64) [3]float64 {
	for c := range 3 {
		p := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		for r := range 3 {
			if r == c || m[c][c] == 0 {
				continue
			}
			k := m[r][c] / m[c][c]
			for j := c; j < 4; j++ {
				m[r][j] -= k * m[c][j]
			}
		}
	}
	var x [3]float64
	for i := range 3 {
		if m[i][i] != 0 {
			x[i] = m[i][3] / m[i][i]
		}
	}
	return x
}

// zeroCrossFreq estimates the frequency of a tone from its upward zero crossings,
// interpolating where each falls between samples.
func zeroCrossFreq(y []int16, rate int) float64 {
	first, last, count := -1.0, -1.0, 0
	for i := 1; i < len(y); i++ {
		a, b := float64(y[i-1]), float64(y[i])
		if a < 0 && b >= 0 {
			at := float64(i-1) + a/(a-b)
			if first < 0 {
				first = at
			} else {
				count++
			}
			last = at
		}
	}
	if count == 0 {
		return 0
	}
	return float64(count) * float64(rate) / (last - first)
}

func rms(y []int16) float64 {
	var s float64
	for _, v := range y {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(len(y), 1)))
}
