package voice

import "errors"

var (
	// ErrTTS is speech that could not be synthesised: the voice failed twice and no
	// fallback voice spoke instead.
	ErrTTS = errors.New("voice: text-to-speech failed")
	// ErrNoTTS is a conversation asked to speak without a voice.
	ErrNoTTS = errors.New("voice: no text-to-speech configured")
)
