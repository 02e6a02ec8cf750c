package speech_test

import (
	"math"
	"testing"

	"github.com/switchboard-go/switchboard/agent/speech"
)

// A tone keeps its pitch, level and place through Resample, and one above the new
// Nyquist frequency is removed rather than folded back.
func TestResampleKeepsTone(t *testing.T) {
	t.Parallel()
	for _, to := range []int{8000, 16000, 24000, 48000} {
		in := tone(22050, 1000, 1)
		out, err := speech.Resample(in, 22050, to)
		if err != nil {
			t.Fatal(err)
		}
		if want := to; len(out) < want-2 || len(out) > want+2 {
			t.Errorf("%d Hz: %d samples for 1 s", to, len(out))
		}
		// Correlate with the expected tone, in the middle to avoid the edges.
		mid := out[len(out)/4 : 3*len(out)/4]
		var dot, norm float64
		for i, s := range mid {
			ref := 16000 * math.Sin(2*math.Pi*1000*float64(i+len(out)/4)/float64(to))
			dot += float64(s) * ref
			norm += ref * ref
		}
		if g := dot / norm; g < 0.97 || g > 1.03 {
			t.Errorf("%d Hz: gain against the aligned tone %.3f", to, g)
		}
	}
	// 6 kHz cannot exist at 8 kHz: it must come out near silent, not as a 2 kHz alias.
	out, _ := speech.Resample(tone(22050, 6000, 0.5), 22050, 8000)
	if st := describe(out, 8000); st.rms > 16000*0.01 {
		t.Errorf("6 kHz at 8 kHz has rms %.0f", st.rms)
	}
}
