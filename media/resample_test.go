package media

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// resampleFrames runs frames 20 ms frames of a tone at freq through the chain of rates and
// returns the output at the last rate.
func resampleFrames(t testing.TB, freq float64, frames int, amp float64, rates ...int) []int16 {
	chain := make([]*Resampler, len(rates)-1)
	for i := range chain {
		r, err := NewResampler(rates[i], rates[i+1])
		if err != nil {
			t.Fatal(err)
		}
		chain[i] = r
	}
	last := rates[len(rates)-1]
	out := make([]int16, 0, frames*SamplesPerFrame(last))
	bufs := make([][]int16, len(rates))
	for i, r := range rates {
		bufs[i] = make([]int16, SamplesPerFrame(r))
	}
	for f := range frames {
		n := SamplesPerFrame(rates[0])
		copy(bufs[0], testTone(freq, rates[0], n, f*n, amp))
		for i, r := range chain {
			got, err := r.Resample(bufs[i+1], bufs[i])
			if err != nil {
				t.Fatal(err)
			}
			if got != len(bufs[i+1]) {
				t.Fatalf("%d→%d: %d samples from a frame, want %d", r.InRate(), r.OutRate(), got, len(bufs[i+1]))
			}
		}
		out = append(out, bufs[len(bufs)-1]...)
	}
	return out
}

func TestResampleToneSNR(t *testing.T) {
	t.Parallel()
	chains := [][]int{
		{8000, 48000, 8000}, // the test
		{16000, 48000, 16000},
		{8000, 16000, 8000},
		{8000, 16000}, {16000, 8000},
		{8000, 48000}, {48000, 8000},
		{16000, 48000}, {48000, 16000},
		{16000, 24000}, {24000, 16000},
		{8000, 24000}, {24000, 48000}, {48000, 24000},
		{8000, 24000, 48000, 16000, 8000},
		{22050, 16000}, {22050, 8000}, {22050, 24000}, {22050, 48000}, // espeak-ng's rate
	}
	for _, rates := range chains {
		t.Run(fmt.Sprint(rates), func(t *testing.T) {
			t.Parallel()
			const amp = 10000
			// 1013 Hz so the tone is not periodic in a few samples at any rate.
			for _, freq := range []float64{1013, 3000} {
				out := resampleFrames(t, freq, 50, amp, rates...)
				last := rates[len(rates)-1]
				// Skip 100 ms: the filters' warm-up from silence.
				steady := out[SamplesPerFrame(last)*5:]
				snr, got := fitToneSNR(t, steady, freq, last)
				t.Logf("%.0f Hz: SNR %.1f dB, gain %.3f dB", freq, snr, 20*math.Log10(got/amp))
				if snr < 40 {
					t.Errorf("%.0f Hz: SNR %.1f dB, want > 40", freq, snr)
				}
				if math.Abs(20*math.Log10(got/amp)) > 0.1 {
					t.Errorf("%.0f Hz: gain %.3f dB, want within 0.1 dB", freq, 20*math.Log10(got/amp))
				}
			}
		})
	}
}

// TestResampleAntiAliasing sends a tone above the output's Nyquist frequency, which must not
// fold back into the band.
func TestResampleAntiAliasing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, out int
		freq    float64
	}{
		{16000, 8000, 5000},
		{16000, 8000, 7000},
		{48000, 8000, 5000},
		{48000, 8000, 12000},
		{48000, 16000, 9000},
		{24000, 16000, 10000},
	}
	for _, c := range cases {
		const amp = 10000
		out := resampleFrames(t, c.freq, 25, amp, c.in, c.out)
		steady := out[SamplesPerFrame(c.out)*5:]
		atten := 20 * math.Log10(rms(steady)/(amp/math.Sqrt2))
		t.Logf("%d→%d, %.0f Hz: %.1f dB", c.in, c.out, c.freq, atten)
		if atten > -40 {
			t.Errorf("%d→%d, %.0f Hz: attenuated only %.1f dB, want > 40", c.in, c.out, c.freq, -atten)
		}
	}
}

// TestResampleChunking checks that the phase and history carry across calls: odd-sized
// pieces give the same output as whole frames.
func TestResampleChunking(t *testing.T) {
	t.Parallel()
	for _, p := range [][2]int{{8000, 48000}, {48000, 8000}, {16000, 24000}, {24000, 16000}} {
		in := testTone(1013, p[0], SamplesPerFrame(p[0])*10, 0, 10000)
		whole, _ := NewResampler(p[0], p[1])
		pieces, _ := NewResampler(p[0], p[1])
		want := make([]int16, whole.OutLen(len(in)))
		n, err := whole.Resample(want, in)
		if err != nil || n != len(want) {
			t.Fatalf("%v: %d, %v", p, n, err)
		}
		got := make([]int16, 0, len(want))
		buf := make([]int16, 1000)
		for rest := in; len(rest) > 0; {
			c := min(len(rest), 7)
			n, err := pieces.Resample(buf, rest[:c])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
			rest = rest[c:]
		}
		if len(got) != len(want) {
			t.Fatalf("%v: %d samples in pieces, %d whole", p, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: sample %d differs: %d in pieces, %d whole", p, i, got[i], want[i])
			}
		}
	}
}

// Flush brings out the tail of a clip: the whole tone, delayed by Delay(), then the filter's
// decay to silence.
func TestResampleFlush(t *testing.T) {
	t.Parallel()
	r, err := NewResampler(22050, 16000)
	if err != nil {
		t.Fatal(err)
	}
	in := testTone(1013, 22050, 22050/10, 0, 8000) // 100 ms
	out := make([]int16, r.OutLen(len(in))+r.FlushLen())
	n, err := r.Resample(out, in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Flush(out[n:])
	if err != nil {
		t.Fatal(err)
	}
	want := 1600 + int(math.Ceil(r.Delay()))
	if n+m < want {
		t.Fatalf("%d samples with the flush, want at least %d (100 ms and the filter's delay)", n+m, want)
	}
	if tail := out[n+m-10 : n+m]; slicesMaxAbs(tail) > 50 {
		t.Errorf("the flushed tail ends at %v, want silence", tail)
	}
}

func slicesMaxAbs(xs []int16) int {
	m := 0
	for _, x := range xs {
		m = max(m, int(math.Abs(float64(x))))
	}
	return m
}

func TestResampleErrors(t *testing.T) {
	t.Parallel()
	for _, rates := range [][2]int{{8000, 44101}, {0, 8000}, {8000, -1}} {
		if _, err := NewResampler(rates[0], rates[1]); !errors.Is(err, ErrUnsupportedRate) {
			t.Errorf("%d to %d Hz: %v, want ErrUnsupportedRate", rates[0], rates[1], err)
		}
	}
	r, err := NewResampler(8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resample(make([]int16, 100), make([]int16, 160)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short dst: %v, want ErrShortBuffer", err)
	}
	same, _ := NewResampler(16000, 16000)
	src := testTone(1000, 16000, 320, 0, 1000)
	dst := make([]int16, 320)
	if n, err := same.Resample(dst, src); err != nil || n != 320 || dst[5] != src[5] {
		t.Errorf("16→16: %d, %v", n, err)
	}
}

func TestResampleNoAllocs(t *testing.T) {
	for _, p := range [][2]int{{8000, 16000}, {16000, 8000}, {8000, 48000}, {48000, 8000}, {24000, 16000}} {
		r, err := NewResampler(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		src := testTone(1000, p[0], SamplesPerFrame(p[0]), 0, 10000)
		dst := make([]int16, SamplesPerFrame(p[1]))
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := r.Resample(dst, src); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d→%d: %.1f allocations a frame, want 0", p[0], p[1], allocs)
		}
	}
}

func BenchmarkResample(b *testing.B) {
	for _, p := range [][2]int{{8000, 16000}, {16000, 8000}, {8000, 48000}, {48000, 8000}, {16000, 48000}, {48000, 16000}, {24000, 16000}} {
		b.Run(fmt.Sprintf("%dto%d", p[0]/1000, p[1]/1000), func(b *testing.B) {
			r, err := NewResampler(p[0], p[1])
			if err != nil {
				b.Fatal(err)
			}
			src := testTone(1000, p[0], SamplesPerFrame(p[0]), 0, 10000)
			dst := make([]int16, SamplesPerFrame(p[1]))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Resample(dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
