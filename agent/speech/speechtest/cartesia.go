package speechtest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Cartesia is a stand-in of Cartesia's TTS WebSocket (wss://…/tts/websocket): the key as
// X-API-Key (or ?api_key=) with Cartesia-Version (or ?cartesia_version=), generation
// requests with model_id, transcript, voice {mode, id}, output_format {container: raw,
// encoding, sample_rate} and context_id, continued while continue is true; answers of
// chunk (base64 data), done and error messages carrying the context_id; a cancel message
// ({"context_id","cancel":true}) stops the context and is recorded.
type Cartesia struct{ *streamServer }

// NewCartesia starts the stand-in; it closes when the test ends.
func NewCartesia(t testing.TB, opts StreamOptions) *Cartesia {
	t.Helper()
	if opts.Tone == 0 {
		opts.Tone = 660
	}
	return &Cartesia{newStreamServer(t, opts, serveCartesia)}
}

type cartesiaInput struct {
	ModelID    *string `json:"model_id"`
	Transcript *string `json:"transcript"`
	Voice      *struct {
		Mode string `json:"mode"`
		ID   string `json:"id"`
	} `json:"voice"`
	ContextID    string `json:"context_id"`
	OutputFormat *struct {
		Container  string `json:"container"`
		Encoding   string `json:"encoding"`
		SampleRate int    `json:"sample_rate"`
	} `json:"output_format"`
	Continue bool `json:"continue"`
	Cancel   bool `json:"cancel"`
}

// cartesiaContext is a context being spoken: its texts, in order, to its voice.
type cartesiaContext struct {
	texts  chan string
	cancel context.CancelFunc
}

// CartesiaVoices are the voices the stand-in lists at GET /voices (a page, as Cartesia's
// current API answers).
var CartesiaVoices = []map[string]any{
	{"id": "a0e99841-438c-4a64-b679-ae501e7d6091", "name": "Barbershop Man", "language": "en", "is_public": true},
	{"id": "694f9389-aac1-45b6-b726-9d9369183238", "name": "Sarah", "language": "en", "is_public": true},
}

func serveCartesia(s *streamServer, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/voices" {
		s.voices(w, r.Header.Get("X-API-Key"), map[string]any{"data": CartesiaVoices, "has_more": false})
		return
	}
	if r.URL.Path != "/tts/websocket" {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		key = r.URL.Query().Get("api_key")
	}
	if r.Header.Get("Cartesia-Version") == "" && r.URL.Query().Get("cartesia_version") == "" {
		http.Error(w, `{"error":"Cartesia-Version header is required"}`, http.StatusBadRequest)
		return
	}
	conn := s.accept(w, r, key)
	if conn == nil {
		return
	}
	defer conn.CloseNow()
	ss := s.open(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	contexts := map[string]*cartesiaContext{}
	send := func(v any) {
		b, _ := json.Marshal(v)
		_ = conn.Write(ctx, websocket.MessageText, b)
	}
	fail := func(id, msg string) {
		send(map[string]any{"type": "error", "done": true, "error": msg, "status_code": 400, "context_id": id})
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		s.record(func() { ss.Messages = append(ss.Messages, string(data)) })
		var in cartesiaInput
		if err := json.Unmarshal(data, &in); err != nil || in.ContextID == "" {
			fail("", "every message must be JSON with a context_id")
			continue
		}
		if in.Cancel {
			if c := contexts[in.ContextID]; c != nil {
				s.cancelled(ss)
				c.cancel()
				delete(contexts, in.ContextID)
			}
			continue
		}
		c := contexts[in.ContextID]
		if c == nil {
			switch {
			case in.ModelID == nil || *in.ModelID == "" || in.Transcript == nil || in.Voice == nil || in.Voice.Mode != "id" || in.Voice.ID == "":
				fail(in.ContextID, "model_id, transcript and voice {mode: id, id} are required")
				continue
			case in.OutputFormat == nil || in.OutputFormat.Container != "raw" ||
				(in.OutputFormat.Encoding != "pcm_s16le" && in.OutputFormat.Encoding != "pcm_mulaw"):
				fail(in.ContextID, "output_format must be raw pcm_s16le or pcm_mulaw in this stand-in")
				continue
			}
			switch in.OutputFormat.SampleRate {
			case 8000, 16000, 22050, 24000, 44100, 48000:
			default:
				fail(in.ContextID, "unsupported sample_rate")
				continue
			}
			cctx, ccancel := context.WithCancel(ctx)
			c = &cartesiaContext{texts: make(chan string, 256), cancel: ccancel}
			contexts[in.ContextID] = c
			s.record(func() { ss.Rate, ss.Encoding = in.OutputFormat.SampleRate, in.OutputFormat.Encoding })
			v := &toneVoice{opts: s.opts, rate: in.OutputFormat.SampleRate, mulaw: in.OutputFormat.Encoding == "pcm_mulaw"}
			id := in.ContextID
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer ccancel()
				s.cartesiaVoice(cctx, conn, ss, id, c.texts, v)
			}()
		}
		if t := *in.Transcript; t != "" {
			s.record(func() { ss.Texts = append(ss.Texts, t) })
			select {
			case c.texts <- t:
			case <-ctx.Done():
				return
			}
		}
		if !in.Continue {
			s.record(func() { ss.Ended = time.Now() })
			close(c.texts)
			delete(contexts, in.ContextID)
		}
	}
}

// cartesiaVoice speaks a context's texts; after the last, done.
func (s *streamServer) cartesiaVoice(ctx context.Context, conn *websocket.Conn, ss *StreamSession, id string, texts <-chan string, v *toneVoice) {
	send := func(m map[string]any) bool {
		b, _ := json.Marshal(m)
		return conn.Write(ctx, websocket.MessageText, b) == nil
	}
	for {
		var text string
		var ok bool
		select {
		case text, ok = <-texts:
		case <-ctx.Done():
			return
		}
		if !ok {
			s.record(func() { ss.Done = time.Now() })
			send(map[string]any{"type": "done", "done": true, "status_code": 206, "context_id": id})
			return
		}
		if s.hostile(ctx, conn, func() {
			send(map[string]any{"type": "error", "done": true, "title": "Invalid request", "message": s.opts.ErrorMessage,
				"error_code": "invalid_request", "status_code": 400, "context_id": id})
		}) {
			return
		}
		if !v.speak(ctx, text, func(b64 string, samples int) bool {
			s.record(func() {
				if ss.FirstAudio.IsZero() {
					ss.FirstAudio = time.Now()
				}
			})
			return send(map[string]any{"type": "chunk", "data": b64, "done": false, "status_code": 206,
				"step_time": float64(samples) / float64(v.rate) * 1000 / v.opts.Speedup, "context_id": id})
		}) {
			return
		}
	}
}
