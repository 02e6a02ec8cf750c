package media

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// Resampling is rational polyphase FIR: conceptually the input is upsampled by L (zeros
// between samples), low-pass filtered at the interpolated rate, and decimated by M; the
// polyphase form computes only the outputs that survive, so each output costs one dot product
// of taps/L coefficients against contiguous history. The prototype is a Kaiser-windowed sinc
// with its passband up to 0.43 of the lower rate and its stopband (80 dB) from that rate's
// Nyquist frequency, which keeps telephone speech (300–3400 Hz) flat at 8 kHz and stops
// aliasing when going down. Arithmetic is float32: its 24-bit mantissa is far below the
// 16-bit quantisation of the samples.

var (
	// ErrUnsupportedRate is a sample rate the resampler does not handle.
	ErrUnsupportedRate = errors.New("media: unsupported sample rate")
	// ErrShortBuffer is a destination too small for the samples a call would produce.
	ErrShortBuffer = errors.New("media: destination buffer too short")
)

const (
	resamplePassband  = 0.43 // of the lower rate
	resampleStopband  = 0.50 // of the lower rate
	resampleAttenDB   = 80.0
	resampleMaxChunkS = 0.020 // history buffer holds one 20 ms frame of input
)

// Resampler converts a mono PCM16 stream from one rate to another. It keeps the filter
// history between calls, so one Resampler serves one stream; it is not safe for concurrent
// use. All its memory is allocated by NewResampler.
type Resampler struct {
	in, out int
	l, m    int // up and down factors
	taps    int // coefficients per phase
	// coef holds taps coefficients for each of the l phases, reversed so that an output is
	// a forward dot product with buf; it is the shared filter's, never written.
	coef []float32
	// buf is taps-1 samples of history followed by up to chunk new samples.
	buf   []float32
	chunk int
	// next is the position, in the upsampled domain, of the next output relative to the
	// first new sample; it carries the phase across calls whose length is not a multiple
	// of M.
	next int
}

// supportedRate says whether r is a rate of the media path: streams run at 8, 16, 24 or 48 kHz.
func supportedRate(r int) bool {
	switch r {
	case Rate8k, Rate16k, Rate24k, Rate48k:
		return true
	}
	return false
}

// maxUpsampling bounds the up factor L of a pair of rates: finer ratios would make the
// filter's tables too large to be worth it (44,100 to 48,000 Hz is L = 160).
const maxUpsampling = 1000

// filter is the polyphase filter of one pair of rates. It is read-only once made and
// shared by every stream of that pair.
type filter struct {
	l, m, taps int
	coef       []float32
}

var (
	filtersMu sync.Mutex
	filters   = map[[2]int]*filter{}
)

// filterFor designs (once) the filter from inRate to outRate.
func filterFor(inRate, outRate int) (*filter, error) {
	if inRate <= 0 || outRate <= 0 || inRate > maxRate || outRate > maxRate {
		return nil, fmt.Errorf("%w: %d to %d Hz", ErrUnsupportedRate, inRate, outRate)
	}
	g := gcd(inRate, outRate)
	f := &filter{l: outRate / g, m: inRate / g}
	if f.l > maxUpsampling {
		return nil, fmt.Errorf("%w: %d to %d Hz needs an up factor of %d", ErrUnsupportedRate, inRate, outRate, f.l)
	}
	if inRate == outRate {
		return f, nil
	}
	filtersMu.Lock()
	defer filtersMu.Unlock()
	if cached, ok := filters[[2]int{inRate, outRate}]; ok {
		return cached, nil
	}
	// Kaiser design (Oppenheim & Schafer 7.6) at the upsampled rate fp.
	fp := float64(inRate * f.l)
	lower := float64(min(inRate, outRate))
	fpass, fstop := resamplePassband*lower, resampleStopband*lower
	dw := 2 * math.Pi * (fstop - fpass) / fp
	n := int(math.Ceil((resampleAttenDB-8)/(2.285*dw))) + 1
	f.taps = (n + f.l - 1) / f.l
	n = f.taps * f.l
	beta := 0.1102 * (resampleAttenDB - 8.7)
	fc := (fpass + fstop) / 2 / fp // cutoff, cycles per upsampled sample
	h := make([]float64, n)
	var sum float64
	mid := float64(n-1) / 2
	for i := range h {
		x := float64(i) - mid
		w := bessel0(beta*math.Sqrt(1-(x/mid)*(x/mid))) / bessel0(beta)
		h[i] = 2 * fc * sinc(2*fc*x) * w
		sum += h[i]
	}
	// Unity gain at DC: zero-stuffing by L divides the level by L, the filter restores it.
	gain := float64(f.l) / sum
	f.coef = make([]float32, n)
	for p := range f.l {
		for j := range f.taps {
			k := f.taps - 1 - j
			f.coef[p*f.taps+j] = float32(h[p+k*f.l] * gain)
		}
	}
	filters[[2]int{inRate, outRate}] = f
	return f, nil
}

// NewResampler returns a resampler from inRate to outRate: any two rates whose ratio is not
// too fine (the media path's 8, 16, 24 and 48 kHz, and the 22,050 Hz of espeak-ng). The
// filter of a pair of rates is designed once and shared; a Resampler's own memory is its
// history.
func NewResampler(inRate, outRate int) (*Resampler, error) {
	f, err := filterFor(inRate, outRate)
	if err != nil {
		return nil, err
	}
	r := &Resampler{in: inRate, out: outRate, l: f.l, m: f.m, taps: f.taps, coef: f.coef}
	r.chunk = max(1, int(float64(inRate)*resampleMaxChunkS))
	if inRate != outRate {
		r.buf = make([]float32, r.taps-1+r.chunk)
	}
	return r, nil
}

// Flush pushes silence through the filter so that the tail of the last samples comes out
// (Delay() output samples, and a few more); it is for the end of a clip, not of a frame.
// dst needs room for FlushLen() samples.
func (r *Resampler) Flush(dst []int16) (int, error) {
	if r.in == r.out {
		return 0, nil
	}
	var zeros [256]int16
	written := 0
	for left := r.taps; left > 0; left -= len(zeros) {
		z := zeros[:min(left, len(zeros))]
		n, err := r.Resample(dst[written:], z)
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// FlushLen is how many samples Flush writes at the most.
func (r *Resampler) FlushLen() int {
	if r.in == r.out {
		return 0
	}
	return r.taps*r.l/r.m + 2
}

// InRate is the rate of the samples Resample reads.
func (r *Resampler) InRate() int { return r.in }

// OutRate is the rate of the samples Resample writes.
func (r *Resampler) OutRate() int { return r.out }

// Delay is the filter's group delay in output samples: a feature of the input appears this
// much later in the output.
func (r *Resampler) Delay() float64 {
	if r.in == r.out {
		return 0
	}
	return float64(r.taps*r.l-1) / 2 / float64(r.m)
}

// OutLen is how many samples Resample writes for n input samples, given the state left by
// earlier calls. For a 20 ms frame it is always SamplesPerFrame(OutRate()).
func (r *Resampler) OutLen(n int) int {
	if r.in == r.out {
		return n
	}
	end := n * r.l
	if r.next >= end {
		return 0
	}
	return (end - r.next + r.m - 1) / r.m
}

// Reset forgets the history, for a stream that restarts (e.g. after a long gap).
func (r *Resampler) Reset() {
	clear(r.buf)
	r.next = 0
}

// Resample converts src into dst and returns how many samples it wrote; dst needs room for
// OutLen(len(src)) samples, or ErrShortBuffer is returned and nothing is consumed.
func (r *Resampler) Resample(dst []int16, src []int16) (int, error) {
	want := r.OutLen(len(src))
	if len(dst) < want {
		return 0, fmt.Errorf("%w: %d samples, need %d", ErrShortBuffer, len(dst), want)
	}
	if r.in == r.out {
		return copy(dst, src), nil
	}
	written := 0
	for len(src) > 0 {
		c := min(len(src), r.chunk)
		written += r.process(dst[written:], src[:c])
		src = src[c:]
	}
	return written, nil
}

func (r *Resampler) process(dst []int16, src []int16) int {
	hist := r.taps - 1
	fresh := r.buf[hist : hist+len(src)]
	for i, s := range src {
		fresh[i] = float32(s)
	}
	end := len(src) * r.l
	n := 0
	for ; r.next < end; r.next += r.m {
		base, phase := r.next/r.l, r.next%r.l
		// The window ends at the input sample base, which sits at buf[hist+base].
		x := r.buf[base : base+r.taps]
		c := r.coef[phase*r.taps : phase*r.taps+r.taps]
		dst[n] = clamp16(dot(c, x))
		n++
	}
	r.next -= end
	copy(r.buf, r.buf[len(src):len(src)+hist])
	return n
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	// Four accumulators break the dependency chain of a single running sum.
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func clamp16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// bessel0 is the zeroth-order modified Bessel function of the first kind, by its series.
func bessel0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
