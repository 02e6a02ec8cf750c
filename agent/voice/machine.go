package voice

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// maxMessage bounds the message spoken to an answering machine: a minute of audio.
const maxMessage = 60 * media.Rate48k

// TranscribeGreeting is what an outbound call's greeting (pcm, mono at rate) says, heard by
// agent ag's transcriber: the second signal of answering-machine detection. False when the
// agent has no transcriber.
func (r *Runtime) TranscribeGreeting(ctx context.Context, tenantID string, ag *store.Agent, pcm []int16, rate int) (string, bool, error) {
	sp, err := r.cfg.Providers.Speech(ctx, tenantID)
	if err != nil {
		sp = r.cfg.Providers.NodeSpeech()
	}
	stt, err := sp.STT(ag.Transcriber.Provider)
	if err != nil || stt == nil {
		return "", false, nil //nolint:nilerr // no transcriber: the detection goes on the audio alone
	}
	lang := ag.Transcriber.Language
	if lang == "" {
		lang = ag.Language
	}
	text, err := stt.Transcribe(ctx, pcm, rate, lang)
	if err != nil {
		return "", false, fmt.Errorf("voice: greeting: %w", err)
	}
	return text, true, nil
}

// LeaveMessage speaks text over s in agent ag's voice (espeak-ng when the agent's own
// fails) and returns once the last of it was sent: an outbound call's message to an
// answering machine.
func (r *Runtime) LeaveMessage(ctx context.Context, s media.Stream, tenantID string, ag *store.Agent, text string) error {
	sp, err := r.cfg.Providers.Speech(ctx, tenantID)
	if err != nil {
		sp = r.cfg.Providers.NodeSpeech()
	}
	var pcm []int16
	var rate int
	if tts, terr := sp.TTS(ag.Voice.Provider); terr == nil {
		pcm, rate, err = synthesizeAll(ctx, tts, text, ag.Voice.Voice, ag.Voice.Speed)
	} else {
		err = terr
	}
	if err != nil && ctx.Err() == nil {
		fallback, ferr := sp.TTS(speech.EspeakProvider)
		if ferr != nil {
			return errors.Join(err, ferr)
		}
		if pcm, rate, err = synthesizeAll(ctx, fallback, text, "", ag.Voice.Speed); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if pcm, err = speech.Resample(pcm, rate, s.SampleRate()); err != nil {
		return fmt.Errorf("voice: message: %w", err)
	}
	n := media.SamplesPerFrame(s.SampleRate())
	f := media.Frame{Rate: s.SampleRate(), Samples: make([]int16, n)}
	// The last frames are silence: what was said leaves before the call is hung up.
	for i := 0; i < len(pcm)+10*n; i += n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		clear(f.Samples)
		if i < len(pcm) {
			copy(f.Samples, pcm[i:])
		}
		if err := s.WriteFrame(&f); err != nil {
			return err
		}
	}
	return nil
}

// synthesizeAll is the whole of text spoken by tts, and its rate.
func synthesizeAll(ctx context.Context, tts speech.TTS, text, voice string, speed float64) ([]int16, int, error) {
	a, err := tts.Synthesize(ctx, text, voice, speed)
	if err != nil {
		return nil, 0, err
	}
	defer a.Close()
	var pcm []int16
	buf := make([]int16, 4096)
	for len(pcm) < maxMessage {
		n, err := a.Read(buf)
		pcm = append(pcm, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return pcm, a.SampleRate(), nil
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return pcm, a.SampleRate(), nil
}
