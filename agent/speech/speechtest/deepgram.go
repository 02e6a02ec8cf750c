package speechtest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Deepgram is a stand-in of Deepgram's live transcription API: GET /v1/listen upgraded to
// a WebSocket, linear16 audio as binary messages at the query's sample_rate, and Results
// (interim, is_final with speech_final), SpeechStarted (vad_events), UtteranceEnd
// (utterance_end_ms) and, after CloseStream, Metadata, in Deepgram's documented JSON.
// Its endpointing is the query's endpointing (ms of silence, default 10 as Deepgram's).
type Deepgram struct {
	*liveServer
}

// NewDeepgram starts a Deepgram stand-in that closes when the test ends.
func NewDeepgram(t testing.TB, opts LiveOptions) *Deepgram {
	t.Helper()
	return &Deepgram{startLive(t, opts, serveDeepgram)}
}

func serveDeepgram(ctx context.Context, s *liveServer, conn *websocket.Conn, lc *LiveConn, r *http.Request) {
	q := r.URL.Query()
	rate, err := strconv.Atoi(q.Get("sample_rate"))
	if err != nil || rate < 8000 || rate > 48000 || q.Get("encoding") != "linear16" {
		_ = conn.Close(websocket.StatusPolicyViolation, "DATA-0000: encoding linear16 and sample_rate are required")
		return
	}
	endpointing := 10 * time.Millisecond
	if ms, err := strconv.Atoi(q.Get("endpointing")); err == nil && ms > 0 {
		endpointing = time.Duration(ms) * time.Millisecond
	}
	utteranceEnd, _ := strconv.Atoi(q.Get("utterance_end_ms"))
	vadEvents := q.Get("vad_events") == "true"
	interim := q.Get("interim_results") == "true"
	h := &hearing{s: s, rate: rate, endpointing: endpointing}
	in := readAll(ctx, conn)

	send := func(v any) {
		b, _ := json.Marshal(v)
		_ = conn.Write(ctx, websocket.MessageText, b)
	}
	results := func(text string, start, end int64, isFinal, speechFinal bool) {
		send(map[string]any{
			"type": "Results", "channel_index": []int{0, 1},
			"duration": h.seconds(end - start), "start": h.seconds(start),
			"is_final": isFinal, "speech_final": speechFinal, "from_finalize": false,
			"channel":  map[string]any{"alternatives": []map[string]any{{"transcript": text, "confidence": 0.98, "words": []any{}}}},
			"metadata": map[string]any{"request_id": "stand-in", "model_info": map[string]any{"name": q.Get("model")}},
		})
	}
	var final, uend *time.Timer
	var finalC, uendC <-chan time.Time
	var pending struct {
		text       string
		start, end int64
		speechEnd  time.Time
	}
	sentRaw := false
	for {
		select {
		case m, ok := <-in:
			if !ok {
				return
			}
			if m.typ == websocket.MessageText {
				var ctl struct {
					Type string `json:"type"`
				}
				if json.Unmarshal(m.b, &ctl) != nil {
					_ = conn.Close(websocket.StatusPolicyViolation, "DATA-0000: unknown message")
					return
				}
				switch ctl.Type {
				case "KeepAlive":
					s.record(lc, func(c *LiveConn) { c.KeepAlives++ })
				case "CloseStream":
					s.record(lc, func(c *LiveConn) { c.CloseStream = true })
					if finalC != nil {
						final.Stop()
						results(pending.text, pending.start, pending.end, true, true)
						s.addFinal(pending.text, pending.speechEnd)
					}
					send(map[string]any{"type": "Metadata", "transaction_key": "deprecated", "request_id": "stand-in",
						"sha256": "", "created": time.Now().UTC().Format(time.RFC3339), "duration": h.seconds(h.pos), "channels": 1})
					_ = conn.Close(websocket.StatusNormalClosure, "")
					return
				}
				continue
			}
			pcm := make([]int16, len(m.b)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(m.b[2*i:]))
			}
			s.record(lc, func(c *LiveConn) { c.AudioSeconds += float64(len(pcm)) / float64(rate) })
			if !sentRaw {
				sentRaw = true
				for _, raw := range s.opts.Raw {
					_ = conn.Write(ctx, websocket.MessageText, raw)
				}
			}
			h.feed(pcm, func(ev liveEvent, text string) {
				switch ev {
				case evStart:
					uendC = nil // words again: the utterance did not end
					if vadEvents {
						send(map[string]any{"type": "SpeechStarted", "channel": []int{0, 1}, "timestamp": h.seconds(h.speechStart)})
					}
				case evInterim:
					if interim {
						results(text, h.speechStart, h.pos, false, false)
					}
				case evEnd:
					pending.text, pending.start, pending.end, pending.speechEnd = text, h.speechStart, h.lastOn, h.speechEndAt
					if s.opts.FinalDelay > 0 {
						final = time.NewTimer(s.opts.FinalDelay)
						finalC = final.C
					}
				}
			})
			if s.shouldDrop(h) {
				s.record(lc, func(c *LiveConn) { c.Dropped = true })
				conn.CloseNow()
				return
			}
		case <-finalC:
			finalC = nil
			results(pending.text, pending.start, pending.end, true, true)
			s.addFinal(pending.text, pending.speechEnd)
			if utteranceEnd > 0 {
				uend = time.NewTimer(time.Duration(utteranceEnd) * time.Millisecond)
				uendC = uend.C
			}
		case <-uendC:
			uendC = nil
			send(map[string]any{"type": "UtteranceEnd", "channel": []int{0, 1}, "last_word_end": h.seconds(pending.end)})
		case <-ctx.Done():
			return
		}
	}
}
