package speech

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// A tenant's speech provider is a URL of the tenant's choosing, and its failures reach the
// tenant (the call's error events). Like llm's tenant providers, its errors say only the
// status, or that the provider did not answer: not what it answered, which could be any
// page the node can reach, nor how a connection failed (refused, timed out, unknown
// name), which would map the network around the node. The cause stays in the chain, for
// errors.Is and the node's logs.

// tenantError is a tenant's provider's failure as the tenant may see it.
type tenantError struct {
	op, msg string
	err     error
}

func (e *tenantError) Error() string { return "speech: " + e.op + ": " + e.msg }
func (e *tenantError) Unwrap() error { return e.err }

func opaqueError(op string, err error) error {
	var pe *ProviderError
	switch {
	case err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed):
		return err
	case errors.As(err, &pe) && pe.Status != 0:
		msg := "the provider answered " + strconv.Itoa(pe.Status)
		if text := http.StatusText(pe.Status); text != "" {
			msg += " " + text
		}
		return &tenantError{op: op, msg: msg, err: err}
	case errors.Is(err, ErrBadAudio) || errors.Is(err, ErrBadFrame):
		return &tenantError{op: op, msg: "the provider's audio was not valid", err: err}
	}
	return &tenantError{op: op, msg: "the provider did not answer", err: err}
}

type opaqueSTT struct{ s STT }

func (o opaqueSTT) Transcribe(ctx context.Context, pcm []int16, rate int, language string) (string, error) {
	text, err := o.s.Transcribe(ctx, pcm, rate, language)
	return text, opaqueError("transcribe", err)
}

type opaqueTTS struct{ t TTS }

func (o opaqueTTS) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	a, err := o.t.Synthesize(ctx, text, voice, speed)
	if err != nil {
		return nil, opaqueError("synthesize", err)
	}
	return opaqueAudio{a}, nil
}

type opaqueAudio struct{ Audio }

func (o opaqueAudio) Read(p []int16) (int, error) {
	n, err := o.Audio.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = opaqueError("synthesize", err)
	}
	return n, err
}

// opaqueStreamingTTS is a tenant's streaming voice: its failures, whether when it opens, in
// Push or End, or in Read, say no more than opaqueError lets them.
type opaqueStreamingTTS struct{ t StreamingTTS }

func (o opaqueStreamingTTS) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	return opaqueTTS{o.t}.Synthesize(ctx, text, voice, speed)
}

func (o opaqueStreamingTTS) Stream(ctx context.Context, voice string, speed float64, rate int) (SpeechStream, error) {
	s, err := o.t.Stream(ctx, voice, speed, rate)
	if err != nil {
		return nil, opaqueError("synthesize", err)
	}
	return opaqueStream{s}, nil
}

type opaqueStream struct{ SpeechStream }

func (o opaqueStream) Push(text string) error {
	return opaqueError("synthesize", o.SpeechStream.Push(text))
}
func (o opaqueStream) End() error { return opaqueError("synthesize", o.SpeechStream.End()) }

func (o opaqueStream) Read(p []int16) (int, error) {
	n, err := o.SpeechStream.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = opaqueError("synthesize", err)
	}
	return n, err
}
