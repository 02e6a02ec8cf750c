package speech

import (
	"fmt"
	"math"

	"github.com/switchboard-go/switchboard/media"
)

// Resample converts a whole clip of mono PCM16 from one rate to another (espeak-ng speaks
// at 22,050 Hz) with media's resampler. The output is aligned with the input: the filter's
// delay is removed and its tail flushed.
func Resample(pcm []int16, from, to int) ([]int16, error) {
	r, err := media.NewResampler(from, to)
	if err != nil {
		return nil, err
	}
	if from == to {
		return append([]int16(nil), pcm...), nil
	}
	want := int(int64(len(pcm)) * int64(to) / int64(from))
	out := make([]int16, r.OutLen(len(pcm))+r.FlushLen())
	n, err := r.Resample(out, pcm)
	if err != nil {
		return nil, err
	}
	m, err := r.Flush(out[n:])
	if err != nil {
		return nil, err
	}
	out = out[:n+m]
	out = out[min(int(r.Delay()+0.5), len(out)):]
	return out[:min(want, len(out))], nil
}

// streamResampler converts a synthesiser's chunks as they come, and its tail at the end.
type streamResampler struct {
	r   *media.Resampler
	out []int16
}

func newStreamResampler(from, to int) (*streamResampler, error) {
	r, err := media.NewResampler(from, to)
	if err != nil {
		return nil, err
	}
	return &streamResampler{r: r}, nil
}

// push converts src; the result is valid until the next call.
func (s *streamResampler) push(src []int16) []int16 {
	need := s.r.OutLen(len(src))
	if cap(s.out) < need {
		s.out = make([]int16, need)
	}
	n, _ := s.r.Resample(s.out[:need], src)
	return s.out[:n]
}

// flush returns the filter's tail; the result is valid until the next call.
func (s *streamResampler) flush() []int16 {
	need := s.r.FlushLen()
	if cap(s.out) < need {
		s.out = make([]int16, need)
	}
	n, _ := s.r.Flush(s.out[:need])
	return s.out[:n]
}

// linearResampler brings the caller's audio to the provider's rate (16 to 24 kHz for
// OpenAI) by linear interpolation. The audio was band-limited on its way in (the line's
// 8 kHz, or the ear's 16 kHz filter), so going up needs no filter worth its cost for a
// transcriber: media's polyphase resampler, made for what a caller hears, spends 40 to
// 50 µs a frame here, three times the whole ear; this spends about one.
type linearResampler struct {
	// step is the input samples per output sample; pos the position of the next output
	// in the next input, from -1 (between the last sample of the previous input, prev,
	// and the first of the next).
	step float64
	pos  float64
	prev int16
}

func newLinearResampler(from, to int) (*linearResampler, error) {
	if from <= 0 || to <= 0 {
		return nil, fmt.Errorf("speech: cannot resample %d Hz to %d Hz", from, to)
	}
	return &linearResampler{step: float64(from) / float64(to)}, nil
}

// resample appends src, resampled, to dst.
func (r *linearResampler) resample(dst, src []int16) []int16 {
	n := len(src)
	if n == 0 {
		return dst
	}
	at := func(i int) float64 {
		if i < 0 {
			return float64(r.prev)
		}
		return float64(src[min(i, n-1)])
	}
	p := r.pos
	for ; p <= float64(n-1); p += r.step {
		i := int(math.Floor(p))
		a, b := at(i), at(i+1)
		dst = append(dst, int16(a+(b-a)*(p-float64(i))))
	}
	r.pos, r.prev = p-float64(n), src[n-1]
	return dst
}
