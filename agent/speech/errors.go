package speech

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrEspeakInit is libespeak-ng failing to start: no espeak-ng-data, or a broken one.
	ErrEspeakInit = errors.New("speech: espeak-ng cannot initialise")
	// ErrUnknownVoice is a voice the provider does not have.
	ErrUnknownVoice = errors.New("speech: unknown voice")
	// ErrClosed is a Read of an Audio after its Close.
	ErrClosed = errors.New("speech: audio closed")
	// ErrBadAudio is audio from a provider that is not what it claims to be (a WAV header
	// that does not parse, a format other than PCM16 mono).
	ErrBadAudio = errors.New("speech: malformed audio from the provider")
)

// ProviderError is an error answer of an HTTP speech provider, or a failure to reach it.
type ProviderError struct {
	// Op is "transcribe" or "synthesize".
	Op string
	// Status is the HTTP status, 0 when there was no answer (a network failure).
	Status int
	// Type and Message are the provider's words ({"error":{"type","message"}}), or the
	// start of the body when it is not that JSON.
	Type    string
	Message string
	// Err is the network failure or the cut stream, when there is one.
	Err error

	retryAfter time.Duration
}

func (e *ProviderError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("speech: %s: %v", e.Op, e.Err)
	case e.Type != "":
		return fmt.Sprintf("speech: %s: HTTP %d (%s): %s", e.Op, e.Status, e.Type, e.Message)
	default:
		return fmt.Sprintf("speech: %s: HTTP %d: %s", e.Op, e.Status, e.Message)
	}
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Temporary reports a failure worth one more try: rate limiting, a server error, no
// answer at all.
func (e *ProviderError) Temporary() bool {
	return e.Status == 0 || e.Status == 429 || e.Status >= 500
}
