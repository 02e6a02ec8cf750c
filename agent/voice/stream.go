package voice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/telemetry"
)

// streamIdleLimit is how long a synthesis opened ahead of the answer is trusted to be
// open still: below ElevenLabs' 20 s inactivity timeout.
const streamIdleLimit = 15 * time.Second

// streamAnswer speaks the brain's text through a streaming voice: each delta is pushed as
// it comes, and the audio is read, at the call's rate where the provider offers it, while
// the answer is still being written. The whole answer is one sentence for the player. When
// ctx ends (a barge-in, a hang-up) the synthesis is cancelled upstream at once. When the
// voice fails, the text it has not spoken, and the rest of the answer, is spoken by the
// fallback voice sentence by sentence, as a failing batch voice's is.
func (c *conversation) streamAnswer(ctx context.Context, st speech.StreamingTTS, text <-chan string, audio chan<- chunk, seen func()) {
	ctx, span := telemetry.Start(ctx, "tts")
	defer span.End()
	send := func(ch chunk) bool {
		select {
		case audio <- ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// The synthesis is opened while the model thinks, so that its handshake (TLS, the
	// WebSocket upgrade, the provider's first message) is not added to the caller's wait;
	// an answer without words (a tool call alone) closes it unused, before any text was
	// sent, which providers do not charge for.
	type opened struct {
		s   speech.SpeechStream
		err error
	}
	dial := make(chan opened, 1)
	dialed := time.Now()
	go func() {
		s, err := st.Stream(ctx, c.cfg.Voice, c.cfg.Speed, c.rate)
		dial <- opened{s, err}
	}()
	var first string
	for strings.TrimSpace(first) == "" {
		var delta string
		ok := false
		select {
		case delta, ok = <-text:
		case <-ctx.Done():
		}
		if !ok {
			if o := <-dial; o.s != nil {
				_ = o.s.Close()
			}
			return
		}
		first += delta
	}
	seen()
	began := time.Now()
	o := <-dial
	if o.err == nil && time.Since(dialed) > streamIdleLimit {
		// The model thought long (a slow tool): the provider may have closed the idle
		// socket by now (ElevenLabs does after 20 s). A fresh one costs a handshake.
		_ = o.s.Close()
		o.s, o.err = st.Stream(ctx, c.cfg.Voice, c.cfg.Speed, c.rate)
	}
	s, err := o.s, o.err
	if err != nil {
		c.streamFailed(ctx, err, first, text, audio, seen)
		return
	}
	defer s.Close()
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool("tts.streaming", true), attribute.Int("tts.sample_rate", s.SampleRate()))
	}

	// pushed is the text sent so far; the reader names it in each chunk, so that the
	// player knows what the audio it played was of.
	var mu sync.Mutex
	var pushed strings.Builder
	readDone := make(chan error, 1)
	var started bool // by the reader, read by this goroutine after readDone
	go func() {
		readDone <- c.readStream(ctx, s, began, send, func() string {
			mu.Lock()
			defer mu.Unlock()
			return pushed.String()
		}, &started)
	}()

	fail := func(err error) {
		_ = s.Close()
		<-readDone
		mu.Lock()
		unheard := ""
		if !started {
			unheard = pushed.String()
		}
		mu.Unlock()
		if started {
			// What was pushed was partly heard; the fallback takes up the answer's rest.
			send(chunk{sentence: 0, text: pushedText(&mu, &pushed), end: true})
		}
		c.streamFailed(ctx, err, unheard, text, audio, seen)
	}
	push := func(delta string) bool {
		seen()
		mu.Lock()
		pushed.WriteString(delta)
		mu.Unlock()
		c.mu.Lock()
		c.report.TTSCharacters += len([]rune(delta))
		c.mu.Unlock()
		if err := s.Push(delta); err != nil {
			fail(err)
			return false
		}
		return true
	}
	if !push(first) {
		return
	}
	for {
		select {
		case delta, ok := <-text:
			if !ok {
				if err := s.End(); err != nil {
					fail(err)
					return
				}
				if err := <-readDone; err != nil && ctx.Err() == nil {
					readDone <- err
					fail(err)
				}
				return
			}
			if !push(delta) {
				return
			}
		case err := <-readDone:
			// The voice ended or failed before the text did.
			if err == nil {
				err = fmt.Errorf("%w: the voice ended before the answer", speech.ErrBadFrame)
			}
			readDone <- err
			fail(err)
			return
		case <-ctx.Done():
			_ = s.Close() // cancels upstream now
			<-readDone
			return
		}
	}
}

func pushedText(mu *sync.Mutex, b *strings.Builder) string {
	mu.Lock()
	defer mu.Unlock()
	return b.String()
}

// readStream reads the voice's audio into chunks of sentence 0 until its end (nil) or a
// failure; started is set at its first audio.
func (c *conversation) readStream(ctx context.Context, s speech.SpeechStream, began time.Time, send func(chunk) bool, text func() string, started *bool) error {
	var conv *media.Resampler
	if s.SampleRate() != c.rate {
		var err error
		if conv, err = media.NewResampler(s.SampleRate(), c.rate); err != nil {
			return fmt.Errorf("%w: the voice speaks at %d Hz: %w", ErrTTS, s.SampleRate(), err)
		}
	}
	// A read of 100 ms at the voice's rate: one allocation per chunk handed to the player,
	// not per frame.
	buf := make([]int16, s.SampleRate()/10)
	var out []int16
	for {
		n, err := s.Read(buf)
		if n > 0 {
			in := buf[:n]
			var samples []int16
			if conv != nil {
				need := conv.OutLen(n)
				if cap(out) < need {
					out = make([]int16, need)
				}
				m, _ := conv.Resample(out[:need], in)
				samples = append([]int16(nil), out[:m]...)
			} else {
				samples = append([]int16(nil), in...)
			}
			ch := chunk{sentence: 0, text: text(), samples: samples}
			if !*started {
				*started, ch.start, ch.ttsFirst = true, true, time.Since(began)
			}
			if !send(ch) {
				return ctx.Err()
			}
		}
		if errors.Is(err, io.EOF) {
			send(chunk{sentence: 0, text: text(), end: true, start: !*started})
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// streamFailed speaks, with the fallback voice, unheard (what the streaming voice was given
// but did not speak) and the rest of the answer, after publishing why.
func (c *conversation) streamFailed(ctx context.Context, err error, unheard string, text <-chan string, audio chan<- chunk, seen func()) {
	if ctx.Err() != nil {
		return
	}
	c.log.Warn("streaming text-to-speech failed", "error", err)
	ev := ErrorEvent{Stage: "tts", Error: err.Error()}
	if c.cfg.FallbackTTS != nil {
		ev.Fallback = "fallback voice"
	}
	c.publish(EventError, ev)
	sentences := make(chan string, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(sentences)
		c.splitSentences(ctx, unheard, text, sentences, seen)
	}()
	c.synthesizeAll(ctx, nil, 1, sentences, audio)
	wg.Wait()
}
