package sip

import (
	"context"
	"time"

	"github.com/switchboard-go/switchboard/media"
)

// echoDelay is how long the echo destination holds what it hears before playing it back.
const echoDelay = 500 * time.Millisecond

// builtin is the built-in destination of that name (any case), or nil.
func builtin(name string) Handler {
	if serve := Builtin(name); serve != nil {
		return HandlerFunc(func(ctx context.Context, c *Call) { serve(ctx, c) })
	}
	return nil
}

// serveEcho is the classic echo test: what the caller says comes back echoDelay later.
// The delay line is a ring of frames allocated once per call.
func serveEcho(ctx context.Context, c BuiltinLine) {
	st := c.Stream()
	n := int(echoDelay / media.FrameDuration)
	spf := media.SamplesPerFrame(st.SampleRate())
	buf := make([]int16, n*spf)
	ring := make([]media.Frame, n)
	for i := range ring {
		ring[i] = media.Frame{Rate: st.SampleRate(), Samples: buf[i*spf : (i+1)*spf]}
	}
	events := st.Events()
	for i, filled := 0, 0; ; i = (i + 1) % n {
		if filled == n { // the slot about to be refilled is the oldest: play it
			if err := st.WriteFrame(&ring[i]); err != nil {
				return
			}
		}
		if err := st.ReadFrame(&ring[i]); err != nil {
			return
		}
		filled = min(filled+1, n)
		drainEvents(c, events)
	}
}

// serveTone plays a 1 kHz tone and reports the digits the caller presses as call.dtmf
// events: the line test of installers and load tests.
func serveTone(ctx context.Context, c BuiltinLine) {
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
func drainEvents(c BuiltinLine, events <-chan media.Event) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == media.EventDTMF {
				c.Log().Info("dtmf", "digit", string(ev.Digit), "duration", ev.Duration)
				c.Publish(EventCallDTMF, map[string]any{"digit": string(ev.Digit), "duration_ms": ev.Duration.Milliseconds()})
			}
		default:
			return
		}
	}
}
