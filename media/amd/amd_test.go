package amd

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// pcm builds test audio at a rate, 20 ms frames at a time.
type pcm struct {
	rate int
	s    []int16
	rng  *rand.Rand
	ph   float64
}

func newPCM(rate int) *pcm { return &pcm{rate: rate, rng: rand.New(rand.NewPCG(1, 2))} }

func (p *pcm) silence(d time.Duration) *pcm {
	p.s = append(p.s, make([]int16, p.samples(d))...)
	return p
}

func (p *pcm) samples(d time.Duration) int { return int(d * time.Duration(p.rate) / time.Second) }

// noise adds white noise of the given RMS over d.
func (p *pcm) noise(d time.Duration, rms float64) *pcm {
	for range p.samples(d) {
		p.s = append(p.s, int16(p.rng.NormFloat64()*rms))
	}
	return p
}

// tone adds a sine of freq Hz at amplitude amp over d.
func (p *pcm) tone(d time.Duration, freq, amp float64) *pcm {
	for i := range p.samples(d) {
		p.s = append(p.s, int16(amp*math.Sin(2*math.Pi*freq*float64(i)/float64(p.rate))))
	}
	return p
}

// speech adds voiced syllables over d: a glottal pulse train (a drifting pitch near
// 120 Hz, rich in harmonics) shaped by two moving formant-like resonances and a syllable
// envelope, sylOn of sound then sylOff of near silence, as speech's power is spread.
func (p *pcm) speech(d, sylOn, sylOff time.Duration) *pcm {
	n := p.samples(d)
	on, per := p.samples(sylOn), p.samples(sylOn+sylOff)
	var y1, y2, z1, z2 float64
	for i := range n {
		k := i % per
		f0 := 120 + 15*math.Sin(2*math.Pi*float64(i)/float64(p.rate)*1.3)
		p.ph += f0 / float64(p.rate)
		pulse := 0.0
		if p.ph >= 1 {
			p.ph -= 1
			pulse = 1
		}
		x := pulse + 0.02*p.rng.NormFloat64()
		// Two resonators (formants near 600 and 1700 Hz, drifting by syllable).
		syl := float64(i / per)
		f1, f2 := 550+80*math.Sin(syl), 1500+300*math.Cos(syl*1.7)
		r := 0.97
		a1, a2 := 2*r*math.Cos(2*math.Pi*f1/float64(p.rate)), -r*r
		b1 := 2 * r * math.Cos(2*math.Pi*f2/float64(p.rate))
		y := x + a1*y1 + a2*y2
		y2, y1 = y1, y
		z := y + b1*z1 + a2*z2
		z2, z1 = z1, z
		env := 0.0
		if k < on {
			env = math.Sin(math.Pi * float64(k) / float64(on))
		}
		p.s = append(p.s, int16(math.Max(-32767, math.Min(32767, z*env*6000))))
	}
	return p
}

// run feeds the audio to a detector of cfg frame by frame, then silence up to the
// detector's timeout, and returns the decision and the detector.
func run(t *testing.T, cfg Config, audio []int16) (Decision, *Detector) {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Rate / 50
	var got Decision
	var decided bool
	frame := make([]int16, n)
	for i := 0; !decided || i*n < len(audio); i++ {
		clear(frame)
		if i*n < len(audio) {
			copy(frame, audio[i*n:min(len(audio), (i+1)*n)])
		}
		dec, ok, err := d.Feed(frame)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if decided {
				t.Fatal("decided twice")
			}
			got, decided = dec, true
		}
		if i > 100*50 {
			t.Fatal("no decision after 100 s")
		}
	}
	return got, d
}

func TestDetectorHuman(t *testing.T) {
	for _, rate := range []int{8000, 16000, 48000} {
		audio := newPCM(rate).silence(400*time.Millisecond).speech(600*time.Millisecond, 250*time.Millisecond, 50*time.Millisecond).silence(3 * time.Second)
		dec, _ := run(t, Config{Rate: rate}, audio.s)
		if dec.Result != Human || dec.Reason != ReasonShortGreeting {
			t.Fatalf("%d Hz: got %+v; want human from a short greeting", rate, dec)
		}
		// Speech ends at 1 s; 800 ms of silence after it decide.
		if dec.At < 1700*time.Millisecond || dec.At > 2100*time.Millisecond {
			t.Errorf("%d Hz: decided at %v; want about 1.8 s", rate, dec.At)
		}
		if dec.Confidence < 0.6 || dec.Confidence > 0.9 {
			t.Errorf("%d Hz: confidence %v", rate, dec.Confidence)
		}
	}
}

func TestDetectorLongGreeting(t *testing.T) {
	audio := newPCM(8000).silence(300*time.Millisecond).speech(5*time.Second, 220*time.Millisecond, 60*time.Millisecond)
	dec, d := run(t, Config{Rate: 8000}, audio.s)
	if dec.Result != Machine || dec.Reason != ReasonLongGreeting {
		t.Fatalf("got %+v; want machine from a long greeting", dec)
	}
	if dec.At > 2500*time.Millisecond {
		t.Errorf("decided at %v; want within 2.5 s", dec.At)
	}
	if d.Beep() {
		t.Error("speech heard as a beep")
	}
}

func TestDetectorBeep(t *testing.T) {
	for _, tt := range []struct {
		freq float64
		dur  time.Duration
		rate int
	}{{1000, 500 * time.Millisecond, 8000}, {1400, 500 * time.Millisecond, 8000}, {1987.5, 500 * time.Millisecond, 8000},
		{2012, 500 * time.Millisecond, 8000}, {1000, 1500 * time.Millisecond, 8000}, {1400, 500 * time.Millisecond, 16000},
		{2012, 500 * time.Millisecond, 48000}} {
		freq, n := tt.freq, tt.rate/50
		audio := newPCM(tt.rate).silence(300*time.Millisecond).speech(800*time.Millisecond, 200*time.Millisecond, 60*time.Millisecond).
			silence(300*time.Millisecond).tone(tt.dur, freq, 8000).silence(time.Second)
		d, _ := New(Config{Rate: tt.rate, AfterGreeting: 2 * time.Second})
		var beepAt, endAt time.Duration
		var dec Decision
		for i := 0; (i+1)*n <= len(audio.s); i++ {
			got, ok, err := d.Feed(audio.s[i*n : (i+1)*n])
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				dec = got
			}
			if d.Beep() && beepAt == 0 {
				beepAt = d.Elapsed()
			}
			if d.BeepEnded() && endAt == 0 {
				endAt = d.Elapsed()
			}
		}
		if dec.Result != Machine || dec.Reason != ReasonBeep || !dec.Beep {
			t.Fatalf("%v Hz at %d Hz: got %+v; want machine from the beep", freq, tt.rate, dec)
		}
		// The tone runs from 1.4 s for its duration.
		if beepAt < 1600*time.Millisecond || beepAt > 1750*time.Millisecond {
			t.Errorf("%v Hz: beep heard at %v; want about 1.64 s", freq, beepAt)
		}
		if end := 1400*time.Millisecond + tt.dur; endAt < end || endAt > end+100*time.Millisecond {
			t.Errorf("%v Hz, %v: beep over at %v; want just after %v", freq, tt.dur, endAt, end)
		}
	}
}

func TestDetectorHearsSpeechFromTheFirstFrame(t *testing.T) {
	// A greeting that starts with the audio is not taken for the line's noise floor.
	audio := newPCM(8000).speech(5*time.Second, 220*time.Millisecond, 60*time.Millisecond)
	if dec, _ := run(t, Config{Rate: 8000}, audio.s); dec.Result != Machine {
		t.Fatalf("got %+v; want machine", dec)
	}
	beep := newPCM(8000).tone(time.Second, 1000, 8000)
	if _, d := run(t, Config{Rate: 8000, Timeout: 2 * time.Second}, beep.s); !d.Beep() {
		t.Fatal("a beep from the first frame not heard")
	}
}

func TestDetectorToneOutsideBankIsNoBeep(t *testing.T) {
	// A 440 Hz dial-tone-like hum is loud, steady and not a machine's beep.
	audio := newPCM(8000).tone(time.Second, 440, 6000)
	_, d := run(t, Config{Rate: 8000, Timeout: 3 * time.Second}, audio.s)
	if d.Beep() {
		t.Error("440 Hz taken for a beep")
	}
}

func TestDetectorSilenceIsUnknownAtTimeout(t *testing.T) {
	dec, _ := run(t, Config{Rate: 8000, Timeout: 4 * time.Second}, nil)
	if dec.Result != Unknown || dec.Reason != ReasonTimeout || dec.Confidence != 0 {
		t.Fatalf("got %+v; want unknown at the timeout", dec)
	}
	if dec.At != 4*time.Second {
		t.Errorf("decided at %v; want 4 s", dec.At)
	}
}

func TestDetectorNoisyLine(t *testing.T) {
	// A hiss at -36 dBFS throughout: the threshold rises above it, and the hello is heard.
	p := newPCM(8000).noise(time.Second, 500)
	hello := newPCM(8000).speech(500*time.Millisecond, 250*time.Millisecond, 0).s
	for i, s := range hello {
		hello[i] = int16(max(-32767, min(32767, int(s)+int(p.rng.NormFloat64()*500))))
	}
	p.s = append(p.s, hello...)
	p.noise(3*time.Second, 500)
	dec, _ := run(t, Config{Rate: 8000}, p.s)
	if dec.Result != Human {
		t.Fatalf("got %+v; want human", dec)
	}
}

func TestDetectorRefusesBadInput(t *testing.T) {
	if _, err := New(Config{Rate: 11025}); !errors.Is(err, ErrRate) {
		t.Errorf("11025 Hz: %v; want ErrRate", err)
	}
	d, err := New(Config{Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Feed(make([]int16, 320)); !errors.Is(err, ErrFrame) {
		t.Errorf("a 40 ms frame: %v; want ErrFrame", err)
	}
}

func TestDetectorFeedAllocatesNothing(t *testing.T) {
	audio := newPCM(8000).speech(time.Second, 200*time.Millisecond, 50*time.Millisecond).tone(time.Second, 1000, 8000).s
	d, _ := New(Config{Rate: 8000, Timeout: time.Hour, Greeting: time.Hour})
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		k := i % (len(audio) / 160)
		_, _, _ = d.Feed(audio[k*160 : (k+1)*160])
		i++
	})
	if allocs != 0 {
		t.Fatalf("Feed allocates %v times per frame; want 0", allocs)
	}
}

func TestMachineWords(t *testing.T) {
	for text, want := range map[string]bool{
		"Hi, you've reached Sam. Please leave a message after the tone.": true,
		"The person you are calling is not available.":                   true,
		"I can’t take your call right now":                               true,
		"YOU HAVE REACHED THE VOICEMAIL OF":                              true,
		"Hello?":                                                         false,
		"Hello, who is this?":                                            false,
		"":                                                               false,
	} {
		if got := MachineWords(text); got != want {
			t.Errorf("MachineWords(%q) = %v; want %v", text, got, want)
		}
	}
}

// BenchmarkDetectorFeed is the cost of a frame: of speech (most never reach the beep's
// filter bank) and of a beep (every frame runs the whole bank), at 8 and 16 kHz.
func BenchmarkDetectorFeed(b *testing.B) {
	for _, rate := range []int{8000, 16000} {
		for _, kind := range []string{"speech", "beep"} {
			p := newPCM(rate)
			if kind == "speech" {
				p.speech(2*time.Second, 200*time.Millisecond, 50*time.Millisecond)
			} else {
				p.tone(2*time.Second, 1000, 8000)
			}
			audio, n := p.s, rate/50
			frames := len(audio) / n
			b.Run(fmt.Sprintf("%s/%dkHz", kind, rate/1000), func(b *testing.B) {
				d, _ := New(Config{Rate: rate, Timeout: time.Hour, Greeting: time.Hour})
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k := i % frames
					_, _, _ = d.Feed(audio[k*n : (k+1)*n])
				}
			})
		}
	}
}
