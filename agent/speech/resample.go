package speech

import (
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
