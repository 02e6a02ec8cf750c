package voice

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/media"
)

const (
	defaultRecordMax     = 2 * time.Minute
	defaultRecordSilence = 3 * time.Second
	beepDuration         = 300 * time.Millisecond
	beepHz               = 440
)

// Record implements agent.Conversation: the caller's audio at the stream's rate, from after
// the beep until silence after speech, a key (StopOnDTMF), or MaxDuration.
func (c *conversation) Record(ctx context.Context, opts agent.RecordOptions) (agent.Recording, error) {
	if err := c.check(ctx); err != nil {
		return agent.Recording{}, err
	}
	maxDur := opts.MaxDuration
	if maxDur <= 0 {
		maxDur = defaultRecordMax
	}
	silence := opts.Silence
	if silence <= 0 {
		silence = defaultRecordSilence
	}
	if opts.Beep {
		if err := c.beep(ctx); err != nil {
			return agent.Recording{}, err
		}
	}
	c.mu.Lock()
	c.keys = nil
	c.mu.Unlock()
	e := c.ear
	rec := &recording{max: int(maxDur.Seconds()*float64(c.rate)) + media.SamplesPerFrame(c.rate)}
	rec.samples = make([]int16, 0, min(rec.max, 30*c.rate))
	e.mu.Lock()
	e.dropAll()
	e.rec = rec
	e.mu.Unlock()
	began := time.Now()
	stop := func() []int16 {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.rec = nil
		e.dropAll() // what was said is the message, not a turn
		return rec.samples
	}
	for {
		if err := c.check(ctx); err != nil {
			samples := stop()
			// What was recorded before the caller hung up is the message.
			if errors.Is(err, agent.ErrHangup) && len(samples) > 0 {
				return c.recordingOf(samples), nil
			}
			return agent.Recording{}, err
		}
		c.mu.Lock()
		key := len(c.keys) > 0
		if key && opts.StopOnDTMF {
			c.keys = nil
		}
		c.mu.Unlock()
		e.mu.Lock()
		n, spoke, quiet := len(rec.samples), rec.spoke, time.Duration(rec.silent)*media.FrameDuration
		e.mu.Unlock()
		switch {
		case key && opts.StopOnDTMF,
			spoke && quiet >= silence,
			n >= rec.max-media.SamplesPerFrame(c.rate) || time.Since(began) >= maxDur+time.Second:
			return c.recordingOf(stop()), nil
		}
		if err := c.waitKick(ctx, pollInterval, false); err != nil {
			continue
		}
	}
}

func (c *conversation) recordingOf(samples []int16) agent.Recording {
	wav, err := media.EncodeWAV(samples, c.rate)
	if err != nil {
		c.log.Warn("recording not encoded", "error", err)
	}
	return agent.Recording{WAV: wav, Duration: time.Duration(len(samples)) * time.Second / time.Duration(c.rate)}
}

// beep plays a 440 Hz tone of 300 ms.
func (c *conversation) beep(ctx context.Context) error {
	tone := media.NewTone(beepHz, c.rate, 8000)
	c.playing.Store(true)
	defer c.playing.Store(false)
	for range int(beepDuration / media.FrameDuration) {
		if err := c.check(ctx); err != nil {
			return err
		}
		tone.Fill(c.out.Samples)
		if err := c.stream.WriteFrame(&c.out); err != nil {
			if errors.Is(err, media.ErrClosed) {
				return agent.ErrHangup
			}
			return err
		}
		c.lastWrite.Store(time.Now().UnixNano())
	}
	return nil
}
