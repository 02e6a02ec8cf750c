package voice

import "github.com/switchboard-go/switchboard/media"

// rateConverter turns a synthesiser's audio into the stream's rate. media.Resampler does
// the rates of the media path; a provider at another rate (22,050 Hz) gets linear
// interpolation, which is plenty for speech going to a telephone.
type rateConverter interface {
	OutLen(n int) int
	Resample(dst, src []int16) (int, error)
}

func newRateConverter(from, to int) rateConverter {
	if r, err := media.NewResampler(from, to); err == nil {
		return r
	}
	return &linearResampler{step: float64(from) / float64(to)}
}

// linearResampler interpolates between neighbouring samples; it carries the last input
// sample and the fractional position across calls.
type linearResampler struct {
	step float64
	pos  float64 // position of the next output, in input samples relative to the call's first
	last int16   // the sample before the call's first
	have bool
}

func (l *linearResampler) OutLen(n int) int {
	if n == 0 {
		return 0
	}
	return int(float64(n)/l.step) + 2
}

func (l *linearResampler) Resample(dst, src []int16) (int, error) {
	if len(src) == 0 {
		return 0, nil
	}
	if !l.have {
		l.last, l.have, l.pos = src[0], true, 0
	}
	n := 0
	// Position -1 is l.last; 0..len(src)-1 are src.
	for l.pos < float64(len(src)-1) && n < len(dst) {
		i := int(l.pos + 1) // floor for pos >= -1
		frac := l.pos + 1 - float64(i)
		var a, b float64
		if i == 0 {
			a, b = float64(l.last), float64(src[0])
		} else {
			a, b = float64(src[i-1]), float64(src[i])
		}
		dst[n] = int16(a + (b-a)*frac)
		n++
		l.pos += l.step
	}
	l.pos -= float64(len(src))
	l.last = src[len(src)-1]
	return n, nil
}
