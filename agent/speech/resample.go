package speech

import (
	"fmt"
	"math"
	"sync"
)

// espeak-ng speaks at 22,050 Hz, a rate media.Resampler does not take (it converts between
// 8, 16, 24 and 48 kHz), so this file converts from any rate to any other by the same
// method: rational polyphase FIR with a Kaiser-windowed sinc, passband to 0.43 and
// stopband from 0.5 of the lower rate, 80 dB. The coefficient tables are shared by every
// stream of one pair of rates; a stream's state is its history and phase.

const (
	rsPassband = 0.43
	rsStopband = 0.50
	rsAttenDB  = 80.0
	rsMaxL     = 1000 // upsampling factors above this make tables too large to be worth it
)

// polyphase is the filter of one pair of rates, read-only once made.
type polyphase struct {
	in, out int
	l, m    int
	taps    int
	coef    []float32 // taps per phase, reversed: a forward dot product with the history
	// delay is the filter's centre in upsampled samples: a whole number, so that a stream
	// can start at a phase that puts its output a whole number of samples late.
	delay int
}

var (
	polyMu    sync.Mutex
	polyCache = map[[2]int]*polyphase{}
)

// filterFor returns the shared filter from in to out Hz.
func filterFor(in, out int) (*polyphase, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("speech: resample %d to %d Hz: rates must be positive", in, out)
	}
	polyMu.Lock()
	defer polyMu.Unlock()
	if p, ok := polyCache[[2]int{in, out}]; ok {
		return p, nil
	}
	g := gcdInt(in, out)
	p := &polyphase{in: in, out: out, l: out / g, m: in / g}
	if p.l > rsMaxL {
		return nil, fmt.Errorf("speech: resample %d to %d Hz: ratio %d/%d is too fine", in, out, p.l, p.m)
	}
	if in != out {
		fp := float64(in * p.l)
		lower := float64(min(in, out))
		fpass, fstop := rsPassband*lower, rsStopband*lower
		dw := 2 * math.Pi * (fstop - fpass) / fp
		n := int(math.Ceil((rsAttenDB-8)/(2.285*dw))) + 1
		p.taps = (n + p.l - 1) / p.l
		n = p.taps * p.l
		beta := 0.1102 * (rsAttenDB - 8.7)
		fc := (fpass + fstop) / 2 / fp
		h := make([]float64, n)
		// An odd length has a whole-sample centre; an even one leaves its last tap zero.
		p.delay = (n - 1) / 2
		mid := float64(p.delay)
		i0beta := besselI0(beta)
		var sum float64
		for i := range 2*p.delay + 1 {
			x := float64(i) - mid
			r := x / mid
			h[i] = 2 * fc * sincf(2*fc*x) * besselI0(beta*math.Sqrt(max(0, 1-r*r))) / i0beta
			sum += h[i]
		}
		gain := float64(p.l) / sum
		p.coef = make([]float32, n)
		for ph := range p.l {
			for j := range p.taps {
				p.coef[ph*p.taps+j] = float32(h[ph+(p.taps-1-j)*p.l] * gain)
			}
		}
	}
	polyCache[[2]int{in, out}] = p
	return p, nil
}

// resampler is one stream through a polyphase filter. Not safe for concurrent use.
type resampler struct {
	f    *polyphase
	buf  []float32 // taps-1 samples of history, then the samples being converted
	next int       // upsampled position of the next output, relative to the first new sample
}

func newResampler(in, out int) (*resampler, error) {
	f, err := filterFor(in, out)
	if err != nil {
		return nil, err
	}
	// Starting at this phase puts every output exactly f.delay/f.m samples late.
	r := &resampler{f: f, next: f.delay % f.m}
	if f.taps > 0 {
		r.buf = make([]float32, f.taps-1, f.taps-1+4096)
	}
	return r, nil
}

// push converts src and appends the output to dst.
func (r *resampler) push(dst, src []int16) []int16 {
	f := r.f
	if f.in == f.out {
		return append(dst, src...)
	}
	h := f.taps - 1
	r.buf = r.buf[:h]
	for _, s := range src {
		r.buf = append(r.buf, float32(s))
	}
	end := len(src) * f.l
	for ; r.next < end; r.next += f.m {
		base, ph := r.next/f.l, r.next%f.l
		dst = append(dst, clampSample(dot32(f.coef[ph*f.taps:(ph+1)*f.taps], r.buf[base:base+f.taps])))
	}
	r.next -= end
	copy(r.buf, r.buf[len(src):len(src)+h])
	r.buf = r.buf[:h]
	return dst
}

// flush pushes silence through the filter so the last samples' tail comes out.
func (r *resampler) flush(dst []int16) []int16 {
	if r.f.in == r.f.out {
		return dst
	}
	var zeros [256]int16
	for left := r.f.taps; left > 0; left -= len(zeros) {
		dst = r.push(dst, zeros[:min(left, len(zeros))])
	}
	return dst
}

func dot32(a, b []float32) float32 {
	b = b[:len(a)]
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

func clampSample(v float32) int16 {
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

func sincf(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 60; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Resample converts a whole clip of mono PCM16 from one rate to another, for callers with
// audio at a rate media.Resampler does not take (espeak's 22,050 Hz). The output is
// aligned with the input: the filter's delay is removed.
func Resample(pcm []int16, from, to int) ([]int16, error) {
	r, err := newResampler(from, to)
	if err != nil {
		return nil, err
	}
	if from == to {
		return append([]int16(nil), pcm...), nil
	}
	want := int(int64(len(pcm)) * int64(to) / int64(from))
	out := make([]int16, 0, want+r.f.taps*r.f.l/r.f.m+16)
	out = r.push(out, pcm)
	out = r.flush(out)
	delay := r.f.delay / r.f.m
	out = out[min(delay, len(out)):]
	return out[:min(want, len(out))], nil
}
