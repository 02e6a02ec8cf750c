package voice

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/call"
)

// Listening is endpointing over the ear's segments. At a short silence (300 ms) the
// utterance so far is transcribed speculatively; a transcript that ends a sentence ends
// the turn at once. Otherwise the turn ends at the endpointing silence (600 ms by
// default), with the speculative transcript if the caller said nothing more, or a new
// one; a transcript ending in digits or number words waits longer, as callers pause
// between groups of a number. Keys pressed are collected into DTMF input. With a live
// transcriber the transcript comes with the speech instead (live.go).

const (
	defaultInterDigit = 3 * time.Second
	pollInterval      = 100 * time.Millisecond
)

// sttJob is a transcription running beside the listening loop.
type sttJob struct {
	seg    *segment
	voiced int // the segment's voiced frames when its audio was taken
	done   chan struct{}
	text   string
	took   time.Duration
	// finished is when the transcription ended.
	finished time.Time
	err      error
	cancel   context.CancelFunc
}

// transcribe runs STT on pcm (16 kHz), once more if it fails.
func (c *conversation) transcribe(ctx context.Context, pcm []int16) (string, time.Duration, error) {
	c.mu.Lock()
	c.report.STTSeconds += float64(len(pcm)) / vadRate
	c.mu.Unlock()
	var err error
	for attempt := range 2 {
		began := time.Now()
		var text string
		text, err = c.cfg.STT.Transcribe(ctx, pcm, vadRate, c.cfg.Language)
		if err == nil {
			return strings.TrimSpace(text), time.Since(began), nil
		}
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		c.log.Warn("speech-to-text failed", "attempt", attempt+1, "error", err)
	}
	return "", 0, err
}

// Listen implements agent.Conversation. The turn answered until now is over; the caller's
// next one is traced from its end of speech.
func (c *conversation) Listen(ctx context.Context, opts agent.ListenOptions) (agent.Input, error) {
	c.endTurn()
	in, err := c.listen(ctx, opts)
	if err == nil && (in.Kind == agent.InputSpeech || in.Kind == agent.InputDTMF) {
		c.mu.Lock()
		pend := c.pending
		c.mu.Unlock()
		c.beginTurn(in, pend)
	}
	return in, err
}

func (c *conversation) listen(ctx context.Context, opts agent.ListenOptions) (agent.Input, error) {
	wantSpeech, wantDTMF := opts.Speech, opts.DTMF
	if !wantSpeech && !wantDTMF {
		wantSpeech, wantDTMF = true, true
	}
	terminator := opts.Terminator
	if terminator == 0 && opts.MaxDigits != 1 {
		terminator = '#'
	}
	interDigit := opts.InterDigit
	if interDigit <= 0 {
		interDigit = defaultInterDigit
	}
	idleMode := opts.Timeout <= 0
	began := time.Now()
	c.mu.Lock()
	c.pending = nil // a turn not answered has no latency to measure
	c.mu.Unlock()
	lastActivity := began
	reminded := false

	var digits []rune
	var digitsStart, lastKey time.Time
	var job *sttJob
	stopJob := func() {
		if job != nil {
			job.cancel()
			<-job.done
			job = nil
		}
	}
	defer stopJob()

	for {
		if err := c.check(ctx); err != nil {
			return agent.Input{}, err
		}
		now := time.Now()

		// Keys.
		c.mu.Lock()
		keys := c.keys
		c.keys = nil
		c.mu.Unlock()
		if wantDTMF {
			for _, k := range keys {
				if len(digits) == 0 {
					digitsStart = k.at
				}
				lastKey, lastActivity = k.at, k.at
				if k.digit == terminator && terminator != 0 {
					return c.dtmfInput(string(digits), digitsStart, k.at), nil
				}
				digits = append(digits, k.digit)
				if opts.MaxDigits > 0 && len(digits) >= opts.MaxDigits {
					return c.dtmfInput(string(digits), digitsStart, k.at), nil
				}
			}
			if len(digits) > 0 && now.Sub(lastKey) >= interDigit {
				return c.dtmfInput(string(digits), digitsStart, lastKey), nil
			}
		}

		// Speech.
		if wantSpeech && len(digits) == 0 {
			in, done, err := c.endpoint(ctx, &job, &lastActivity)
			if err != nil {
				return agent.Input{}, err
			}
			if done {
				return in, nil
			}
		} else if !wantSpeech {
			c.dropSpeech(&lastActivity)
		}

		// Time.
		if len(digits) == 0 && !c.turnPending() && job == nil {
			switch {
			case !idleMode && now.Sub(inputFrom(began, lastActivity, wantSpeech)) >= opts.Timeout:
				return agent.Input{Kind: agent.InputTimeout, Start: began, End: now}, nil
			case idleMode && now.Sub(lastActivity) >= c.idle:
				stopJob()
				return agent.Input{}, c.idleHangup(ctx)
			case idleMode && !reminded && now.Sub(lastActivity) >= c.idle/2:
				reminded = true
				c.publish(EventIdle, map[string]any{"text": c.reminder})
				if _, err := c.say(ctx, c.reminder, sayOptions{internal: true}); err != nil {
					return agent.Input{}, err
				}
				if !c.turnPending() {
					// The reminder's own length does not count against the caller.
					lastActivity = time.Now().Add(-c.idle / 2)
				}
				continue
			}
		}
		if err := c.waitKick(ctx, pollInterval, false); err != nil {
			return agent.Input{}, err
		}
	}
}

// inputFrom is when a Listen's no-input timeout starts: when it began or, if it takes speech,
// when the caller last spoke or was last spoken to about it (an apology for a transcription
// that failed), so that a caller who talked into the wait is owed the whole of it again. A
// Listen for keys only is not prolonged by talk it does not want.
func inputFrom(began, lastActivity time.Time, wantSpeech bool) time.Time {
	if wantSpeech && lastActivity.After(began) {
		return lastActivity
	}
	return began
}

func (c *conversation) dtmfInput(digits string, start, end time.Time) agent.Input {
	c.keysTurn(digits, start, end)
	return agent.Input{Kind: agent.InputDTMF, Digits: digits, Start: start, End: end}
}

// keysTurn keeps the keys the caller typed as a turn of theirs: in the transcript, the
// report and the events.
func (c *conversation) keysTurn(digits string, start, end time.Time) {
	t := Turn{Role: "user", DTMF: digits, Start: start, End: end}
	c.mu.Lock()
	c.report.Turns++
	c.mu.Unlock()
	c.addTurn(t)
	c.publish(EventTranscript, t)
}

// turnPending says the caller said something not yet made a turn or dropped: no time
// limit runs out on it.
func (c *conversation) turnPending() bool {
	e := c.ear
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.first() != nil
}

// dropSpeech forgets utterances a Listen for keys only does not want.
func (c *conversation) dropSpeech(lastActivity *time.Time) {
	e := c.ear
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := e.first(); s != nil; s = e.first() {
		if s == e.open && s.silent < 10 {
			*lastActivity = time.Now()
			return
		}
		e.consume(s)
	}
}

// endpoint advances the turn's endpointing by what the ear heard since the last call: it
// drops what is not a turn, runs speculative and final transcriptions, and returns the
// input once the turn is over.
func (c *conversation) endpoint(ctx context.Context, job **sttJob, lastActivity *time.Time) (agent.Input, bool, error) {
	e := c.ear
	for {
		// A finished transcription.
		if j := *job; j != nil {
			select {
			case <-j.done:
				*job = nil
				e.mu.Lock()
				if j.seg.pcm != nil {
					if j.err == nil {
						j.seg.text, j.seg.textVoiced, j.seg.textOK, j.seg.sttMS, j.seg.sttDone = j.text, j.voiced, true, ms64(j.took), j.finished
					} else if !errors.Is(j.err, context.Canceled) {
						j.seg.textOK = false
						e.mu.Unlock()
						if err := c.notUnderstood(ctx, j.seg, j.err); err != nil {
							return agent.Input{}, false, err
						}
						// The caller is owed the whole wait again after being asked to repeat.
						*lastActivity = time.Now()
						continue
					}
				}
				e.mu.Unlock()
			default:
			}
		}

		e.mu.Lock()
		s := e.first()
		if s == nil {
			e.mu.Unlock()
			return agent.Input{}, false, nil
		}
		if s.silent < 10 {
			*lastActivity = time.Now()
		}
		silence := time.Duration(s.silent) * 20 * time.Millisecond
		speech := time.Duration(s.span) * 20 * time.Millisecond
		// Speech over the agent that did not interrupt it, short or a backchannel, is no turn.
		if s.overlapped && !s.bargeIn && silence >= c.specSilence && speech < c.minInterrupt {
			e.consume(s)
			e.mu.Unlock()
			continue
		}
		if c.live != nil {
			in, outcome := c.endpointLive(s, silence)
			e.mu.Unlock()
			switch outcome {
			case liveDropped:
				continue
			case liveNotHeard:
				if err := c.notUnderstood(ctx, s, c.live.stream.Err()); err != nil {
					return agent.Input{}, false, err
				}
				*lastActivity = time.Now()
				continue
			}
			return in, outcome == liveTurn, nil
		}
		if c.cfg.STT == nil {
			if silence >= c.endpointing || s.closed {
				e.consume(s) // heard, not understood
				e.mu.Unlock()
				continue
			}
			e.mu.Unlock()
			return agent.Input{}, false, nil
		}
		fresh := s.textOK && s.textVoiced == s.voiced
		if fresh {
			text := s.text
			threshold := c.endpointing
			if endsInDigits(text) || endsInConjunction(text) {
				threshold += digitsExtra
			}
			early := endsSentence(text)
			switch {
			case text == "" && silence >= threshold:
				e.consume(s) // noise the VAD took for speech
				e.mu.Unlock()
				continue
			case s.overlapped && !s.bargeIn && isBackchannel(text):
				e.consume(s)
				e.mu.Unlock()
				continue
			case text != "" && (silence >= threshold || (early && silence >= c.specSilence) || s.closed):
				in := c.acceptTurn(s)
				e.mu.Unlock()
				return in, true, nil
			}
			e.mu.Unlock()
			return agent.Input{}, false, nil
		}
		// Transcribe what was said so far once the caller paused.
		if (silence >= c.specSilence || s.closed) && *job == nil {
			j := &sttJob{seg: s, voiced: s.voiced, done: make(chan struct{})}
			pcm := e.snapshot(s)
			e.mu.Unlock()
			jctx, cancel := context.WithCancel(ctx)
			j.cancel = cancel
			*job = j
			go func() {
				j.text, j.took, j.err = c.transcribe(jctx, pcm)
				j.finished = time.Now()
				close(j.done)
				c.wake() // the turn may be over now, not at the next frame
			}()
			return agent.Input{}, false, nil
		}
		e.mu.Unlock()
		return agent.Input{}, false, nil
	}
}

// acceptTurn ends the caller's turn with s. The caller holds the ear's mu.
func (c *conversation) acceptTurn(s *segment) agent.Input {
	now := time.Now()
	in := agent.Input{Kind: agent.InputSpeech, Text: s.text, Start: s.start, End: s.lastVoiced}
	p := &pendingAnswer{
		lastVoiced:    s.lastVoiced,
		listenDone:    now,
		endOfSpeechMS: msSince(s.lastVoiced, now),
		sttMS:         s.sttMS,
		sttDone:       s.sttDone,
	}
	c.ear.consume(s)
	t := Turn{Role: "user", Text: in.Text, Start: in.Start, End: in.End}
	c.mu.Lock()
	c.pending = p
	c.report.Turns++
	c.transcript = append(c.transcript, t)
	c.mu.Unlock()
	c.publish(EventTranscript, t)
	return in
}

// notUnderstood handles an utterance STT failed on twice: it is dropped, the failure
// published, and the caller asked to say it again.
func (c *conversation) notUnderstood(ctx context.Context, s *segment, err error) error {
	c.ear.mu.Lock()
	if s.pcm != nil {
		c.ear.consume(s)
	}
	c.ear.mu.Unlock()
	c.publish(EventError, ErrorEvent{Stage: "stt", Error: err.Error(), Fallback: "asked the caller to repeat"})
	_, serr := c.say(ctx, notUnderstood, sayOptions{internal: true})
	return serr
}

// idleHangup says goodbye to a silent caller and ends the call.
func (c *conversation) idleHangup(ctx context.Context) error {
	c.setReason(call.ReasonIdleTimeout)
	_, _ = c.say(ctx, idleGoodbye, sayOptions{internal: true, noBargeIn: true})
	c.end()
	c.drainTail(ctx)
	if !c.isGone() {
		c.line.Hangup(string(call.ReasonIdleTimeout))
	}
	return agent.ErrHangup
}
