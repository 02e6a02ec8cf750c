package speech

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/agent/llm"
)

// Deepgram's live transcription: GET {base}/listen upgraded to a WebSocket, the options in
// the query, "Authorization: Token <key>". Audio goes up as binary messages of raw
// linear16; Results (interim, is_final, speech_final), UtteranceEnd, SpeechStarted and, at
// the end, Metadata come back as JSON. KeepAlive holds a quiet socket open; CloseStream asks
// for the last results.

// Deepgram defaults.
const (
	DefaultDeepgramBaseURL = llm.DefaultDeepgramBaseURL
	DefaultDeepgramModel   = "nova-3"
	// deepgramUtteranceEndMS is the gap after the last word at which Deepgram sends
	// UtteranceEnd: its documented minimum, the backstop of speech_final in noise.
	deepgramUtteranceEndMS = 1000
)

// DeepgramSTT transcribes through any server of Deepgram's live API. Safe for concurrent
// use: each Open is its own socket.
type DeepgramSTT struct{ liveEndpoint }

// NewDeepgramSTT transcribes through baseURL (DefaultDeepgramBaseURL when empty) with model
// (DefaultDeepgramModel when empty); apiKey is sent as "Token <key>" when not empty; client
// nil is http.DefaultClient.
func NewDeepgramSTT(baseURL, apiKey, model string, client *http.Client) *DeepgramSTT {
	return &DeepgramSTT{newLiveEndpoint(baseURL, DefaultDeepgramBaseURL, apiKey, model, DefaultDeepgramModel, client)}
}

// liveEndpoint is where a live transcriber connects, and as what: the part every
// protocol's client shares.
type liveEndpoint struct {
	base, key, model string
	client           *http.Client
	header           http.Header
	opaque           bool
}

func newLiveEndpoint(baseURL, defBase, key, model, defModel string, client *http.Client) liveEndpoint {
	if baseURL == "" {
		baseURL = defBase
	}
	if model == "" {
		model = defModel
	}
	if client == nil {
		client = http.DefaultClient
	}
	return liveEndpoint{base: strings.TrimRight(baseURL, "/"), key: key, model: model, client: client}
}

// headers are the endpoint's own headers and its key as authorization, in scheme.
func (e *liveEndpoint) headers(scheme string) http.Header {
	h := http.Header{}
	for k, v := range e.header {
		h[k] = v
	}
	if e.key != "" {
		h.Set("Authorization", scheme+" "+e.key)
	}
	return h
}

// Model is the model asked for.
func (d *DeepgramSTT) Model() string { return d.model }

// Open implements StreamingSTT.
func (d *DeepgramSTT) Open(ctx context.Context, opts StreamOptions) (*STTStream, error) {
	rate := opts.Rate
	if rate <= 0 {
		rate = defaultStreamRate
	}
	endpointing := opts.EndpointingMS
	if endpointing <= 0 {
		endpointing = defaultEndpointingMS
	}
	q := url.Values{}
	q.Set("model", d.model)
	q.Set("encoding", "linear16")
	q.Set("sample_rate", strconv.Itoa(rate))
	q.Set("channels", "1")
	q.Set("interim_results", "true")
	q.Set("endpointing", strconv.Itoa(endpointing))
	q.Set("utterance_end_ms", strconv.Itoa(deepgramUtteranceEndMS))
	q.Set("vad_events", "true")
	q.Set("punctuate", "true")
	q.Set("smart_format", "true")
	if opts.Language != "" {
		q.Set("language", opts.Language)
	}
	p := &deepgramProtocol{d: d, url: d.base + "/listen?" + q.Encode(), sampleRate: rate}
	return openStream(ctx, p, rate, d.opaque)
}

type deepgramProtocol struct {
	d          *DeepgramSTT
	url        string
	sampleRate int
}

func (p *deepgramProtocol) dial(ctx context.Context) (*websocket.Conn, error) {
	return dialLive(ctx, p.url, p.d.client, p.d.headers("Token"))
}

func (p *deepgramProtocol) rate() int { return p.sampleRate }

func (p *deepgramProtocol) audio(dst []byte, pcm []int16) (websocket.MessageType, []byte) {
	for _, v := range pcm {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
	}
	return websocket.MessageBinary, dst
}

var (
	deepgramKeepAlive   = []byte(`{"type":"KeepAlive"}`)
	deepgramCloseStream = []byte(`{"type":"CloseStream"}`)
)

func (p *deepgramProtocol) keepAlive() []byte   { return deepgramKeepAlive }
func (p *deepgramProtocol) closeStream() []byte { return deepgramCloseStream }

// deepgramMessage is any message of Deepgram's; the fields of each type are read from it.
type deepgramMessage struct {
	Type        string  `json:"type"`
	IsFinal     bool    `json:"is_final"`
	SpeechFinal bool    `json:"speech_final"`
	Start       float64 `json:"start"`
	Duration    float64 `json:"duration"`
	// Channel is an object in Results ({alternatives}) and an array in UtteranceEnd.
	Channel     json.RawMessage `json:"channel"`
	Description string          `json:"description"`
	Message     string          `json:"message"`
	Variant     string          `json:"variant"`
}

type deepgramChannel struct {
	Alternatives []struct {
		Transcript string `json:"transcript"`
	} `json:"alternatives"`
}

func (p *deepgramProtocol) parse(msg []byte, u *utterance) ([]STTEvent, float64, bool, error) {
	var m deepgramMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, -1, false, protocolError("deepgram: a message is not JSON: %.100q", msg)
	}
	switch m.Type {
	case "Results":
		var ch deepgramChannel
		if err := json.Unmarshal(m.Channel, &ch); err != nil {
			return nil, -1, false, protocolError("deepgram: Results without a channel object")
		}
		text := ""
		if len(ch.Alternatives) > 0 {
			text = strings.TrimSpace(ch.Alternatives[0].Transcript)
		}
		if !m.IsFinal {
			if text == u.interim {
				return nil, -1, false, nil
			}
			u.interim = text
			return []STTEvent{{Text: u.text()}}, -1, false, nil
		}
		u.interim = ""
		if text != "" {
			u.finals = append(u.finals, text)
		}
		ack := m.Start + m.Duration
		if m.SpeechFinal && len(u.finals) > 0 {
			ev := STTEvent{Text: u.text(), Final: true, EndOfUtterance: true}
			u.reset()
			return []STTEvent{ev}, ack, false, nil
		}
		return []STTEvent{{Text: u.text(), Final: true}}, ack, false, nil
	case "UtteranceEnd":
		if len(u.finals) == 0 && u.interim == "" {
			return nil, -1, false, nil
		}
		ev := STTEvent{Text: u.text(), Final: u.interim == "", EndOfUtterance: true}
		u.reset()
		return []STTEvent{ev}, -1, false, nil
	case "SpeechStarted":
		return []STTEvent{{SpeechStarted: true}}, -1, false, nil
	case "Metadata":
		// Sent last, after CloseStream: the results are all in.
		return nil, -1, true, nil
	case "Error":
		msg := m.Description
		if msg == "" {
			msg = m.Message
		}
		return nil, -1, false, &fatalError{&ProviderError{Op: "transcribe", Status: http.StatusBadGateway, Type: m.Variant, Message: msg}}
	}
	return nil, -1, false, nil
}
