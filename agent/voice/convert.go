package voice

import "github.com/switchboard-go/switchboard/media"

// rateConverter turns a synthesiser's audio into the stream's rate (media's resampler takes
// any provider's rate, espeak-ng's 22,050 Hz included).
type rateConverter interface {
	OutLen(n int) int
	Resample(dst, src []int16) (int, error)
}

func newRateConverter(from, to int) (rateConverter, error) {
	return media.NewResampler(from, to)
}
