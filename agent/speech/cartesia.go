package speech

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Cartesia defaults.
const (
	DefaultCartesiaModel = "sonic-2"
	// DefaultCartesiaVoice is one of Cartesia's stock voices.
	DefaultCartesiaVoice = "a0e99841-438c-4a64-b679-ae501e7d6091"
	// CartesiaVersion is the API version Switchboard speaks (the Cartesia-Version header).
	CartesiaVersion = "2025-04-16"
)

// cartesiaRates are the sample rates Cartesia's raw output offers.
var cartesiaRates = []int{8000, 16000, 22050, 24000, 44100, 48000}

// Cartesia speaks through Cartesia's WebSocket API (/tts/websocket), or any server that
// speaks it, by base URL: one context per answer, its text sent with continue as the model
// writes it, cancelled by a cancel message on barge-in.
type Cartesia struct {
	baseURL, key, model, language string
	client                        *http.Client
}

// NewCartesia is the Cartesia voice at baseURL (empty: https://api.cartesia.ai) with key
// (X-API-Key) and model (empty: DefaultCartesiaModel); client carries the connections
// (nil: http.DefaultClient).
func NewCartesia(baseURL, key, model string, client *http.Client) *Cartesia {
	if baseURL == "" {
		baseURL = "https://api.cartesia.ai"
	}
	if model == "" {
		model = DefaultCartesiaModel
	}
	return &Cartesia{baseURL: baseURL, key: key, model: model, language: "en", client: client}
}

// Synthesize implements TTS: the whole text streamed at once, at 16 kHz.
func (c *Cartesia) Synthesize(ctx context.Context, text, voice string, speed float64) (Audio, error) {
	return synthesizeStream(ctx, c, text, voice, speed, 16000)
}

// Stream implements StreamingTTS.
func (c *Cartesia) Stream(ctx context.Context, voice string, speed float64, rate int) (SpeechStream, error) {
	if voice == "" {
		voice = DefaultCartesiaVoice
	}
	rate = nearestRate(rate, cartesiaRates)
	h := http.Header{"Cartesia-Version": {CartesiaVersion}}
	if c.key != "" {
		h.Set("X-API-Key", c.key)
	}
	conn, err := dialStream(ctx, wsURL(c.baseURL, "/tts/websocket"), h, c.client)
	if err != nil {
		return nil, err
	}
	// The socket's own context ends only at Close, after the cancel message was sent: a
	// read on a cancelled context would drop the connection before it could be.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var id [16]byte
	_, _ = rand.Read(id[:])
	s := &cartesiaStream{conn: conn, ctx: sctx, cancel: cancel, rate: rate, contextID: hex.EncodeToString(id[:])}
	s.req = cartesiaRequest{ModelID: c.model, Voice: cartesiaVoice{Mode: "id", ID: voice}, Language: c.language,
		ContextID: s.contextID, OutputFormat: cartesiaFormat{Container: "raw", Encoding: "pcm_s16le", SampleRate: rate}}
	if speed != 0 && speed != 1 {
		s.req.GenerationConfig = &cartesiaGeneration{Speed: speed}
	}
	// The caller's context ending is a barge-in or a hang-up: the cancel message must still
	// go out, on the socket's own context, which outlives the caller's until Close.
	s.stop = context.AfterFunc(ctx, func() { _ = s.Close() }) //nolint:contextcheck // see above
	return s, nil
}

type cartesiaVoice struct {
	Mode string `json:"mode"`
	ID   string `json:"id"`
}

type cartesiaFormat struct {
	Container  string `json:"container"`
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sample_rate"`
}

type cartesiaGeneration struct {
	Speed float64 `json:"speed"`
}

// cartesiaRequest is one input of a context: every input of a context repeats its fields
// but transcript and continue.
type cartesiaRequest struct {
	ModelID          string              `json:"model_id"`
	Transcript       string              `json:"transcript"`
	Voice            cartesiaVoice       `json:"voice"`
	Language         string              `json:"language,omitempty"`
	ContextID        string              `json:"context_id"`
	OutputFormat     cartesiaFormat      `json:"output_format"`
	GenerationConfig *cartesiaGeneration `json:"generation_config,omitempty"`
	Continue         bool                `json:"continue"`
}

type cartesiaStream struct {
	conn      *websocket.Conn
	ctx       context.Context
	cancel    context.CancelFunc
	stop      func() bool
	rate      int
	contextID string
	req       cartesiaRequest // Push and End only

	buf pcmBuffer
	// done is the context done upstream: nothing to cancel.
	done atomic.Bool

	closeOnce sync.Once
}

func (s *cartesiaStream) SampleRate() int { return s.rate }

func (s *cartesiaStream) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.conn.Write(s.ctx, websocket.MessageText, b); err != nil {
		if s.ctx.Err() != nil {
			return ErrClosed
		}
		return &ProviderError{Op: "synthesize", Err: err}
	}
	return nil
}

// Push continues the context with text.
func (s *cartesiaStream) Push(text string) error {
	if text == "" {
		return nil
	}
	s.req.Transcript, s.req.Continue = text, true
	return s.send(s.req)
}

// End closes the context's input: an empty transcript without continue.
func (s *cartesiaStream) End() error {
	s.req.Transcript, s.req.Continue = "", false
	return s.send(s.req)
}

// cartesiaMessage is a message of Cartesia's stream: a chunk of audio, the context done,
// timestamps, or an error.
type cartesiaMessage struct {
	Type       string `json:"type"`
	Data       string `json:"data"`
	Done       bool   `json:"done"`
	StatusCode int    `json:"status_code"`
	ContextID  string `json:"context_id"`
	Error      string `json:"error"`
	Title      string `json:"title"`
	Message    string `json:"message"`
	ErrorCode  string `json:"error_code"`
}

func (s *cartesiaStream) Read(p []int16) (int, error) {
	if s.ctx.Err() != nil {
		return 0, ErrClosed
	}
	for s.buf.empty() {
		if s.done.Load() {
			return 0, io.EOF
		}
		typ, data, err := s.conn.Read(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				return 0, ErrClosed
			}
			return 0, &ProviderError{Op: "synthesize", Err: err}
		}
		if err := s.handle(typ, data); err != nil {
			return 0, err
		}
	}
	return s.buf.read(p), nil
}

// handle takes one message of the provider: a chunk of audio into the buffer, the
// context's end, or its error; another context's messages and those without audio are
// passed over.
func (s *cartesiaStream) handle(typ websocket.MessageType, data []byte) error {
	if typ != websocket.MessageText {
		return fmt.Errorf("%w: a binary message", ErrBadFrame)
	}
	var m cartesiaMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	if m.ContextID != "" && m.ContextID != s.contextID {
		return nil // another context's, on a shared socket
	}
	switch m.Type {
	case "chunk":
		return s.buf.fill(m.Data)
	case "done":
		s.done.Store(true)
	case "error":
		msg := m.Error
		if msg == "" {
			msg = m.Title + ": " + m.Message
		}
		kind := m.ErrorCode
		if kind == "" {
			kind = "error"
		}
		return streamError(kind, msg)
	}
	// timestamps, phoneme_timestamps, flush_done and types yet to come carry no audio.
	return nil
}

// Close cancels the context upstream (Cartesia stops generating it) unless it was done,
// and closes the socket.
func (s *cartesiaStream) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		if !s.done.Load() {
			b, _ := json.Marshal(map[string]any{"context_id": s.contextID, "cancel": true})
			wctx, cancel := context.WithTimeout(s.ctx, time.Second)
			_ = s.conn.Write(wctx, websocket.MessageText, b)
			cancel()
		}
		s.cancel()
		_ = s.conn.CloseNow()
	})
	return nil
}
