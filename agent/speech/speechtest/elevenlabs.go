package speechtest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// ElevenLabs is a stand-in of ElevenLabs' WebSocket input streaming
// (wss://…/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=…): the
// xi-api-key header, a first message of a single space with voice_settings, text messages
// (try_trigger_generation, flush), "" to end; answers of base64 audio with
// normalizedAlignment, then isFinal, then a normal close. A client that closes the socket
// before isFinal cancelled the synthesis: it is recorded.
type ElevenLabs struct{ *streamServer }

// NewElevenLabs starts the stand-in; it closes when the test ends.
func NewElevenLabs(t testing.TB, opts StreamOptions) *ElevenLabs {
	t.Helper()
	return &ElevenLabs{newStreamServer(t, opts, serveElevenLabs)}
}

// ElevenLabsVoices are the voices the stand-in lists at GET /v1/voices.
var ElevenLabsVoices = []map[string]any{
	{"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "preview_url": "https://example.com/rachel.mp3",
		"labels": map[string]string{"accent": "american", "language": "en"}},
	{"voice_id": "pNInz6obpgDQGcFmaJgB", "name": "Adam", "verified_languages": []map[string]string{{"language": "en"}}},
}

func serveElevenLabs(s *streamServer, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/v1/voices" {
		s.voices(w, r.Header.Get("xi-api-key"), map[string]any{"voices": ElevenLabsVoices})
		return
	}
	voiceID, ok := strings.CutPrefix(r.URL.Path, "/v1/text-to-speech/")
	voiceID, ok2 := strings.CutSuffix(voiceID, "/stream-input")
	if !ok || !ok2 || voiceID == "" || strings.Contains(voiceID, "/") {
		http.Error(w, `{"detail":"Not Found"}`, http.StatusNotFound)
		return
	}
	format := r.URL.Query().Get("output_format")
	rate, mulaw := 0, false
	switch {
	case format == "ulaw_8000":
		rate, mulaw = 8000, true
	case strings.HasPrefix(format, "pcm_"):
		rate, _ = strconv.Atoi(strings.TrimPrefix(format, "pcm_"))
	case format == "":
		http.Error(w, `{"detail":"this stand-in speaks PCM or μ-law only: set output_format"}`, http.StatusBadRequest)
		return
	}
	switch rate {
	case 8000, 16000, 22050, 24000, 44100, 48000:
	default:
		http.Error(w, `{"detail":{"status":"invalid_output_format","message":"unknown output_format"}}`, http.StatusBadRequest)
		return
	}
	conn := s.accept(w, r, r.Header.Get("xi-api-key"))
	if conn == nil {
		return
	}
	defer conn.CloseNow()
	ss := s.open(r)
	s.record(func() { ss.Rate, ss.Encoding = rate, strings.Split(format, "_")[0] })

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	texts := make(chan string, 256)
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		s.elevenLabsVoice(ctx, conn, ss, texts, &toneVoice{opts: s.opts, rate: rate, mulaw: mulaw})
	}()
	defer func() { <-genDone }()
	defer cancel()

	first, ended := true, false
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.cancelled(ss) // unless the synthesis was done
			}
			return
		}
		var m struct {
			Text  *string `json:"text"`
			Flush bool    `json:"flush"`
		}
		s.record(func() { ss.Messages = append(ss.Messages, string(data)) })
		if json.Unmarshal(data, &m) != nil || m.Text == nil {
			elevenLabsError(ctx, conn, "invalid_request", "every message must be JSON with text")
			return
		}
		switch {
		case first:
			first = false
			if *m.Text != " " {
				elevenLabsError(ctx, conn, "invalid_request", "the first message must have a single space as text")
				return
			}
		case *m.Text == "":
			if !ended {
				ended = true
				s.record(func() { ss.Ended = time.Now() })
				close(texts)
			}
		case !ended:
			s.record(func() { ss.Texts = append(ss.Texts, *m.Text) })
			select {
			case texts <- *m.Text:
			case <-ctx.Done():
				return
			}
		}
	}
}

func elevenLabsError(ctx context.Context, conn *websocket.Conn, kind, msg string) {
	b, _ := json.Marshal(map[string]any{"message": msg, "error": kind, "code": 1008})
	_ = conn.Write(ctx, websocket.MessageText, b)
	_ = conn.Close(websocket.StatusPolicyViolation, kind)
}

// elevenLabsVoice speaks each text as it comes; after the last, isFinal and a normal close.
func (s *streamServer) elevenLabsVoice(ctx context.Context, conn *websocket.Conn, ss *StreamSession, texts <-chan string, v *toneVoice) {
	for {
		var text string
		var ok bool
		select {
		case text, ok = <-texts:
		case <-ctx.Done():
			return
		}
		if !ok {
			b, _ := json.Marshal(map[string]any{"audio": nil, "isFinal": true, "normalizedAlignment": nil})
			s.record(func() { ss.Done = time.Now() })
			_ = conn.Write(ctx, websocket.MessageText, b)
			_ = conn.Close(websocket.StatusNormalClosure, "")
			return
		}
		if s.hostile(ctx, conn, func() {
			elevenLabsError(ctx, conn, "invalid_request", s.opts.ErrorMessage)
		}) {
			return
		}
		firstChunk := true
		ok = v.speak(ctx, text, func(b64 string, samples int) bool {
			msg := map[string]any{"audio": b64, "isFinal": nil, "normalizedAlignment": nil, "alignment": nil}
			if firstChunk {
				firstChunk = false
				msg["normalizedAlignment"] = alignment(text, v.opts.PerChar)
				msg["alignment"] = msg["normalizedAlignment"]
			}
			b, _ := json.Marshal(msg)
			s.record(func() {
				if ss.FirstAudio.IsZero() {
					ss.FirstAudio = time.Now()
				}
			})
			return conn.Write(ctx, websocket.MessageText, b) == nil
		})
		if !ok {
			return
		}
	}
}

// hostile sends what the options say instead of the first audio, and reports whether it
// did (the synthesis then ends).
func (s *streamServer) hostile(ctx context.Context, conn *websocket.Conn, providerError func()) bool {
	switch {
	case s.opts.Hostile != "":
		_ = conn.Write(ctx, websocket.MessageText, []byte(s.opts.Hostile))
	case s.opts.HostileBinary:
		_ = conn.Write(ctx, websocket.MessageBinary, []byte{0xff, 0x00, 0x13})
	case s.opts.ErrorMessage != "":
		providerError()
	default:
		return false
	}
	<-ctx.Done()
	return true
}

// alignment is ElevenLabs' character alignment of text spoken at perChar.
func alignment(text string, perChar time.Duration) map[string]any {
	chars := []string{}
	starts, durs := []int{}, []int{}
	for i, r := range []rune(text) {
		chars = append(chars, string(r))
		starts = append(starts, i*int(perChar.Milliseconds()))
		durs = append(durs, int(perChar.Milliseconds()))
	}
	return map[string]any{"chars": chars, "charStartTimesMs": starts, "charDurationsMs": durs}
}
