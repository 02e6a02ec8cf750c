package amd

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/amdtest"
)

// TestAccuracyOnSpokenGreetings runs the detector over every test greeting (amdtest's
// people and machines in each of its voices, machines with and without a beep, and
// silence) and holds it to its figures: every person human, every machine machine,
// silence unknown. With -v it logs accuracy and decision times (BENCHMARKS.md).
func TestAccuracyOnSpokenGreetings(t *testing.T) {
	amdtest.Tools(t)
	if testing.Short() {
		t.Skip("speaks 60 greetings")
	}
	beep := amdtest.Beep(t, 1000, 0.5)
	type kind struct {
		name string
		want Result
		make func(v amdtest.Voice, text string) []int16
		text []string
	}
	lead := amdtest.Silence(0.4) // a phone's "hello" comes a moment after the answer
	kinds := []kind{
		{"human", Human, func(v amdtest.Voice, s string) []int16 {
			return amdtest.Join(lead, amdtest.Speak(t, v, s), amdtest.Silence(4))
		}, amdtest.Humans},
		{"machine with beep", Machine, func(v amdtest.Voice, s string) []int16 {
			return amdtest.Join(lead, amdtest.Speak(t, v, s), amdtest.Silence(0.3), beep, amdtest.Silence(2))
		}, amdtest.Machines},
		{"machine without beep", Machine, func(v amdtest.Voice, s string) []int16 {
			return amdtest.Join(lead, amdtest.Speak(t, v, s), amdtest.Silence(3))
		}, amdtest.Machines},
	}
	for _, k := range kinds {
		var times []time.Duration
		right := 0
		for _, v := range amdtest.Voices {
			for _, text := range k.text {
				dec, d := run(t, Config{Rate: amdtest.Rate}, k.make(v, text))
				if wantBeep := k.name == "machine with beep"; d.BeepEnded() != wantBeep {
					t.Errorf("%s %q in %v: beep heard and over: %v", k.name, text, v, d.BeepEnded())
				}
				if dec.Result == k.want {
					right++
				} else {
					t.Errorf("%s %q in %v: got %s (%s, %v of speech)", k.name, text, v, dec.Result, dec.Reason, dec.Speech)
				}
				times = append(times, dec.At-400*time.Millisecond)
			}
		}
		slices.Sort(times)
		t.Logf("%-20s %d/%d right; decision after the greeting began: median %v, max %v",
			k.name, right, len(times), times[len(times)/2], times[len(times)-1])
	}
	dec, _ := run(t, Config{Rate: amdtest.Rate, Timeout: 5 * time.Second}, amdtest.Silence(5))
	if dec.Result != Unknown {
		t.Errorf("silence: got %+v; want unknown", dec)
	}
}
