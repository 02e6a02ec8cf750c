package voice

import (
	"context"
	"time"
)

// Barge-in: caller speech that has lasted MinInterruptionMS pauses playback at once. If it
// is long it is an interruption; if it is short, it is transcribed when it ends, and a
// backchannel ("uh-huh", "okay") is dropped and playback resumes where it paused, while
// anything else is an interruption and the next input. A key pressed stops playback too.
// Without STT only keys interrupt: speech the agent cannot understand would only cut the
// caller off from what it says (the menu of a keys-only agent is heard whole).

type bargeIn uint8

const (
	bargeInNone bargeIn = iota
	bargeInPause
	bargeInStop
)

type pauseOutcome uint8

const (
	pauseResume pauseOutcome = iota
	pauseInterrupted
	pauseEnded
)

// bargeInState says whether the caller is speaking over playback that started at since,
// or pressed a key (beyond the keysBefore already queued).
func (c *conversation) bargeInState(keysBefore int) bargeIn {
	c.mu.Lock()
	keys := len(c.keys) > keysBefore
	c.mu.Unlock()
	if keys {
		c.publish(EventBargeIn, BargeIn{At: time.Now(), DTMF: true})
		return bargeInStop
	}
	if c.interrupt.CompareAndSwap(true, false) {
		c.publish(EventBargeIn, BargeIn{At: time.Now()})
		return bargeInStop
	}
	e := c.ear
	e.mu.Lock()
	s := e.open
	if s == nil {
		e.mu.Unlock()
		return bargeInNone
	}
	if s.silent > 2 {
		e.mu.Unlock()
		return bargeInNone
	}
	s.overlapped = true // the caller is speaking over the agent
	if time.Duration(s.span)*20*time.Millisecond < c.minInterrupt {
		e.mu.Unlock()
		return bargeInNone
	}
	if c.cfg.STT == nil && c.live == nil && !c.speechStops {
		e.mu.Unlock()
		return bargeInNone
	}
	ev := BargeIn{At: time.Now(), Onset: s.start, Due: s.due, SpeechMS: s.speechMS()}
	e.mu.Unlock()
	c.publish(EventBargeIn, ev)
	if c.speechStops {
		return bargeInStop
	}
	return bargeInPause
}

// BargeIn is the data of a call.barge_in event: playback stopped for the caller.
type BargeIn struct {
	// At is when playback stopped: no frame was written after it.
	At time.Time `json:"at"`
	// Onset is when the caller's speech began, Due when it had lasted the minimum
	// interruption (as heard), SpeechMS how long it had lasted.
	Onset    time.Time `json:"onset"`
	Due      time.Time `json:"due"`
	SpeechMS float64   `json:"speech_ms"`
	// DTMF says a key stopped it.
	DTMF bool `json:"dtmf,omitempty"`
}

// pauseForBargeIn holds playback while the interrupting utterance goes on, and decides
// what it was.
func (c *conversation) pauseForBargeIn(ctx context.Context) pauseOutcome {
	e := c.ear
	e.mu.Lock()
	s := e.open
	e.mu.Unlock()
	if s == nil {
		return pauseResume
	}
	c.mu.Lock()
	keysBefore := len(c.keys)
	c.mu.Unlock()
	for {
		if err := c.check(ctx); err != nil {
			return pauseEnded
		}
		c.mu.Lock()
		keys := len(c.keys) > keysBefore
		c.mu.Unlock()
		if keys {
			return pauseInterrupted
		}
		e.mu.Lock()
		if s.pcm == nil { // consumed or dropped meanwhile
			e.mu.Unlock()
			return pauseResume
		}
		if time.Duration(s.span)*20*time.Millisecond >= backchannelMaxSpeech {
			s.bargeIn = true
			e.mu.Unlock()
			return pauseInterrupted
		}
		if silent := time.Duration(s.silent) * 20 * time.Millisecond; silent >= c.specSilence && c.live != nil {
			// A live transcript is there already: a backchannel resumes, words interrupt.
			text, _, _, failed := c.live.heard(s.start)
			switch {
			case failed:
				s.bargeIn = true
				e.mu.Unlock()
				return pauseInterrupted
			case text == "" && silent < c.specSilence+liveGrace:
				// The transcript lags the audio: wait for its words.
			case text == "" || isBackchannel(text):
				e.consume(s)
				c.live.take()
				e.mu.Unlock()
				return pauseResume
			default:
				s.bargeIn = true
				e.mu.Unlock()
				return pauseInterrupted
			}
		} else if silent >= c.specSilence {
			pcm := e.snapshot(s)
			voiced := s.voiced
			e.mu.Unlock()
			text, took, err := c.transcribe(ctx, pcm)
			e.mu.Lock()
			if err != nil {
				s.bargeIn = true
				e.mu.Unlock()
				return pauseInterrupted
			}
			if s.voiced != voiced && s.pcm != nil {
				e.mu.Unlock()
				continue // the caller went on: judge the whole of it
			}
			if isBackchannel(text) || text == "" {
				e.consume(s)
				e.mu.Unlock()
				c.log.Debug("backchannel over the agent", "text", text)
				return pauseResume
			}
			s.text, s.textVoiced, s.textOK, s.sttMS = text, voiced, true, ms64(took)
			s.bargeIn = true
			e.mu.Unlock()
			return pauseInterrupted
		}
		e.mu.Unlock()
		if err := c.waitKick(ctx, 100*time.Millisecond, false); err != nil {
			return pauseEnded
		}
	}
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
