package speechtest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// OpenAIRealtimeSTT is a stand-in of OpenAI's realtime transcription sessions: GET
// /v1/realtime?intent=transcription upgraded to a WebSocket. Without an "OpenAI-Beta"
// header it speaks the GA interface: session.created first, then session.updated for each
// session.update of a session of type "transcription" (audio.input: format audio/pcm at
// 24 kHz, transcription, turn_detection); with "OpenAI-Beta: realtime=v1" (or always, with
// LiveOptions.BetaOnly) the beta one: transcription_session.created, then
// transcription_session.updated for each transcription_session.update (pcm16), and an
// error event for the other interface's update. Then input_audio_buffer.append of base64
// PCM at 24 kHz; its server VAD (silence_duration_ms of the session, default 500)
// sends input_audio_buffer.speech_started, .speech_stopped and .committed, and the item's
// transcript comes as conversation.item.input_audio_transcription.delta events (a word
// each, InterimEvery apart) and, FinalDelay after the commit, .completed.
type OpenAIRealtimeSTT struct {
	*liveServer
}

// NewOpenAIRealtimeSTT starts a realtime transcription stand-in that closes when the test
// ends.
func NewOpenAIRealtimeSTT(t testing.TB, opts LiveOptions) *OpenAIRealtimeSTT {
	t.Helper()
	return &OpenAIRealtimeSTT{startLive(t, opts, serveRealtimeSTT)}
}

func serveRealtimeSTT(ctx context.Context, s *liveServer, conn *websocket.Conn, lc *LiveConn, r *http.Request) {
	if r.URL.Query().Get("intent") != "transcription" {
		_ = conn.Close(websocket.StatusPolicyViolation, "intent=transcription is required")
		return
	}
	seq := 0
	send := func(typ string, fields map[string]any) {
		seq++
		fields["type"] = typ
		fields["event_id"] = fmt.Sprintf("event_%d", seq)
		b, _ := json.Marshal(fields)
		_ = conn.Write(ctx, websocket.MessageText, b)
	}
	beta := s.opts.BetaOnly || r.Header.Get("OpenAI-Beta") != ""
	session := map[string]any{"id": "sess_standin", "object": "realtime.transcription_session", "input_audio_format": "pcm16",
		"turn_detection": map[string]any{"type": "server_vad", "silence_duration_ms": 500}}
	gaSession := func(silence int) map[string]any {
		return map[string]any{"id": "sess_standin", "object": "realtime.transcription_session", "type": "transcription",
			"audio": map[string]any{"input": map[string]any{"format": map[string]any{"type": "audio/pcm", "rate": 24000},
				"turn_detection": map[string]any{"type": "server_vad", "silence_duration_ms": silence}}}}
	}
	if beta {
		send("transcription_session.created", map[string]any{"session": session})
	} else {
		send("session.created", map[string]any{"session": gaSession(500)})
	}
	unsupported := func(typ string) {
		send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_value", "param": "type",
			"message": fmt.Sprintf("Invalid value: '%s'. Supported values are: '%s', 'input_audio_buffer.append', 'input_audio_buffer.commit' and 'input_audio_buffer.clear'.",
				typ, map[bool]string{true: "transcription_session.update", false: "session.update"}[beta])}})
	}

	const rate = 24000
	h := &hearing{s: s, rate: rate, endpointing: 500 * time.Millisecond}
	in := readAll(ctx, conn)
	item := ""
	items := 0
	var words []string
	var next *time.Timer
	var nextC <-chan time.Time
	var speechEnd time.Time
	sentRaw := false
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			var ev struct {
				Type    string          `json:"type"`
				Audio   string          `json:"audio"`
				Session json.RawMessage `json:"session"`
			}
			if json.Unmarshal(m.b, &ev) != nil {
				send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_json", "message": "The event is not JSON."}})
				continue
			}
			switch ev.Type {
			case "session.update":
				if beta {
					unsupported(ev.Type)
					continue
				}
				var cfg struct {
					Type  string `json:"type"`
					Audio struct {
						Input struct {
							Format struct {
								Type string `json:"type"`
								Rate int    `json:"rate"`
							} `json:"format"`
							TurnDetection *struct {
								Silence int `json:"silence_duration_ms"`
							} `json:"turn_detection"`
						} `json:"input"`
					} `json:"audio"`
				}
				if json.Unmarshal(ev.Session, &cfg) != nil || cfg.Type != "transcription" {
					send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_value",
						"message": "This socket is a transcription session: session.type must be 'transcription'.", "param": "session.type"}})
					continue
				}
				if f := cfg.Audio.Input.Format; f.Type != "" && (f.Type != "audio/pcm" || (f.Rate != 0 && f.Rate != rate)) {
					send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_value",
						"message": "Only audio/pcm at 24000 Hz is served here.", "param": "session.audio.input.format"}})
					continue
				}
				silence := 500
				if td := cfg.Audio.Input.TurnDetection; td != nil && td.Silence > 0 {
					silence = td.Silence
					h.endpointing = time.Duration(silence) * time.Millisecond
				}
				s.record(lc, func(c *LiveConn) { c.Config = append([]byte(nil), m.b...) })
				send("session.updated", map[string]any{"session": gaSession(silence)})
			case "transcription_session.update":
				if !beta {
					unsupported(ev.Type)
					continue
				}
				var cfg struct {
					Format        string `json:"input_audio_format"`
					TurnDetection *struct {
						Silence int `json:"silence_duration_ms"`
					} `json:"turn_detection"`
				}
				if json.Unmarshal(ev.Session, &cfg) != nil || (cfg.Format != "" && cfg.Format != "pcm16") {
					send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_value", "message": "Only pcm16 is served here.", "param": "session.input_audio_format"}})
					continue
				}
				if cfg.TurnDetection != nil && cfg.TurnDetection.Silence > 0 {
					h.endpointing = time.Duration(cfg.TurnDetection.Silence) * time.Millisecond
					session["turn_detection"] = map[string]any{"type": "server_vad", "silence_duration_ms": cfg.TurnDetection.Silence}
				}
				s.record(lc, func(c *LiveConn) { c.Config = append([]byte(nil), m.b...) })
				send("transcription_session.updated", map[string]any{"session": session})
			case "input_audio_buffer.append":
				raw, err := base64.StdEncoding.DecodeString(ev.Audio)
				if err != nil {
					send("error", map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "invalid_value", "message": "Invalid base64 audio.", "param": "audio"}})
					continue
				}
				pcm := make([]int16, len(raw)/2)
				for i := range pcm {
					pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
				}
				s.record(lc, func(c *LiveConn) { c.AudioSeconds += float64(len(pcm)) / rate })
				if !sentRaw {
					sentRaw = true
					for _, b := range s.opts.Raw {
						_ = conn.Write(ctx, websocket.MessageText, b)
					}
				}
				h.feed(pcm, func(e liveEvent, text string) {
					switch e {
					case evStart:
						items++
						item = fmt.Sprintf("item_%d", items)
						send("input_audio_buffer.speech_started", map[string]any{"audio_start_ms": h.speechStart * 1000 / rate, "item_id": item})
					case evEnd:
						send("input_audio_buffer.speech_stopped", map[string]any{"audio_end_ms": h.lastOn * 1000 / rate, "item_id": item})
						send("input_audio_buffer.committed", map[string]any{"previous_item_id": nil, "item_id": item})
						words, speechEnd = strings.Fields(text), h.speechEndAt
						if s.opts.FinalDelay > 0 {
							next = time.NewTimer(s.opts.InterimEvery / 4)
							nextC = next.C
						}
					}
				})
				if s.shouldDrop(h) {
					s.record(lc, func(c *LiveConn) { c.Dropped = true })
					conn.CloseNow()
					return
				}
			}
		case <-nextC:
			// A word a tick, then the whole transcript once FinalDelay is over.
			if len(words) > 0 && time.Since(speechEnd) < h.endpointing+s.opts.FinalDelay {
				send("conversation.item.input_audio_transcription.delta", map[string]any{"item_id": item, "content_index": 0, "delta": " " + words[0]})
				words = words[1:]
				next.Reset(s.opts.InterimEvery / 4)
				continue
			}
			if wait := h.endpointing + s.opts.FinalDelay - time.Since(speechEnd); wait > 0 {
				next.Reset(wait)
				continue
			}
			nextC = nil
			text := strings.Join(strings.Fields(s.say(s.finalsN())), " ")
			send("conversation.item.input_audio_transcription.completed", map[string]any{"item_id": item, "content_index": 0, "transcript": text})
			s.addFinal(text, speechEnd)
		case <-ctx.Done():
			return
		}
	}
}
