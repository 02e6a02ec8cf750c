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
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/telemetry"
)

// Speaking is three stages: the splitter cuts the brain's text into sentences as it
// streams in, the synthesiser speaks each sentence (retrying, then falling back to the
// fallback voice) and converts it to the stream's rate, and the player, on the brain's
// goroutine, writes it frame by frame into the stream, which paces it in real time.
// Between frames the player watches the ear for the caller barging in.

type sayOptions struct {
	// noBargeIn protects what is said (the first message, goodbyes).
	noBargeIn bool
	// ignoreEnd speaks although the conversation is over for the brain (goodbyes).
	ignoreEnd bool
	// internal is said by the conversation itself: no metrics are taken for it.
	internal bool
}

// chunk is audio of one sentence at the stream's rate; the last chunk of a sentence has
// end set. err ends the whole answer.
type chunk struct {
	sentence int
	text     string
	samples  []int16
	end      bool
	err      error
	// ttsFirst is the synthesiser's time to first audio, on a sentence's first chunk.
	ttsFirst time.Duration
	start    bool
}

// Say implements agent.Conversation.
func (c *conversation) Say(ctx context.Context, text string) (agent.Spoken, error) {
	return c.say(ctx, text, sayOptions{})
}

// Speak implements agent.Conversation.
func (c *conversation) Speak(ctx context.Context, text <-chan string) (agent.Spoken, error) {
	return c.speak(ctx, text, sayOptions{})
}

func (c *conversation) say(ctx context.Context, text string, opts sayOptions) (agent.Spoken, error) {
	ch := make(chan string, 1)
	ch <- text
	close(ch)
	return c.speak(ctx, ch, opts)
}

func (c *conversation) speak(ctx context.Context, text <-chan string, opts sayOptions) (agent.Spoken, error) {
	called := time.Now()
	if !opts.ignoreEnd {
		if err := c.check(ctx); err != nil {
			c.drain(text)
			return agent.Spoken{}, err
		}
	}
	if c.cfg.TTS == nil && c.cfg.FallbackTTS == nil {
		c.drain(text)
		c.publish(EventError, ErrorEvent{Stage: "tts", Error: ErrNoTTS.Error()})
		return agent.Spoken{}, ErrNoTTS
	}
	c.mu.Lock()
	first := !c.spoke
	c.spoke = true
	var pend *pendingAnswer
	if !opts.internal {
		pend, c.pending = c.pending, nil
	}
	c.mu.Unlock()
	bargeIn := c.cfg.Turn.Interruptions && !opts.noBargeIn && (c.cfg.BargeInDuringFirstMessage || !first)

	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopCtx := context.AfterFunc(ctx, cancel)
	defer stopCtx()

	audio := make(chan chunk, 256)
	var firstText time.Time
	var firstOnce sync.Once
	seen := func() { firstOnce.Do(func() { firstText = time.Now() }) }
	var wg sync.WaitGroup
	if st, ok := c.cfg.TTS.(speech.StreamingTTS); ok {
		// A streaming voice takes the text as the brain writes it: no waiting for a
		// sentence's end before the first audio.
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(audio)
			c.streamAnswer(sctx, st, text, audio, seen)
		}()
	} else {
		sentences := make(chan string, 64)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(sentences)
			c.splitSentences(sctx, "", text, sentences, seen)
		}()
		go func() {
			defer wg.Done()
			defer close(audio)
			c.synthesizeAll(sctx, c.cfg.TTS, 0, sentences, audio)
		}()
	}

	sp, err := c.play(ctx, audio, bargeIn, opts)
	if err == nil && !opts.internal && sp.firstFrame.IsZero() && !sp.spoken.Interrupted {
		// Nothing sounded (a tool call, say): what the brain does next waits for the turn
		// too, and is dropped with it.
		var outcome int
		if outcome, err = c.awaitTurn(ctx); outcome == specCancelled && err == nil {
			sp.dropped, sp.spoken.Interrupted = true, true
		}
	}
	cancel()
	wg.Wait()
	// Whatever the brain still sends is dropped, so its producer never blocks.
	c.drain(text)

	end := time.Now()
	turn := Turn{Role: "assistant", Text: sp.spoken.Text, Start: called, End: end, Interrupted: sp.spoken.Interrupted}
	if !sp.firstFrame.IsZero() {
		turn.Start = sp.firstFrame
	}
	if pend != nil && sp.firstFrame.IsZero() {
		// Nothing was played (the brain spoke no text before a tool call): the caller is
		// still waiting, and the next answer that sounds is the one the latency is of.
		c.mu.Lock()
		if c.pending == nil {
			c.pending = pend
		}
		c.mu.Unlock()
	}
	if pend != nil && !sp.firstFrame.IsZero() {
		m := &TurnMetrics{
			EndOfSpeechMS:     pend.endOfSpeechMS,
			STTMS:             pend.sttMS,
			BrainFirstTokenMS: msSince(pend.listenDone, firstOrNow(firstText, called)),
			KnowledgeMS:       pend.knowledgeMS,
			TTSFirstAudioMS:   float64(sp.ttsFirst) / float64(time.Millisecond),
			VoiceToVoiceMS:    msSince(pend.lastVoiced, sp.firstFrame),
		}
		turn.Metrics = m
		c.publish(EventMetrics, *m)
		c.cfg.Turns.Observe(metrics.Turn{VoiceToVoiceMS: m.VoiceToVoiceMS, EndOfSpeechMS: m.EndOfSpeechMS, STTMS: m.STTMS,
			ModelFirstTokenMS: m.BrainFirstTokenMS, RetrievalMS: m.KnowledgeMS, TTSFirstAudioMS: m.TTSFirstAudioMS})
		c.traceAnswer(m, sp.firstFrame, sp.spoken.Interrupted)
	} else if sp.spoken.Interrupted && !opts.internal {
		c.traceAnswer(nil, sp.firstFrame, true)
	}
	c.mu.Lock()
	if sp.spoken.Interrupted && !sp.dropped {
		c.report.Interruptions++
	}
	c.mu.Unlock()
	if (sp.spoken.Text != "" || sp.spoken.Interrupted) && !sp.dropped {
		c.addTurn(turn)
		c.publish(EventAgentSpeech, turn)
	}
	if err == nil && !opts.ignoreEnd {
		err = c.check(ctx)
	}
	return sp.spoken, err
}

func firstOrNow(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

func msSince(from, to time.Time) float64 {
	return float64(to.Sub(from)) / float64(time.Millisecond)
}

// drain reads text to its end in the background, so that a producer never blocks on an
// answer nobody plays; it gives up when the call is torn down.
func (c *conversation) drain(text <-chan string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case _, ok := <-text:
				if !ok {
					return
				}
			case <-c.over:
				return
			}
		}
	}()
}

// splitSentences cuts prefix and then the brain's text into sentences until text closes
// or ctx ends; seen is called at the first text that is not blank.
func (c *conversation) splitSentences(ctx context.Context, prefix string, text <-chan string, sentences chan<- string, seen func()) {
	var sp sentenceSplitter
	emit := func(s string) bool {
		select {
		case sentences <- s:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, s := range sp.push(prefix) {
		if !emit(s) {
			return
		}
	}
	for {
		select {
		case delta, ok := <-text:
			if !ok {
				if rest := sp.flush(); rest != "" {
					emit(rest)
				}
				return
			}
			if strings.TrimSpace(delta) != "" {
				seen()
			}
			for _, s := range sp.push(delta) {
				if !emit(s) {
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// synthesizeAll speaks each sentence into audio, with primary (nil: the fallback voice
// alone), numbering them from first, until sentences closes or ctx ends.
func (c *conversation) synthesizeAll(ctx context.Context, primary speech.TTS, first int, sentences <-chan string, audio chan<- chunk) {
	send := func(ch chunk) bool {
		select {
		case audio <- ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	i := first
	for s := range sentences {
		if err := c.synthesize(ctx, primary, i, s, send); err != nil {
			if ctx.Err() == nil {
				send(chunk{sentence: i, text: s, err: err})
			}
			return
		}
		i++
	}
}

// synthesize speaks one sentence: primary, once more if it fails, then the fallback voice.
// A failure is published as an agent.error event.
func (c *conversation) synthesize(ctx context.Context, primary speech.TTS, index int, text string, send func(chunk) bool) (err error) {
	ctx, span := telemetry.Start(ctx, "tts")
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("tts.sentence", index), attribute.Int("tts.characters", len([]rune(text))))
		defer func() {
			if ctx.Err() == nil {
				telemetry.Fail(span, err)
			}
			span.End()
		}()
	}
	c.mu.Lock()
	c.report.TTSCharacters += len([]rune(text))
	c.mu.Unlock()
	st := &sentenceState{index: index, text: text, send: send, rate: c.rate}
	if primary != nil {
		for attempt := range 2 {
			if err = st.speak(ctx, primary, c.cfg.Voice, c.cfg.Speed); err == nil || ctx.Err() != nil {
				return err
			}
			c.log.Warn("text-to-speech failed", "attempt", attempt+1, "error", err)
		}
	}
	if c.cfg.FallbackTTS != nil {
		if err != nil && primary != nil {
			c.publish(EventError, ErrorEvent{Stage: "tts", Error: err.Error(), Fallback: "fallback voice"})
		}
		// The fallback's voice names differ: it speaks with its default voice. What was
		// already played of the sentence is not played twice.
		st.fallback = true
		if ferr := st.speak(ctx, c.cfg.FallbackTTS, "", c.cfg.Speed); ferr == nil || ctx.Err() != nil {
			return ferr
		} else {
			err = errors.Join(err, ferr)
		}
	}
	if err == nil {
		err = ErrNoTTS
	}
	c.publish(EventError, ErrorEvent{Stage: "tts", Error: err.Error()})
	return errors.Join(ErrTTS, err)
}

// sentenceState is one sentence through its attempts: how much of it was already sent,
// so a retry does not repeat it.
type sentenceState struct {
	index    int
	text     string
	send     func(chunk) bool
	rate     int
	sent     int // samples at the voice's rate already sent
	started  bool
	fallback bool
	buf      []int16
	out      []int16
}

func (st *sentenceState) speak(ctx context.Context, tts speech.TTS, voice string, speed float64) error {
	began := time.Now()
	a, err := tts.Synthesize(ctx, st.text, voice, speed)
	if err != nil {
		return err
	}
	defer a.Close()
	conv, err := media.NewResampler(a.SampleRate(), st.rate) // any provider's rate, espeak-ng's 22,050 Hz included
	if err != nil {
		return fmt.Errorf("%w: the voice speaks at %d Hz: %w", ErrTTS, a.SampleRate(), err)
	}
	if st.buf == nil {
		st.buf = make([]int16, 1024)
	}
	skip := st.sent
	if st.fallback {
		// Another voice: its samples do not line up with the first one's.
		skip, st.sent = 0, 0
	}
	pos := 0
	for {
		n, rerr := a.Read(st.buf)
		if n > 0 {
			in := st.buf[:n]
			if pos+n <= skip {
				pos += n
				in = nil
			} else if pos < skip {
				in = in[skip-pos:]
				pos = skip
			}
			if len(in) > 0 {
				pos += len(in)
				need := conv.OutLen(len(in))
				if cap(st.out) < need {
					st.out = make([]int16, need)
				}
				m, _ := conv.Resample(st.out[:need], in)
				samples := make([]int16, m)
				copy(samples, st.out[:m])
				ch := chunk{sentence: st.index, text: st.text, samples: samples}
				if !st.started {
					st.started, ch.start, ch.ttsFirst = true, true, time.Since(began)
					if span := trace.SpanFromContext(ctx); span.IsRecording() {
						span.AddEvent("first_audio", trace.WithAttributes(attribute.Float64("tts.first_audio_ms", msSince(began, time.Now()))))
					}
				}
				if !st.send(ch) {
					return ctx.Err()
				}
				st.sent = pos
			}
		}
		if errors.Is(rerr, io.EOF) {
			if !st.send(chunk{sentence: st.index, text: st.text, end: true, start: !st.started}) {
				return ctx.Err()
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// played is what the player did.
type played struct {
	spoken     agent.Spoken
	firstFrame time.Time
	ttsFirst   time.Duration
	// dropped says the answer was to a turn the caller went on with: nothing was played,
	// and to the brain it was interrupted before its first word.
	dropped bool
	// samples is the audio the caller heard, at the stream's rate: what was written, less
	// what a far end that buffers still held when it was cleared.
	samples int
}

// sentenceProgress is a sentence as the player knows it.
type sentenceProgress struct {
	text          string
	total, played int // samples at the stream's rate
	done          bool
}

// play writes audio into the stream until it ends, the caller barges in (when bargeIn),
// the call ends or ctx ends. A sentence's last frame is padded with silence, so that
// every frame belongs to one sentence and what was played is counted per sentence.
func (c *conversation) play(ctx context.Context, audio <-chan chunk, bargeIn bool, opts sayOptions) (played, error) {
	var res played
	var sents []*sentenceProgress
	frameLen := len(c.out.Samples)
	fill := 0        // samples in c.out
	cur := -1        // the sentence c.out holds
	var rest []int16 // of the chunk being copied
	padNow := false  // the sentence ended: write the partial frame
	c.mu.Lock()
	keysBefore := len(c.keys)
	// held says the answer is to a turn not yet over (a speculation): until it is, the
	// agent is not speaking, and the caller's words are a turn of theirs, no barge-in.
	held := c.spec != nil && !opts.internal
	c.mu.Unlock()
	c.playing.Store(!held)
	defer c.playing.Store(false)

	// spoken is the text heard: whole sentences played, and the played share of the words
	// of the one cut.
	spoken := func() string {
		var parts []string
		for _, s := range sents {
			switch {
			case s.played == 0:
			case s.done && s.played >= s.total:
				parts = append(parts, s.text)
			default:
				total := max(s.total, s.played)
				if p := wordsPrefix(s.text, float64(s.played)/float64(total)); p != "" {
					parts = append(parts, p)
				}
			}
		}
		return strings.Join(parts, " ")
	}
	finish := func(interrupted bool, err error) (played, error) {
		if interrupted {
			// What the far end still held unplayed was not heard: take it back from the
			// last sentences, so that the history keeps only what the caller heard.
			unheard := c.clearUnheard()
			for i := len(sents) - 1; i >= 0 && unheard > 0; i-- {
				take := min(unheard, sents[i].played)
				sents[i].played -= take
				unheard -= take
			}
		}
		for _, s := range sents {
			res.samples += s.played
		}
		res.spoken = agent.Spoken{Text: spoken(), Interrupted: interrupted}
		return res, err
	}
	for {
		if opts.ignoreEnd {
			if c.isGone() {
				return finish(false, agent.ErrHangup)
			}
			if err := ctx.Err(); err != nil {
				return finish(false, err)
			}
		} else if err := c.check(ctx); err != nil {
			return finish(false, err)
		}
		if bargeIn && !held {
			switch c.bargeInState(keysBefore) {
			case bargeInStop:
				return finish(true, nil)
			case bargeInPause:
				switch c.pauseForBargeIn(ctx) {
				case pauseInterrupted:
					return finish(true, nil)
				case pauseEnded:
					return finish(false, c.check(ctx))
				}
				continue
			}
		}
		if fill == frameLen || (padNow && fill > 0) {
			if held {
				// An answer to a turn not yet over sounds only once it is.
				outcome, err := c.awaitTurn(ctx)
				held = false
				c.playing.Store(true)
				if err != nil {
					return finish(false, err)
				} else if outcome == specCancelled {
					res.dropped, res.spoken = true, agent.Spoken{Interrupted: true}
					return res, nil
				}
			}
			clear(c.out.Samples[fill:])
			if err := c.stream.WriteFrame(&c.out); err != nil {
				if errors.Is(err, media.ErrClosed) {
					err = agent.ErrHangup
				}
				return finish(false, err)
			}
			now := time.Now()
			c.lastWrite.Store(now.UnixNano())
			if res.firstFrame.IsZero() {
				res.firstFrame = now
			}
			sents[cur].played += fill
			fill = 0
			continue
		}
		padNow = false
		if len(rest) > 0 {
			n := copy(c.out.Samples[fill:], rest)
			fill += n
			rest = rest[n:]
			continue
		}
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-audio:
		case <-c.kick:
			continue
		case <-c.gone:
			continue
		case <-ctx.Done():
			continue
		}
		if !ok {
			return finish(false, nil)
		}
		if ch.err != nil {
			return finish(false, ch.err)
		}
		for len(sents) <= ch.sentence {
			sents = append(sents, &sentenceProgress{text: ch.text})
		}
		if ch.start && res.ttsFirst == 0 {
			res.ttsFirst = ch.ttsFirst
		}
		sp := sents[ch.sentence]
		if len(ch.text) > len(sp.text) {
			sp.text = ch.text // a streamed answer's text grows as it is spoken
		}
		sp.total += len(ch.samples)
		cur, rest = ch.sentence, ch.samples
		if ch.end {
			sp.done, padNow = true, true
		}
	}
}

// clearUnheard stops a stream that buffers at the far end from playing the rest of what
// it holds, on barge-in, and returns how many samples (at the stream's rate) were not heard.
func (c *conversation) clearUnheard() int {
	cl, ok := c.stream.(media.Clearer)
	if !ok {
		return 0
	}
	return int(cl.Clear().Seconds() * float64(c.stream.SampleRate()))
}
