package voice

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
)

// With a streaming transcriber the ear writes every frame of the caller's audio to the
// provider for the whole call, and the transcript is there as the caller speaks: the turn
// ends on the VAD and the transcript together. The provider's end of utterance ends it
// (speech_final, UtteranceEnd, completed); so does a complete sentence in the interim
// transcript at the short silence, before the provider's final; a transcript that trails
// off in a conjunction or a number being read waits the longer silence even when the
// provider says the utterance ended; otherwise the VAD's endpointing silence ends it with
// the transcript so far. With turn.early_start_ms the brain may start sooner, on a
// transcript that stood while the caller paused; its answer is held until the turn is over
// (awaitTurn) and dropped if the caller goes on.

// liveGrace is how long past the endpointing silence a segment waits for the provider's
// first words before it is taken for noise: the transcript of a stream lags the audio.
const liveGrace = 700 * time.Millisecond

// liveText is the transcript of the caller's speech as the provider sends it.
type liveText struct {
	stream *speech.STTStream

	mu sync.Mutex
	// done is the text of the provider's utterances that ended and were not yet taken by a
	// turn, doneAt when the last of them ended; cur is the utterance being heard.
	done   string
	doneAt time.Time
	cur    string
	// at is when the text last changed.
	at time.Time
	// skip is the words of the provider's current utterance that a turn already took (the
	// turn ended before the provider's final): they are not the next turn's.
	skip int
	// speaking says the provider heard speech begin and has not ended the utterance.
	speaking bool
	failed   bool
	// endedAt is when the provider last ended an utterance, whatever its words.
	endedAt time.Time
}

// pump takes the stream's events until it ends, and says whether it failed.
func (l *liveText) pump(wake func()) error {
	for ev := range l.stream.Events() {
		l.mu.Lock()
		switch {
		case ev.SpeechStarted:
			l.speaking = true
		case ev.EndOfUtterance:
			if text := l.strip(ev.Text); text != "" {
				l.done = joinText(l.done, text)
				l.doneAt, l.at = ev.At, ev.At
			}
			l.cur, l.skip, l.speaking, l.endedAt = "", 0, false, ev.At
		case ev.Text != "":
			if text := l.strip(ev.Text); text != l.cur {
				l.cur, l.at = text, ev.At
			}
			l.speaking = true
		}
		l.mu.Unlock()
		wake()
	}
	err := l.stream.Err()
	if err != nil {
		l.mu.Lock()
		l.failed = true
		l.mu.Unlock()
		wake()
	}
	return err
}

// strip drops the words a turn already took. The caller holds mu.
func (l *liveText) strip(text string) string {
	if l.skip == 0 {
		return strings.TrimSpace(text)
	}
	words := strings.Fields(text)
	if len(words) <= l.skip {
		return ""
	}
	return strings.Join(words[l.skip:], " ")
}

// heard is the transcript of a segment that began at start: the ended utterances since,
// and the one being heard; ended says the provider ended the last of them.
func (l *liveText) heard(start time.Time) (text string, ended bool, at time.Time, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != "" && l.doneAt.Before(start) {
		l.done = "" // speech the VAD did not take for a turn
	}
	return joinText(l.done, l.cur), l.cur == "" && l.done != "", l.at, l.failed
}

// take gives the transcript so far to a turn (or drops it with noise): the provider's
// words of it that are still to come are not the next turn's.
func (l *liveText) take() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur != "" {
		l.skip += len(strings.Fields(l.cur))
	}
	l.done, l.cur = "", ""
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

// openLive starts the call's transcription stream; nil when the agent's transcriber does
// not stream.
func (c *conversation) openLive(ctx context.Context) *liveText {
	if c.cfg.StreamingSTT == nil {
		return nil
	}
	s, err := c.cfg.StreamingSTT.Open(ctx, speech.StreamOptions{Rate: vadRate, Language: c.cfg.Language, EndpointingMS: c.cfg.Turn.STTEndpointingMS})
	if err != nil {
		c.log.Warn("the live transcriber cannot start", "error", err)
		c.publish(EventError, ErrorEvent{Stage: "stt", Error: err.Error()})
		return nil
	}
	return &liveText{stream: s}
}

// Outcomes of endpointLive besides a turn.
const (
	liveWaiting = iota
	liveTurn
	liveDropped  // the segment was consumed: noise, a backchannel
	liveNotHeard // the transcriber is gone: the caller is to be told
)

// endpointLive advances a segment's endpointing with the live transcript. The caller
// holds the ear's mu; with liveTurn, in is the input.
func (c *conversation) endpointLive(s *segment, silence time.Duration) (in agent.Input, outcome int) {
	text, ended, at, failed := c.live.heard(s.start)
	threshold := c.endpointing
	waitLonger := endsInDigits(text) || endsInConjunction(text)
	if waitLonger {
		threshold += digitsExtra
	}
	switch {
	case failed && (silence >= c.endpointing || s.closed):
		return in, liveNotHeard
	case text == "" && (silence >= threshold+liveGrace || s.closed):
		c.ear.consume(s) // noise the VAD took for speech
		c.live.take()
		return in, liveDropped
	case text == "":
		return in, liveWaiting
	case s.overlapped && !s.bargeIn && isBackchannel(text) && (ended || silence >= c.specSilence):
		c.ear.consume(s)
		c.live.take()
		return in, liveDropped
	case s.closed, silence >= threshold,
		ended && silence >= liveMinSilence && !waitLonger,
		!waitLonger && endsSentence(text) && silence >= c.specSilence:
		return c.takeLive(s, text, at, nil), liveTurn
	case c.earlyStart > 0 && !waitLonger && silence >= liveMinSilence && endsSentence(text),
		c.earlyStart > 0 && !waitLonger && silence >= max(liveMinSilence, c.earlyStart) && time.Since(at) >= c.earlyStart-media.FrameDuration/2:
		// The caller paused and the transcript stands (a complete sentence needs no more
		// standing than the pause the provider's end of utterance needs; the standing is
		// looked at on each frame heard, so it is taken to the nearest frame, not the one
		// after it, for an interim that came between two frames): the brain starts
		// now, and what it says waits for the turn to be over (awaitTurn), or is dropped if
		// the caller goes on.
		return c.takeLive(s, text, at, &speculation{lastVoiced: s.lastVoiced, text: text, at: time.Now()}), liveTurn
	}
	return in, liveWaiting
}

// takeLive ends the caller's turn with s and its live transcript. The caller holds the
// ear's mu.
func (c *conversation) takeLive(s *segment, text string, at time.Time, spec *speculation) agent.Input {
	s.text, s.textOK, s.textVoiced = text, true, s.voiced
	s.sttDone = at
	s.sttMS = max(0, ms64(at.Sub(s.lastVoiced)))
	c.live.take()
	c.mu.Lock()
	c.spec = spec
	c.mu.Unlock()
	return c.acceptTurn(s)
}

// speculation is a turn given to the brain before it was over (turn.early_start_ms).
type speculation struct {
	lastVoiced time.Time
	text       string
	at         time.Time
}

// Outcomes of a speculative turn.
const (
	specConfirmed = iota
	specCancelled
)

// awaitTurn holds an answer until the speculative turn it answers is over: confirmed once
// it would have ended anyway (the provider's end of utterance, a complete sentence at the
// short pause, the endpointing silence) with the caller still silent; cancelled as soon as
// the caller speaks again. Without a speculation it returns at once (confirmed).
func (c *conversation) awaitTurn(ctx context.Context) (int, error) {
	c.mu.Lock()
	spec := c.spec
	c.mu.Unlock()
	if spec == nil {
		return specConfirmed, nil
	}
	defer func() {
		c.mu.Lock()
		if c.spec == spec {
			c.spec = nil
		}
		c.mu.Unlock()
	}()
	for {
		e := c.ear
		e.mu.Lock()
		spoke := e.first() != nil
		e.mu.Unlock()
		if spoke {
			c.publish(EventSpeculationDropped, map[string]any{"text": spec.text})
			return specCancelled, nil
		}
		c.live.mu.Lock()
		ended := c.live.endedAt.After(spec.at)
		c.live.mu.Unlock()
		silence := time.Since(spec.lastVoiced)
		if silence >= c.endpointing || (ended && silence >= liveMinSilence) || (endsSentence(spec.text) && silence >= c.specSilence) {
			return specConfirmed, nil
		}
		if err := c.waitKick(ctx, pollInterval, false); err != nil {
			return specCancelled, err
		}
	}
}

// liveMinSilence is the VAD's silence that must agree with the provider's end of
// utterance: the provider's own endpointing already waited, and the VAD only makes sure
// the caller is not still speaking.
const liveMinSilence = 100 * time.Millisecond
