package sip

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/media/amd"
	"github.com/switchboard-go/switchboard/store"
)

// AgentVoice is what the agents' runtime lends an outbound call's answering-machine
// detection: the agent's ears, a second signal on the greeting, and its voice, which
// leaves the call's message on a machine. *voice.Runtime is one.
type AgentVoice interface {
	// TranscribeGreeting is what pcm (mono, at rate) says, heard by the agent's
	// transcriber; false when the agent has none.
	TranscribeGreeting(ctx context.Context, tenantID string, ag *store.Agent, pcm []int16, rate int) (string, bool, error)
	// LeaveMessage speaks text over s in the agent's voice and returns once it was sent.
	LeaveMessage(ctx context.Context, s media.Stream, tenantID string, ag *store.Agent, text string) error
}

// machineVoice is a handler that can talk to an answering machine: an agent's.
type machineVoice interface {
	transcribe(ctx context.Context, tenantID string, pcm []int16, rate int) (string, bool, error)
	leaveMessage(ctx context.Context, s media.Stream, tenantID, text string) error
}

// How long a machine's greeting is listened to after the decision, for its beep or its
// end, before the message is left anyway.
const (
	// greetingOver is the silence that ends a machine's greeting when no beep came; a
	// beep comes within a second of the greeting's end on the machines we know.
	greetingOver = 2 * time.Second
	// messageWait bounds the wait for either: a greeting that never pauses gets the
	// message over it rather than none.
	messageWait = 30 * time.Second
	// greetingKept is how much of the greeting is kept for the transcriber.
	greetingKept = 8 * time.Second
)

// amdHandler runs answering-machine detection on an answered outbound call before the
// handler that talks on it (next) starts; see store.CallAMD for the modes.
type amdHandler struct {
	next Handler
	cfg  store.CallAMD
}

// ServeCall listens to the answer until the detection decides, records and publishes the
// decision, then leaves the message on a machine (detect_then_message) or hands the call
// to next, which speaks first as it would have.
func (h amdHandler) ServeCall(ctx context.Context, c *Call) {
	mv, _ := h.next.(machineVoice)
	det, res, ok := c.detectAnswer(ctx, h.cfg, mv)
	if !ok {
		return // the call ended while it was listened to
	}
	if res.Result == store.AMDMachine && h.cfg.Mode == store.AMDDetectThenMessage {
		c.leaveMessage(ctx, det, res, mv)
		return
	}
	h.next.ServeCall(ctx, c)
}

// detectAnswer feeds the call's audio to a detector until it decides (within the request's
// timeout), asks the agent's transcriber about a greeting the audio took for a person's or
// could not tell, and writes the result to the record and call.amd. False: the call ended
// first.
func (c *Call) detectAnswer(ctx context.Context, cfg store.CallAMD, mv machineVoice) (*amd.Detector, store.CallAMD, bool) {
	start := time.Now()
	s := c.Stream()
	rate := s.SampleRate()
	det, err := amd.New(amd.Config{Rate: rate, Timeout: time.Duration(cfg.TimeoutSeconds) * time.Second})
	if err != nil {
		c.log.Warn("answering-machine detection not possible", "error", err)
		res := cfg
		res.Result, res.Reason = store.AMDUnknown, "unsupported-audio"
		c.reportAMD(ctx, res)
		return nil, res, true
	}
	f := media.Frame{Rate: rate, Samples: make([]int16, media.SamplesPerFrame(rate))}
	var greeting []int16
	if mv != nil {
		greeting = make([]int16, 0, int(greetingKept/media.FrameDuration)*len(f.Samples))
	}
	var dec amd.Decision
	for {
		if err := s.ReadFrame(&f); err != nil || ctx.Err() != nil {
			return nil, store.CallAMD{}, false
		}
		if len(greeting)+len(f.Samples) <= cap(greeting) {
			greeting = append(greeting, f.Samples...)
		}
		d, done, err := det.Feed(f.Samples)
		if err != nil {
			c.log.Warn("answering-machine detection stopped", "error", err)
			d, done = amd.Decision{Result: amd.Unknown, Reason: "unsupported-audio"}, true
		}
		if done {
			dec = d
			break
		}
	}
	res := cfg
	res.Result, res.Confidence, res.Reason, res.Beep = string(dec.Result), dec.Confidence, dec.Reason, dec.Beep
	if mv != nil && dec.Result != amd.Machine && dec.Speech > 0 {
		text, ok, err := mv.transcribe(ctx, c.tenantID, greeting, rate)
		switch {
		case err != nil:
			c.log.Info("greeting not transcribed", "error", err)
		case ok:
			res.Transcript = text
			if amd.MachineWords(text) {
				res.Result, res.Reason, res.Confidence = store.AMDMachine, amd.ReasonTranscript, 0.85
			}
		}
	}
	res.DecisionMS = time.Since(start).Milliseconds()
	c.reportAMD(ctx, res)
	return det, res, true
}

// reportAMD writes the detection's result to the call's record and publishes call.amd.
func (c *Call) reportAMD(ctx context.Context, res store.CallAMD) {
	c.log.Info("answered by", "result", res.Result, "confidence", res.Confidence, "reason", res.Reason,
		"beep", res.Beep, "decision_ms", res.DecisionMS)
	c.Update(ctx, func(r *store.Call) { a := res; r.AMD = &a }) // replaced, never changed in place
	c.Publish(call.EventAMD, res)
}

// leaveMessage waits for the machine's beep to end, or its greeting to, and leaves the
// call's message in the agent's voice; then it hangs up (voicemail).
func (c *Call) leaveMessage(ctx context.Context, det *amd.Detector, res store.CallAMD, mv machineVoice) {
	s := c.Stream()
	if det != nil {
		f := media.Frame{Rate: s.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(s.SampleRate()))}
		for waited := time.Duration(0); waited < messageWait; waited += media.FrameDuration {
			if det.BeepEnded() || (!det.Beep() && det.Quiet() >= greetingOver) {
				break
			}
			if err := s.ReadFrame(&f); err != nil || ctx.Err() != nil {
				return
			}
			if _, _, err := det.Feed(f.Samples); err != nil {
				break
			}
		}
	}
	err := errNoVoice
	if mv != nil {
		err = mv.leaveMessage(ctx, s, c.tenantID, res.Message)
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, media.ErrClosed) {
			return
		}
		c.log.Warn("message not left", "error", err)
	} else {
		c.log.Info("message left on the answering machine", "beep", det != nil && det.Beep())
		c.Update(ctx, func(r *store.Call) {
			a := res
			a.MessageLeft = true
			a.Beep = a.Beep || det != nil && det.Beep() // a beep after the decision
			r.AMD = &a
		})
	}
	c.Hangup(string(call.ReasonVoicemail))
}

// errNoVoice: the call's handler has no voice to leave a message with.
var errNoVoice = errors.New("sip: the call's handler cannot speak a message")
