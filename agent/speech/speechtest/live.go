package speechtest

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The live stand-ins (Deepgram's /v1/listen, OpenAI's realtime transcription) hear the
// audio they are sent: each 20 ms window's energy says speech or not, as a provider's VAD
// would, so their transcripts follow the caller's speech. What the caller says is the
// test's script (LiveOptions.Say); the stand-in reveals it a word at a time while the
// speech lasts, sends the whole of it as an interim once the caller pauses, and makes it
// final once the silence reached the endpointing the client asked for, FinalDelay later.

// LiveOptions script a live stand-in.
type LiveOptions struct {
	// Say is the transcript of the n-th utterance the server made final (from 0, over all
	// its sockets: a socket that dropped mid-utterance does not count it). Nil says
	// DefaultTranscript. A "|" is a pause of the caller's within the utterance: the
	// interim at the first pause shows the words before it, the rest come when the
	// caller speaks again.
	Say func(n int) string
	// InterimEvery is the speech between interim results (0 is 100 ms); WordEvery the
	// speech per word revealed (0 is 250 ms).
	InterimEvery, WordEvery time.Duration
	// FinalDelay is the wait, after the caller's silence reached the endpointing, before the
	// final result (0 is 200 ms; negative is none).
	FinalDelay time.Duration
	// DropAfter, when positive, drops the first socket (no close frame) once it has heard
	// this much of an utterance's speech.
	DropAfter time.Duration
	// Raw are messages sent as they are once the first audio arrived: hostile frames.
	Raw [][]byte
	// RequireKey refuses a handshake without this key (401).
	RequireKey string
	// BetaOnly makes the OpenAI realtime transcription stand-in a server of the beta
	// interface alone, which refuses the GA session.update.
	BetaOnly bool
}

// LiveConn is one socket a live stand-in accepted.
type LiveConn struct {
	Query  url.Values
	Header http.Header
	// Config is the session's configuration message (OpenAI's session.update, or
	// transcription_session.update in the beta interface).
	Config []byte
	// AudioSeconds is the audio received; KeepAlives and CloseStream the control messages.
	AudioSeconds float64
	KeepAlives   int
	CloseStream  bool
	Dropped      bool
}

// LiveFinal is a final result a live stand-in sent.
type LiveFinal struct {
	Text string
	At   time.Time
	// SpeechEnd is when the utterance's last loud window arrived.
	SpeechEnd time.Time
}

// liveServer is what the two live stand-ins share.
type liveServer struct {
	URL  string
	srv  *httptest.Server
	opts LiveOptions

	mu      sync.Mutex
	conns   []*LiveConn
	finals  []LiveFinal
	dropped bool
	notify  chan struct{}
	// quit ends every socket when the test ends; wg waits for their handlers.
	quit context.Context
	wg   sync.WaitGroup
}

func startLive(t testing.TB, opts LiveOptions, handle func(context.Context, *liveServer, *websocket.Conn, *LiveConn, *http.Request)) *liveServer {
	t.Helper()
	if opts.InterimEvery <= 0 {
		opts.InterimEvery = 100 * time.Millisecond
	}
	if opts.WordEvery <= 0 {
		opts.WordEvery = 250 * time.Millisecond
	}
	if opts.FinalDelay == 0 {
		opts.FinalDelay = 200 * time.Millisecond
	}
	quit, stop := context.WithCancel(context.Background())
	s := &liveServer{opts: opts, notify: make(chan struct{}), quit: quit}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(s.quit, cancel)() //nolint:contextcheck // the test's end ends every socket, whatever its request
		if k := s.opts.RequireKey; k != "" && !strings.HasSuffix(r.Header.Get("Authorization"), " "+k) {
			http.Error(w, `{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}`, http.StatusUnauthorized)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		lc := &LiveConn{Query: r.URL.Query(), Header: r.Header.Clone()}
		s.mu.Lock()
		s.conns = append(s.conns, lc)
		s.mu.Unlock()
		s.changed()
		handle(ctx, s, conn, lc, r)
	}))
	s.URL = s.srv.URL + "/v1"
	t.Cleanup(func() {
		stop()
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.wg.Wait()
	})
	return s
}

// changed wakes whoever waits on the server's records.
func (s *liveServer) changed() {
	s.mu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// Conns are the sockets accepted so far.
func (s *liveServer) Conns() []LiveConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LiveConn, len(s.conns))
	for i, c := range s.conns {
		out[i] = *c
	}
	return out
}

// Finals are the final results sent so far.
func (s *liveServer) Finals() []LiveFinal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LiveFinal(nil), s.finals...)
}

// Wait waits until cond holds of the server's records, or ctx ends (false).
func (s *liveServer) Wait(ctx context.Context, cond func(conns []LiveConn, finals []LiveFinal) bool) bool {
	for {
		s.mu.Lock()
		ch := s.notify
		s.mu.Unlock()
		if cond(s.Conns(), s.Finals()) {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *liveServer) say(n int) string {
	if s.opts.Say == nil {
		return DefaultTranscript
	}
	return s.opts.Say(n)
}

// hearing is a socket's ear: it cuts the audio it is sent into utterances by energy.
type hearing struct {
	s           *liveServer
	rate        int
	endpointing time.Duration
	window      []int16
	// pos is the audio heard in all, in samples; the utterance's bounds are in it too.
	pos                 int64
	inSpeech            bool
	loud                int // loud windows in a row, for the onset
	speechStart, lastOn int64
	speechEndAt         time.Time
	shown               string // the last interim sent
	lastInterim         int64
	ended               bool // the endpointing silence was reached
	// part is the part of the script ("a|b": the caller pauses after a) being said;
	// paused that the pause's interim showed it whole.
	part   int
	paused bool
}

// speechDBFS is the level above which a window is speech: the lines of the tests hiss at
// -60 dBFS, and speech is louder than -30.
const speechDBFS = -40.0

// liveEvent is what a window of audio made the ear decide.
type liveEvent int

const (
	evNone liveEvent = iota
	evStart
	evInterim
	evEnd
)

// hear takes audio and reports what it decided, one event per call to next.
func (h *hearing) feed(pcm []int16, on func(ev liveEvent, text string)) {
	win := h.rate / 50
	for _, v := range pcm {
		h.window = append(h.window, v)
		if len(h.window) < win {
			continue
		}
		h.pos += int64(win)
		loud := levelDBFS(h.window) > speechDBFS
		h.window = h.window[:0]
		h.step(loud, on)
	}
}

func (h *hearing) step(loud bool, on func(liveEvent, string)) {
	if loud {
		h.loud++
	} else {
		h.loud = 0
	}
	if !h.inSpeech {
		if h.loud >= 2 {
			h.inSpeech, h.ended, h.shown, h.part, h.paused = true, false, "", 0, false
			h.speechStart = h.pos - 2*int64(h.rate/50)
			h.lastOn, h.lastInterim = h.pos, h.pos
			on(evStart, "")
		}
		return
	}
	parts := strings.Split(h.s.say(h.s.finalsN()), "|")
	if loud {
		h.lastOn = h.pos
		h.speechEndAt = time.Now()
		if h.paused {
			h.part, h.paused = min(h.part+1, len(parts)-1), false
		}
	}
	all := strings.Fields(strings.Join(parts, " "))
	words := strings.Fields(strings.Join(parts[:h.part+1], " "))
	silence := h.dur(h.pos - h.lastOn)
	switch {
	case silence >= h.endpointing:
		h.inSpeech, h.ended = false, true
		on(evEnd, strings.Join(all, " "))
	case silence >= h.s.opts.InterimEvery && !h.paused:
		h.paused = true
		if text := strings.Join(words, " "); text != h.shown {
			h.shown = text
			on(evInterim, text)
		}
	case loud && h.dur(h.pos-h.lastInterim) >= h.s.opts.InterimEvery:
		h.lastInterim = h.pos
		k := min(len(words)-1, 1+int(h.dur(h.pos-h.speechStart)/h.s.opts.WordEvery))
		if k > 0 {
			if text := strings.Join(words[:k], " "); text != h.shown {
				h.shown = text
				on(evInterim, text)
			}
		}
	}
}

// speech is how long the utterance has been spoken so far.
func (h *hearing) speech() time.Duration { return h.dur(h.lastOn - h.speechStart) }

func (h *hearing) dur(samples int64) time.Duration {
	return time.Duration(samples) * time.Second / time.Duration(h.rate)
}

func (h *hearing) seconds(samples int64) float64 { return float64(samples) / float64(h.rate) }

func (s *liveServer) finalsN() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.finals)
}

func (s *liveServer) addFinal(text string, speechEnd time.Time) {
	s.mu.Lock()
	s.finals = append(s.finals, LiveFinal{Text: text, At: time.Now(), SpeechEnd: speechEnd})
	s.mu.Unlock()
	s.changed()
}

// shouldDrop says the socket must drop now (the first socket, DropAfter into speech).
func (s *liveServer) shouldDrop(h *hearing) bool {
	if s.opts.DropAfter <= 0 || !h.inSpeech || h.speech() < s.opts.DropAfter {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		return false
	}
	s.dropped = true
	return true
}

func (s *liveServer) record(lc *LiveConn, f func(*LiveConn)) {
	s.mu.Lock()
	f(lc)
	s.mu.Unlock()
	s.changed()
}

func levelDBFS(pcm []int16) float64 {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	rms := math.Sqrt(sum / float64(max(len(pcm), 1)))
	if rms < 1 {
		return -100
	}
	return 20 * math.Log10(rms/32768)
}

// incoming reads a socket's messages into a channel, so that a handler can wait on them
// and its own timers at once. It ends when the socket does.
type incoming struct {
	typ websocket.MessageType
	b   []byte
}

func readAll(ctx context.Context, conn *websocket.Conn) <-chan incoming {
	ch := make(chan incoming)
	go func() {
		defer close(ch)
		for {
			typ, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- incoming{typ, b}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
