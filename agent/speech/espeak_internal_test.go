package speech

import (
	"context"
	"errors"
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

func TestSentences(t *testing.T) {
	long := "This is a rather long first sentence that goes on. And a second one follows it here! Short. Then, finally, a question?"
	got := sentences(long)
	want := []string{"This is a rather long first sentence that goes on.", "And a second one follows it here! Short.", "Then, finally, a question?"}
	if len(got) != len(want) {
		t.Fatalf("sentences = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("piece %d = %q, want %q", i, got[i], want[i])
		}
	}
	if got := sentences("  Yes.  "); len(got) != 1 || got[0] != "Yes." {
		t.Errorf("sentences(Yes.) = %q", got)
	}
	// A run-on text is cut at commas or spaces, never mid-word, and loses nothing.
	var b []byte
	for i := 0; len(b) < 1000; i++ {
		b = append(b, "word, another word and more words "...)
	}
	pieces := sentences(string(b))
	total := 0
	for _, p := range pieces {
		if len(p) > maxSentence+1 {
			t.Errorf("piece of %d bytes", len(p))
		}
		total += len(p) + 1
	}
	if len(pieces) < 5 || total < len(b)-2 {
		t.Errorf("%d pieces, %d of %d bytes", len(pieces), total, len(b))
	}
}

// A long text is spoken a sentence at a time, and given up when its only reader leaves.
func TestEspeakAbandonsLongText(t *testing.T) {
	e, err := NewEspeak(EspeakOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := "The first sentence of a long answer is spoken now. The second sentence is never needed by anyone. " +
		"The third sentence is never needed either, because the caller spoke over the agent."
	held := make(chan struct{})
	release := make(chan struct{})
	chunkHook = func(n int) {
		if n == 1 {
			close(held)
			<-release
		}
	}
	defer func() { chunkHook = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := e.Synthesize(ctx, text, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	<-held
	c := a.(*clipReader).c
	a.Close()
	close(release)
	for !c.done.Load() {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(c.err, ErrClosed) {
		t.Errorf("abandoned clip ended with %v", c.err)
	}
	if n := e.Stats().Syntheses; n != 1 {
		t.Errorf("%d sentences spoken after the reader left, want 1", n)
	}
	if st := e.Stats(); st.CachedPhrase != 0 {
		t.Errorf("an abandoned phrase was cached")
	}
}
