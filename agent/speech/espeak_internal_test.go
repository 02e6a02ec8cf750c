package speech

import (
	"context"
	"testing"
	"time"
)

// The first chunk is readable while the library is still speaking: the test holds the
// library after its first chunk until it has read it.
func TestEspeakStreamsFirstChunkEarly(t *testing.T) {
	e, err := NewEspeak(EspeakOptions{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	held := make(chan struct{})
	chunkHook = func(n int) {
		if n == 1 {
			close(held)
			<-release
		}
	}
	defer func() { chunkHook = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := e.Synthesize(ctx, "This sentence is long enough that espeak speaks it in many chunks of fifty milliseconds.", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	<-held
	buf := make([]int16, 8000)
	n, err := a.Read(buf)
	if err != nil || n == 0 {
		t.Fatalf("first read = %d, %v", n, err)
	}
	if a.(*clipReader).c.done.Load() {
		t.Fatal("the clip was done before its first chunk was read")
	}
	close(release)
	total := n
	for {
		k, err := a.Read(buf)
		total += k
		if err != nil {
			break
		}
	}
	if total < 10*n {
		t.Errorf("first chunk %d samples of %d: not streamed in pieces", n, total)
	}
}
