package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// The RTP session is the media.Stream of a SIP call. Its cost is what limits how many calls
// a core carries, so it runs on as little as it can:
//
//   - one goroutine per socket, blocked in a read: the RTP reader parses, latches, counts and
//     fills the jitter buffer, and wakes on a read deadline to check the media timeout; the
//     RTCP reader wakes on its deadline to send the periodic report;
//   - no pacing goroutines: ReadFrame and WriteFrame sleep to their own 20 ms deadlines in
//     the caller's goroutine, on one timer each, and decode or encode there;
//   - every buffer is allocated by NewRTPSession (or Update, for a new codec), so a frame
//     in either direction allocates nothing.

var (
	// ErrNoTelephoneEvent is SendDTMF on a session whose SDP agreed no telephone-event.
	ErrNoTelephoneEvent = errors.New("media: no telephone-event negotiated")
	// ErrUnknownCodec is a codec the session cannot carry.
	ErrUnknownCodec = errors.New("media: unknown codec")
	// ErrFrame is a frame of the wrong rate or length for the stream.
	ErrFrame = errors.New("media: frame does not match the stream")
)

// CodecSpec is a codec as the SDP agreed it.
type CodecSpec struct {
	Name        string // "PCMU", "PCMA" or "opus" (case-insensitive)
	PayloadType uint8
	ClockRate   int // 8000 for G.711, 48000 for Opus; zero: the codec's
	Channels    int // 1 for G.711; Opus is 2 in SDP (we encode mono, decode to mono)
}

// RTPConfig configures an RTPSession.
type RTPConfig struct {
	Log *slog.Logger // nil: discard
	// Conn is the RTP socket; the session owns and closes it (on success of NewRTPSession).
	Conn *net.UDPConn
	// RTCP is the RTCP socket (RTP port+1), owned likewise; nil: no RTCP.
	RTCP *net.UDPConn
	// Remote is where the peer's SDP says it receives RTP; zero: learnt from the first
	// packet (nothing is sent before).
	Remote netip.AddrPort
	// RemoteRTCP is where RTCP goes; zero: Remote's port+1.
	RemoteRTCP netip.AddrPort
	Codec      CodecSpec
	// EventPT is the negotiated telephone-event payload type; 0 = none offered.
	EventPT uint8
	// Rate is the rate of frames read and written: 8000, 16000, 24000 or 48000.
	Rate int
	// JitterDepth is the jitter buffer's target depth; zero: 40 ms. It grows by itself
	// when packets come late and comes back down after a calm.
	JitterDepth time.Duration
	// MediaTimeout: no RTP or RTCP for this long ends the session with reason
	// "media-timeout"; zero: 30 s; negative: never.
	MediaTimeout time.Duration
	// OpusComplexity is the encoder's complexity, 1 to 10; 0: 1, the cheapest that still
	// codes wideband speech cleanly, so that a core carries many Opus calls (3 for a stream
	// at 8 kHz, where narrowband SILK needs it and costs less anyway).
	OpusComplexity int
	// OpusMaxBandwidth caps the audio bandwidth we encode, in Hz (see
	// OpusConfig.MaxBandwidth); 0: 8000, wideband speech, which keeps the encoder in its
	// cheap SILK mode.
	OpusMaxBandwidth int
	// Record, if set, receives a WAV at Rate (a Recording): in stereo, left is what the
	// peer sent, right is what we sent. The session finishes the file when the stream ends;
	// it does not close Record. It is fed on ReadFrame's clock.
	Record io.WriteSeeker
	// RecordChannels is 2 (stereo, when zero) or 1 (both sides mixed).
	RecordChannels int
	// RTCPInterval is the period of our RTCP reports; zero: 5 s.
	RTCPInterval time.Duration
	// FillSilence sends a frame of silence in each 20 ms slot nothing was written for,
	// while we send: media relays and SBCs end calls that carry no RTP (rtpengine after
	// 60 s), and NAT bindings expire, while an agent listens. Like Record, it runs on
	// ReadFrame's clock: it fills while frames are read (an agent reads while it speaks).
	FillSilence bool
	// SRTP, when set, carries the session as SRTP and SRTCP with these keys (see srtp.go).
	SRTP *SRTPConfig
}

// RTPUpdate is what a re-INVITE changed.
type RTPUpdate struct {
	Remote  netip.AddrPort // zero: unchanged
	Codec   *CodecSpec     // nil: unchanged
	EventPT *uint8         // nil: unchanged
	// Send and Receive are the direction from our side: hold by the peer (peer sendonly)
	// is Send=false, Receive=true; inactive is both false.
	Send, Receive bool
	// SRTPRemote is the peer's new SRTP master key and salt, when a re-offer changed it; nil:
	// unchanged. Only a session carrying SRTP takes one.
	SRTPRemote []byte
}

// RTPStats is the state of a session's media, for call records and logs.
type RTPStats struct {
	PacketsReceived, PacketsSent uint64
	PacketsLost                  int64         // RFC 3550 expected - received
	Jitter                       time.Duration // interarrival jitter, RFC 3550
	Dropped                      uint64        // packets from a stranger address, wrong payload type, unparseable
	// Late counts packets that came too late to be played: after their playout time, or
	// dropped to bring the jitter buffer's delay back down after a burst. RFC 3550 counts
	// them received, not lost, though the caller's audio they carried is gone.
	Late               uint64
	Duplicates         uint64 // from the jitter buffer
	LastReceived       time.Time
	RemoteLossFraction float64       // from the peer's RTCP receiver reports, if any
	RTT                time.Duration // from RTCP SR/RR LSR/DLSR, if known
	// ByeReceived is an RTCP BYE from the peer (noted only; SIP ends the call).
	ByeReceived bool
}

const (
	defaultJitterDepth  = 40 * time.Millisecond
	defaultMediaTimeout = 30 * time.Second
	defaultRTCPInterval = 5 * time.Second
	defaultOpusCplx     = 1
	defaultOpusCplx8k   = 3
	defaultOpusBW       = 8000
	opusBitrate         = 32000
	opusExpectedLoss    = 10
	// A writer may run this far ahead of the clock without waiting: an echo or relay
	// writes just after its ReadFrame, whose clock need not be in phase with ours.
	writeLead = FrameDuration
	// A writer more than this late has stopped: the frames it missed are skipped, so the
	// timestamps keep the clock, and the next packet carries the marker bit.
	writeMaxLag = 3 * FrameDuration
	// A reader more than this late has stalled: its clock restarts from now.
	readMaxLag = 5 * FrameDuration
	// With no telephone-event packet for this long, an event whose end packets were all
	// lost is reported anyway.
	dtmfFlushAfter = 250 * time.Millisecond
	// Events buffered for a slow consumer; one slot is kept for the final hang-up.
	eventBuffer = 32
	// The largest datagram read.
	maxDatagram = 1500
	// dtmfVolume is the level of our telephone events, in -dBm0.
	dtmfVolume = 10
)

// RTPSession is one call's RTP and RTCP as a Stream: symmetric RTP with latching, a jitter
// buffer with loss concealment, RFC 4733 telephone events both ways, RTCP reports, hold,
// a media timeout and an optional stereo recording.
//
// ReadFrame is meant for one goroutine and WriteFrame for one (they may be different);
// every other method is safe from any goroutine.
type RTPSession struct {
	log            *slog.Logger
	conn           *net.UDPConn
	rtcpConn       *net.UDPConn
	rate           int
	frameLen       int
	ssrc           uint32
	timeout        time.Duration
	rtcpInterval   time.Duration
	start          time.Time
	cname          string
	explicitRTCP   bool
	opusComplexity int
	opusBandwidth  int
	// srtp encrypts and decrypts the session's packets; nil: plain RTP.
	srtp *srtpContexts

	remote     atomic.Pointer[netip.AddrPort] // where RTP goes
	rtcpRemote atomic.Pointer[netip.AddrPort] // where RTCP goes
	// lastAlive is when RTP or RTCP last came from the peer, as time since start.
	lastAlive atomic.Int64
	receiving atomic.Bool
	sent      atomic.Uint64

	// The receive side: the RTP reader fills it, ReadFrame empties it.
	mu          sync.Mutex
	pkt         rtp.Packet
	latched     bool
	latchSSRC   uint32
	rtcpLatched bool
	kind        codecKind
	codecPT     uint8
	eventPT     uint8
	eventOK     bool
	sendClock   int
	jb          *JitterBuffer
	chunk       *g711Chunker // G.711 packets of other than 20 ms, re-cut
	rstats      *ReceiverStats
	det         *DTMFDetector
	lastEventAt time.Time
	playNew     *Playout // a codec's playout from Update, taken up by ReadFrame
	received    uint64
	dropped     uint64
	lostBase    int64  // loss of earlier sources
	lateBase    uint64 // late and duplicates of jitter buffers replaced by Update
	dupBase     uint64
	lastRecv    time.Time
	remoteLoss  float64
	rtt         time.Duration
	bye         bool
	// statsCh is closed at the next drop or RTT learnt (StatsChanged); nil: none waits.
	statsCh chan struct{}

	// eager is ReadEagerly's (under mu).
	eager EagerRead

	// ReadFrame's own.
	play      *Playout
	readClock *Pacer
	nextFill  time.Time // when the silence filler looks again (FillSilence)

	// The send side.
	wmu        sync.Mutex
	pz         *Packetizer
	sstats     *SenderStats
	tx         *txCodec
	txEventPT  uint8
	writeClock *Pacer // under wmu; its Wait is WriteFrame's
	sending    bool
	dtmfActive bool
	wpkt       []byte // WriteFrame's own
	// fillPkt and fillPCM are the silence filler's own (FillSilence); nil without it.
	fillPkt []byte
	fillPCM []int16
	filling bool // under wmu: the filler keeps the clock until a frame is written

	dtmfMu   sync.Mutex // one SendDTMF at a time
	dtmfPkts []DTMFPacket
	dtmfBuf  []byte

	// rec is the call's recording, when it is recorded.
	rec *Recording

	evMu     sync.Mutex
	events   chan Event
	evClosed bool

	// done is doneCtx's: AfterDone runs callbacks on it without a goroutine of their own.
	done     <-chan struct{}
	doneCtx  context.Context
	doneStop context.CancelFunc
	endOnce  sync.Once
	reason   atomic.Pointer[string]
	wg       sync.WaitGroup
}

var (
	_ Stream      = (*RTPSession)(nil)
	_ DTMFSender  = (*RTPSession)(nil)
	_ EagerReader = (*RTPSession)(nil)
)

func unmapAddrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func nextPort(a netip.AddrPort) netip.AddrPort {
	if !a.IsValid() {
		return a
	}
	return netip.AddrPortFrom(a.Addr(), a.Port()+1)
}

// NewRTPSession validates cfg and starts the session's readers. On error the sockets are
// left to the caller.
func NewRTPSession(cfg RTPConfig) (*RTPSession, error) {
	if cfg.Conn == nil {
		return nil, errors.New("media: RTP session without a socket")
	}
	spec, kind, err := resolveCodec(cfg.Codec)
	if err != nil {
		return nil, err
	}
	if !supportedRate(cfg.Rate) {
		return nil, fmt.Errorf("%w: stream at %d Hz", ErrUnsupportedRate, cfg.Rate)
	}
	play, err := newPlayout(kind, cfg.Rate, rxPayloadSize(kind))
	if err != nil {
		return nil, err
	}
	tx, err := newTxCodec(kind, cfg.Rate, cfg.OpusComplexity, cfg.OpusMaxBandwidth)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	depth := cfg.JitterDepth
	if depth <= 0 {
		depth = defaultJitterDepth
	}
	timeout := cfg.MediaTimeout
	if timeout == 0 {
		timeout = defaultMediaTimeout
	}
	interval := cfg.RTCPInterval
	if interval <= 0 {
		interval = defaultRTCPInterval
	}
	s := &RTPSession{
		log:            log,
		conn:           cfg.Conn,
		rtcpConn:       cfg.RTCP,
		rate:           cfg.Rate,
		frameLen:       SamplesPerFrame(cfg.Rate),
		timeout:        timeout,
		rtcpInterval:   interval,
		start:          time.Now(),
		explicitRTCP:   cfg.RemoteRTCP.IsValid(),
		opusComplexity: cfg.OpusComplexity,
		opusBandwidth:  cfg.OpusMaxBandwidth,
		kind:           kind,
		codecPT:        spec.PayloadType,
		eventPT:        cfg.EventPT,
		eventOK:        cfg.EventPT != 0,
		sendClock:      spec.ClockRate,
		jb:             newSessionJitter(kind, depth),
		chunk:          newG711Chunker(),
		rstats:         NewReceiverStats(spec.ClockRate),
		det:            NewDTMFDetector(spec.ClockRate),
		play:           play,
		readClock:      NewPacer(),
		pz:             NewPacketizer(spec.PayloadType, spec.ClockRate, 0),
		sstats:         NewSenderStats(spec.ClockRate),
		tx:             tx,
		txEventPT:      cfg.EventPT,
		sending:        true,
		writeClock:     NewPacer(),
		wpkt:           make([]byte, txPacketSize(kind)),
		dtmfPkts:       make([]DTMFPacket, 0, 32),
		dtmfBuf:        make([]byte, 12+TelephoneEventSize, maxDatagram), // room for an SRTP tag
		events:         make(chan Event, eventBuffer),
	}
	s.doneCtx, s.doneStop = context.WithCancel(context.Background())
	s.done = s.doneCtx.Done()
	if cfg.SRTP != nil {
		if s.srtp, err = newSRTPContexts(*cfg.SRTP); err != nil {
			return nil, err
		}
	}
	s.ssrc = s.pz.SSRC()
	s.cname = fmt.Sprintf("%08x@switchboard", s.ssrc)
	s.receiving.Store(true)
	remote := unmapAddrPort(cfg.Remote)
	s.remote.Store(&remote)
	rr := unmapAddrPort(cfg.RemoteRTCP)
	if !rr.IsValid() {
		rr = nextPort(remote)
	}
	s.rtcpRemote.Store(&rr)
	if cfg.Record != nil {
		channels := cfg.RecordChannels
		if channels == 0 {
			channels = 2
		}
		rec, err := NewRecording(cfg.Record, cfg.Rate, channels)
		if err != nil {
			return nil, err
		}
		s.rec = rec
	}
	if s.timeout > 0 {
		_ = s.conn.SetReadDeadline(s.start.Add(s.timeout))
	}
	s.wg.Add(1)
	go s.readLoop()
	if s.rtcpConn != nil {
		s.wg.Add(1)
		go s.rtcpLoop()
	}
	if cfg.FillSilence {
		s.fillPkt, s.fillPCM = make([]byte, txPacketSize(kind)), make([]int16, s.frameLen)
		s.nextFill = s.start.Add(fillFirst) // the writer's first frame has a chance first
	}
	return s, nil
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func (s *RTPSession) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// SampleRate implements Stream.
func (s *RTPSession) SampleRate() int { return s.rate }

// Events implements Stream: DTMF (RFC 4733 and Deliver) and a final EventHangup.
func (s *RTPSession) Events() <-chan Event { return s.events }

// Done implements Stream: it is closed when the stream has ended.
func (s *RTPSession) Done() <-chan struct{} { return s.done }

// AfterDone arranges for f to run in its own goroutine once the stream has ended, with no
// goroutine waiting until then; stop cancels that, reporting whether it did so before f
// started (context.AfterFunc's rules).
func (s *RTPSession) AfterDone(f func()) (stop func() bool) { return context.AfterFunc(s.doneCtx, f) }

// StatsChanged returns a channel closed at the next packet dropped or round trip learnt
// from RTCP: a test or monitor that waits for Stats to show one looks again then. It costs
// nothing while no one waits, and nothing on a packet taken.
func (s *RTPSession) StatsChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statsCh == nil {
		s.statsCh = make(chan struct{})
	}
	return s.statsCh
}

// statsChangedLocked wakes StatsChanged's waiters; s.mu is held.
func (s *RTPSession) statsChangedLocked() {
	if s.statsCh != nil {
		close(s.statsCh)
		s.statsCh = nil
	}
}

// Reason implements Stream: why the stream ended ("media-timeout", the Hangup reason,
// "closed"); "" while it lives.
func (s *RTPSession) Reason() string {
	if r := s.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// Quality implements Stream: the RFC 3550 counts of what was received, and the RTT from
// RTCP when the peer sends reports.
func (s *RTPSession) Quality() Quality {
	st := s.Stats()
	q := Quality{
		PacketsReceived: int64(st.PacketsReceived),
		PacketsSent:     int64(st.PacketsSent),
		PacketsLost:     max(st.PacketsLost, 0), // RFC 3550's count goes below zero with duplicates
		PacketsLate:     int64(st.Late),
		JitterMS:        float64(st.Jitter) / float64(time.Millisecond),
		RTTMS:           float64(st.RTT) / float64(time.Millisecond),
	}
	if exp := int64(st.PacketsReceived) + st.PacketsLost; exp > 0 && st.PacketsLost > 0 {
		q.LossPercent = 100 * float64(st.PacketsLost) / float64(exp)
	}
	return q
}

// Close implements Stream; it is idempotent and returns once the readers have stopped.
func (s *RTPSession) Close() error {
	s.end("closed")
	s.wg.Wait()
	return nil
}

// Hangup ends the stream for reason: EventHangup{Reason: reason} is delivered, Events is
// closed, and ReadFrame and WriteFrame return ErrClosed.
func (s *RTPSession) Hangup(reason string) {
	if reason == "" {
		reason = "hangup"
	}
	s.end(reason)
	s.wg.Wait()
}

// Deliver sends an event that came by signalling (SIP INFO DTMF) out on Events, like the
// RTP ones. An EventHangup ends the stream.
func (s *RTPSession) Deliver(ev Event) {
	if ev.Kind == EventHangup {
		s.Hangup(ev.Reason)
		return
	}
	s.emit(ev)
}

// emit queues ev on Events unless the stream ended or the consumer is far behind; the
// last slot is kept for the hang-up.
func (s *RTPSession) emit(ev Event) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if s.evClosed {
		return
	}
	if len(s.events) >= cap(s.events)-1 {
		s.log.Warn("event dropped: consumer behind", "kind", ev.Kind, "digit", string(ev.Digit))
		return
	}
	s.events <- ev
}

// end stops the stream once: the reason, Done, the final event, the sockets (which stops
// the readers) and the recording.
func (s *RTPSession) end(reason string) {
	s.endOnce.Do(func() {
		s.reason.Store(&reason)
		s.doneStop()
		s.evMu.Lock()
		select {
		case s.events <- Event{Kind: EventHangup, Reason: reason}:
		default:
		}
		close(s.events)
		s.evClosed = true
		s.evMu.Unlock()
		_ = s.conn.Close()
		if s.rtcpConn != nil {
			_ = s.rtcpConn.Close()
		}
		if s.rec != nil {
			if err := s.rec.Close(); err != nil {
				s.log.Warn("recording not finished", "error", err)
			}
		}
		s.log.Debug("rtp session ended", "reason", reason)
	})
}

// ReadFrame implements Stream: the next 20 ms heard, one frame per 20 ms of the session's
// clock, with concealment or silence when nothing arrived. If f.Samples has no room for a
// frame it is allocated once.
func (s *RTPSession) ReadFrame(f *Frame) error {
	if f == nil {
		return fmt.Errorf("%w: nil frame", ErrFrame)
	}
	if s.isDone() {
		return ErrClosed
	}
	if cap(f.Samples) < s.frameLen {
		f.Samples = make([]int16, s.frameLen)
	}
	f.Samples, f.Rate = f.Samples[:s.frameLen], s.rate
	slot := s.readClock.ReadSlot(time.Now(), readMaxLag)
	s.mu.Lock()
	eager := s.eager.On()
	s.mu.Unlock()
	if eager {
		if err := s.eager.Wait(s.readClock, slot, s.frameHeld, s.done); err != nil {
			return err
		}
	} else if err := s.readClock.Wait(slot, s.done); err != nil {
		return err
	}
	if s.fillPkt != nil {
		s.fillDue(time.Now())
	}
	if depth, came := s.produce(f.Samples); came && eager {
		s.eager.Played(s.readClock, time.Now(), depth, readMaxLag)
	}
	s.recordHeard(f.Samples)
	return nil
}

// ReadEagerly implements EagerReader: from now on ReadFrame returns each frame as soon as
// it is next in order, and waits its slot of the clock (the jitter buffer's depth after
// the frame before it) only for one that has not come, before concealing it.
func (s *RTPSession) ReadEagerly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eager.Start(s.jb)
}

// frameHeld says whether the jitter buffer holds the next frame in order.
func (s *RTPSession) frameHeld() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jb.Ready()
}

// produce plays out one tick of the jitter buffer into out, and says whether it played a
// frame that came (not concealment or silence), and the buffer's depth in frames.
func (s *RTPSession) produce(out []int16) (depth int, came bool) {
	s.mu.Lock()
	if s.playNew != nil {
		s.play, s.playNew = s.playNew, nil
	}
	s.play.Take(s.jb)
	depth = s.jb.Target()
	s.mu.Unlock()
	s.play.Play(out)
	return depth, s.play.Came()
}

// WriteFrame implements Stream: f is sent in its 20 ms slot of the session's clock. A
// writer more than a frame ahead of the clock waits for its slot; one that stopped for a while resumes on the
// clock, the frames it missed skipped, with the marker bit.
func (s *RTPSession) WriteFrame(f *Frame) error {
	if f == nil || len(f.Samples) != s.frameLen || (f.Rate != 0 && f.Rate != s.rate) {
		return fmt.Errorf("%w: want %d samples at %d Hz", ErrFrame, s.frameLen, s.rate)
	}
	if s.isDone() {
		return ErrClosed
	}
	now := time.Now()
	s.wmu.Lock()
	due, skipped, _ := s.writeClock.WriteSlot(now, writeMaxLag)
	if skipped > 0 {
		s.pz.Skip(skipped)
	}
	s.filling = false
	s.wmu.Unlock()
	if err := s.writeClock.Wait(due.Add(-writeLead), s.done); err != nil {
		return err
	}

	s.wmu.Lock()
	if s.dtmfActive || !s.sending {
		s.pz.Skip(1)
		s.wmu.Unlock()
		s.recordSent(nil)
		return nil
	}
	n, err := s.tx.encode(f.Samples)
	if err != nil {
		s.pz.Skip(1)
		s.wmu.Unlock()
		return err
	}
	ts := s.pz.Timestamp()
	pkt := s.wpkt // Update may replace it once wmu is let go
	m, err := s.pz.Packetize(pkt, s.tx.payload[:n])
	if err != nil {
		s.wmu.Unlock()
		return err
	}
	s.sstats.Sent(ts, n, now)
	s.wmu.Unlock()
	s.recordSent(f.Samples)
	return s.send(pkt[:m])
}

// send writes one RTP packet to the peer, encrypted in place when the session carries SRTP
// (b has room for the tag: it is one of the session's maxDatagram buffers); a failure other
// than a closed socket is only logged, as UDP has no delivery to report anyway.
func (s *RTPSession) send(b []byte) error {
	to := *s.remote.Load()
	if !to.IsValid() {
		return nil // the peer's address is not known yet
	}
	if s.srtp != nil {
		var err error
		if b, err = s.srtp.protectRTP(b); err != nil {
			s.log.Debug("srtp encryption failed", "error", err)
			return nil
		}
	}
	if _, err := s.conn.WriteToUDPAddrPort(b, to); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		s.log.Debug("rtp write failed", "error", err)
		return nil
	}
	s.sent.Add(1)
	return nil
}

// skipTo moves the send clock to the first slot at or after t. The caller holds wmu.
func (s *RTPSession) skipTo(t time.Time) {
	if k := s.writeClock.SkipTo(t); k > 0 {
		s.pz.Skip(k)
	}
}

// SendDTMF sends a key press as RFC 4733 telephone events on our clock, audio suspended
// while it plays; it returns when the last packet is sent. While we do not send (hold) it
// sends nothing.
func (s *RTPSession) SendDTMF(digit rune, d time.Duration) error {
	if s.isDone() {
		return ErrClosed
	}
	if _, ok := DigitEvent(digit); !ok {
		return fmt.Errorf("%w: key %q", ErrDTMF, digit)
	}
	s.dtmfMu.Lock()
	defer s.dtmfMu.Unlock()

	s.wmu.Lock()
	if s.txEventPT == 0 {
		s.wmu.Unlock()
		return ErrNoTelephoneEvent
	}
	if !s.sending {
		s.wmu.Unlock()
		return nil
	}
	s.skipTo(time.Now())
	start, ts, pt := s.writeClock.Next(), s.pz.Timestamp(), s.txEventPT
	clock := s.sstats.clockRate
	s.dtmfActive = true
	s.wmu.Unlock()
	defer func() {
		s.wmu.Lock()
		s.dtmfActive = false
		s.skipTo(time.Now())
		s.wmu.Unlock()
	}()

	pkts, err := AppendDTMFPackets(s.dtmfPkts[:0], digit, d, clock, dtmfVolume)
	if err != nil {
		return err
	}
	t := stoppedTimer()
	for _, p := range pkts {
		if err := sleepUntil(t, start.Add(p.At), s.done); err != nil {
			return err
		}
		s.wmu.Lock()
		m, err := s.pz.PacketizeEvent(s.dtmfBuf, pt, p.Marker, ts, p.Payload[:])
		if err == nil {
			s.sstats.Sent(ts, TelephoneEventSize, time.Now())
		}
		s.wmu.Unlock()
		if err != nil {
			return err
		}
		if err := s.send(s.dtmfBuf[:m]); err != nil {
			return err
		}
	}
	return nil
}

// Update applies what a re-INVITE changed: a new remote address (latching starts over), a
// new codec, a new telephone-event payload type, and the direction.
func (s *RTPSession) Update(u RTPUpdate) error {
	if s.isDone() {
		return ErrClosed
	}
	var (
		spec CodecSpec
		kind codecKind
		play *Playout
		tx   *txCodec
		jb   *JitterBuffer
	)
	if u.Codec != nil {
		var err error
		if spec, kind, err = resolveCodec(*u.Codec); err != nil {
			return err
		}
		s.mu.Lock()
		same := s.kind == kind && s.codecPT == spec.PayloadType
		depth := time.Duration(s.jb.cfg.Initial) * FrameDuration
		s.mu.Unlock()
		if same {
			// A session refresh or a hold repeats the codec: its state stays.
			u.Codec = nil
		} else {
			if play, err = newPlayout(kind, s.rate, rxPayloadSize(kind)); err != nil {
				return err
			}
			if tx, err = newTxCodec(kind, s.rate, s.opusComplexity, s.opusBandwidth); err != nil {
				return err
			}
			jb = newSessionJitter(kind, depth)
		}
	}
	var rx *srtpReceiver
	if u.SRTPRemote != nil {
		if s.srtp == nil {
			return fmt.Errorf("%w: an SRTP key for a session of plain RTP", ErrSRTP)
		}
		var err error
		if rx, err = newSRTPReceiver(s.srtp.suite, u.SRTPRemote); err != nil {
			return err
		}
	}
	now := time.Now()

	s.mu.Lock()
	if u.Remote.IsValid() {
		r := unmapAddrPort(u.Remote)
		s.remote.Store(&r)
		s.latched = false
		rr := nextPort(r)
		s.rtcpRemote.Store(&rr)
		s.rtcpLatched, s.explicitRTCP = false, false
	}
	if u.Codec != nil {
		js := s.jb.Stats()
		s.lateBase += js.LatePackets()
		s.dupBase += js.Duplicate
		jb.SetEager(s.eager.On())
		s.jb, s.playNew, s.codecPT, s.sendClock = jb, play, spec.PayloadType, spec.ClockRate
		s.chunk.reset()
		s.kind = kind
		s.rstats.clockRate = spec.ClockRate
		s.det.clockRate = spec.ClockRate
	}
	if u.EventPT != nil {
		s.eventPT, s.eventOK = *u.EventPT, *u.EventPT != 0
	}
	if rx != nil {
		s.srtp.rx.Store(rx)
	}
	if u.Receive && !s.receiving.Load() {
		// The timeout restarts with the media.
		s.lastAlive.Store(int64(now.Sub(s.start)))
	}
	s.receiving.Store(u.Receive)
	s.mu.Unlock()

	s.wmu.Lock()
	if tx != nil {
		s.tx = tx
		if n := txPacketSize(kind); n > len(s.wpkt) {
			// A writer or the filler may still be sending from the old buffers: new ones.
			s.wpkt = make([]byte, n)
			if s.fillPkt != nil {
				s.fillPkt = make([]byte, n)
			}
		}
		s.pz.SetFormat(spec.PayloadType, spec.ClockRate)
		s.sstats.clockRate = spec.ClockRate
	}
	if u.EventPT != nil {
		s.txEventPT = *u.EventPT
	}
	s.sending = u.Send
	s.wmu.Unlock()
	return nil
}

// Stats returns the session's counters.
func (s *RTPSession) Stats() RTPStats {
	s.mu.Lock()
	snap := s.rstats.Snapshot()
	js := s.jb.Stats()
	st := RTPStats{
		PacketsReceived:    s.received,
		PacketsLost:        s.lostBase + snap.Lost,
		Jitter:             time.Duration(snap.JitterMs * float64(time.Millisecond)),
		Dropped:            s.dropped,
		Late:               s.lateBase + js.LatePackets() + s.chunk.late,
		Duplicates:         s.dupBase + js.Duplicate,
		LastReceived:       s.lastRecv,
		RemoteLossFraction: s.remoteLoss,
		RTT:                s.rtt,
		ByeReceived:        s.bye,
	}
	s.mu.Unlock()
	st.PacketsSent = s.sent.Load()
	return st
}

// readLoop reads RTP until the socket is closed, and checks the media timeout when its
// read deadline passes.
func (s *RTPSession) readLoop() {
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				if s.checkTimeout(time.Now()) {
					return
				}
			case errors.Is(err, net.ErrClosed), s.isDone():
				return
			default:
				s.log.Debug("rtp read failed", "error", err)
			}
			continue
		}
		b := buf[:n]
		if s.srtp != nil {
			// Authenticated before anything looks at it: a forged packet neither latches
			// the media nor reaches the audio, and counts as dropped.
			if b, err = s.srtp.unprotectRTP(b); err != nil {
				s.mu.Lock()
				s.dropped++
				s.statsChangedLocked()
				s.mu.Unlock()
				continue
			}
		}
		evs, k := s.intake(b, from, time.Now())
		for _, ev := range evs[:k] {
			s.emit(ev)
		}
	}
}

// checkTimeout ends the stream if nothing came from the peer for the media timeout, and
// otherwise sets the next deadline; it reports whether the stream ended.
func (s *RTPSession) checkTimeout(now time.Time) bool {
	if s.timeout <= 0 {
		_ = s.conn.SetReadDeadline(time.Time{})
		return false
	}
	if !s.receiving.Load() {
		_ = s.conn.SetReadDeadline(now.Add(s.timeout))
		return false
	}
	last := s.start.Add(time.Duration(s.lastAlive.Load()))
	if now.Sub(last) >= s.timeout {
		s.log.Info("media timeout", "after", s.timeout)
		s.end("media-timeout")
		return true
	}
	_ = s.conn.SetReadDeadline(last.Add(s.timeout))
	return false
}

// intake handles one datagram from the RTP socket at now and returns the key presses it
// completed (up to two: an earlier one whose end was lost, and its own).
func (s *RTPSession) intake(b []byte, from netip.AddrPort, now time.Time) (evs [2]Event, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.pkt
	if err := ParseRTP(p, b); err != nil {
		s.dropped++
		s.statsChangedLocked()
		return evs, 0
	}
	audio := p.PayloadType == s.codecPT
	event := !audio && s.eventOK && p.PayloadType == s.eventPT
	if !audio && !event {
		s.dropped++ // a payload type the SDP did not agree
		s.statsChangedLocked()
		return evs, 0
	}
	from = unmapAddrPort(from)
	// Symmetric RTP with latching: the first packet fixes where the peer's media comes from
	// (behind NAT, not what its SDP says) and we send there; later packets from elsewhere
	// are dropped and counted, unless they carry the latched SSRC (the peer's NAT
	// rebinding), so nobody else can take the call's audio over.
	switch cur := *s.remote.Load(); {
	case !s.latched:
		s.latched, s.latchSSRC = true, p.SSRC
		if cur != from {
			s.log.Info("rtp source latched", "from", from, "sdp", cur)
			to := from // a copy, so that only a latch allocates, not every packet
			s.remote.Store(&to)
		}
		if !s.rtcpLatched && !s.explicitRTCP {
			rr := nextPort(from)
			s.rtcpRemote.Store(&rr)
		}
	case cur != from && p.SSRC == s.latchSSRC:
		s.log.Info("rtp source moved", "from", from, "was", cur)
		to := from
		s.remote.Store(&to)
	case cur != from:
		s.dropped++
		s.statsChangedLocked()
		return evs, 0
	case p.SSRC != s.latchSSRC:
		s.latchSSRC = p.SSRC // a new stream from the same place (transfer, re-INVITE)
	}
	s.received++
	s.lastRecv = now
	s.lastAlive.Store(int64(now.Sub(s.start)))

	if s.rstats.seq.started && p.SSRC != s.rstats.seq.SSRC() {
		s.lostBase += s.rstats.seq.Lost()
	}
	switch s.rstats.Update(p.SSRC, p.SequenceNumber, p.Timestamp, now) {
	case SeqNewSource:
		s.jb.Reset()
		s.chunk.reset()
		*s.det = DTMFDetector{clockRate: s.det.clockRate}
	case SeqRestart:
		s.jb.Reset()
		s.chunk.reset()
	}
	if event {
		if s.chunk.active {
			s.chunk.skip(p.SequenceNumber)
		} else {
			// An empty slot keeps the buffer's sequence space whole; it plays as silence.
			s.jb.Push(nil, p.SequenceNumber, p.Timestamp)
			s.eager.Arrived()
		}
		s.lastEventAt = now
		ev, ok, _ := s.det.Push(p.Timestamp, p.Payload)
		if ok {
			evs[n] = ev
			n++
			if ev, ok := s.det.pop(); ok {
				evs[n] = ev
				n++
			}
		}
		return evs, n
	}
	if s.kind != codecOpus && (s.chunk.active || len(p.Payload) != g711Frame) {
		s.chunk.push(s.jb, p.Payload, p.SequenceNumber, p.Timestamp)
	} else {
		s.jb.Push(p.Payload, p.SequenceNumber, p.Timestamp)
	}
	s.eager.Arrived()
	if s.det.active && now.Sub(s.lastEventAt) > dtmfFlushAfter {
		for n < len(evs) {
			ev, ok := s.det.Flush()
			if !ok {
				break
			}
			evs[n] = ev
			n++
		}
	}
	return evs, n
}
