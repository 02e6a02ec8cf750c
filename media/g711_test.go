package media

import (
	"math"
	"testing"
)

func TestG711KnownValues(t *testing.T) {
	t.Parallel()
	// Values of the ITU-T G.711 tables (and Sun's reference g711.c).
	cases := []struct {
		name   string
		decode func([]int16, []byte) int
		code   byte
		want   int16
	}{
		{"pcmu 0xFF", DecodePCMU, 0xFF, 0},
		{"pcmu 0x7F", DecodePCMU, 0x7F, 0},
		{"pcmu 0x00", DecodePCMU, 0x00, -32124},
		{"pcmu 0x80", DecodePCMU, 0x80, 32124},
		{"pcma 0xD5", DecodePCMA, 0xD5, 8},
		{"pcma 0x55", DecodePCMA, 0x55, -8},
		{"pcma 0xAA", DecodePCMA, 0xAA, 32256},
		{"pcma 0x2A", DecodePCMA, 0x2A, -32256},
	}
	for _, c := range cases {
		var out [1]int16
		c.decode(out[:], []byte{c.code})
		if out[0] != c.want {
			t.Errorf("%s: decoded %d, want %d", c.name, out[0], c.want)
		}
	}
	var b [3]byte
	EncodePCMU(b[:], []int16{0, math.MaxInt16, math.MinInt16})
	if b != [3]byte{0xFF, 0x80, 0x00} {
		t.Errorf("PCMU of 0, max, min = % x, want ff 80 00", b)
	}
	EncodePCMA(b[:], []int16{0, math.MaxInt16, math.MinInt16})
	if b != [3]byte{0xD5, 0xAA, 0x2A} {
		t.Errorf("PCMA of 0, max, min = % x, want d5 aa 2a", b)
	}
}

func TestG711EveryCodeRoundTrips(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU{}, PCMA{}} {
		for i := range 256 {
			code := byte(i)
			if c.Name() == "PCMU" && code == 0x7F {
				// μ-law has a negative zero; zero encodes as the positive one, 0xFF.
				continue
			}
			var s [1]int16
			var back [1]byte
			c.Decode(s[:], []byte{code})
			c.Encode(back[:], s[:])
			if back[0] != code {
				t.Errorf("%s: 0x%02x decodes to %d which encodes to 0x%02x", c.Name(), code, s[0], back[0])
			}
		}
	}
}

// TestG711QuantisationError checks every 16-bit input against the law's step size: the
// decoded value is within half a step of the input (a full step at the clipped extremes).
func TestG711QuantisationError(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU{}, PCMA{}} {
		var worst float64
		for v := math.MinInt16; v <= math.MaxInt16; v++ {
			var b [1]byte
			var s [1]int16
			c.Encode(b[:], []int16{int16(v)})
			c.Decode(s[:], b[:])
			err := math.Abs(float64(int(s[0]) - v))
			// Both laws are logarithmic: the step is at most ~1/16 of the magnitude
			// (μ-law: 2^(seg+3); A-law: 2^(seg+4)), and 16 or 32 near zero.
			limit := max(math.Abs(float64(v))/16, 32)
			if err > limit {
				t.Fatalf("%s: %d decodes to %d, error %.0f > %.0f", c.Name(), v, s[0], err, limit)
			}
			if math.Abs(float64(v)) >= 256 {
				worst = max(worst, err/math.Abs(float64(v)))
			}
		}
		t.Logf("%s: worst relative error above 256: %.4f", c.Name(), worst)
	}
}

func TestG711SineSNR(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU{}, PCMA{}} {
		for _, amp := range []float64{30000, 8000, 1000} {
			// 1013 Hz is not a submultiple of 8 kHz, so the error is spread like noise
			// rather than folded onto a few harmonics.
			in := testTone(1013, Rate8k, 8000, 0, amp)
			enc := make([]byte, len(in))
			out := make([]int16, len(in))
			c.Decode(out, enc[:c.Encode(enc, in)])
			snr, got := fitToneSNR(t, out, 1013, Rate8k)
			t.Logf("%s amplitude %.0f: SNR %.1f dB", c.Name(), amp, snr)
			if snr < 30 {
				t.Errorf("%s amplitude %.0f: SNR %.1f dB, want > 30", c.Name(), amp, snr)
			}
			if math.Abs(got-amp)/amp > 0.02 {
				t.Errorf("%s: amplitude %.0f came back as %.0f", c.Name(), amp, got)
			}
		}
	}
}

func TestG711ShortDestination(t *testing.T) {
	t.Parallel()
	src := make([]int16, 160)
	if n := EncodePCMA(make([]byte, 10), src); n != 10 {
		t.Errorf("EncodePCMA into 10 bytes wrote %d", n)
	}
	if n := DecodePCMU(make([]int16, 160), make([]byte, 20)); n != 20 {
		t.Errorf("DecodePCMU of 20 bytes wrote %d", n)
	}
}

func TestG711NoAllocs(t *testing.T) {
	src := testTone(1000, Rate8k, 160, 0, 10000)
	enc := make([]byte, 160)
	dec := make([]int16, 160)
	var c Codec = PCMU{}
	allocs := testing.AllocsPerRun(100, func() {
		EncodePCMU(enc, src)
		DecodePCMU(dec, enc)
		EncodePCMA(enc, src)
		DecodePCMA(dec, enc)
		c.Decode(dec, enc[:c.Encode(enc, src)])
	})
	if allocs != 0 {
		t.Errorf("G.711 frame: %.1f allocations, want 0", allocs)
	}
}

func BenchmarkEncodePCMU(b *testing.B) { benchG711Encode(b, EncodePCMU) }
func BenchmarkDecodePCMU(b *testing.B) { benchG711Decode(b, EncodePCMU, DecodePCMU) }
func BenchmarkEncodePCMA(b *testing.B) { benchG711Encode(b, EncodePCMA) }
func BenchmarkDecodePCMA(b *testing.B) { benchG711Decode(b, EncodePCMA, DecodePCMA) }

func benchG711Encode(b *testing.B, enc func([]byte, []int16) int) {
	src := testTone(1000, Rate8k, SamplesPerFrame(Rate8k), 0, 10000)
	dst := make([]byte, len(src))
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(src)))
	for b.Loop() {
		enc(dst, src)
	}
}

func benchG711Decode(b *testing.B, enc func([]byte, []int16) int, dec func([]int16, []byte) int) {
	src := testTone(1000, Rate8k, SamplesPerFrame(Rate8k), 0, 10000)
	payload := make([]byte, len(src))
	enc(payload, src)
	dst := make([]int16, len(src))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		dec(dst, payload)
	}
}
