package speech_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech"
)

const benchSentence = "Thank you for calling Switchboard today."

// drainAudio reads a to its end through buf, the way a call's sender does.
func drainAudio(b *testing.B, a speech.Audio, buf []int16) int {
	n := 0
	for {
		k, err := a.Read(buf)
		n += k
		if errors.Is(err, io.EOF) {
			a.Close()
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEspeakUncached is one synthesis of a six-word sentence by libespeak-ng,
// resampled to 16 kHz.
func BenchmarkEspeakUncached(b *testing.B) {
	e, err := speech.NewEspeak(speech.EspeakOptions{CacheBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		a, err := e.Synthesize(ctx, benchSentence, "", 1)
		if err != nil {
			b.Fatal(err)
		}
		drainAudio(b, a, buf)
	}
	b.ReportMetric(float64(e.Stats().Syntheses)/float64(b.N), "syntheses/op")
}

// BenchmarkEspeakCached is the same sentence from the phrase cache, read in 20 ms frames
// by 200 goroutines at once, as 200 calls playing one greeting do. An op is one call's
// whole sentence.
func BenchmarkEspeakCached(b *testing.B) {
	e, err := speech.NewEspeak(speech.EspeakOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a, _ := e.Synthesize(ctx, benchSentence, "", 1)
	drainAudio(b, a, make([]int16, 320))
	before := e.Stats().Syntheses
	b.ReportAllocs()
	b.SetParallelism(max(1, 200/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]int16, 320)
		for pb.Next() {
			a, err := e.Synthesize(ctx, benchSentence, "", 1)
			if err != nil {
				b.Error(err)
				return
			}
			drainAudio(b, a, buf)
		}
	})
	if n := e.Stats().Syntheses - before; n != 0 {
		b.Errorf("%d syntheses from a cached phrase", n)
	}
}

// BenchmarkEspeakCachedRead is one 20 ms frame read from a cached phrase: no allocation.
func BenchmarkEspeakCachedRead(b *testing.B) {
	e, err := speech.NewEspeak(speech.EspeakOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a, _ := e.Synthesize(ctx, benchSentence, "", 1)
	drainAudio(b, a, make([]int16, 320))
	buf := make([]int16, 320)
	a, _ = e.Synthesize(ctx, benchSentence, "", 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Read(buf); errors.Is(err, io.EOF) {
			a.Close()
			a, _ = e.Synthesize(ctx, benchSentence, "", 1)
		}
	}
}

// BenchmarkEspeakFirstAudio is the wait from asking for an uncached sentence to holding
// its first samples: what a caller hears as the agent's reaction time, less the brain's.
func BenchmarkEspeakFirstAudio(b *testing.B) {
	e, err := speech.NewEspeak(speech.EspeakOptions{CacheBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := make([]int16, 320)
	var first time.Duration
	for b.Loop() {
		start := time.Now()
		a, err := e.Synthesize(ctx, benchSentence, "", 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Read(buf); err != nil {
			b.Fatal(err)
		}
		first += time.Since(start)
		drainAudio(b, a, buf)
	}
	b.ReportMetric(float64(first.Microseconds())/float64(b.N), "µs-to-first-audio")
	b.ReportMetric(float64(e.Stats().Syntheses)/float64(b.N), "syntheses/op")
}
