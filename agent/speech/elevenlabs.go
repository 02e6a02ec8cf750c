package speech

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// ElevenLabs defaults.
const (
	// DefaultElevenLabsModel is ElevenLabs' lowest-latency model (about 75 ms to first
	// audio, 32 languages).
	DefaultElevenLabsModel = "eleven_flash_v2_5"
	// DefaultElevenLabsVoice is a voice every ElevenLabs account has ("Rachel").
	DefaultElevenLabsVoice = "21m00Tcm4TlvDq8ikWAM"
)

// elevenLabsRates are the PCM rates of ElevenLabs' output_format (pcm_8000 … pcm_48000).
var elevenLabsRates = []int{8000, 16000, 22050, 24000, 44100, 48000}

// ElevenLabs speaks through ElevenLabs' WebSocket input-streaming API
// (/v1/text-to-speech/{voice_id}/stream-input), or any server that speaks it, by base URL.
type ElevenLabs struct {
	baseURL, key, model string
	client              *http.Client
}

// NewElevenLabs is the ElevenLabs voice at baseURL (empty: https://api.elevenlabs.io)
// with key (the xi-api-key header) and model (empty: DefaultElevenLabsModel); client
// carries the connections (nil: http.DefaultClient).
func NewElevenLabs(baseURL, key, model string, client *http.Client) *ElevenLabs {
	if baseURL == "" {
		baseURL = "https://api.elevenlabs.io"
	}
	if model == "" {
		model = DefaultElevenLabsModel
	}
	return &ElevenLabs{baseURL: baseURL, key: key, model: model, client: client}
}

// Synthesize implements TTS: the whole text streamed at once, at 16 kHz.
func (e *ElevenLabs) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	return synthesizeStream(ctx, e, text, voice, speed, 16000)
}

// Stream implements StreamingTTS.
func (e *ElevenLabs) Stream(ctx context.Context, voice string, speed float64, rate int) (SpeechStream, error) {
	if voice == "" {
		voice = DefaultElevenLabsVoice
	}
	if speed == 0 {
		speed = 1
	}
	rate = nearestRate(rate, elevenLabsRates)
	q := url.Values{"model_id": {e.model}, "output_format": {"pcm_" + strconv.Itoa(rate)}}
	u := wsURL(e.baseURL, "/v1/text-to-speech/"+url.PathEscape(voice)+"/stream-input?"+q.Encode())
	h := http.Header{}
	if e.key != "" {
		h.Set("xi-api-key", e.key)
	}
	sctx, cancel := context.WithCancel(ctx)
	conn, err := dialStream(sctx, u, h, e.client)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &elevenLabsStream{conn: conn, ctx: sctx, cancel: cancel, rate: rate}
	s.stop = context.AfterFunc(sctx, func() { _ = s.Close() })
	// The first message opens the generation: a single space, and the voice's settings.
	// chunk_length_schedule asks for audio after few characters, for the first answer's
	// sake; a flush at each sentence's end speaks the rest without waiting for more.
	init := map[string]any{
		"text":              " ",
		"voice_settings":    map[string]any{"stability": 0.5, "similarity_boost": 0.75, "speed": speed},
		"generation_config": map[string]any{"chunk_length_schedule": []int{50, 120, 160, 250}},
	}
	if err := s.send(init); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

type elevenLabsStream struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool
	rate   int

	buf  pcmBuffer
	done bool // isFinal was read

	closeOnce sync.Once
}

func (s *elevenLabsStream) SampleRate() int { return s.rate }

func (s *elevenLabsStream) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.conn.Write(s.ctx, websocket.MessageText, b); err != nil {
		return s.failed(err)
	}
	return nil
}

// Push sends text; one that ends a sentence is flushed, so that its audio comes without
// waiting for the next sentence's first words.
func (s *elevenLabsStream) Push(text string) error {
	if text == "" {
		return nil
	}
	msg := map[string]any{"text": text, "try_trigger_generation": true}
	if endsSentence(text) {
		msg["flush"] = true
	}
	return s.send(msg)
}

// End sends the empty text that ends the input; ElevenLabs answers with the rest of the
// audio and isFinal.
func (s *elevenLabsStream) End() error { return s.send(map[string]any{"text": ""}) }

// elevenLabsMessage is a message of ElevenLabs' stream: audio (base64 PCM), the end of
// the generation, the alignment of the characters spoken, or an error.
type elevenLabsMessage struct {
	Audio               *string         `json:"audio"`
	IsFinal             *bool           `json:"isFinal"`
	NormalizedAlignment json.RawMessage `json:"normalizedAlignment"`
	Alignment           json.RawMessage `json:"alignment"`
	Message             string          `json:"message"`
	Error               string          `json:"error"`
	Code                json.RawMessage `json:"code"`
}

func (s *elevenLabsStream) Read(p []int16) (int, error) {
	if s.ctx.Err() != nil {
		return 0, ErrClosed
	}
	for s.buf.empty() {
		if s.done {
			return 0, io.EOF
		}
		typ, data, err := s.conn.Read(s.ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				// ElevenLabs closes the socket after the final message.
				s.done = true
				continue
			}
			return 0, s.failed(err)
		}
		if err := s.handle(typ, data); err != nil {
			return 0, err
		}
	}
	return s.buf.read(p), nil
}

// handle takes one message of the provider: its audio into the buffer, or its end, or its
// error.
func (s *elevenLabsStream) handle(typ websocket.MessageType, data []byte) error {
	if typ != websocket.MessageText {
		return fmt.Errorf("%w: a binary message", ErrBadFrame)
	}
	var m elevenLabsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	if m.Error != "" || (m.Message != "" && m.Audio == nil) {
		return streamError(m.Error, m.Message)
	}
	if m.Audio != nil && *m.Audio != "" {
		if err := s.buf.fill(*m.Audio); err != nil {
			return err
		}
	}
	if m.IsFinal != nil && *m.IsFinal {
		s.done = true
	}
	return nil
}

// failed is err of the connection as Read and Push return it: ErrClosed after Close.
func (s *elevenLabsStream) failed(err error) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if errors.As(err, new(websocket.CloseError)) {
		return &ProviderError{Op: "synthesize", Type: "closed", Message: err.Error(), Status: http.StatusBadGateway, Err: err}
	}
	return &ProviderError{Op: "synthesize", Err: err}
}

// Close ends the synthesis upstream: ElevenLabs stops generating when its socket closes.
func (s *elevenLabsStream) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.cancel()
		_ = s.conn.CloseNow()
	})
	return nil
}

// endsSentence reports text whose last character ends a sentence or a clause worth
// speaking now.
func endsSentence(text string) bool {
	for i := len(text) - 1; i >= 0; i-- {
		switch text[i] {
		case ' ', '\n', '\t', '"', '\'', ')':
			continue
		case '.', '!', '?', ';', ':':
			return true
		}
		return false
	}
	return false
}
