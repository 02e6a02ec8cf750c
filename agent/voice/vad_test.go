package voice

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// fixture reads a caller's utterance from testdata (8 kHz mono PCM16, espeak-ng's voice).
func fixture(t testing.TB, name string) []int16 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	if w.Rate != media.Rate8k || w.Channels != 1 {
		t.Fatalf("%s: %d Hz, %d channels; want 8 kHz mono", name, w.Rate, w.Channels)
	}
	return w.Samples
}

// resampleAll converts a whole signal between rates.
func resampleAll(t testing.TB, pcm []int16, from, to int) []int16 {
	t.Helper()
	r, err := media.NewResampler(from, to)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, r.OutLen(len(pcm))+16)
	n, err := r.Resample(out, pcm)
	if err != nil {
		t.Fatal(err)
	}
	return out[:n]
}

// onsetSample is where speech starts in a clean signal: the first 10 ms window whose level
// is within 30 dB of the loudest one.
func onsetSample(pcm []int16, rate int) int {
	win := rate / 100
	levels := make([]float64, 0, len(pcm)/win)
	peak := -200.0
	for i := 0; i+win <= len(pcm); i += win {
		l := levelDB(pcm[i : i+win])
		levels = append(levels, l)
		peak = max(peak, l)
	}
	for i, l := range levels {
		if l > peak-30 {
			return i * win
		}
	}
	return -1
}

// emergence is the first 10 ms window of a clean signal louder than noise at noiseDB.
func emergence(pcm []int16, rate int, noiseDB float64) int {
	win := rate / 100
	for i := 0; i+win <= len(pcm); i += win {
		if levelDB(pcm[i:i+win]) > noiseDB {
			return i
		}
	}
	return -1
}

func levelDB(pcm []int16) float64 {
	var s float64
	for _, x := range pcm {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return -200
	}
	return 10 * math.Log10(s/float64(len(pcm))/(32768*32768))
}

// activeLevel is the mean power of a clean signal's speech windows, in dBFS.
func activeLevel(pcm []int16, rate int) float64 {
	win := rate / 50
	var sum float64
	n := 0
	for i := 0; i+win <= len(pcm); i += win {
		if l := levelDB(pcm[i : i+win]); l > -45 {
			sum += math.Pow(10, l/10)
			n++
		}
	}
	return 10 * math.Log10(sum/float64(n))
}

// noise is a line's noise at levelDB dBFS: white Gaussian noise, plus mains hum when hum.
type noise struct {
	rng   *rand.Rand
	sigma float64
	hum   bool
	n     int
	rate  int
}

func newNoise(seed uint64, rate int, levelDB float64, hum bool) *noise {
	return &noise{rng: rand.New(rand.NewPCG(seed, 7)), sigma: 32768 * math.Pow(10, levelDB/20), hum: hum, rate: rate}
}

func (z *noise) add(dst []int16) {
	for i := range dst {
		v := float64(dst[i]) + z.rng.NormFloat64()*z.sigma
		if z.hum {
			v += 3 * z.sigma * math.Sin(2*math.Pi*50*float64(z.n)/float64(z.rate))
		}
		z.n++
		dst[i] = int16(max(min(v, 32767), -32768))
	}
}

// vadRun feeds pcm (16 kHz) frame by frame and returns the frame index of each detected
// onset (dated to its first frame) and the number of speech frames.
func vadRun(v *vad, pcm []int16) (onsets []int, speech int) {
	for i := 0; (i+1)*vadFrame <= len(pcm); i++ {
		r := v.Process(pcm[i*vadFrame : (i+1)*vadFrame])
		if r.Start {
			onsets = append(onsets, i-r.OnsetFrames+1)
		}
		if r.Speech {
			speech++
		}
	}
	return onsets, speech
}

func TestVADOnsetInNoise(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"hello", "question", "wait", "yes"} {
		clean := resampleAll(t, fixture(t, name), media.Rate8k, vadRate)
		speechDB := activeLevel(clean, vadRate)
		for _, snr := range []float64{30, 20, 10, 6} {
			// In noise, speech begins where it rises above the noise: no detector can hear
			// the part of its first syllable that the noise covers.
			truth := max(onsetSample(clean, vadRate), emergence(clean, vadRate, speechDB-snr))
			for _, hum := range []bool{false, true} {
				lead := vadRate // a second of the line's noise before the caller speaks
				pcm := make([]int16, lead+len(clean))
				copy(pcm[lead:], clean)
				newNoise(uint64(snr*10), vadRate, speechDB-snr, hum).add(pcm)
				onsets, _ := vadRun(newVAD(), pcm)
				if len(onsets) == 0 {
					t.Errorf("%s at %g dB SNR (hum %v): no speech detected", name, snr, hum)
					continue
				}
				// Declared at the end of the onset's confirming frame; measured from the
				// true onset.
				first := onsets[0]
				startMS := float64((first*vadFrame)-(lead+truth)) / vadRate * 1000
				if startMS < -60 {
					t.Errorf("%s at %g dB SNR (hum %v): speech detected %.0f ms before it began", name, snr, hum, -startMS)
					continue
				}
				// The onset is declared once its second frame is in: dated frame + 2 frames.
				declaredMS := float64((first+2)*vadFrame-(lead+truth)) / vadRate * 1000
				if declaredMS > 100 {
					t.Errorf("%s at %g dB SNR (hum %v): onset declared %.0f ms after speech began, want ≤ 100", name, snr, hum, declaredMS)
				}
				t.Logf("%s snr=%g hum=%v: declared %.0f ms after onset, %d onsets", name, snr, hum, declaredMS, len(onsets))
			}
		}
	}
}

func TestVADQuietOnNoise(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		fill func(pcm []int16)
	}{
		{"white noise -40 dBFS", func(p []int16) { newNoise(1, vadRate, -40, false).add(p) }},
		{"white noise -25 dBFS", func(p []int16) { newNoise(2, vadRate, -25, false).add(p) }},
		{"hum and noise", func(p []int16) { newNoise(3, vadRate, -45, true).add(p) }},
		{"comfort noise after silence", func(p []int16) {
			// Digital silence, then comfort noise switched on at -50 dBFS, then at -35.
			newNoise(4, vadRate, -50, false).add(p[vadRate*2 : vadRate*6])
			newNoise(5, vadRate, -35, false).add(p[vadRate*6:])
		}},
		{"noise rising in steps", func(p []int16) {
			for i := range 5 {
				seg := p[i*vadRate*2 : (i+1)*vadRate*2]
				newNoise(uint64(10+i), vadRate, -60+float64(i)*6, false).add(seg)
			}
		}},
	}
	for _, tc := range cases {
		pcm := make([]int16, vadRate*10)
		tc.fill(pcm)
		onsets, speech := vadRun(newVAD(), pcm)
		if len(onsets) != 0 || speech != 0 {
			t.Errorf("%s: %d onsets, %d speech frames; want none", tc.name, len(onsets), speech)
		}
	}
}

func TestVADSpeechFramesAndEnd(t *testing.T) {
	t.Parallel()
	clean := resampleAll(t, fixture(t, "hello"), media.Rate8k, vadRate)
	pcm := make([]int16, vadRate+len(clean)+vadRate)
	copy(pcm[vadRate:], clean)
	newNoise(9, vadRate, activeLevel(clean, vadRate)-20, false).add(pcm)
	v := newVAD()
	last := -1
	for i := 0; (i+1)*vadFrame <= len(pcm); i++ {
		if v.Process(pcm[i*vadFrame : (i+1)*vadFrame]).Speech {
			last = i
		}
	}
	// The last speech frame is near the end of the utterance.
	end := vadRate + len(clean)
	for end > vadRate && math.Abs(float64(clean[end-vadRate-1])) < 300 {
		end--
	}
	gotMS := float64(last*vadFrame-end) / vadRate * 1000
	if gotMS < -300 || gotMS > 200 {
		t.Errorf("last speech frame %.0f ms from the utterance's end, want within -300..200", gotMS)
	}
}

func TestVADAllocs(t *testing.T) {
	v := newVAD()
	frame := make([]int16, vadFrame)
	newNoise(1, vadRate, -30, false).add(frame)
	if n := testing.AllocsPerRun(1000, func() { v.Process(frame) }); n != 0 {
		t.Errorf("VAD allocates %v per frame", n)
	}
}

func BenchmarkVAD(b *testing.B) {
	clean := resampleAll(b, fixture(b, "hello"), media.Rate8k, vadRate)
	newNoise(1, vadRate, -45, false).add(clean)
	v := newVAD()
	frames := len(clean) / vadFrame
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % frames
		v.Process(clean[k*vadFrame : (k+1)*vadFrame])
	}
}

// BenchmarkVADDigitalSilence: the VAD on the exact zeros many phones send between words,
// after speech has left its filters ringing. Without flushing subnormal values to zero a
// frame cost twenty times as much as one of speech.
func BenchmarkVADDigitalSilence(b *testing.B) {
	speech := resampleAll(b, fixture(b, "hello"), media.Rate8k, vadRate)
	v := newVAD()
	for k := 0; k+vadFrame <= len(speech); k += vadFrame {
		v.Process(speech[k : k+vadFrame])
	}
	silence := make([]int16, vadFrame)
	for range 500 { // ten seconds: the filters' state decays as far as it will
		v.Process(silence)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v.Process(silence)
	}
}

// rateOnly is a stream that only says its rate: the ear's per-frame work is driven by hand.
type rateOnly struct {
	media.Stream
	rate int
}

func (s rateOnly) SampleRate() int { return s.rate }

// earFrames feeds the ear a caller's speech in line noise, frame by frame, the utterance
// consumed at each pause as a Listen would.
func earFrames(tb testing.TB) (e *ear, feed func(i int)) {
	e, err := newEar(rateOnly{rate: media.Rate8k}, func() bool { return false }, func() {})
	if err != nil {
		tb.Fatal(err)
	}
	speech := fixture(tb, "hello")
	pcm := make([]int16, len(speech)+8000)
	copy(pcm, speech)
	newNoise(3, media.Rate8k, -50, false).add(pcm)
	n := len(pcm) / 160
	return e, func(i int) {
		k := i % n
		copy(e.frame.Samples, pcm[k*160:(k+1)*160])
		e.hear(time.Time{})
		if s := e.first(); s != nil && s.silent >= 30 {
			e.mu.Lock()
			e.consume(s)
			e.mu.Unlock()
		}
	}
}

func TestEarFrameAllocs(t *testing.T) {
	_, feed := earFrames(t)
	for i := range 2000 { // two segments' buffers come into the pool
		feed(i)
	}
	i := 2000
	if n := testing.AllocsPerRun(1000, func() { feed(i); i++ }); n != 0 {
		t.Errorf("the ear allocates %v per frame", n)
	}
}

func BenchmarkEarFrame(b *testing.B) {
	_, feed := earFrames(b)
	for i := range 2000 {
		feed(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		feed(i)
	}
}
