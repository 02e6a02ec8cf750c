package call

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// echoDelay is how long the echo destination holds what it hears before playing it back.
const echoDelay = 500 * time.Millisecond

// Line is what a built-in destination needs of a call: its stream, its logger and its
// events. The calls of every transport are lines.
type Line interface {
	Stream() media.Stream
	Log() *slog.Logger
	Publish(typ string, data any)
}

// Destination is the built-in destination of that name (any case: "echo", "tone"), or nil.
// It returns when the line's stream ends or ctx does.
func Destination(name string) func(ctx context.Context, c Line) {
	switch strings.ToLower(name) {
	case "echo":
		return serveEcho
	case "tone":
		return serveTone
	}
	return nil
}

// serveEcho is the classic echo test: what the caller says comes back echoDelay later.
// The delay line is allocated once per call; one frame is read and written in turn.
func serveEcho(ctx context.Context, c Line) {
	st := c.Stream()
	n := int(echoDelay / media.FrameDuration)
	spf := media.SamplesPerFrame(st.SampleRate())
	f := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, spf)}
	line := newDelayLine(st.SampleRate(), n*spf)
	events := st.Events()
	for i, filled := 0, 0; ; i = (i + 1) % n {
		at := i * spf
		if filled == n { // the slot about to be refilled is the oldest: play it
			line.get(f.Samples, at)
			if err := st.WriteFrame(&f); err != nil {
				return
			}
		}
		if err := st.ReadFrame(&f); err != nil {
			return
		}
		line.put(at, f.Samples)
		filled = min(filled+1, n)
		drainEvents(c, events)
	}
}

// delayLine holds an echo's audio until it is played back. At 8 kHz, what the telephone
// network carried as G.711, it holds μ-law, a byte a sample (a μ-law call's audio comes back
// bit for bit, an A-law call's within a step of its level): half the memory of an echo
// call's largest buffer. Wider audio is held as it is.
type delayLine struct {
	pcm  []int16
	ulaw []byte
}

func newDelayLine(rate, samples int) delayLine {
	if rate == media.Rate8k {
		return delayLine{ulaw: make([]byte, samples)}
	}
	return delayLine{pcm: make([]int16, samples)}
}

func (d delayLine) put(at int, samples []int16) {
	if d.ulaw != nil {
		media.EncodePCMU(d.ulaw[at:at+len(samples)], samples)
		return
	}
	copy(d.pcm[at:], samples)
}

func (d delayLine) get(dst []int16, at int) {
	if d.ulaw != nil {
		media.DecodePCMU(dst, d.ulaw[at:at+len(dst)])
		return
	}
	copy(dst, d.pcm[at:at+len(dst)])
}

// serveTone plays a 1 kHz tone and reports the digits the caller presses as call.dtmf
// events: the line test of installers and load tests.
func serveTone(ctx context.Context, c Line) {
	st := c.Stream()
	tone := media.NewTone(1000, st.SampleRate(), 8000)
	f := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
	events := st.Events()
	// The tone also listens: what the far end says is read (and recorded) as on any call.
	go func() {
		in := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
		for st.ReadFrame(&in) == nil {
		}
	}()
	for {
		tone.Fill(f.Samples)
		if err := st.WriteFrame(&f); err != nil {
			return
		}
		drainEvents(c, events)
		if ctx.Err() != nil {
			return
		}
	}
}

// drainEvents takes the stream's pending events without waiting: DTMF is logged and
// published.
func drainEvents(c Line, events <-chan media.Event) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == media.EventDTMF {
				c.Log().Info("dtmf", "digit", string(ev.Digit), "duration", ev.Duration)
				c.Publish(EventDTMF, DTMF{Digit: string(ev.Digit), DurationMS: ev.Duration.Milliseconds()})
			}
		default:
			return
		}
	}
}
