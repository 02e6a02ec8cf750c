// Package mediastream carries phone calls that a CPaaS hands over as a WebSocket in the
// protocol of Twilio Media Streams: each Socket is a media.Stream of 8 kHz frames, paced and
// marked so that a barge-in can clear what the far end has not yet played. It knows nothing
// of SIP.
package mediastream

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
)

// Media streams carry a call's audio over a WebSocket in the protocol of Twilio Media
// Streams, so that a CPaaS (Twilio's <Connect><Stream>, and the platforms that copied it)
// can hand a phone call to Switchboard. JSON text frames both ways: the far end sends
// connected, start, media (20 ms of 8 kHz μ-law in base64), dtmf, mark (the echo of one of
// ours, once the audio before it was played) and stop; we send media, mark and clear.
//
// A Socket is a media.Stream. Its ReadFrame gives the caller's frames in order; its
// WriteFrame sends ours paced in real time, a little ahead (the far end buffers), with a
// mark every few frames and at the end of each burst, so that the echoed marks say what the
// far end has played. Clear drops what the far end holds but has not played yet; the
// playback position it keeps (sent, minus what a clear dropped, never behind the marks
// acknowledged) is what the caller heard.

// Defaults of Options.
const (
	defaultMediaStartTimeout = 10 * time.Second
	defaultMediaMaxBad       = 20
	defaultMediaLead         = 80 * time.Millisecond
	defaultMediaMarkEvery    = 10
	defaultMediaInbound      = 50
)

// mulawFrameBytes is 20 ms of 8 kHz μ-law.
const mulawFrameBytes = 160

// markIdle is how long after the last frame a burst is over and gets its closing mark.
const markIdle = 3 * media.FrameDuration

// ErrBadFrame is a frame of the far end that does not follow the protocol.
var ErrBadFrame = errors.New("mediastream: bad frame")

// Options tune a media-stream socket.
type Options struct {
	Log *slog.Logger
	// StartTimeout bounds the wait for the start event after the upgrade (10 s).
	StartTimeout time.Duration
	// MaxBadFrames is how many frames that break the protocol are skipped before the
	// socket is closed with 1008 (20).
	MaxBadFrames int
	// Lead is how far ahead of the far end's playback our audio is sent (80 ms).
	Lead time.Duration
	// MarkEvery is how many frames of continuous audio go between two marks (10, 200 ms).
	MarkEvery int
	// Inbound is how many of the caller's frames wait for ReadFrame before the oldest is
	// dropped (50, 1 s).
	Inbound int
	// WriteTimeout cuts off a far end that does not take a frame within it (10 s).
	WriteTimeout time.Duration
	// MaxMessageBytes is the largest frame the far end may send (64 KiB).
	MaxMessageBytes int64
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultMediaStartTimeout
	}
	if o.MaxBadFrames <= 0 {
		o.MaxBadFrames = defaultMediaMaxBad
	}
	if o.Lead <= 0 {
		o.Lead = defaultMediaLead
	}
	if o.MarkEvery <= 0 {
		o.MarkEvery = defaultMediaMarkEvery
	}
	if o.Inbound <= 0 {
		o.Inbound = defaultMediaInbound
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 10
	}
}

// StartEvent is the start event's description of the stream.
type StartEvent struct {
	AccountSid       string            `json:"accountSid"`
	StreamSid        string            `json:"streamSid"`
	CallSid          string            `json:"callSid"`
	Tracks           []string          `json:"tracks"`
	CustomParameters map[string]string `json:"customParameters"`
	Format           Format            `json:"mediaFormat"`
}

// Format is the audio of a media stream; only 8 kHz mono μ-law is carried.
type Format struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
}

// CloseRevoked is the close code of a socket whose credential was revoked while it was
// open; it is the events socket's (realtime.CloseRevoked), so that a client reads one code
// whichever socket it holds.
const CloseRevoked websocket.StatusCode = call.CloseRevoked

// Reasons a media stream ends with, beyond the call's: the far end's stop or a vanished
// socket is call.ReasonCallerHangup, too many bad frames or a start that cannot be carried
// call.ReasonError.
const (
	// ReasonClosed: we closed the stream.
	ReasonClosed = "closed"
)

// The stream reasons of the call's reasons (media.Stream.Reason is a string).
const (
	reasonCallerHangup = string(call.ReasonCallerHangup)
	reasonProtocol     = string(call.ReasonError)
)

// EventFrameError is published for each frame of the far end that was skipped.
const EventFrameError = "call.media_stream_error"

// FrameError is the data of a call.media_stream_error event.
type FrameError struct {
	// Event is the frame's event ("media", "start", …) when it could be read.
	Event          string `json:"event,omitempty"`
	SequenceNumber string `json:"sequence_number,omitempty"`
	Message        string `json:"message"`
	// Count is how many bad frames the stream has had, this one included.
	Count int `json:"count"`
}

// Stats counts what a media stream carried.
type Stats struct {
	FramesIn, FramesOut  int64
	DroppedIn            int64 // caller frames ReadFrame did not take in time
	MarksSent, MarksEcho int64
	Clears               int64
	BadFrames            int64
	// Played is the audio the far end has played, by our account; Cleared what clears
	// dropped unplayed.
	Played, Cleared time.Duration
}

// mediaMessage is a frame of the far end; Event says which fields matter.
type mediaMessage struct {
	Event          string      `json:"event"`
	SequenceNumber string      `json:"sequenceNumber"`
	StreamSid      string      `json:"streamSid"`
	Protocol       string      `json:"protocol"`
	Start          *StartEvent `json:"start"`
	Media          *struct {
		Track   string `json:"track"`
		Payload string `json:"payload"`
	} `json:"media"`
	DTMF *struct {
		Digit string `json:"digit"`
	} `json:"dtmf"`
	Mark *struct {
		Name string `json:"name"`
	} `json:"mark"`
}

// pendingMark is a mark sent and not yet echoed: once it echoes it, the far end has played
// heard frames (those sent before the mark, less those clears dropped).
type pendingMark struct {
	name  string
	heard int64
}

// A Socket is a media.Stream whose far end buffers our audio ahead of playing it, which
// Clear drops on barge-in.
var (
	_ media.Stream  = (*Socket)(nil)
	_ media.Clearer = (*Socket)(nil)
)

// Socket is one media-stream socket as a media.Stream of 8 kHz frames.
type Socket struct {
	conn  *websocket.Conn
	opts  Options
	log   *slog.Logger
	start StartEvent

	done   chan struct{}
	once   sync.Once
	reason atomic.Pointer[string]
	// closeText is the reason our close frame gives.
	closeText atomic.Pointer[string]
	hungUp    chan struct{} // closed when Hangup gave closeText
	// socketClosed is closed once the close handshake is over (or given up).
	socketClosed chan struct{}
	socketOnce   sync.Once
	events       chan media.Event
	publish      atomic.Pointer[func(typ string, data any)]

	// The caller's audio: a ring of samples the reader fills and ReadFrame empties.
	imu      sync.Mutex
	ring     []int16
	rhead    int // next sample to read
	rlen     int // samples held
	inNotify chan struct{}
	lastSeq  int64
	bad      int
	payload  []byte // decoded μ-law of the current media frame
	partIn   int    // samples received beyond the whole frames counted in framesIn

	// Our audio. wlock (a channel, so that waiting for it can be abandoned) serialises
	// everything written to the socket, so that a mark follows the media it marks.
	wlock    chan struct{}
	wbuf     []byte
	ulaw     [mulawFrameBytes]byte
	wtimer   *time.Timer
	stall    *time.Timer
	idle     *time.Timer
	kick     chan struct{}
	clearReq atomic.Bool
	// Under pmu: the playback account.
	pmu       sync.Mutex
	writeNext time.Time // the slot of our next frame on the send clock
	playEnd   time.Time // when the far end will have played everything sent
	sent      int64     // frames sent
	dropped   int64     // frames sent that clears dropped unplayed
	acked     int64     // frames the far end has played, by its marks
	unmarked  int       // frames sent since the last mark
	marks     []pendingMark
	markSeq   int64

	framesIn, droppedIn, marksSent, marksEcho, clears, badFrames atomic.Int64
}

// Accept upgrades the request to a media-stream socket and waits for the far
// end's start event (connected may come first). It answers the HTTP request itself when the
// upgrade fails, and closes the socket with a reason when no usable start comes.
//
//nolint:contextcheck // reads take no context that ends (a cancelled read closes the socket without a code); timers bound them
func Accept(w http.ResponseWriter, r *http.Request, opts Options) (*Socket, error) {
	opts.defaults()
	// The socket is authenticated by key or token, never by cookies: any origin may use it.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(opts.MaxMessageBytes)
	m := &Socket{conn: conn, opts: opts, log: opts.Log,
		done: make(chan struct{}), hungUp: make(chan struct{}), socketClosed: make(chan struct{}), events: make(chan media.Event, 16),
		ring: make([]int16, opts.Inbound*media.SamplesPerFrame(media.Rate8k)), inNotify: make(chan struct{}, 1),
		lastSeq: -1, payload: make([]byte, 0, 8*mulawFrameBytes),
		wlock: make(chan struct{}, 1), wbuf: make([]byte, 0, 512), kick: make(chan struct{}, 1)}
	m.wtimer = stoppedTimer()
	m.stall = time.AfterFunc(time.Hour, func() { _ = conn.CloseNow() })
	m.stall.Stop()
	m.idle = time.AfterFunc(time.Hour, m.kickWriter)
	m.idle.Stop()

	// Reads take no context that ends: a read cancelled by its context would close the
	// socket without a code. A timer closes it, with one, when the start is late.
	late := time.AfterFunc(opts.StartTimeout, func() {
		m.closeWith(websocket.StatusPolicyViolation, "no start event within "+opts.StartTimeout.String(), reasonProtocol)
	})
	defer late.Stop()
	var buf bytes.Buffer
	for {
		msg, err := m.next(context.Background(), &buf)
		if err != nil {
			m.closeWith(websocket.StatusPolicyViolation, "no start event", reasonProtocol)
			return nil, fmt.Errorf("media stream: waiting for start: %w", err)
		}
		if m.isDone() {
			return nil, fmt.Errorf("media stream: waiting for start: %w", media.ErrClosed)
		}
		if msg == nil {
			continue // a bad frame, counted
		}
		switch msg.Event {
		case "connected":
			continue
		case "start":
		default:
			m.badFrame(msg.Event, msg.SequenceNumber, "before start")
			if m.tooBad() {
				return nil, fmt.Errorf("media stream: %w: too many before start", ErrBadFrame)
			}
			continue
		}
		if msg.Start == nil {
			m.badFrame("start", msg.SequenceNumber, "start without its description")
			continue
		}
		f := msg.Start.Format
		if f.Encoding != "audio/x-mulaw" || f.SampleRate != media.Rate8k || f.Channels > 1 {
			m.closeWith(websocket.StatusPolicyViolation, "unsupported media format (want audio/x-mulaw at 8000 Hz, mono)", reasonProtocol)
			return nil, fmt.Errorf("media stream: %w: media format %+v", ErrBadFrame, f)
		}
		m.start = *msg.Start
		if m.start.StreamSid == "" {
			m.start.StreamSid = msg.StreamSid
		}
		if m.start.StreamSid == "" {
			m.closeWith(websocket.StatusPolicyViolation, "start without streamSid", reasonProtocol)
			return nil, fmt.Errorf("media stream: %w: start without streamSid", ErrBadFrame)
		}
		m.seq(msg.SequenceNumber)
		break
	}
	go m.readLoop()
	go m.writeLoop()
	return m, nil
}

// Start is the far end's description of the stream.
func (m *Socket) Start() StartEvent { return m.start }

// SetPublisher sends the stream's error events to publish (the call's events), from now on.
func (m *Socket) SetPublisher(publish func(typ string, data any)) { m.publish.Store(&publish) }

// SampleRate implements media.Stream: 8 kHz.
func (m *Socket) SampleRate() int { return media.Rate8k }

// Events implements media.Stream: DTMF, and a hang-up when the far end stops.
func (m *Socket) Events() <-chan media.Event { return m.events }

// Done implements media.Stream: it is closed when the stream ended; Reason says why.
func (m *Socket) Done() <-chan struct{} { return m.done }

// Reason implements media.Stream: why the stream ended: caller-hangup, error, credential-revoked, or closed (by
// us).
func (m *Socket) Reason() string {
	if r := m.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// Stats reports what the stream carried.
func (m *Socket) Stats() Stats {
	m.pmu.Lock()
	played := m.playedLocked(time.Now())
	cleared, sent := m.dropped, m.sent
	m.pmu.Unlock()
	return Stats{FramesIn: m.framesIn.Load(), FramesOut: sent, DroppedIn: m.droppedIn.Load(),
		MarksSent: m.marksSent.Load(), MarksEcho: m.marksEcho.Load(), Clears: m.clears.Load(), BadFrames: m.badFrames.Load(),
		Played: time.Duration(played) * media.FrameDuration, Cleared: time.Duration(cleared) * media.FrameDuration}
}

// Quality implements media.Stream: frames as packets; the frames ReadFrame could not take
// in time are the lost ones.
func (m *Socket) Quality() media.Quality {
	st := m.Stats()
	q := media.Quality{PacketsReceived: st.FramesIn, PacketsSent: st.FramesOut, PacketsLost: st.DroppedIn}
	if st.FramesIn > 0 {
		q.LossPercent = 100 * float64(st.DroppedIn) / float64(st.FramesIn)
	}
	return q
}

// ended ends the stream once, with reason.
func (m *Socket) ended(reason string) {
	m.once.Do(func() {
		m.reason.Store(&reason)
		m.idle.Stop()
		close(m.done)
	})
}

func (m *Socket) isDone() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Refuse ends a stream whose call cannot be taken now (the node or the tenant is at its
// limit of calls): the socket closes with 1013 Try Again Later and text.
func (m *Socket) Refuse(text string) {
	m.closeWith(websocket.StatusTryAgainLater, text, ReasonClosed)
}

// Revoke ends a stream whose credential was revoked (see Connections): the socket closes at
// once with CloseRevoked and text, and the call ends as credential-revoked. It does not
// block.
func (m *Socket) Revoke(text string) {
	m.closeWith(CloseRevoked, text, string(call.ReasonCredentialRevoked))
}

// closeWith ends the stream with reason and closes the socket with code and text.
func (m *Socket) closeWith(code websocket.StatusCode, text, reason string) {
	m.ended(reason)
	m.closeSocket(0, false, code, text)
}

// closeSocket closes the socket once, after wait, with code and text. When reason is
// true, it also waits (half a second at most) for Hangup to give the reason it closes with.
func (m *Socket) closeSocket(wait time.Duration, reason bool, code websocket.StatusCode, text string) {
	m.socketOnce.Do(func() {
		// Close waits for the far end's close frame: not for long.
		go func() {
			if wait > 0 {
				time.Sleep(wait)
			}
			if reason {
				select {
				case <-m.hungUp:
				case <-time.After(hangupGrace):
				}
			}
			if r := m.closeText.Load(); r != nil && code == websocket.StatusNormalClosure {
				text = *r
				code = websocket.StatusCode(call.Reason(text).CloseCode())
			}
			_ = m.conn.Close(code, text)
			close(m.socketClosed)
		}()
		time.AfterFunc(wait+hangupGrace+2*time.Second, func() { _ = m.conn.CloseNow() })
	})
}

// Close implements media.Stream: reading and writing end at once. If the far end is still
// there, the socket closes once the audio already sent has played (two seconds at most) and
// Hangup has said why (half a second at most); then with 1000. Idempotent.
func (m *Socket) Close() error {
	farEndGone := m.isDone()
	m.ended(ReasonClosed)
	if farEndGone {
		m.closeSocket(0, false, websocket.StatusNormalClosure, "call ended")
		return nil
	}
	m.pmu.Lock()
	tail := min(time.Until(m.playEnd), 2*time.Second)
	m.pmu.Unlock()
	m.closeSocket(max(tail, 0), true, websocket.StatusNormalClosure, "call ended")
	return nil
}

// hangupGrace is how long a Close waits for Hangup's reason.
const hangupGrace = 500 * time.Millisecond

// Hangup ends the call from our side with reason, the socket's close text, with the
// reason's close code (call.Reason.CloseCode: shutdown closes it as going away, 1001); the
// audio already sent is left to play, as with Close.
// It returns once the socket is closed (a few seconds at most), so that a node that stops
// says goodbye on every socket before it exits.
func (m *Socket) Hangup(reason string) {
	if m.closeText.CompareAndSwap(nil, &reason) {
		close(m.hungUp)
	}
	_ = m.Close()
	select {
	case <-m.socketClosed:
	case <-time.After(hangupGrace + 5*time.Second):
	}
}

// ReadFrame implements media.Stream: the caller's next 20 ms, waiting for it.
func (m *Socket) ReadFrame(f *media.Frame) error {
	n := media.SamplesPerFrame(media.Rate8k)
	if f == nil || len(f.Samples) < n {
		return fmt.Errorf("%w: want %d samples at 8000 Hz", media.ErrFrame, n)
	}
	for {
		m.imu.Lock()
		if m.rlen >= n {
			for i := range n {
				f.Samples[i] = m.ring[(m.rhead+i)%len(m.ring)]
			}
			m.rhead = (m.rhead + n) % len(m.ring)
			m.rlen -= n
			m.imu.Unlock()
			f.Rate = media.Rate8k
			return nil
		}
		m.imu.Unlock()
		select {
		case <-m.inNotify:
		case <-m.done:
			return media.ErrClosed
		}
	}
}

// WriteFrame implements media.Stream: f goes out in its 20 ms slot of the send clock, at
// most Lead ahead of it. A writer that paused starts a new burst on the clock.
func (m *Socket) WriteFrame(f *media.Frame) error {
	n := media.SamplesPerFrame(media.Rate8k)
	if f == nil || len(f.Samples) != n || (f.Rate != 0 && f.Rate != media.Rate8k) {
		return fmt.Errorf("%w: want %d samples at 8000 Hz", media.ErrFrame, n)
	}
	if m.isDone() {
		return media.ErrClosed
	}
	now := time.Now()
	m.pmu.Lock()
	if m.writeNext.Before(now) {
		m.writeNext = now
	}
	due := m.writeNext
	m.writeNext = due.Add(media.FrameDuration)
	m.pmu.Unlock()
	if d := time.Until(due.Add(-m.opts.Lead)); d > 0 {
		m.wtimer.Reset(d)
		select {
		case <-m.wtimer.C:
		case <-m.done:
			m.wtimer.Stop()
			return media.ErrClosed
		}
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.unlock()
	if err := m.flushClear(); err != nil {
		return err
	}
	media.EncodePCMU(m.ulaw[:], f.Samples)
	b := append(m.wbuf[:0], `{"event":"media","streamSid":`...)
	b = strconv.AppendQuote(b, m.start.StreamSid)
	b = append(b, `,"media":{"payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, m.ulaw[:])
	b = append(b, `"}}`...)
	m.wbuf = b
	if err := m.write(b); err != nil {
		return err
	}
	now = time.Now()
	m.pmu.Lock()
	m.sent++
	m.unmarked++
	if m.playEnd.Before(now) {
		m.playEnd = now
	}
	m.playEnd = m.playEnd.Add(media.FrameDuration)
	mark := m.unmarked >= m.opts.MarkEvery
	m.pmu.Unlock()
	if mark {
		if err := m.sendMark(); err != nil {
			return err
		}
	}
	m.idle.Reset(markIdle)
	return nil
}

// Clear drops the audio the far end holds but has not played (the caller barged in): the
// clear is sent before anything else we write. It returns at once, with the audio it will
// drop by our account.
func (m *Socket) Clear() time.Duration {
	if m.isDone() {
		return 0
	}
	m.pmu.Lock()
	unplayed := m.unplayedLocked(time.Now())
	m.pmu.Unlock()
	m.clearReq.Store(true)
	m.kickWriter()
	return time.Duration(unplayed) * media.FrameDuration
}

// unplayedLocked is how many frames sent the far end has not played yet: those ahead of
// the playback clock, never more than it has not acknowledged. The caller holds pmu.
func (m *Socket) unplayedLocked(now time.Time) int64 {
	return max(min(m.aheadLocked(now), m.sent-m.dropped-m.acked), 0)
}

// playedLocked is how many frames the far end has played: those whose time has come on
// the playback clock, never fewer than its marks acknowledged. The caller holds pmu.
func (m *Socket) playedLocked(now time.Time) int64 {
	return max(m.sent-m.dropped-m.aheadLocked(now), m.acked)
}

// aheadLocked is how many frames sent the far end holds unplayed, by the playback clock.
func (m *Socket) aheadLocked(now time.Time) int64 {
	ahead := m.playEnd.Sub(now)
	if ahead <= 0 {
		return 0
	}
	return int64((ahead + media.FrameDuration - 1) / media.FrameDuration)
}

// Played is the audio the far end has played, by our account.
func (m *Socket) Played() time.Duration {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	return time.Duration(m.playedLocked(time.Now())) * media.FrameDuration
}

func (m *Socket) kickWriter() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// writeLoop sends what is not sent from WriteFrame: a clear asked for while no frame is
// written, and the mark that closes a burst once the writer paused.
//
//nolint:contextcheck // the writer lives as long as the socket, not the upgrade request; Close ends it
func (m *Socket) writeLoop() {
	for {
		select {
		case <-m.kick:
		case <-m.done:
			return
		}
		if m.lock() != nil {
			return
		}
		err := m.flushClear()
		if err == nil {
			m.pmu.Lock()
			pending := m.unmarked > 0
			m.pmu.Unlock()
			if pending {
				err = m.sendMark()
			}
		}
		m.unlock()
		if err != nil {
			return
		}
	}
}

// lock takes the write lock, unless the stream ends first.
func (m *Socket) lock() error {
	select {
	case m.wlock <- struct{}{}:
		return nil
	case <-m.done:
		return media.ErrClosed
	}
}

func (m *Socket) unlock() { <-m.wlock }

// write sends one text frame; the caller holds the write lock.
func (m *Socket) write(b []byte) error {
	// A far end that does not take the frame within WriteTimeout is cut off by the stall
	// timer: one per stream, re-armed around each write, costs nothing per frame (a context
	// with a deadline per write would).
	m.stall.Reset(m.opts.WriteTimeout)
	err := m.conn.Write(context.Background(), websocket.MessageText, b)
	m.stall.Stop()
	if err != nil {
		if !m.isDone() {
			m.log.Info("media stream write failed", "error", err)
			m.closeWith(websocket.StatusGoingAway, "write failed", reasonCallerHangup)
		}
		return media.ErrClosed
	}
	return nil
}

// flushClear sends the clear asked for, if any; the caller holds the write lock. Marks
// pending are dropped: the far end echoes them at once, and they mark nothing played.
func (m *Socket) flushClear() error {
	if !m.clearReq.CompareAndSwap(true, false) {
		return nil
	}
	b := append(m.wbuf[:0], `{"event":"clear","streamSid":`...)
	b = strconv.AppendQuote(b, m.start.StreamSid)
	b = append(b, '}')
	m.wbuf = b
	m.pmu.Lock()
	now := time.Now()
	m.dropped += m.unplayedLocked(now)
	m.playEnd = now
	if m.writeNext.After(now) {
		m.writeNext = now
	}
	m.marks = m.marks[:0]
	m.unmarked = 0
	m.pmu.Unlock()
	m.clears.Add(1)
	return m.write(b)
}

// sendMark sends a mark after the frames sent; the caller holds the write lock.
func (m *Socket) sendMark() error {
	m.pmu.Lock()
	m.markSeq++
	name := "sb-" + strconv.FormatInt(m.markSeq, 10)
	if len(m.marks) >= 256 { // a far end that never echoes
		m.marks = m.marks[1:]
	}
	m.marks = append(m.marks, pendingMark{name: name, heard: m.sent - m.dropped})
	m.unmarked = 0
	m.pmu.Unlock()
	b := append(m.wbuf[:0], `{"event":"mark","streamSid":`...)
	b = strconv.AppendQuote(b, m.start.StreamSid)
	b = append(b, `,"mark":{"name":`...)
	b = strconv.AppendQuote(b, name)
	b = append(b, `}}`...)
	m.wbuf = b
	m.marksSent.Add(1)
	return m.write(b)
}

// markEchoed takes the echo of a mark: the far end played everything before it. An
// echo of a mark we do not hold (a clear dropped it) is accepted and changes nothing.
func (m *Socket) markEchoed(name string) bool {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	for i, p := range m.marks {
		if p.name == name {
			m.acked = max(m.acked, p.heard)
			m.marks = append(m.marks[:0], m.marks[i+1:]...)
			m.marksEcho.Add(1)
			return true
		}
	}
	if len(name) > 3 && name[:3] == "sb-" {
		if n, err := strconv.ParseInt(name[3:], 10, 64); err == nil && n <= m.markSeq {
			return true // sent before a clear
		}
	}
	return false
}

// next reads one frame of the far end into msg; a frame that is not protocol JSON is
// counted and answered nil.
func (m *Socket) next(ctx context.Context, buf *bytes.Buffer) (*mediaMessage, error) {
	typ, r, err := m.conn.Reader(ctx)
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		m.badFrame("", "", "binary frame")
		return nil, nil
	}
	var msg mediaMessage
	if err := json.Unmarshal(buf.Bytes(), &msg); err != nil {
		m.badFrame("", "", "not JSON: "+err.Error())
		return nil, nil
	}
	if msg.Event == "" {
		m.badFrame("", msg.SequenceNumber, "no event")
		return nil, nil
	}
	return &msg, nil
}

// seq checks a frame's sequence number: numbers rise; a frame without one is let through.
func (m *Socket) seq(s string) bool {
	if s == "" {
		return true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= m.lastSeq {
		return false
	}
	m.lastSeq = n
	return true
}

// badFrame counts, logs and publishes a frame that was skipped; too many close the socket.
//
//nolint:contextcheck // a skipped frame is counted and told whatever the caller's context
func (m *Socket) badFrame(event, seq, why string) {
	m.bad++
	m.badFrames.Add(1)
	level := slog.LevelWarn
	if m.bad > 3 {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, "media stream frame skipped", "event", event, "sequence_number", seq, "reason", why, "bad_frames", m.bad)
	if p := m.publish.Load(); p != nil {
		(*p)(EventFrameError, FrameError{Event: event, SequenceNumber: seq, Message: why, Count: m.bad})
	}
	if m.tooBad() {
		m.closeWith(websocket.StatusPolicyViolation, "too many bad frames ("+strconv.Itoa(m.bad)+")", reasonProtocol)
	}
}

func (m *Socket) tooBad() bool { return m.bad >= m.opts.MaxBadFrames }

// readLoop reads the far end's frames until stop, a close, or too many bad frames.
//
//nolint:contextcheck // the reader lives as long as the socket, not the upgrade request; Close ends it
func (m *Socket) readLoop() {
	defer close(m.events)
	var buf bytes.Buffer
	for {
		msg, err := m.next(context.Background(), &buf)
		if err != nil {
			if !m.isDone() {
				switch s := websocket.CloseStatus(err); {
				case s == websocket.StatusMessageTooBig:
					m.log.Warn("media stream frame over the limit", "limit", m.opts.MaxMessageBytes)
					m.ended(reasonProtocol)
				case s != -1 || errors.Is(err, io.EOF):
					m.log.Info("media stream closed by the far end", "status", s)
				default:
					m.log.Info("media stream read failed", "error", err)
				}
			}
			m.hangup(reasonCallerHangup)
			return
		}
		if msg == nil {
			if m.isDone() {
				return
			}
			continue
		}
		if msg.StreamSid != "" && msg.StreamSid != m.start.StreamSid {
			m.badFrame(msg.Event, msg.SequenceNumber, "streamSid "+msg.StreamSid+" is not this stream's")
			continue
		}
		if msg.Event != "connected" && !m.seq(msg.SequenceNumber) {
			m.badFrame(msg.Event, msg.SequenceNumber, "sequence number out of order (last "+strconv.FormatInt(m.lastSeq, 10)+")")
			continue
		}
		switch msg.Event {
		case "media":
			m.onMedia(msg)
		case "dtmf":
			if msg.DTMF == nil || len(msg.DTMF.Digit) != 1 || !isDigit(msg.DTMF.Digit[0]) {
				m.badFrame("dtmf", msg.SequenceNumber, "no digit or not a key")
				continue
			}
			select {
			case m.events <- media.Event{Kind: media.EventDTMF, Digit: rune(msg.DTMF.Digit[0])}:
			default:
				m.log.Warn("media stream dtmf dropped: events not taken", "digit", msg.DTMF.Digit)
			}
		case "mark":
			if msg.Mark == nil || !m.markEchoed(msg.Mark.Name) {
				m.badFrame("mark", msg.SequenceNumber, "echo of a mark never sent")
			}
		case "stop":
			m.log.Info("media stream stopped by the far end")
			m.hangup(reasonCallerHangup)
			return
		case "connected", "start":
			m.badFrame(msg.Event, msg.SequenceNumber, msg.Event+" after start")
		default:
			m.badFrame(msg.Event, msg.SequenceNumber, "unknown event")
		}
		if m.isDone() {
			return
		}
	}
}

// hangup reports the far end gone to the events' reader, then ends the stream.
func (m *Socket) hangup(reason string) {
	if !m.isDone() {
		select {
		case m.events <- media.Event{Kind: media.EventHangup, Reason: reason}:
		default:
		}
	}
	m.ended(reason)
}

// isDigit says whether c is a DTMF key: 0-9, *, #, A-D.
func isDigit(c byte) bool {
	return c >= '0' && c <= '9' || c == '*' || c == '#' || c >= 'A' && c <= 'D'
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// onMedia decodes a media frame into the ring ReadFrame empties.
func (m *Socket) onMedia(msg *mediaMessage) {
	if msg.Media == nil {
		m.badFrame("media", msg.SequenceNumber, "media without its payload")
		return
	}
	if t := msg.Media.Track; t != "" && t != "inbound" && t != "inbound_track" {
		return // another track (outbound, when both are streamed): not the caller
	}
	p := msg.Media.Payload
	if len(p) > base64.StdEncoding.EncodedLen(cap(m.payload)) {
		m.badFrame("media", msg.SequenceNumber, "payload over 160 ms")
		return
	}
	b, err := base64.StdEncoding.AppendDecode(m.payload[:0], []byte(p))
	if err != nil {
		m.badFrame("media", msg.SequenceNumber, "payload is not base64")
		return
	}
	if len(b) == 0 {
		m.badFrame("media", msg.SequenceNumber, "empty payload")
		return
	}
	// Twilio sends 20 ms (160 bytes) a message; other senders cut the audio otherwise, and
	// it is one stream of samples all the same: ReadFrame takes 20 ms of it as they come.
	m.imu.Lock()
	if len(b) > len(m.ring) { // more than the ring holds: the newest of it
		m.droppedIn.Add(int64((len(b) - len(m.ring) + mulawFrameBytes - 1) / mulawFrameBytes))
		b = b[len(b)-len(m.ring):]
	}
	n := len(b)
	if over := m.rlen + n - len(m.ring); over > 0 { // ReadFrame fell behind: drop the oldest
		drop := min(m.rlen, (over+mulawFrameBytes-1)/mulawFrameBytes*mulawFrameBytes)
		m.rhead = (m.rhead + drop) % len(m.ring)
		m.rlen -= drop
		m.droppedIn.Add(int64(drop / mulawFrameBytes))
	}
	tail := (m.rhead + m.rlen) % len(m.ring)
	first := min(n, len(m.ring)-tail)
	media.DecodePCMU(m.ring[tail:tail+first], b[:first])
	media.DecodePCMU(m.ring[:n-first], b[first:])
	m.rlen += n
	m.partIn += n
	m.framesIn.Add(int64(m.partIn / mulawFrameBytes))
	m.partIn %= mulawFrameBytes
	m.imu.Unlock()
	select {
	case m.inNotify <- struct{}{}:
	default:
	}
}
