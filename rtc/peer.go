package rtc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
)

// The reasons a peer ends by itself, as its stream gives them (media.Stream.Reason).
const (
	reasonICEFailed        = string(call.ReasonICEFailed)
	reasonPeerDisconnected = string(call.ReasonPeerDisconnected)
)

// EventsChannel is the label of the data channel a client opens to receive its call's
// events.
const EventsChannel = "events"

const (
	// peerRate is the rate of the frames a peer reads and writes. Opus carries 48 kHz on
	// the wire whatever the rate it codes; 16 kHz is the rate of speech engines (voice
	// resamples nothing for them) and of SILK wideband, which Opus codes natively: the
	// encoder skips resampling and fullband analysis, and a session costs about a third of
	// what it does at 48 kHz (BENCHMARKS.md, WebRTC). Browsers hear 8 kHz of audio
	// bandwidth, as wideband telephony does.
	peerRate = media.Rate16k
	// peerComplexity is the encoder's: 1 of 10 costs half of the default 5 in SILK, for
	// speech a difference few hear.
	peerComplexity = 1
	// readMaxLag: a reader that fell this far behind the clock starts it over rather than
	// catching up in a burst.
	peerReadMaxLag = 200 * time.Millisecond
	// peerWriteMaxLag: a writer that paused this long resumes on the clock, the frames it
	// did not send skipped in the timestamps (and marked), as RTP wants.
	peerWriteMaxLag = 60 * time.Millisecond
	// eventQueue is how many events wait for the data channel to open or drain.
	eventQueue = 256
	// flushWait bounds how long Hangup waits for the queued events (call.ended) to leave.
	flushWait = time.Second
)

// Peer is one browser's call: a pion PeerConnection with an Opus track each way, as a
// media.Stream of 16 kHz frames. Reading plays the browser's audio through a jitter buffer
// on the peer's 20 ms clock, recovering a lost packet from the next one's in-band FEC and
// playing silence when the browser sends nothing (DTX, muted); writing encodes to Opus and
// sends each frame in its 20 ms slot. The call's events go to the client's "events" data
// channel.
type Peer struct {
	w   *Engine
	pc  *webrtc.PeerConnection
	log *slog.Logger
	out *webrtc.TrackLocalStaticRTP

	connected chan struct{}
	connOnce  sync.Once
	done      chan struct{}
	endOnce   sync.Once
	reason    atomic.Pointer[string]
	// closed is closed once the PeerConnection is.
	closed    chan struct{}
	closeOnce sync.Once

	evMu     sync.Mutex
	events   chan media.Event
	evClosed bool

	// The receiving side: the track's reader pushes into jb and counts in stats under
	// rmu; ReadFrame plays jb out.
	rmu       sync.Mutex
	jb        *media.JitterBuffer
	stats     *media.ReceiverStats
	rxPackets uint64
	track     bool
	play      *media.Playout
	readClock *media.Pacer
	eager     media.EagerRead // under rmu: ReadEagerly's

	// The sending side.
	wmu        sync.Mutex
	enc        *media.OpusEncoder
	wbuf       []byte
	pkt        rtp.Packet
	writeClock *media.Pacer
	txPackets  atomic.Uint64

	// sigMu orders the peer's signalling: a re-offer (an ICE restart) is answered whole
	// before trickled candidates or another offer are taken.
	sigMu sync.Mutex
	// restarts counts the ICE restarts the browser made.
	restarts atomic.Int64

	// The events data channel.
	dcMu    sync.Mutex
	dc      *webrtc.DataChannel
	dcReady chan struct{}
	dcOnce  sync.Once
	dcOut   chan []byte
	dcDone  chan struct{}
	dropped atomic.Uint64
	// pending counts the events queued and not yet handed to the channel.
	pending atomic.Int64
}

// A peer carries neither keys to the browser nor audio the browser holds unplayed: it is
// a media.Stream and nothing more.
var (
	_ media.Stream      = (*Peer)(nil)
	_ media.EagerReader = (*Peer)(nil)
)

func newPeer(ctx context.Context, w *Engine, offer string, log *slog.Logger) (*Peer, error) {
	play, err := media.NewOpusPlayout(peerRate, media.DefaultJitterConfig.MaxPayload)
	if err != nil {
		return nil, err
	}
	// Speech capped at wideband keeps the encoder in SILK mode, several times cheaper than
	// fullband; FEC lets the browser recover a lost packet from the next.
	enc, err := media.NewOpusEncoder(media.OpusConfig{Rate: peerRate, Complexity: peerComplexity, MaxBandwidth: 8000, FEC: true, PacketLossPercent: 5})
	if err != nil {
		return nil, err
	}
	pc, err := w.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("webrtc: peer: %w", err)
	}
	p := &Peer{
		w: w, pc: pc, log: log,
		connected: make(chan struct{}), done: make(chan struct{}), closed: make(chan struct{}),
		events: make(chan media.Event, 8),
		jb:     media.NewJitterBuffer(media.DefaultJitterConfig), stats: media.NewReceiverStats(media.ClockRateOpus), play: play,
		enc: enc, wbuf: make([]byte, media.OpusMaxPacket),
		readClock: media.NewPacer(), writeClock: media.NewPacer(),
		dcReady: make(chan struct{}), dcOut: make(chan []byte, eventQueue), dcDone: make(chan struct{}),
	}
	p.pkt.Version = 2
	p.pkt.SequenceNumber = uint16(rand.Uint32())
	p.pkt.Timestamp = rand.Uint32()
	fail := func(err error) (*Peer, error) {
		p.end("error")
		p.closePC()
		return nil, err
	}
	pc.OnConnectionStateChange(p.onState)
	pc.OnTrack(p.onTrack)
	pc.OnDataChannel(p.onDataChannel)
	go p.sendEvents()

	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(&OfferError{Reason: err.Error()})
	}
	if p.out, err = webrtc.NewTrackLocalStaticRTP(opusCapability, "audio", "switchboard"); err != nil {
		return fail(fmt.Errorf("webrtc: track: %w", err))
	}
	sender, err := pc.AddTrack(p.out)
	if err != nil {
		return fail(fmt.Errorf("webrtc: track: %w", err))
	}
	// RTCP for our track (receiver reports) is read so that the interceptors see it.
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(&OfferError{Reason: err.Error()})
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("webrtc: answer: %w", err))
	}
	gt := time.NewTimer(gatherTimeout)
	defer gt.Stop()
	select {
	case <-gathered:
	case <-gt.C:
		log.Warn("webrtc: answering before every candidate was gathered")
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	go func() {
		t := time.NewTimer(w.cfg.ConnectTimeout)
		defer t.Stop()
		select {
		case <-p.connected:
		case <-p.done:
		case <-t.C:
			p.log.Info("webrtc: ICE did not connect in time", "timeout", w.cfg.ConnectTimeout)
			p.end(reasonICEFailed)
		}
	}()
	return p, nil
}

// Answer is the SDP answer, with the node's candidates.
func (p *Peer) Answer() string {
	if d := p.pc.LocalDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// AddICECandidates takes a client's trickled candidates: an RFC 8840 SDP fragment. A
// fragment that is not one is an ErrCandidate naming the line. A fragment with new ICE
// credentials (a=ice-ufrag and a=ice-pwd) is a WHIP client's ICE restart (RFC 9725): the
// node restarts ICE as for a new offer, and returns its own new credentials and candidates
// as a fragment; otherwise it returns nil.
func (p *Peer) AddICECandidates(ctx context.Context, frag []byte) ([]byte, error) {
	tr, err := parseTrickle(frag)
	if err != nil {
		return nil, err
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	var answer []byte
	if rd := p.pc.RemoteDescription(); tr.ufrag != "" && rd != nil && tr.ufrag != iceUfrag(rd) {
		if tr.pwd == "" {
			return nil, fmt.Errorf("%w: ice-ufrag %q is not the session's current one; an ICE restart gives a=ice-pwd too", ErrCandidate, tr.ufrag)
		}
		sdp, err := p.renegotiate(ctx, withICECredentials(rd.SDP, tr.ufrag, tr.pwd))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCandidate, err)
		}
		answer = answerFragment(sdp)
	}
	if err := p.addCandidates(tr.cands); err != nil {
		return nil, err
	}
	return answer, nil
}

// addCandidates adds the client's candidates; sigMu is held.
func (p *Peer) addCandidates(cands []webrtc.ICECandidateInit) error {
	for _, c := range cands {
		if err := p.pc.AddICECandidate(c); err != nil {
			return fmt.Errorf("%w: %v", ErrCandidate, err)
		}
	}
	return nil
}

// Renegotiate answers a new offer of the browser on the live call: an ICE restart (a new
// ice-ufrag and ice-pwd, after the browser's network changed) or any other re-offer of the
// same session. The call, its record and its DTLS association go on; only the path the
// media takes changes. It returns the answer, with the node's candidates gathered again.
// An offer that cannot be answered is an *OfferError, and the call goes on as it was.
func (p *Peer) Renegotiate(ctx context.Context, offer string) (string, error) {
	if err := checkOffer(offer); err != nil {
		return "", err
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.renegotiate(ctx, offer)
}

// renegotiate is Renegotiate; sigMu is held.
func (p *Peer) renegotiate(ctx context.Context, offer string) (string, error) {
	if p.isDone() {
		return "", ErrEnded
	}
	before := iceUfrag(p.pc.RemoteDescription())
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		p.rollback()
		return "", &OfferError{Reason: err.Error()}
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		p.rollback()
		return "", &OfferError{Reason: err.Error()}
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("webrtc: answer: %w", err)
	}
	restart := iceUfrag(p.pc.RemoteDescription()) != before
	if restart {
		// A restart gathers the node's candidates again; the answer carries them, as the
		// first one did, for a browser that does not take trickled ones.
		gt := time.NewTimer(gatherTimeout)
		defer gt.Stop()
		select {
		case <-gathered:
		case <-gt.C:
			p.log.Warn("webrtc: answering the ICE restart before every candidate was gathered")
		case <-ctx.Done():
		}
		p.log.Info("webrtc: ICE restarted by the browser", "restarts", p.restarts.Add(1))
	}
	return p.Answer(), nil
}

// rollback returns the peer to its stable state after a re-offer it could not take, so
// that the call goes on as it was and the browser may offer again.
func (p *Peer) rollback() {
	if p.pc.SignalingState() == webrtc.SignalingStateHaveRemoteOffer {
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			p.log.Debug("webrtc: rollback", "error", err)
		}
	}
}

// Restarts is how many times the browser restarted ICE on the call.
func (p *Peer) Restarts() int64 { return p.restarts.Load() }

// iceUfrag is the first ice-ufrag of d, or "".
func iceUfrag(d *webrtc.SessionDescription) string {
	if d == nil {
		return ""
	}
	_, rest, ok := strings.Cut(d.SDP, "a=ice-ufrag:")
	if !ok {
		return ""
	}
	ufrag, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(ufrag)
}

// Connected is closed once ICE and DTLS are up: media can flow.
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Done implements media.Stream: it is closed once the peer ended (Reason says why).
func (p *Peer) Done() <-chan struct{} { return p.done }

// Reason implements media.Stream: why the peer ended: call.ReasonICEFailed, call.ReasonPeerDisconnected, the reason given
// to Hangup, or "closed"; "" while it is live.
func (p *Peer) Reason() string {
	if r := p.reason.Load(); r != nil {
		return *r
	}
	return ""
}

func (p *Peer) onState(s webrtc.PeerConnectionState) {
	p.log.Debug("webrtc: connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.connOnce.Do(func() { close(p.connected) })
	case webrtc.PeerConnectionStateDisconnected:
		// Nothing from the browser for the ICE disconnected timeout: it moved (Wi-Fi to
		// mobile data) or went (a closed laptop). The call waits out the failed timeout
		// with silence for a browser that restarts ICE over its signalling (Renegotiate),
		// and ends only if it has not come back by then.
		p.log.Info("webrtc: the browser went silent; waiting for it to come back or restart ICE", "within", p.w.cfg.FailedTimeout)
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		select {
		case <-p.connected:
			p.end(reasonPeerDisconnected)
		default:
			p.end(reasonICEFailed)
		}
	}
}

// end stops the stream once, with the first reason.
func (p *Peer) end(reason string) {
	p.endOnce.Do(func() {
		p.reason.Store(&reason)
		close(p.done)
		p.evMu.Lock()
		select {
		case p.events <- media.Event{Kind: media.EventHangup, Reason: reason}:
		default:
		}
		close(p.events)
		p.evClosed = true
		p.evMu.Unlock()
	})
}

// Hangup ends the peer: the stream ends with reason, the events still queued (call.ended)
// are given a moment to reach the client, and the PeerConnection is closed. It returns
// once it is.
func (p *Peer) Hangup(reason string) {
	p.end(reason)
	p.flushEvents(flushWait)
	p.closePC()
}

// flushEvents waits up to d for the queued events to be handed to the data channel and
// for the channel to send them.
func (p *Peer) flushEvents(d time.Duration) {
	p.dcMu.Lock()
	hasDC := p.dc != nil
	p.dcMu.Unlock()
	if !hasDC {
		return
	}
	deadline := time.Now().Add(d)
	for (p.pending.Load() > 0 || p.bufferedAmount() > 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *Peer) bufferedAmount() uint64 {
	p.dcMu.Lock()
	defer p.dcMu.Unlock()
	if p.dc == nil {
		return 0
	}
	return p.dc.BufferedAmount()
}

func (p *Peer) closePC() {
	p.closeOnce.Do(func() {
		close(p.dcDone)
		if err := p.pc.Close(); err != nil {
			p.log.Debug("webrtc: close", "error", err)
		}
		close(p.closed)
	})
}

// SampleRate implements media.Stream: 16 kHz.
func (p *Peer) SampleRate() int { return peerRate }

// Events implements media.Stream: the hang-up (WebRTC carries no keys).
func (p *Peer) Events() <-chan media.Event { return p.events }

// Close implements media.Stream: the stream ends (reason "closed" unless it already
// ended), and the PeerConnection with it. The web call's lifecycle closes the stream
// first and hangs the peer up last (Hangup), so that call.ended still reaches the client.
func (p *Peer) Close() error {
	p.end("closed")
	return nil
}

func (p *Peer) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// onTrack reads the browser's audio into the jitter buffer; a second audio track is read
// and dropped.
func (p *Peer) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	p.rmu.Lock()
	first := !p.track && strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeOpus)
	p.track = p.track || first
	p.rmu.Unlock()
	p.log.Debug("webrtc: track", "codec", tr.Codec().MimeType, "ssrc", tr.SSRC(), "used", first)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if !first || pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.received(&pkt, time.Now())
	}
}

// received keeps a packet for playout and counts it (RFC 3550, as a SIP call's RTP is).
func (p *Peer) received(pkt *rtp.Packet, at time.Time) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	switch p.stats.Update(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, at) {
	case media.SeqNewSource, media.SeqRestart:
		// The browser's sender started over: what the buffer holds is of the old one.
		p.jb.Reset()
	}
	p.jb.Push(pkt.Payload, pkt.SequenceNumber, pkt.Timestamp)
	p.eager.Arrived()
	p.rxPackets++
}

// ReadFrame implements media.Stream: the next 20 ms heard, one frame per 20 ms of the
// peer's clock, from the first frame read on; silence until the browser's audio arrives
// and while it sends none.
func (p *Peer) ReadFrame(f *media.Frame) error {
	if f == nil {
		return fmt.Errorf("%w: nil frame", media.ErrFrame)
	}
	if p.isDone() {
		return media.ErrClosed
	}
	spf := media.SamplesPerFrame(peerRate)
	if cap(f.Samples) < spf {
		f.Samples = make([]int16, spf)
	}
	f.Samples, f.Rate = f.Samples[:spf], peerRate
	slot := p.readClock.ReadSlot(time.Now(), peerReadMaxLag)
	p.rmu.Lock()
	eager := p.eager.On()
	p.rmu.Unlock()
	if eager {
		if err := p.eager.Wait(p.readClock, slot, p.frameHeld, p.done); err != nil {
			return err
		}
	} else if err := p.readClock.Wait(slot, p.done); err != nil {
		return err
	}
	if depth, came := p.produce(f.Samples); came && eager {
		p.eager.Played(p.readClock, time.Now(), depth, peerReadMaxLag)
	}
	return nil
}

// ReadEagerly implements media.EagerReader: from now on ReadFrame returns each frame as
// soon as it is next in order, and waits the jitter buffer's depth only for one that has
// not come, before concealing it.
func (p *Peer) ReadEagerly() {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	p.eager.Start(p.jb)
}

// frameHeld says whether the jitter buffer holds the next frame in order.
func (p *Peer) frameHeld() bool {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return p.jb.Ready()
}

// produce plays one tick of the jitter buffer into out, and says whether it played a frame
// that came (not concealment or silence), and the buffer's depth in frames.
func (p *Peer) produce(out []int16) (depth int, came bool) {
	p.rmu.Lock()
	p.play.Take(p.jb)
	depth = p.jb.Target()
	p.rmu.Unlock()
	p.play.Play(out)
	return depth, p.play.Came()
}

// WriteFrame implements media.Stream: f is encoded and sent in its 20 ms slot of the
// peer's clock; a writer ahead of the clock waits for it. Before ICE connects, frames are
// paced and dropped.
func (p *Peer) WriteFrame(f *media.Frame) error {
	spf := media.SamplesPerFrame(peerRate)
	if f == nil || len(f.Samples) != spf || (f.Rate != 0 && f.Rate != peerRate) {
		return fmt.Errorf("%w: want %d samples at %d Hz", media.ErrFrame, spf, peerRate)
	}
	if p.isDone() {
		return media.ErrClosed
	}
	now := time.Now()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	due, skipped, marker := p.writeClock.WriteSlot(now, peerWriteMaxLag)
	if skipped > 0 {
		p.pkt.Timestamp += uint32(skipped * spf)
		marker = true
	}
	if err := p.writeClock.Wait(due, p.done); err != nil {
		return err
	}
	n, err := p.enc.Encode(p.wbuf, f.Samples)
	if err != nil {
		p.pkt.Timestamp += uint32(spf)
		return err
	}
	p.pkt.Marker = marker
	p.pkt.Payload = p.wbuf[:n]
	werr := p.out.WriteRTP(&p.pkt)
	p.pkt.SequenceNumber++
	p.pkt.Timestamp += uint32(spf)
	if werr != nil {
		if p.isDone() {
			return media.ErrClosed
		}
		return nil // not bound yet, or a transient send error: the frame is dropped
	}
	p.txPackets.Add(1)
	return nil
}

// Quality implements media.Stream: the RFC 3550 counts and jitter of the browser's audio.
func (p *Peer) Quality() media.Quality {
	p.rmu.Lock()
	snap := p.stats.Snapshot()
	received := p.rxPackets
	late := p.jb.Stats().LatePackets()
	p.rmu.Unlock()
	q := media.Quality{PacketsReceived: int64(received), PacketsSent: int64(p.txPackets.Load()), JitterMS: snap.JitterMs,
		PacketsLate: int64(late)}
	if snap.Lost > 0 && snap.Expected > 0 {
		q.PacketsLost = snap.Lost
		q.LossPercent = 100 * float64(snap.Lost) / float64(snap.Expected)
	}
	return q
}

// SendEvent queues an event of the call for the client's events data channel, as
// {"type":…,"data":…}; events wait for the channel to open, and the oldest are not kept
// when the client does not open one.
func (p *Peer) SendEvent(typ string, data any) {
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
	}{typ, data})
	if err != nil {
		p.log.Warn("webrtc: event not encoded", "type", typ, "error", err)
		return
	}
	p.pending.Add(1)
	select {
	case p.dcOut <- b:
	default:
		p.pending.Add(-1)
		p.dropped.Add(1)
	}
}

func (p *Peer) onDataChannel(dc *webrtc.DataChannel) {
	if dc.Label() != EventsChannel {
		p.log.Debug("webrtc: data channel ignored", "label", dc.Label())
		return
	}
	dc.OnOpen(func() {
		p.dcMu.Lock()
		if p.dc == nil {
			p.dc = dc
		}
		p.dcMu.Unlock()
		p.dcOnce.Do(func() { close(p.dcReady) })
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) { p.onClientMessage(m.Data) })
}

// ClientMessage is what a browser sends on the events channel: a key pressed
// ({"type":"dtmf","digit":"1"}), which the call hears as DTMF (browsers' audio carries no
// telephone events).
type ClientMessage struct {
	Type  string `json:"type"`
	Digit string `json:"digit"`
}

// keyPressDuration is how long a key pressed in a browser counts as held.
const keyPressDuration = 100 * time.Millisecond

func (p *Peer) onClientMessage(b []byte) {
	var m ClientMessage
	if err := json.Unmarshal(b, &m); err != nil || m.Type != "dtmf" {
		p.log.Debug("webrtc: client message ignored", "error", err, "type", m.Type)
		return
	}
	if len(m.Digit) != 1 || !isKey(m.Digit[0]) {
		p.log.Debug("webrtc: key ignored", "digit", m.Digit)
		return
	}
	p.evMu.Lock()
	defer p.evMu.Unlock()
	if p.evClosed {
		return
	}
	select {
	case p.events <- media.Event{Kind: media.EventDTMF, Digit: rune(m.Digit[0]), Duration: keyPressDuration}:
	default:
		p.log.Warn("webrtc: key dropped: the call is not reading its events", "digit", m.Digit)
	}
}

// sendEvents hands the queued events to the data channel once it is open.
func (p *Peer) sendEvents() {
	select {
	case <-p.dcReady:
	case <-p.dcDone:
		return
	}
	p.dcMu.Lock()
	dc := p.dc
	p.dcMu.Unlock()
	for {
		select {
		case b := <-p.dcOut:
			if err := dc.SendText(string(b)); err != nil {
				p.log.Debug("webrtc: event not sent", "error", err)
			}
			p.pending.Add(-1)
		case <-p.dcDone:
			return
		}
	}
}

// isKey says whether c is a key a browser may press: 0-9, *, #, A-D.
func isKey(c byte) bool {
	return c >= '0' && c <= '9' || c == '*' || c == '#' || c >= 'A' && c <= 'D'
}
