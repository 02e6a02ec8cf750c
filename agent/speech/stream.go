package speech

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// StreamingTTS is a voice that takes its text as the model writes it and speaks while the
// sentence is still being written (ElevenLabs' and Cartesia's WebSocket APIs). Every
// StreamingTTS is a TTS too: Synthesize streams one text whole.
type StreamingTTS interface {
	TTS
	// Stream opens a synthesis with voice at speed, asking the provider for audio at rate
	// (the call's) or, when it does not offer that rate, the nearest it does: the stream's
	// SampleRate says which. Cancelling ctx cancels the synthesis upstream.
	Stream(ctx context.Context, voice string, speed float64, rate int) (SpeechStream, error)
}

// SpeechStream is one synthesis under way. Push and End are called from one goroutine,
// Read from another; Close from any, at any time.
type SpeechStream interface {
	// Push sends text as it is written (a token, a word, a sentence); it does not wait for
	// audio.
	Push(text string) error
	// End says that no more text comes: the provider speaks what it holds, then Read ends
	// with io.EOF.
	End() error
	// SampleRate is the rate of the samples Read returns.
	SampleRate() int
	// Read fills p with the next samples, waiting for them; io.EOF after the last.
	Read(p []int16) (int, error)
	// Close stops the synthesis upstream at once (barge-in: the provider stops generating,
	// and stops charging) and releases the connection. It is idempotent.
	Close() error
}

// ErrBadFrame is a message from a streaming provider that is not what its protocol says:
// not JSON, a binary frame where text was due, audio that is not base64 PCM.
var ErrBadFrame = errors.New("speech: malformed message from the provider")

// maxFrame bounds one message of a streaming provider: a second of 48 kHz PCM in base64
// is 128 KiB, and providers send far less at once.
const maxFrame = 1 << 20

// wsURL is the WebSocket URL of an HTTP base URL and path.
func wsURL(base, path string) string {
	base = strings.TrimRight(base, "/")
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base + path
}

// dialStream opens a provider's WebSocket; a refused handshake is a ProviderError with
// the HTTP status the provider answered.
func dialStream(ctx context.Context, url string, header http.Header, client *http.Client) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: header, HTTPClient: client})
	if err != nil {
		pe := &ProviderError{Op: "synthesize", Err: err}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			pe.Status, pe.Message = resp.StatusCode, http.StatusText(resp.StatusCode)
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				_ = resp.Body.Close()
				if len(b) > 0 {
					pe.Message = strings.TrimSpace(string(b))
				}
			}
		}
		return nil, pe
	}
	conn.SetReadLimit(maxFrame)
	return conn, nil
}

// streamError is a failure a provider reported inside its stream.
func streamError(kind, message string) error {
	return &ProviderError{Op: "synthesize", Type: kind, Message: message, Status: http.StatusBadGateway,
		Err: fmt.Errorf("%s: %s", kind, message)}
}

// pcmBuffer holds decoded samples of a stream between Reads: the base64 of a message is
// decoded into bytes reused from message to message, then copied into the caller's slice,
// so a steady stream costs no allocation per frame.
type pcmBuffer struct {
	raw []byte // little-endian PCM16 not yet read
	off int
	dec []byte
}

// fill decodes one message's base64 audio.
func (b *pcmBuffer) fill(b64 string) error {
	need := base64.StdEncoding.DecodedLen(len(b64))
	if cap(b.dec) < need {
		b.dec = make([]byte, need)
	}
	n, err := base64.StdEncoding.Decode(b.dec[:need], []byte(b64))
	if err != nil {
		return fmt.Errorf("%w: audio is not base64: %w", ErrBadFrame, err)
	}
	if n%2 != 0 {
		return fmt.Errorf("%w: %d bytes of 16-bit audio", ErrBadFrame, n)
	}
	b.raw, b.off = b.dec[:n], 0
	return nil
}

func (b *pcmBuffer) empty() bool { return b.off >= len(b.raw) }

// read copies samples into p.
func (b *pcmBuffer) read(p []int16) int {
	n := 0
	for n < len(p) && b.off+1 < len(b.raw) {
		p[n] = int16(uint16(b.raw[b.off]) | uint16(b.raw[b.off+1])<<8)
		n++
		b.off += 2
	}
	return n
}

// synthesizeStream is Synthesize of a streaming voice: the whole text pushed at once.
func synthesizeStream(ctx context.Context, t StreamingTTS, text, voice string, speed float64, rate int) (Audio, error) {
	s, err := t.Stream(ctx, voice, speed, rate)
	if err != nil {
		return nil, err
	}
	if err := s.Push(text); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.End(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return streamAudio{s}, nil
}

type streamAudio struct{ SpeechStream }

// nearestRate is the lowest rate of offered (ascending) at or above want, else the highest:
// the call's own rate where the provider offers it, so nothing is resampled, and otherwise
// one resampled down once rather than up.
func nearestRate(want int, offered []int) int {
	best := offered[len(offered)-1]
	for _, r := range offered {
		if r >= want {
			return r
		}
		best = r
	}
	return best
}
