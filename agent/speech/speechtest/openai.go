// Package speechtest has stand-ins for the speech providers of package speech: real HTTP
// servers that speak OpenAI's audio API (POST /v1/audio/speech and
// /v1/audio/transcriptions) as the real one does, answer what the test scripts, fail the
// way real servers fail, and record every request. The speech they send is real: espeak-ng
// through package speech, at OpenAI's 24 kHz.
package speechtest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/media"
)

// DefaultTranscript is the transcript of a request when none is queued.
const DefaultTranscript = "Hello, I would like some help please."

// Transcript is the next answer to a transcription.
type Transcript struct {
	Text string
	// Status of 400 or more answers with OpenAI's error body of Message (a default by
	// status when empty) instead.
	Status  int
	Message string
	// Delay is waited before answering (a slow server: tests of deadlines).
	Delay time.Duration
	// Drop closes the connection without an answer.
	Drop bool
}

// Speech is the next answer to a speech request.
type Speech struct {
	// Status of 400 or more answers with OpenAI's error body of Message instead.
	Status  int
	Message string
	// Audio is what to send, mono at 24 kHz; nil speaks the request's input with espeak-ng.
	Audio []int16
	// WAV answers audio/wav (a streaming header, sizes 0xFFFFFFFF) even when pcm was asked.
	WAV bool
	// FirstByteDelay is waited before the headers.
	FirstByteDelay time.Duration
	// ChunkSamples is the audio of each write (0 is 2,400: 100 ms); ChunkDelay is waited
	// between writes (0 is 5 ms; negative is none).
	ChunkSamples int
	ChunkDelay   time.Duration
	// CutAfter, when positive, breaks the connection after that many samples were sent;
	// negative breaks it after the headers, before any audio.
	CutAfter int
	// Gate, when set, holds the answer after its first chunk until it is closed: a test
	// proves it reads audio before the server has sent it all.
	Gate <-chan struct{}
}

// TranscriptionRequest is a transcription the stand-in received, its audio decoded.
type TranscriptionRequest struct {
	Seq            int
	Header         http.Header
	Model          string
	Language       string
	ResponseFormat string
	Filename       string
	ContentType    string
	// Rate and Samples are the WAV's (its first channel).
	Rate    int
	Samples []int16
}

// Seconds is the length of the audio.
func (r TranscriptionRequest) Seconds() float64 {
	if r.Rate == 0 {
		return 0
	}
	return float64(len(r.Samples)) / float64(r.Rate)
}

// SpeechRequest is a speech request the stand-in received.
type SpeechRequest struct {
	Seq            int
	Header         http.Header
	Model          string
	Input          string
	Voice          string
	ResponseFormat string
	// Speed is 0 when the request had none.
	Speed float64
}

// Server is a stand-in OpenAI audio API.
type Server struct {
	// URL is the base URL to configure a provider with: ".../v1".
	URL string

	srv  *httptest.Server
	quit chan struct{}
	once sync.Once

	mu          sync.Mutex
	seq         int
	key         string
	transcripts []Transcript
	respond     func(TranscriptionRequest) Transcript
	speeches    []Speech
	speakWith   func(SpeechRequest) Speech
	trReqs      []TranscriptionRequest
	spReqs      []SpeechRequest
}

// NewOpenAI starts a stand-in that closes when the test ends.
func NewOpenAI(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a stand-in that lives until Close, for a TestMain that shares one among
// its package's tests.
func Start() *Server {
	s := &Server{quit: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the server, releasing the answers it holds.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.quit)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// RequireKey makes the server refuse requests without this Bearer key.
func (s *Server) RequireKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// Enqueue queues the transcripts of the next transcriptions, in order.
func (s *Server) Enqueue(texts ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range texts {
		s.transcripts = append(s.transcripts, Transcript{Text: t})
	}
}

// EnqueueTranscript queues the next answers to transcriptions, failures included.
func (s *Server) EnqueueTranscript(ts ...Transcript) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transcripts = append(s.transcripts, ts...)
}

// Respond answers transcriptions when none is queued, from the request (its audio, its
// language); without it the answer is DefaultTranscript.
func (s *Server) Respond(f func(TranscriptionRequest) Transcript) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// EnqueueSpeech queues the next answers to speech requests; without one the input is
// spoken by espeak-ng and streamed as pcm (or wav, as asked).
func (s *Server) EnqueueSpeech(sp ...Speech) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.speeches = append(s.speeches, sp...)
}

// Transcriptions are the transcription requests received so far.
func (s *Server) Transcriptions() []TranscriptionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TranscriptionRequest(nil), s.trReqs...)
}

// RespondSpeech answers every speech request that finds no queued Speech with f's
// (called with the server's lock held: f must not call the server).
func (s *Server) RespondSpeech(f func(SpeechRequest) Speech) {
	s.mu.Lock()
	s.speakWith = f
	s.mu.Unlock()
}

// Speeches are the speech requests received so far.
func (s *Server) Speeches() []SpeechRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SpeechRequest(nil), s.spReqs...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	if key != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got != key {
			writeError(w, http.StatusUnauthorized, "invalid_request_error",
				"Incorrect API key provided: "+redact(got)+". You can find your API key at https://platform.openai.com/account/api-keys.")
			return
		}
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/audio/transcriptions":
		s.transcribe(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/audio/speech":
		s.speak(w, r)
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error",
			fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	}
}

// maxUpload is OpenAI's limit on an uploaded file.
const maxUpload = 25 << 20

func (s *Server) transcribe(w http.ResponseWriter, r *http.Request) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			"Invalid Content-Type header ("+r.Header.Get("Content-Type")+"), expected multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: multipart/form-data')")
		return
	}
	if err := r.ParseMultipartForm(maxUpload); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Could not parse multipart form: "+err.Error())
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	req := TranscriptionRequest{
		Header:         r.Header.Clone(),
		Model:          r.FormValue("model"),
		Language:       r.FormValue("language"),
		ResponseFormat: r.FormValue("response_format"),
	}
	if req.Model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "you must provide a model parameter")
		return
	}
	f, fh, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'file'.")
		return
	}
	defer f.Close()
	req.Filename, req.ContentType = fh.Filename, fh.Header.Get("Content-Type")
	wav, err := media.ReadWAV(f)
	if err != nil || !strings.HasSuffix(strings.ToLower(fh.Filename), ".wav") {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			"Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']")
		return
	}
	req.Rate, req.Samples = wav.Rate, wav.Channel(0)
	switch req.ResponseFormat {
	case "", "json", "text", "verbose_json", "srt", "vtt":
	default:
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.", req.ResponseFormat))
		return
	}

	s.mu.Lock()
	s.seq++
	req.Seq = s.seq
	s.trReqs = append(s.trReqs, req)
	var ans Transcript
	switch {
	case len(s.transcripts) > 0:
		ans, s.transcripts = s.transcripts[0], s.transcripts[1:]
	case s.respond != nil:
		respond := s.respond
		s.mu.Unlock()
		ans = respond(req)
		s.mu.Lock()
	default:
		ans = Transcript{Text: DefaultTranscript}
	}
	s.mu.Unlock()

	if !s.wait(r.Context(), ans.Delay) {
		return
	}
	if ans.Drop {
		panic(http.ErrAbortHandler) //nolint:forbidigo // net/http cuts the connection, as a failing provider does
	}
	if ans.Status >= 400 {
		writeError(w, ans.Status, "", ans.Message)
		return
	}
	switch req.ResponseFormat {
	case "text", "srt", "vtt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, ans.Text+"\n")
	case "verbose_json":
		writeJSON(w, http.StatusOK, map[string]any{"task": "transcribe", "language": languageName(req.Language),
			"duration": req.Seconds(), "text": ans.Text, "segments": []any{}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"text": ans.Text})
	}
}

func languageName(code string) string {
	if code == "" {
		return "english"
	}
	return code
}

// maxInput is OpenAI's limit on the text of a speech request.
const maxInput = 4096

func (s *Server) speak(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model          string   `json:"model"`
		Input          *string  `json:"input"`
		Voice          string   `json:"voice"`
		ResponseFormat string   `json:"response_format"`
		Speed          *float64 `json:"speed"`
		Instructions   string   `json:"instructions"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
		return
	}
	switch {
	case body.Model == "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "you must provide a model parameter")
		return
	case body.Input == nil:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'input'.")
		return
	case body.Voice == "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'voice'.")
		return
	case len(*body.Input) > maxInput:
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("[{'type': 'string_too_long', 'loc': ('body', 'input'), 'msg': 'String should have at most %d characters'}]", maxInput))
		return
	case body.Speed != nil && (*body.Speed < 0.25 || *body.Speed > 4):
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("%g is greater than the maximum of 4 - 'speed'", *body.Speed))
		return
	}
	format := body.ResponseFormat
	if format == "" {
		format = "mp3" // OpenAI's default
	}
	if format != "pcm" && format != "wav" {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			"the stand-in speaks response_format pcm and wav only, not "+format)
		return
	}
	req := SpeechRequest{Header: r.Header.Clone(), Model: body.Model, Input: *body.Input, Voice: body.Voice, ResponseFormat: body.ResponseFormat}
	if body.Speed != nil {
		req.Speed = *body.Speed
	}
	s.mu.Lock()
	s.seq++
	req.Seq = s.seq
	s.spReqs = append(s.spReqs, req)
	var ans Speech
	if len(s.speeches) > 0 {
		ans, s.speeches = s.speeches[0], s.speeches[1:]
	} else if s.speakWith != nil {
		ans = s.speakWith(req)
	}
	s.mu.Unlock()

	if !s.wait(r.Context(), ans.FirstByteDelay) {
		return
	}
	if ans.Status >= 400 {
		writeError(w, ans.Status, "", ans.Message)
		return
	}
	pcm := ans.Audio
	if pcm == nil {
		var err error
		if pcm, err = Speak(r.Context(), req.Input, req.Voice, req.Speed); err != nil {
			writeError(w, http.StatusInternalServerError, "server_error", "stand-in: "+err.Error())
			return
		}
	}
	chunk := ans.ChunkSamples
	if chunk <= 0 {
		chunk = speech.OpenAIPCMRate / 10
	}
	delay := ans.ChunkDelay
	if delay == 0 {
		delay = 5 * time.Millisecond
	}
	if format == "wav" || ans.WAV {
		w.Header().Set("Content-Type", "audio/wav")
	} else {
		w.Header().Set("Content-Type", "audio/pcm")
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if ans.CutAfter < 0 {
		if flusher != nil {
			flusher.Flush()
		}
		panic(http.ErrAbortHandler) //nolint:forbidigo // net/http cuts the connection, as a failing provider does
	}
	buf := make([]byte, 0, 2*chunk+44)
	if format == "wav" || ans.WAV {
		buf = append(buf, streamingWAVHeader(speech.OpenAIPCMRate)...)
	}
	sent := 0
	for i := 0; i < len(pcm); i += chunk {
		part := pcm[i:min(i+chunk, len(pcm))]
		if ans.CutAfter > 0 && sent+len(part) > ans.CutAfter {
			part = part[:ans.CutAfter-sent]
		}
		for _, v := range part {
			buf = binary.LittleEndian.AppendUint16(buf, uint16(v))
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		buf = buf[:0]
		sent += len(part)
		if flusher != nil {
			flusher.Flush()
		}
		if ans.CutAfter > 0 && sent >= ans.CutAfter {
			panic(http.ErrAbortHandler) //nolint:forbidigo // net/http cuts the connection, as a failing provider does
		}
		if i == 0 && ans.Gate != nil {
			select {
			case <-ans.Gate:
			case <-r.Context().Done():
				return
			case <-s.quit:
				return
			}
		}
		if delay > 0 && !s.wait(r.Context(), delay) {
			return
		}
	}
}

// wait sleeps d, or less when the client leaves or the server closes; false then.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.quit:
		return false
	}
}

func streamingWAVHeader(rate int) []byte {
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 0xFFFFFFFF)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], 0xFFFFFFFF)
	return h
}

func writeError(w http.ResponseWriter, status int, typ, message string) {
	if typ == "" {
		switch {
		case status == http.StatusTooManyRequests:
			typ = "rate_limit_exceeded"
		case status >= 500:
			typ = "server_error"
		default:
			typ = "invalid_request_error"
		}
	}
	if message == "" {
		switch {
		case status == http.StatusTooManyRequests:
			message = "Rate limit reached for requests. Please try again in 1s."
		case status == http.StatusServiceUnavailable:
			message = "The server is overloaded or not ready yet."
		case status >= 500:
			message = "The server had an error while processing your request. Sorry about that!"
		default:
			message = http.StatusText(status)
		}
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": nil}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func redact(k string) string {
	if len(k) <= 8 {
		return k
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

var (
	voiceOnce sync.Once
	voice     *speech.Espeak
	voiceErr  error
)

// Speak is the stand-in's voice: text spoken by espeak-ng at 24 kHz. OpenAI's voice names
// map to espeak's American English ("fable", which is British, to en-gb); an espeak voice
// name is used as is.
func Speak(ctx context.Context, text, voiceName string, speed float64) ([]int16, error) {
	voiceOnce.Do(func() {
		voice, voiceErr = speech.NewEspeak(speech.EspeakOptions{SampleRate: speech.OpenAIPCMRate})
	})
	if voiceErr != nil {
		return nil, voiceErr
	}
	v := "en-us"
	switch {
	case voiceName == "fable":
		v = "en-gb"
	case strings.Contains(voiceName, "-") && len(voiceName) <= 16:
		v = voiceName
	}
	a, err := voice.Synthesize(ctx, text, v, speed)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	var out []int16
	buf := make([]int16, 4096)
	for {
		n, err := a.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
