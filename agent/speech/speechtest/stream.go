package speechtest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The streaming stand-ins (ElevenLabs' and Cartesia's WebSocket APIs) share this
// machinery: a real WebSocket server, a session per connection recording what the client
// sent and when it cancelled, and audio made as a provider makes it: the first after
// FirstAudio, then faster than real time, a tone lasting in proportion to the text.

// StreamOptions say how a streaming stand-in behaves. The zero value is a well-behaved
// provider with realistic timing.
type StreamOptions struct {
	// FirstAudio is waited after a context's first text before its first audio (0 is
	// 150 ms, what ElevenLabs' flash and Cartesia's sonic models take).
	FirstAudio time.Duration
	// PerChar is the audio spoken for each character of text (0 is 60 ms).
	PerChar time.Duration
	// Speedup is how much faster than real time audio is made after the first (0 is 4).
	Speedup float64
	// Tone is the frequency of the audio in Hz (0 is 440).
	Tone float64
	// Key, when set, is the key a client must send; another is refused at the handshake
	// with 401.
	Key string
	// Hostile, when set, is sent as a text message instead of the first audio.
	Hostile string
	// HostileBinary sends a binary message instead of the first audio.
	HostileBinary bool
	// ErrorMessage, when set, is the provider's in-stream error sent instead of audio.
	ErrorMessage string
	// VoicesStatus, when 400 or more, fails the list of voices with that status.
	VoicesStatus int
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.FirstAudio == 0 {
		o.FirstAudio = 150 * time.Millisecond
	}
	if o.PerChar == 0 {
		o.PerChar = 60 * time.Millisecond
	}
	if o.Speedup == 0 {
		o.Speedup = 4
	}
	if o.Tone == 0 {
		o.Tone = 440
	}
	return o
}

// StreamSession is one connection a streaming stand-in served.
type StreamSession struct {
	Path   string
	Query  url.Values
	Header http.Header
	// Rate is the sample rate the client asked for; Encoding its encoding (pcm_s16le,
	// pcm_mulaw; ElevenLabs: pcm or ulaw).
	Rate     int
	Encoding string
	// Messages are the client's messages, as received.
	Messages []string
	// Texts are the texts the client sent to be spoken, in order.
	Texts []string
	// Opened is when the connection was accepted; FirstAudio when its first audio was sent.
	Opened, FirstAudio time.Time
	// Ended is when the client said its text was all sent.
	Ended time.Time
	// Cancelled is when the client cancelled the synthesis before it was done: Cartesia's
	// cancel message, or (ElevenLabs) the socket closed before isFinal. Zero if it did not.
	Cancelled time.Time
	// Done is when the stand-in sent the end of the synthesis.
	Done time.Time
}

// streamServer is a streaming stand-in's server and record.
type streamServer struct {
	URL  string
	opts StreamOptions
	srv  *httptest.Server

	mu       sync.Mutex
	sessions []*StreamSession
	listed   int // requests for the list of voices
	cancels  chan StreamSession
	wg       sync.WaitGroup
	quit     chan struct{}
}

func newStreamServer(t testing.TB, opts StreamOptions, serve func(s *streamServer, w http.ResponseWriter, r *http.Request)) *streamServer {
	s := &streamServer{opts: opts.withDefaults(), cancels: make(chan StreamSession, 64), quit: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		serve(s, w, r)
	}))
	s.URL = s.srv.URL
	t.Cleanup(s.close)
	return s
}

func (s *streamServer) close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

// Sessions are the connections served so far, as they are now.
func (s *streamServer) Sessions() []StreamSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StreamSession, len(s.sessions))
	for i, ss := range s.sessions {
		out[i] = *ss
		out[i].Messages = append([]string(nil), ss.Messages...)
		out[i].Texts = append([]string(nil), ss.Texts...)
	}
	return out
}

// Cancels receives each session as its synthesis is cancelled.
func (s *streamServer) Cancels() <-chan StreamSession { return s.cancels }

func (s *streamServer) open(r *http.Request) *StreamSession {
	ss := &StreamSession{Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Opened: time.Now()}
	s.mu.Lock()
	s.sessions = append(s.sessions, ss)
	s.mu.Unlock()
	return ss
}

// record changes a session under the lock.
func (s *streamServer) record(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// cancelled records a cancel, once.
func (s *streamServer) cancelled(ss *StreamSession) {
	s.mu.Lock()
	first := ss.Cancelled.IsZero() && ss.Done.IsZero()
	if first {
		ss.Cancelled = time.Now()
	}
	snap := *ss
	s.mu.Unlock()
	if first {
		select {
		case s.cancels <- snap:
		default:
		}
	}
}

// voices answers a provider's list of voices (body), or fails as the options say.
func (s *streamServer) voices(w http.ResponseWriter, key string, body any) {
	s.mu.Lock()
	s.listed++
	s.mu.Unlock()
	switch {
	case s.opts.Key != "" && key != s.opts.Key:
		http.Error(w, `{"detail":"Invalid API key"}`, http.StatusUnauthorized)
	case s.opts.VoicesStatus >= 400:
		http.Error(w, `{"detail":"the stand-in was told to fail"}`, s.opts.VoicesStatus)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}
}

// VoiceListings counts the requests for the list of voices, answered or failed.
func (s *streamServer) VoiceListings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listed
}

// accept upgrades the request, refusing a wrong key with 401.
func (s *streamServer) accept(w http.ResponseWriter, r *http.Request, key string) *websocket.Conn {
	if s.opts.Key != "" && key != s.opts.Key {
		http.Error(w, `{"detail":"Invalid API key"}`, http.StatusUnauthorized)
		return nil
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	c.SetReadLimit(1 << 20)
	return c
}

// toneVoice makes a context's audio: one per context, fed its texts, writing its chunks
// through emit until the texts end or ctx is cancelled.
type toneVoice struct {
	opts    StreamOptions
	rate    int
	mulaw   bool
	phase   float64
	started bool
	buf     []byte
}

// speak makes the audio of text, in chunks of 50 ms, each handed to emit as base64 after
// the time a provider takes to make it. It returns false when ctx ended first.
func (v *toneVoice) speak(ctx context.Context, text string, emit func(b64 string, samples int) bool) bool {
	total := int(float64(len([]rune(text))) * v.opts.PerChar.Seconds() * float64(v.rate))
	chunk := v.rate / 20
	if !v.started {
		v.started = true
		if !wait(ctx, v.opts.FirstAudio) {
			return false
		}
	}
	for sent := 0; sent < total; sent += chunk {
		n := min(chunk, total-sent)
		v.buf = v.buf[:0]
		for i := 0; i < n; i++ {
			x := int16(6000 * math.Sin(v.phase))
			v.phase += 2 * math.Pi * v.opts.Tone / float64(v.rate)
			if v.mulaw {
				v.buf = append(v.buf, linearToMulaw(x))
			} else {
				v.buf = binary.LittleEndian.AppendUint16(v.buf, uint16(x))
			}
		}
		if sent > 0 && !wait(ctx, time.Duration(float64(n)/float64(v.rate)*float64(time.Second)/v.opts.Speedup)) {
			return false
		}
		if !emit(base64.StdEncoding.EncodeToString(v.buf), n) {
			return false
		}
	}
	return true
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// linearToMulaw is G.711 μ-law of a sample.
func linearToMulaw(x int16) byte {
	const bias, clip = 0x84, 32635
	s := int(x)
	sign := 0
	if s < 0 {
		s, sign = -s, 0x80
	}
	s = min(s, clip) + bias
	exp := 7
	for mask := 0x4000; s&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (s >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}
