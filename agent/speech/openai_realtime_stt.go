package speech

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// OpenAI's realtime transcription: GET {base}/realtime?intent=transcription upgraded to a
// WebSocket with "Authorization: Bearer <key>". The session is set with session.update of a
// session of type "transcription" (the GA interface: audio.input with its format, audio/pcm
// at 24 kHz, the transcription model and language, and server VAD), and confirmed by
// session.updated before any audio is sent. A server of the beta interface refuses that
// with an error event: the socket is then opened again with "OpenAI-Beta: realtime=v1" and
// set with transcription_session.update (pcm16), and the stream keeps to the beta
// interface on later sockets. Audio goes up as input_audio_buffer.append with base64 PCM;
// the server's VAD cuts the audio into items (input_audio_buffer.speech_started,
// .speech_stopped, .committed), each transcribed by
// conversation.item.input_audio_transcription.delta pieces and a .completed whole, the
// same events in both interfaces.

// openAIRealtimeRate is the only rate of pcm16 the realtime API takes.
const openAIRealtimeRate = 24000

// OpenAIRealtimeSTT transcribes through any server of OpenAI's realtime transcription
// sessions. Safe for concurrent use: each Open is its own socket.
type OpenAIRealtimeSTT struct{ liveEndpoint }

// NewOpenAIRealtimeSTT transcribes through baseURL (https://api.openai.com/v1 when empty)
// with model (gpt-4o-mini-transcribe when empty); apiKey is sent as a Bearer token when
// not empty; client nil is http.DefaultClient.
func NewOpenAIRealtimeSTT(baseURL, apiKey, model string, client *http.Client) *OpenAIRealtimeSTT {
	return &OpenAIRealtimeSTT{newLiveEndpoint(baseURL, DefaultOpenAIBaseURL, apiKey, model, DefaultRealtimeSTTModel, client)}
}

// DefaultRealtimeSTTModel is the realtime transcription model of an openai-kind
// transcriber named without one.
const DefaultRealtimeSTTModel = "gpt-4o-mini-transcribe"

// IsRealtimeSTTModel says whether an openai-kind transcriber's model is transcribed live
// over a realtime transcription session rather than a whole utterance at a time: OpenAI's
// realtime transcription models are named "…-transcribe" (gpt-4o-transcribe,
// gpt-4o-mini-transcribe), and a model may be asked for live explicitly as
// "realtime:<model>".
func IsRealtimeSTTModel(model string) bool {
	return strings.HasPrefix(model, "realtime:") || strings.HasSuffix(model, "-transcribe")
}

// Model is the model asked for.
func (o *OpenAIRealtimeSTT) Model() string { return o.model }

// Open implements StreamingSTT.
func (o *OpenAIRealtimeSTT) Open(ctx context.Context, opts StreamOptions) (*STTStream, error) {
	rate := opts.Rate
	if rate <= 0 {
		rate = defaultStreamRate
	}
	endpointing := opts.EndpointingMS
	if endpointing <= 0 {
		endpointing = defaultEndpointingMS
	}
	tr := map[string]any{"model": strings.TrimPrefix(o.model, "realtime:")}
	if opts.Language != "" {
		tr["language"] = opts.Language
	}
	vad := map[string]any{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": endpointing}
	update, err := json.Marshal(map[string]any{
		"type": "session.update",
		"session": map[string]any{
			"type": "transcription",
			"audio": map[string]any{"input": map[string]any{
				"format":         map[string]any{"type": "audio/pcm", "rate": openAIRealtimeRate},
				"transcription":  tr,
				"turn_detection": vad,
			}},
		},
	})
	if err != nil {
		return nil, err
	}
	betaUpdate, err := json.Marshal(map[string]any{
		"type": "transcription_session.update",
		"session": map[string]any{
			"input_audio_format":        "pcm16",
			"input_audio_transcription": tr,
			"turn_detection":            vad,
		},
	})
	if err != nil {
		return nil, err
	}
	p := &openAIRealtimeProtocol{o: o, update: update, betaUpdate: betaUpdate, stopped: map[string]float64{}}
	return openStream(ctx, p, rate, o.opaque)
}

type openAIRealtimeProtocol struct {
	o *OpenAIRealtimeSTT
	// update sets the session in the GA interface, betaUpdate in the beta one; beta says
	// the server refused the first (the stream's own goroutine's).
	update, betaUpdate []byte
	beta               bool
	// raw is the little-endian audio of one message, reused.
	raw []byte
	// stopped is each item's audio_end_ms, for the ack of its transcript; item is the one
	// being transcribed.
	stopped map[string]float64
	item    string
}

func (p *openAIRealtimeProtocol) dial(ctx context.Context) (*websocket.Conn, error) {
	conn, err := p.open(ctx)
	var refused *sessionRefused
	if !p.beta && errors.As(err, &refused) {
		p.beta = true
		conn, err = p.open(ctx)
	}
	if err != nil {
		return nil, err
	}
	clear(p.stopped)
	return conn, nil
}

// open opens a socket and sets the session in the interface the stream speaks, waiting for
// the server to confirm it; the server's refusal is a *sessionRefused.
func (p *openAIRealtimeProtocol) open(ctx context.Context) (*websocket.Conn, error) {
	h := p.o.headers("Bearer")
	update, updated := p.update, "session.updated"
	if p.beta {
		h.Set("OpenAI-Beta", "realtime=v1")
		update, updated = p.betaUpdate, "transcription_session.updated"
	}
	conn, err := dialLive(ctx, p.o.base+"/realtime?intent=transcription", p.o.client, h)
	if err != nil {
		return nil, err
	}
	if err := conn.Write(ctx, websocket.MessageText, update); err != nil {
		conn.CloseNow()
		return nil, &ProviderError{Op: "transcribe", Err: err}
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return nil, &ProviderError{Op: "transcribe", Err: err}
		}
		var e openAIRealtimeEvent
		if err := json.Unmarshal(msg, &e); err != nil {
			conn.CloseNow()
			return nil, protocolError("openai realtime: an event is not JSON: %.100q", msg)
		}
		switch e.Type {
		case updated:
			return conn, nil
		case "error":
			conn.CloseNow()
			r := &sessionRefused{&ProviderError{Op: "transcribe", Status: http.StatusBadGateway, Message: "the session update was refused"}}
			if e.Error != nil {
				r.Type, r.Message = e.Error.Type, e.Error.Message
			}
			if p.beta {
				return nil, &fatalError{r.ProviderError}
			}
			return nil, r
		}
	}
}

// sessionRefused is a server's error event in answer to the session's update.
type sessionRefused struct{ *ProviderError }

func (e *sessionRefused) Unwrap() error { return e.ProviderError }

func (p *openAIRealtimeProtocol) rate() int { return openAIRealtimeRate }

var (
	appendHead = []byte(`{"type":"input_audio_buffer.append","audio":"`)
	appendTail = []byte(`"}`)
)

func (p *openAIRealtimeProtocol) audio(dst []byte, pcm []int16) (websocket.MessageType, []byte) {
	p.raw = p.raw[:0]
	for _, v := range pcm {
		p.raw = binary.LittleEndian.AppendUint16(p.raw, uint16(v))
	}
	dst = append(dst, appendHead...)
	dst = base64.StdEncoding.AppendEncode(dst, p.raw)
	return websocket.MessageText, append(dst, appendTail...)
}

func (p *openAIRealtimeProtocol) keepAlive() []byte   { return nil }
func (p *openAIRealtimeProtocol) closeStream() []byte { return nil }

// openAIRealtimeEvent is any server event of a transcription session.
type openAIRealtimeEvent struct {
	Type       string  `json:"type"`
	ItemID     string  `json:"item_id"`
	Delta      string  `json:"delta"`
	Transcript string  `json:"transcript"`
	AudioEnd   float64 `json:"audio_end_ms"`
	Error      *struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (p *openAIRealtimeProtocol) parse(msg []byte, u *utterance) ([]STTEvent, float64, bool, error) {
	var e openAIRealtimeEvent
	if err := json.Unmarshal(msg, &e); err != nil {
		return nil, -1, false, protocolError("openai realtime: an event is not JSON: %.100q", msg)
	}
	switch e.Type {
	case "input_audio_buffer.speech_started":
		return []STTEvent{{SpeechStarted: true}}, -1, false, nil
	case "input_audio_buffer.speech_stopped":
		if len(p.stopped) < 64 {
			p.stopped[e.ItemID] = e.AudioEnd
		}
	case "conversation.item.input_audio_transcription.delta":
		if e.ItemID != p.item {
			p.item = e.ItemID
			u.interim = ""
		}
		u.interim += e.Delta
		return []STTEvent{{Text: strings.TrimSpace(u.text())}}, -1, false, nil
	case "conversation.item.input_audio_transcription.completed", "conversation.item.input_audio_transcription.failed":
		u.interim = ""
		if t := strings.TrimSpace(e.Transcript); t != "" {
			u.finals = append(u.finals, t)
		}
		ack := -1.0
		if end, ok := p.stopped[e.ItemID]; ok {
			ack = end / 1000
			delete(p.stopped, e.ItemID)
		}
		ev := STTEvent{Text: u.text(), Final: true, EndOfUtterance: true}
		u.reset()
		p.item = ""
		return []STTEvent{ev}, ack, false, nil
	case "error":
		pe := &ProviderError{Op: "transcribe", Status: http.StatusBadGateway, Message: "error event"}
		if e.Error != nil {
			pe.Type, pe.Message = e.Error.Type, e.Error.Message
		}
		return nil, -1, false, &fatalError{pe}
	}
	return nil, -1, false, nil
}
