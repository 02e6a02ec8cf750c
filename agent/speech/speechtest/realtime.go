package speechtest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/media"
)

// Realtime is a stand-in of OpenAI's Realtime WebSocket API (GET {URL}/realtime?model=…):
// it speaks the GA events as the real one does, hears the caller by the energy of the audio
// appended to its input buffer (its server_vad), answers each turn with what the test
// scripts (a tone of the reply's length, its transcript, or a function call) after a
// first-audio delay like a real model's, and records what the client did: the sessions it
// configured, the tool results it gave, the responses it cancelled and the items it
// truncated. Its audio is a 440 Hz tone in the session's format, streamed faster than real
// time as the real one streams.
type Realtime struct {
	// URL is the base URL to configure a provider with: ".../v1".
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	key      string
	replies  []RealtimeReply
	heard    []string
	firstAud time.Duration
	silence  time.Duration
	sessions []json.RawMessage
	outputs  []FunctionOutput
	cancels  int
	truncs   []Truncation
	models   []string
	received chan ClientEvent
	// conns are the sessions open: a hijacked connection is no longer the HTTP server's to
	// close.
	conns map[*websocket.Conn]struct{}
}

// RealtimeReply is the stand-in's answer to one response.
type RealtimeReply struct {
	// Text is the reply's transcript; its audio lasts Audio (zero: 60 ms a word).
	Text  string
	Audio time.Duration
	// Call, when its Name is set, makes the reply a function call instead.
	Call RealtimeCall
}

// RealtimeCall is a function call the model makes.
type RealtimeCall struct{ Name, Arguments string }

// FunctionOutput is a function_call_output the client gave the model.
type FunctionOutput struct{ CallID, Output string }

// Truncation is a conversation.item.truncate the client sent.
type Truncation struct {
	ItemID     string
	AudioEndMS int
	// Sent is how much audio of the item the stand-in had sent, in ms.
	SentMS int
}

// ClientEvent is an event the stand-in received, as it was sent.
type ClientEvent struct {
	Type string
	Raw  json.RawMessage
}

// DefaultRealtimeFirstAudio is the stand-in's delay from the end of the caller's turn to
// its first audio, about what OpenAI's gpt-realtime takes.
const DefaultRealtimeFirstAudio = 500 * time.Millisecond

// RealtimeTone is the frequency of the stand-in's voice.
const RealtimeTone = 440

// NewRealtime starts a stand-in that closes when the test ends.
func NewRealtime(t testing.TB) *Realtime {
	t.Helper()
	s := StartRealtime()
	t.Cleanup(s.Close)
	return s
}

// StartRealtime starts a stand-in that lives until Close.
func StartRealtime() *Realtime {
	s := &Realtime{firstAud: DefaultRealtimeFirstAudio, silence: 500 * time.Millisecond, received: make(chan ClientEvent, 4096)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close ends the sessions (their sockets drop, as a provider's do when it fails) and stops
// the server.
func (s *Realtime) Close() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.CloseNow()
	}
	s.mu.Unlock()
	s.srv.Close()
}

// RequireKey makes the stand-in refuse a handshake without "Authorization: Bearer key".
func (s *Realtime) RequireKey(key string) { s.mu.Lock(); s.key = key; s.mu.Unlock() }

// SetFirstAudio sets the delay before a response's first audio.
func (s *Realtime) SetFirstAudio(d time.Duration) { s.mu.Lock(); s.firstAud = d; s.mu.Unlock() }

// SetSilence sets how long the caller must be quiet for its server_vad to end the turn
// (OpenAI's default silence_duration_ms is 500).
func (s *Realtime) SetSilence(d time.Duration) { s.mu.Lock(); s.silence = d; s.mu.Unlock() }

// Enqueue scripts the next responses; without one, a response says "Okay." for 600 ms.
func (s *Realtime) Enqueue(r ...RealtimeReply) {
	s.mu.Lock()
	s.replies = append(s.replies, r...)
	s.mu.Unlock()
}

// Hear scripts the transcripts of the caller's next turns; without one, a turn is "Hello.".
func (s *Realtime) Hear(texts ...string) {
	s.mu.Lock()
	s.heard = append(s.heard, texts...)
	s.mu.Unlock()
}

// Received delivers every client event as it arrives (the oldest are dropped past 4,096
// unread), so that a test waits for what the client did rather than for time to pass.
func (s *Realtime) Received() <-chan ClientEvent { return s.received }

// Sessions are the session objects of the session.update events received.
func (s *Realtime) Sessions() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.sessions...)
}

// Outputs are the tool results received.
func (s *Realtime) Outputs() []FunctionOutput {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FunctionOutput(nil), s.outputs...)
}

// Truncations are the truncations received.
func (s *Realtime) Truncations() []Truncation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Truncation(nil), s.truncs...)
}

// Cancels counts the response.cancel events received.
func (s *Realtime) Cancels() int { s.mu.Lock(); defer s.mu.Unlock(); return s.cancels }

// Models are the models sessions were opened with.
func (s *Realtime) Models() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.models...)
}

//nolint:contextcheck // a session sends on its request's context, kept on its connection
func (s *Realtime) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/realtime") {
		writeError(w, http.StatusNotFound, "invalid_request_error", "Invalid URL ("+r.Method+" "+r.URL.Path+")")
		return
	}
	model := r.URL.Query().Get("model")
	s.mu.Lock()
	key := s.key
	s.models = append(s.models, model)
	s.mu.Unlock()
	if key != "" && r.Header.Get("Authorization") != "Bearer "+key {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided: "+redact(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		return
	}
	if model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'model'.")
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(16 << 20)
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*websocket.Conn]struct{}{}
	}
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	c := &rtConn{s: s, conn: conn, format: "audio/pcm", turn: "server_vad"}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c.ctx = ctx
	c.send(map[string]any{"type": "session.created", "session": map[string]any{"type": "realtime", "model": model}})
	c.read()
	c.stopResponse()
	c.wg.Wait()
	_ = conn.CloseNow()
}

// rtConn is one session of the stand-in.
type rtConn struct {
	s    *Realtime
	conn *websocket.Conn
	ctx  context.Context
	wg   sync.WaitGroup

	mu         sync.Mutex
	seq        int
	format     string
	turn       string // server_vad, semantic_vad, or "" (the client commits)
	transcribe bool
	bufferMS   int // audio appended to the input buffer
	voiced     int // consecutive voiced frames
	speaking   bool
	quietMS    int
	turnAudio  int // ms of speech in the current input buffer
	resp       *rtResponse
}

// rtResponse is a response being made.
type rtResponse struct {
	id, itemID string
	cancel     context.CancelFunc
	done       chan struct{}
	sentMS     int
}

func (c *rtConn) id(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("%s_%04d", prefix, c.seq)
}

func (c *rtConn) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	_ = c.conn.Write(ctx, websocket.MessageText, b)
}

func (c *rtConn) sendError(code, message string) {
	c.send(map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error", "code": code, "message": message}})
}

func (c *rtConn) read() {
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		var ev rtClientEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			c.sendError("invalid_json", "The server could not parse the event: "+err.Error())
			continue
		}
		c.handle(&ev)
		// Told only once handled, so that a test that saw an event sees what it did (a
		// tool's output kept, a truncation or a cancel counted).
		if ev.Type != "input_audio_buffer.append" {
			select {
			case c.s.received <- ClientEvent{Type: ev.Type, Raw: append(json.RawMessage(nil), b...)}:
			default:
			}
		}
	}
}

// rtClientEvent is what the stand-in reads of a client's event.
type rtClientEvent struct {
	Type         string          `json:"type"`
	Session      json.RawMessage `json:"session"`
	Audio        string          `json:"audio"`
	ItemID       string          `json:"item_id"`
	ContentIndex int             `json:"content_index"`
	AudioEndMS   *int            `json:"audio_end_ms"`
	Item         *struct {
		Type   string `json:"type"`
		CallID string `json:"call_id"`
		Output string `json:"output"`
	} `json:"item"`
}

// handle answers one client event as the Realtime API does.
func (c *rtConn) handle(ev *rtClientEvent) {
	switch ev.Type {
	case "session.update":
		c.update(ev.Session)
	case "input_audio_buffer.append":
		audio, err := base64.StdEncoding.DecodeString(ev.Audio)
		if err != nil {
			c.sendError("invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.")
			return
		}
		c.hear(audio)
	case "input_audio_buffer.commit":
		c.mu.Lock()
		empty := c.bufferMS < 100
		c.mu.Unlock()
		if empty {
			c.sendError("input_audio_buffer_commit_empty", "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio.")
			return
		}
		c.commit()
	case "response.create":
		c.respond()
	case "response.cancel":
		c.s.mu.Lock()
		c.s.cancels++
		c.s.mu.Unlock()
		c.stopResponse()
	case "conversation.item.truncate":
		if ev.ItemID == "" || ev.AudioEndMS == nil {
			c.sendError("invalid_value", "Missing required parameter: 'item_id' and 'audio_end_ms'.")
			return
		}
		c.truncate(ev.ItemID, *ev.AudioEndMS)
	case "conversation.item.create":
		if ev.Item == nil {
			c.sendError("missing_required_parameter", "Missing required parameter: 'item'.")
			return
		}
		if ev.Item.Type == "function_call_output" {
			c.s.mu.Lock()
			c.s.outputs = append(c.s.outputs, FunctionOutput{CallID: ev.Item.CallID, Output: ev.Item.Output})
			c.s.mu.Unlock()
		}
		c.send(map[string]any{"type": "conversation.item.created", "item": map[string]any{"id": c.id("item"), "type": ev.Item.Type}})
	default:
		c.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'session.update', 'input_audio_buffer.append', …", ev.Type))
	}
}

func (c *rtConn) update(raw json.RawMessage) {
	var sess struct {
		Type  string `json:"type"`
		Audio struct {
			Input struct {
				Format struct {
					Type string `json:"type"`
				} `json:"format"`
				TurnDetection *struct {
					Type string `json:"type"`
				} `json:"turn_detection"`
				Transcription *struct {
					Model string `json:"model"`
				} `json:"transcription"`
			} `json:"input"`
		} `json:"audio"`
	}
	if err := json.Unmarshal(raw, &sess); err != nil || sess.Type != "realtime" {
		c.sendError("invalid_value", "Invalid 'session': a realtime session needs type \"realtime\".")
		return
	}
	c.s.mu.Lock()
	c.s.sessions = append(c.s.sessions, raw)
	c.s.mu.Unlock()
	c.mu.Lock()
	if f := sess.Audio.Input.Format.Type; f == "audio/pcmu" || f == "audio/pcm" {
		c.format = f
	}
	c.turn = ""
	if td := sess.Audio.Input.TurnDetection; td != nil {
		c.turn = td.Type
	}
	c.transcribe = sess.Audio.Input.Transcription != nil
	c.mu.Unlock()
	c.send(map[string]any{"type": "session.updated", "session": raw})
}

// hear runs the stand-in's VAD over appended audio, 20 ms at a time.
func (c *rtConn) hear(audio []byte) {
	c.mu.Lock()
	format := c.format
	c.mu.Unlock()
	var pcm []int16
	if format == "audio/pcmu" {
		pcm = make([]int16, len(audio))
		media.DecodePCMU(pcm, audio)
	} else {
		pcm = make([]int16, len(audio)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(audio[2*i:]))
		}
	}
	rate := 24000
	if format == "audio/pcmu" {
		rate = 8000
	}
	frame := rate / 50
	for i := 0; i+frame <= len(pcm); i += frame {
		c.frame(pcm[i : i+frame])
	}
}

func (c *rtConn) frame(pcm []int16) {
	var e float64
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	loud := math.Sqrt(e/float64(len(pcm))) > 500
	c.s.mu.Lock()
	silence := int(c.s.silence / time.Millisecond)
	c.s.mu.Unlock()
	c.mu.Lock()
	c.bufferMS += 20
	at := c.bufferMS
	vad := c.turn != ""
	if loud {
		c.voiced++
		c.quietMS = 0
	} else {
		c.voiced = 0
		c.quietMS += 20
	}
	if c.speaking {
		c.turnAudio += 20
	}
	start := !c.speaking && c.voiced >= 3
	if start {
		c.speaking, c.turnAudio = true, 60
	}
	stop := c.speaking && c.quietMS >= silence
	if stop {
		c.speaking = false
	}
	c.mu.Unlock()
	if !vad {
		return
	}
	if start {
		item := c.id("item")
		c.send(map[string]any{"type": "input_audio_buffer.speech_started", "audio_start_ms": at - 60, "item_id": item})
		// The real server cancels the response the caller speaks over (interrupt_response).
		c.stopResponse()
	}
	if stop {
		c.send(map[string]any{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at - silence})
		c.commit()
		c.respond()
	}
}

// commit ends the caller's turn: committed, then its transcript when transcription is on.
func (c *rtConn) commit() {
	item := c.id("item")
	c.mu.Lock()
	c.bufferMS, c.turnAudio = 0, 0
	transcribe := c.transcribe
	c.mu.Unlock()
	c.send(map[string]any{"type": "input_audio_buffer.committed", "item_id": item})
	if !transcribe {
		return
	}
	c.s.mu.Lock()
	text := "Hello."
	if len(c.s.heard) > 0 {
		text, c.s.heard = c.s.heard[0], c.s.heard[1:]
	}
	c.s.mu.Unlock()
	c.send(map[string]any{"type": "conversation.item.input_audio_transcription.completed", "item_id": item, "content_index": 0, "transcript": text})
}

// stopResponse cancels the response being made, if any, and waits for it to end.
func (c *rtConn) stopResponse() {
	c.mu.Lock()
	r := c.resp
	c.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (c *rtConn) truncate(itemID string, ms int) {
	c.mu.Lock()
	sent := -1
	if c.resp != nil && c.resp.itemID == itemID {
		sent = c.resp.sentMS
	}
	c.mu.Unlock()
	c.s.mu.Lock()
	if sent < 0 {
		for _, t := range c.s.truncs {
			if t.ItemID == itemID {
				sent = t.SentMS
			}
		}
	}
	c.s.truncs = append(c.s.truncs, Truncation{ItemID: itemID, AudioEndMS: ms, SentMS: sent})
	c.s.mu.Unlock()
	c.send(map[string]any{"type": "conversation.item.truncated", "item_id": itemID, "content_index": 0, "audio_end_ms": ms})
}

// respond starts a response with the next scripted reply.
//
//nolint:contextcheck // the response sends on the session's context, kept on its connection
func (c *rtConn) respond() {
	c.stopResponse()
	c.s.mu.Lock()
	reply := RealtimeReply{Text: "Okay.", Audio: 600 * time.Millisecond}
	if len(c.s.replies) > 0 {
		reply, c.s.replies = c.s.replies[0], c.s.replies[1:]
	}
	delay := c.s.firstAud
	c.s.mu.Unlock()
	ctx, cancel := context.WithCancel(c.ctx)
	r := &rtResponse{id: c.id("resp"), itemID: c.id("item"), cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.resp = r
	format := c.format
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(r.done)
		defer cancel()
		status := c.produce(ctx, r, reply, format, delay)
		c.mu.Lock()
		if c.resp == r {
			c.resp = nil
		}
		c.mu.Unlock()
		c.send(map[string]any{"type": "response.done", "response": map[string]any{"id": r.id, "object": "realtime.response", "status": status,
			"usage": map[string]any{"total_tokens": 120, "input_tokens": 80, "output_tokens": 40}}})
	}()
}

// produce sends a response's events; it returns the response's status.
//
//nolint:contextcheck // it sends on the session's context, kept on its connection
func (c *rtConn) produce(ctx context.Context, r *rtResponse, reply RealtimeReply, format string, delay time.Duration) string {
	c.send(map[string]any{"type": "response.created", "response": map[string]any{"id": r.id, "object": "realtime.response", "status": "in_progress"}})
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return "cancelled"
	}
	if reply.Call.Name != "" {
		callID := c.id("call")
		c.send(map[string]any{"type": "response.output_item.added", "response_id": r.id, "output_index": 0,
			"item": map[string]any{"id": r.itemID, "type": "function_call", "call_id": callID, "name": reply.Call.Name}})
		c.send(map[string]any{"type": "response.function_call_arguments.done", "response_id": r.id, "item_id": r.itemID,
			"output_index": 0, "call_id": callID, "name": reply.Call.Name, "arguments": reply.Call.Arguments})
		return "completed"
	}
	c.send(map[string]any{"type": "response.output_item.added", "response_id": r.id, "output_index": 0,
		"item": map[string]any{"id": r.itemID, "type": "message", "role": "assistant"}})
	words := strings.Fields(reply.Text)
	length := reply.Audio
	if length <= 0 {
		length = time.Duration(max(1, len(words))) * 60 * time.Millisecond
	}
	rate := 24000
	if format == "audio/pcmu" {
		rate = 8000
	}
	total := int(length / time.Millisecond)
	const chunkMS = 100
	phase := 0.0
	pcm := make([]int16, rate*chunkMS/1000)
	out := make([]byte, 2*len(pcm))
	word := 0
	for sent := 0; sent < total; sent += chunkMS {
		n := min(chunkMS, total-sent) * rate / 1000
		for i := range pcm[:n] {
			pcm[i] = int16(8000 * math.Sin(phase))
			phase += 2 * math.Pi * RealtimeTone / float64(rate)
		}
		var b []byte
		if format == "audio/pcmu" {
			b = out[:media.EncodePCMU(out, pcm[:n])]
		} else {
			for i, v := range pcm[:n] {
				binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
			}
			b = out[:2*n]
		}
		c.send(map[string]any{"type": "response.output_audio.delta", "response_id": r.id, "item_id": r.itemID, "output_index": 0,
			"content_index": 0, "delta": base64.StdEncoding.EncodeToString(b)})
		c.mu.Lock()
		r.sentMS = sent + n*1000/rate
		c.mu.Unlock()
		// The words go with the audio they are spoken in.
		for ; word < len(words) && word*total/len(words) <= sent; word++ {
			d := words[word]
			if word > 0 {
				d = " " + d
			}
			c.send(map[string]any{"type": "response.output_audio_transcript.delta", "response_id": r.id, "item_id": r.itemID,
				"output_index": 0, "content_index": 0, "delta": d})
		}
		// Faster than real time, as the real server streams.
		pace := time.NewTimer(chunkMS * time.Millisecond / 4)
		select {
		case <-pace.C:
		case <-ctx.Done():
			pace.Stop()
			return "cancelled"
		}
	}
	for ; word < len(words); word++ {
		d := words[word]
		if word > 0 {
			d = " " + d
		}
		c.send(map[string]any{"type": "response.output_audio_transcript.delta", "response_id": r.id, "item_id": r.itemID, "delta": d})
	}
	c.send(map[string]any{"type": "response.output_audio.done", "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0})
	c.send(map[string]any{"type": "response.output_audio_transcript.done", "response_id": r.id, "item_id": r.itemID, "transcript": reply.Text})
	return "completed"
}
