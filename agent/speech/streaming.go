package speech

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A streaming transcriber hears the caller while they speak: audio goes up a WebSocket
// frame by frame, and interim and final transcripts, and the provider's own ends of
// utterance, come back before the caller has finished. Two protocols speak it: Deepgram's
// live /v1/listen and OpenAI's realtime transcription sessions. What they share lives
// here: the audio ring the caller's frames are written into (no allocation per frame, no
// wait on the network), the goroutine that owns the socket, and reconnection: the audio
// since the provider's last final is kept in the ring and replayed into a new socket, so
// a socket that drops mid-turn loses no word of it.

// StreamingSTT opens streams of live transcription.
type StreamingSTT interface {
	// Open starts a stream. It does not wait for the provider: audio written while the
	// socket connects is kept and sent once it is up; a provider that cannot be reached
	// ends Events with Err.
	Open(ctx context.Context, opts StreamOptions) (*STTStream, error)
}

// StreamOptions are what a stream is opened with.
type StreamOptions struct {
	// Rate is the sample rate of the audio written (mono PCM16); 0 is 16,000.
	Rate int
	// Language is an ISO 639-1 code, or empty for the provider's guess.
	Language string
	// EndpointingMS is the caller's silence after which the provider ends an utterance
	// (Deepgram's endpointing, OpenAI's silence_duration_ms); 0 is 300.
	EndpointingMS int
}

// STTEvent is what a stream heard.
type STTEvent struct {
	// Text is the utterance so far: its final pieces and the latest interim guess.
	Text string
	// Final says Text will not change (every piece of it is final).
	Final bool
	// EndOfUtterance says the provider takes the utterance to be over (Deepgram's
	// speech_final or UtteranceEnd, OpenAI's transcription completed). Text is its whole
	// transcript; the next event is of the next utterance.
	EndOfUtterance bool
	// SpeechStarted says the provider heard speech begin.
	SpeechStarted bool
	// Reconnected says a new socket replaced one that dropped; the audio since the last
	// final was sent again.
	Reconnected bool
	// At is when the event arrived.
	At time.Time
}

// Defaults and bounds of a stream.
const (
	defaultStreamRate    = 16000
	defaultEndpointingMS = 300
	// ReplaySeconds bounds the audio kept for a new socket: the turn since the provider's
	// last final. A turn longer than this without a final loses its start on a reconnect.
	ReplaySeconds = 30
	// maxSTTMessage bounds one message from the provider: a bigger one is a broken or
	// hostile server, and ends the stream.
	maxSTTMessage = 1 << 20
	// keepAliveEvery is the silence on the socket after which Deepgram's KeepAlive is sent
	// (it closes a socket that has had nothing for 10 s).
	keepAliveEvery = 4 * time.Second
	// maxReconnects is the number of sockets tried in a row before the stream gives up.
	maxReconnects = 5
	// replayPreroll is the audio, in ms, kept between utterances: speech that began just
	// before a socket dropped, which the provider had not yet said it heard.
	replayPreroll = 1000
	// closeWait bounds the wait for the provider's last results after CloseStream.
	closeWait = 2 * time.Second
	// dialTimeout bounds a handshake (the socket and, for OpenAI, the session's update).
	dialTimeout = 10 * time.Second
	writeLimit  = 5 * time.Second
	sttEvents   = 64
)

// ErrStreamClosed is a Write to a stream that ended.
var ErrStreamClosed = errors.New("speech: transcription stream closed")

// liveProtocol is what differs between the providers' WebSocket protocols.
type liveProtocol interface {
	// dial opens a socket and sends what the session starts with.
	dial(ctx context.Context) (*websocket.Conn, error)
	// rate is the sample rate the provider is sent; audio is resampled to it.
	rate() int
	// audio appends the message carrying pcm (at rate) to dst.
	audio(dst []byte, pcm []int16) (websocket.MessageType, []byte)
	// keepAlive and closeStream are the messages that keep a quiet socket open and ask
	// for the last results; nil when the protocol has none.
	keepAlive() []byte
	closeStream() []byte
	// parse reads one message into u. ack, when not negative, is the socket's audio (in
	// seconds from its start) that the provider made final: it need not be replayed.
	// done says the provider has sent its last results (after closeStream).
	parse(msg []byte, u *utterance) (evs []STTEvent, ack float64, done bool, err error)
}

// utterance is the transcript of the caller's utterance as it comes in.
type utterance struct {
	finals  []string
	interim string
	// scratch is the reused slice of the pieces of text.
	scratch []string
}

func (u *utterance) text() string {
	u.scratch = append(u.scratch[:0], u.finals...)
	if u.interim != "" {
		u.scratch = append(u.scratch, u.interim)
	}
	return strings.Join(u.scratch, " ")
}

// maxUtterance bounds the transcript of one utterance, in bytes: a provider that never
// ends one is broken or hostile.
const maxUtterance = 64 << 10

func (u *utterance) tooLong() bool {
	n := len(u.interim)
	for _, f := range u.finals {
		n += len(f) + 1
	}
	return n > maxUtterance
}

func (u *utterance) reset() {
	u.finals = u.finals[:0]
	u.interim = ""
}

// STTStream is one live transcription. Write is for one goroutine (the caller's audio);
// Events for another.
type STTStream struct {
	proto   liveProtocol
	rate    int
	opaque  bool
	events  chan STTEvent
	notify  chan struct{}
	closing chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	cancel  context.CancelFunc
	// rs resamples written audio to the provider's rate into conv; nil when they are the
	// same. chunkBuf is the audio of one message.
	rs       *linearResampler
	conv     []int16
	chunkBuf []int16

	mu sync.Mutex
	// ring holds the audio since the provider's last final, at the provider's rate: the
	// samples from absolute offset start to end (ring[start%len] is the oldest).
	ring       []int16
	start, end int64
	// sent is the offset up to which the current socket was sent audio; base the offset at
	// which its audio began (its time zero).
	sent, base int64
	// idle says the provider ended the last utterance and heard no speech since: the ring
	// keeps only replayPreroll then, as there is no turn to lose.
	idle    bool
	err     error
	written int64 // samples written in all, at the stream's rate
}

// openStream starts a stream over proto.
func openStream(ctx context.Context, proto liveProtocol, rate int, opaque bool) (*STTStream, error) {
	s := &STTStream{
		proto:    proto,
		rate:     rate,
		opaque:   opaque,
		events:   make(chan STTEvent, sttEvents),
		notify:   make(chan struct{}, 1),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		ring:     make([]int16, ReplaySeconds*proto.rate()),
		chunkBuf: make([]int16, proto.rate()/10),
	}
	if rate != proto.rate() {
		rs, err := newLinearResampler(rate, proto.rate())
		if err != nil {
			return nil, err
		}
		s.rs = rs
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go s.run(ctx)
	return s, nil
}

// Write sends pcm (mono PCM16 at the stream's rate) as heard. It copies pcm and never
// waits on the network; audio beyond ReplaySeconds not yet sent is dropped, oldest first.
func (s *STTStream) Write(pcm []int16) error {
	if s.closed.Load() {
		return ErrStreamClosed
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return ErrStreamClosed
	}
	s.written += int64(len(pcm))
	if s.rs != nil {
		s.conv = s.rs.resample(s.conv[:0], pcm)
		pcm = s.conv
	}
	for len(pcm) > 0 {
		at := int(s.end % int64(len(s.ring)))
		n := copy(s.ring[at:], pcm)
		pcm = pcm[n:]
		s.end += int64(n)
	}
	if over := s.end - s.start - int64(len(s.ring)); over > 0 {
		s.start += over
	}
	if keep := s.end - int64(s.proto.rate())*replayPreroll/1000; s.idle && s.start < keep {
		s.start = min(keep, s.sent)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// Events delivers what the provider heard. It is closed when the stream ends: after
// Close, or when the provider failed for good (Err says why).
func (s *STTStream) Events() <-chan STTEvent { return s.events }

// Err is why the stream ended, nil after a Close.
func (s *STTStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opaque {
		return opaqueError("transcribe", s.err)
	}
	return s.err
}

// Seconds is the audio written in all.
func (s *STTStream) Seconds() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.written) / float64(s.rate)
}

// Close asks the provider for its last results (CloseStream), waits for them a little,
// and ends the stream. It is idempotent.
func (s *STTStream) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		close(s.closing)
	}
	<-s.done
	return nil
}

// run owns the socket: it connects, and connects again when the socket drops.
func (s *STTStream) run(ctx context.Context) {
	defer close(s.done)
	defer close(s.events)
	defer s.cancel()
	failures := 0
	reconnected := false
	for {
		began := time.Now()
		err := s.session(ctx, reconnected)
		if err == nil || s.closed.Load() {
			return
		}
		if time.Since(began) > 10*time.Second {
			failures = 0 // it worked for a while: a new run of tries
		}
		failures++
		if !retryable(err) || failures > maxReconnects {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		wait := min(100*time.Millisecond<<(failures-1), 2*time.Second)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return
		}
		reconnected = true
	}
}

// session runs one socket until it fails or the stream is closed (nil).
func (s *STTStream) session(ctx context.Context, reconnected bool) error {
	// Close cuts a handshake short: a call's teardown never waits on one.
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	dialed := make(chan struct{})
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-dialed:
		}
	}()
	conn, err := s.proto.dial(dctx)
	close(dialed)
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxSTTMessage)
	s.mu.Lock()
	s.base, s.sent = s.start, s.start
	s.mu.Unlock()
	if reconnected {
		s.emit(ctx, STTEvent{Reconnected: true, At: time.Now()})
	}

	// The reader has a context of the socket's own, so that it never outlives the socket:
	// Events is closed only after it returned.
	sctx, stop := context.WithCancel(ctx)
	readDone := make(chan error, 1)
	lastResult := make(chan struct{}, 1)
	go func() { readDone <- s.read(sctx, conn, lastResult) }()
	readerDone := false
	defer func() {
		stop()
		conn.CloseNow()
		if !readerDone {
			<-readDone
		}
	}()

	var buf []byte
	keep := time.NewTicker(keepAliveEvery)
	defer keep.Stop()
	lastSent := time.Now()
	send := func(typ websocket.MessageType, b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, writeLimit)
		defer cancel()
		if err := conn.Write(wctx, typ, b); err != nil {
			return &ProviderError{Op: "transcribe", Err: err}
		}
		lastSent = time.Now()
		return nil
	}
	flush := func() error {
		for {
			var typ websocket.MessageType
			s.mu.Lock()
			if s.sent < s.start {
				s.sent = s.start // audio dropped before it could be sent
			}
			n := min(s.end-s.sent, int64(s.proto.rate()/10)) // 100 ms a message at most
			if n <= 0 {
				s.mu.Unlock()
				return nil
			}
			pcm := s.chunk(s.sent, int(n))
			typ, buf = s.proto.audio(buf[:0], pcm)
			s.sent += n
			s.mu.Unlock()
			if err := send(typ, buf); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil { // the replay
		return err
	}
	for {
		select {
		case <-s.notify:
			if err := flush(); err != nil {
				return err
			}
		case <-keep.C:
			if msg := s.proto.keepAlive(); msg != nil && time.Since(lastSent) >= keepAliveEvery {
				if err := send(websocket.MessageText, msg); err != nil {
					return err
				}
			}
		case err := <-readDone:
			readerDone = true
			if err == nil {
				err = &ProviderError{Op: "transcribe", Err: errors.New("the provider ended the stream")}
			}
			return err
		case <-s.closing:
			_ = flush()
			if msg := s.proto.closeStream(); msg != nil && send(websocket.MessageText, msg) == nil {
				t := time.NewTimer(closeWait)
				select {
				case <-lastResult:
				case <-readDone:
					readerDone = true
				case <-t.C:
				}
				t.Stop()
			}
			_ = conn.Close(websocket.StatusNormalClosure, "")
			return nil
		}
	}
}

// chunk is n samples of the ring from offset off, in a slice reused between calls. The
// caller holds mu.
func (s *STTStream) chunk(off int64, n int) []int16 {
	if cap(s.chunkBuf) < n {
		s.chunkBuf = make([]int16, n)
	}
	out := s.chunkBuf[:n]
	for got := 0; got < n; {
		at := int((off + int64(got)) % int64(len(s.ring)))
		got += copy(out[got:], s.ring[at:])
	}
	return out
}

// read reads the provider's messages until the socket ends.
func (s *STTStream) read(ctx context.Context, conn *websocket.Conn, lastResult chan<- struct{}) error {
	var u utterance
	s.mu.Lock()
	rate := float64(s.proto.rate())
	s.mu.Unlock()
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			if s.closed.Load() {
				return nil
			}
			return readError(err)
		}
		evs, ack, done, err := s.proto.parse(msg, &u)
		if err == nil && u.tooLong() {
			err = protocolError("an utterance's transcript passed %d bytes without an end", maxUtterance)
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		if ack >= 0 {
			if a := s.base + int64(ack*rate); a > s.start {
				s.start = min(a, s.sent)
			}
		}
		for _, ev := range evs {
			switch {
			case ev.EndOfUtterance:
				s.idle = true
			case ev.SpeechStarted || ev.Text != "":
				s.idle = false
			}
		}
		s.mu.Unlock()
		now := time.Now()
		for _, ev := range evs {
			ev.At = now
			s.emit(ctx, ev)
		}
		if done {
			select {
			case lastResult <- struct{}{}:
			default:
			}
		}
	}
}

// emit delivers ev. What only informs (an interim guess, which the next one replaces;
// speech started; a reconnection) is dropped when the reader is behind; a final result
// waits for it.
func (s *STTStream) emit(ctx context.Context, ev STTEvent) {
	if !ev.Final && !ev.EndOfUtterance {
		select {
		case s.events <- ev:
		default:
		}
		return
	}
	select {
	case s.events <- ev:
	case <-ctx.Done():
	}
}

// readError classifies a socket's end: a close the provider meant (bad key, bad request,
// a message too big) is final; a socket that dropped or a server restarting is worth a
// new one.
func readError(err error) error {
	code := websocket.CloseStatus(err)
	pe := &ProviderError{Op: "transcribe", Err: err}
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig) || code == websocket.StatusMessageTooBig:
		pe.Status = http.StatusRequestEntityTooLarge
		pe.Message = "a message from the provider was larger than " + fmt.Sprint(maxSTTMessage) + " bytes"
	case code == -1:
		return pe // dropped without a close frame
	case code == websocket.StatusInternalError || code == websocket.StatusServiceRestart || code == websocket.StatusTryAgainLater ||
		code == websocket.StatusGoingAway || code == websocket.StatusNormalClosure:
		pe.Status = http.StatusBadGateway
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			pe.Message = ce.Reason
		}
		return pe
	default:
		pe.Status = http.StatusBadRequest
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			pe.Message = fmt.Sprintf("closed %d: %s", ce.Code, ce.Reason)
		}
	}
	return &fatalError{pe}
}

// fatalError is a failure a new socket would meet again.
type fatalError struct{ *ProviderError }

func (e *fatalError) Unwrap() error { return e.ProviderError }

func retryable(err error) bool {
	var f *fatalError
	if errors.As(err, &f) {
		return false
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Temporary()
	}
	return false
}

// protocolError is a message from the provider that is not what its protocol says.
func protocolError(format string, args ...any) error {
	return &fatalError{&ProviderError{Op: "transcribe", Status: http.StatusBadGateway, Message: fmt.Sprintf(format, args...)}}
}

// dialLive opens a provider's socket. The handshake's answer is closed here: on success
// the connection owns what it needs, on failure only the status is used.
func dialLive(ctx context.Context, url string, client *http.Client, h http.Header) (*websocket.Conn, error) {
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, dialError(resp, err)
	}
	return conn, nil
}

// dialError classifies a failed handshake: refused credentials or request are final.
func dialError(resp *http.Response, err error) error {
	pe := &ProviderError{Op: "transcribe", Err: err}
	if resp == nil {
		return pe
	}
	pe.Status = resp.StatusCode
	pe.Message = http.StatusText(resp.StatusCode)
	if pe.Temporary() {
		return pe
	}
	return &fatalError{pe}
}
