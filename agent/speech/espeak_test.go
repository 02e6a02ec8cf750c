package speech_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/agent/speech"
)

func newEspeak(t testing.TB, opts speech.EspeakOptions) *speech.Espeak {
	t.Helper()
	e, err := speech.NewEspeak(opts)
	if err != nil {
		t.Fatalf("NewEspeak: %v", err)
	}
	return e
}

func TestEspeakSpeaks(t *testing.T) {
	t.Parallel()
	for _, rate := range []int{8000, 16000, 22050, 24000, 48000} {
		e := newEspeak(t, speech.EspeakOptions{SampleRate: rate})
		a, err := e.Synthesize(testCtx(t), "Thank you for calling, how can I help you today?", "", 1)
		if err != nil {
			t.Fatal(err)
		}
		if a.SampleRate() != rate {
			t.Errorf("SampleRate = %d, want %d", a.SampleRate(), rate)
		}
		st := describe(readAll(t, a), rate)
		// Ten words at 175 words a minute is about 3.4 s; espeak's pauses add a little.
		if st.seconds < 2 || st.seconds > 6 {
			t.Errorf("%d Hz: %.2f s of audio for ten words", rate, st.seconds)
		}
		if st.rms < 500 || st.voiced < 0.5 {
			t.Errorf("%d Hz: does not sound like speech: rms %.0f, %.0f%% of frames voiced", rate, st.rms, 100*st.voiced)
		}
	}
}

func TestEspeakLengthFollowsTextAndSpeed(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	ctx := testCtx(t)
	dur := func(text string, speed float64) float64 {
		a, err := e.Synthesize(ctx, text, "en-gb", speed)
		if err != nil {
			t.Fatal(err)
		}
		return describe(readAll(t, a), e.SampleRate()).seconds
	}
	short := dur("Yes.", 1)
	long := dur("Please hold while I transfer you to the next available agent.", 1)
	fast := dur("Please hold while I transfer you to the next available agent.", 2)
	if short > 1.2 || long < 2.5 {
		t.Errorf("'Yes.' lasts %.2f s, the eleven-word sentence %.2f s", short, long)
	}
	if fast > long*0.7 {
		t.Errorf("at speed 2 the sentence lasts %.2f s, at speed 1 %.2f s", fast, long)
	}
}

func TestEspeakUnknownVoice(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	a, err := e.Synthesize(testCtx(t), "hello", "no-such-voice-xx", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	buf := make([]int16, 512)
	for {
		_, err = a.Read(buf)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, speech.ErrUnknownVoice) {
		t.Errorf("Read = %v, want ErrUnknownVoice", err)
	}
}

func TestEspeakCacheServesFromMemory(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	ctx := testCtx(t)
	say := func() []int16 {
		a, err := e.Synthesize(ctx, "  Your call is important to us.  ", "en-us", 1)
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, a)
	}
	first := say()
	before := e.Stats()
	second := say()
	third := say()
	after := e.Stats()
	if after.Syntheses != before.Syntheses {
		t.Errorf("the cached phrase called the library %d more times", after.Syntheses-before.Syntheses)
	}
	if after.CacheHits-before.CacheHits != 2 {
		t.Errorf("cache hits went from %d to %d, want 2 more", before.CacheHits, after.CacheHits)
	}
	for _, got := range [][]int16{second, third} {
		if len(got) != len(first) {
			t.Fatalf("cached audio has %d samples, the first %d", len(got), len(first))
		}
		for i := range got {
			if got[i] != first[i] {
				t.Fatalf("cached audio differs at sample %d", i)
			}
		}
	}
	// Another speed or voice is another phrase.
	a, _ := e.Synthesize(ctx, "Your call is important to us.", "en-us", 1.3)
	readAll(t, a)
	if got := e.Stats().Syntheses; got != after.Syntheses+1 {
		t.Errorf("a new speed made %d syntheses, want 1", got-after.Syntheses)
	}
}

func TestEspeakCacheIsBounded(t *testing.T) {
	t.Parallel()
	// Room for a few phrases: older ones go.
	e := newEspeak(t, speech.EspeakOptions{CacheBytes: 2 << 20})
	ctx := testCtx(t)
	for _, s := range []string{"one two three", "four five six", "seven eight nine", "ten eleven twelve",
		"the quick brown fox jumps over the lazy dog", "press one for sales, two for support, three for billing",
		"please leave a message after the tone", "goodbye and thank you for calling"} {
		for range 2 {
			a, err := e.Synthesize(ctx, s, "", 1)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, a)
		}
	}
	st := e.Stats()
	if st.CachedBytes > 2<<20 {
		t.Errorf("cache holds %d bytes, bound %d", st.CachedBytes, 2<<20)
	}
	if st.CachedPhrase == 0 || st.CacheHits != 8 {
		t.Errorf("stats %+v: want phrases cached and 8 hits", st)
	}
}

func TestEspeakConcurrent(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	ctx := testCtx(t)
	phrases := []string{"what are your opening hours", "I would like to speak to someone", "yes", "no",
		"one two three four", "please hold"}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := phrases[g%len(phrases)]
			voice := []string{"en-us", "en-gb"}[g%2]
			a, err := e.Synthesize(ctx, text, voice, 1+float64(g%3)/4)
			if err != nil {
				errs <- err
				return
			}
			defer a.Close()
			buf := make([]int16, 160)
			n := 0
			for {
				k, err := a.Read(buf)
				n += k
				if err != nil {
					if n < a.SampleRate()/10 {
						errs <- errors.New(text + ": too short")
					} else if err.Error() != "EOF" {
						errs <- err
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEspeakCancelledContext(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := e.Synthesize(ctx, "hello", "", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Synthesize on a cancelled context = %v", err)
	}
}

func TestEspeakCachedReadDoesNotAllocate(t *testing.T) {
	e := newEspeak(t, speech.EspeakOptions{})
	ctx := testCtx(t)
	a, err := e.Synthesize(ctx, "Please hold the line.", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, a)
	a, _ = e.Synthesize(ctx, "Please hold the line.", "", 1)
	defer a.Close()
	frame := make([]int16, 320)
	if n := testing.AllocsPerRun(50, func() { _, _ = a.Read(frame) }); n != 0 {
		t.Errorf("a cached 20 ms frame costs %.1f allocations", n)
	}
}

func TestEspeakDataPath(t *testing.T) {
	t.Parallel()
	if _, err := speech.NewEspeak(speech.EspeakOptions{DataPath: t.TempDir()}); !errors.Is(err, speech.ErrEspeakInit) ||
		!strings.Contains(err.Error(), "espeak-ng-data") {
		t.Errorf("an empty data path: %v", err)
	}
	// Debian's path, as the library finds it by default, is accepted.
	const debian = "/usr/lib/x86_64-linux-gnu/espeak-ng-data"
	if _, err := os.Stat(debian); err == nil {
		e, err := speech.NewEspeak(speech.EspeakOptions{DataPath: debian})
		if err != nil {
			t.Fatalf("Debian's data path: %v", err)
		}
		if e.DataPath() != debian {
			t.Errorf("DataPath = %q", e.DataPath())
		}
	}
}

func TestEspeakVoiceVariant(t *testing.T) {
	t.Parallel()
	e := newEspeak(t, speech.EspeakOptions{})
	for _, v := range []string{"en-us+f3", "en-gb+m2", "en-gb-scotland", "fr", "de"} {
		a, err := e.Synthesize(testCtx(t), "one two three", v, 1)
		if err != nil {
			t.Fatal(err)
		}
		if st := describe(readAll(t, a), e.SampleRate()); st.seconds < 0.5 || st.voiced < 0.3 {
			t.Errorf("voice %s: %+v", v, st)
		}
	}
}
