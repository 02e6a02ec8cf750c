// Package speech holds the agent's ears and voice: speech-to-text and text-to-speech
// providers behind two small interfaces. Built in: espeak-ng (through libespeak-ng, offline,
// the default voice). Over HTTP: any OpenAI-compatible /v1/audio/transcriptions and
// /v1/audio/speech server. Package speechtest has stand-ins speaking those wire protocols.
package speech

import (
	"context"
	"errors"
)

// STT turns one endpointed utterance into text.
type STT interface {
	// Transcribe returns the text of pcm (mono PCM16 at rate). language is an ISO 639-1
	// code or empty for the provider's guess.
	Transcribe(ctx context.Context, pcm []int16, rate int, language string) (string, error)
}

// TTS turns text into speech, streamed as it is made.
type TTS interface {
	// Synthesize starts speaking text with voice (the provider's voice name; empty for its
	// default) at speed (1 is normal; 0 means 1).
	Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error)
}

// Audio is speech being synthesised: mono PCM16 at SampleRate, read as it arrives.
type Audio interface {
	SampleRate() int
	// Read fills p with the next samples, waiting for them; it returns io.EOF at the end.
	Read(p []int16) (int, error)
	Close() error
}

// ErrNotConfigured is a provider name that nothing is configured for.
var ErrNotConfigured = errors.New("speech: provider not configured")
