package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-go/switchboard/media"
)

const (
	// echoDelay is how long the echo destination holds what it hears before playing it back.
	echoDelay = 500 * time.Millisecond
	// frameBytes is one 20 ms frame of G.711: one byte per sample.
	frameBytes = 160
	// echoRing holds 1.28 s of G.711 samples, more than echoDelay plus a burst.
	echoRing = 64 * frameBytes
	// maxPayload is the largest RTP payload taken: 60 ms of G.711.
	maxPayload = 480
)

// echo is the media of the echo destination: one goroutine reads RTP into a ring of G.711
// samples allocated once, another plays them back echoDelay later in 20 ms frames with our
// own SSRC, sequence and timestamps (so a caller sending 30 ms packets gets correct 20 ms
// ones), to wherever the caller's RTP actually comes from (symmetric RTP). DTMF events are
// reported on events, for the call's owner to act on.
type echo struct {
	log     *slog.Logger
	conn    *net.UDPConn
	codecPT uint8
	eventPT uint8
	eventOK bool
	events  chan<- media.Event

	remote atomic.Pointer[netip.AddrPort]
	// Packets received and sent, for the call's end-of-call log, and packets dropped for
	// coming from elsewhere than the latched source or with a payload type not agreed.
	rx, tx, foreign atomic.Uint64

	mu      sync.Mutex
	ring    [echoRing]byte
	r, n    int       // read position and bytes held
	firstAt time.Time // arrival of the first audio; playback starts echoDelay later
}

func newEcho(log *slog.Logger, conn *net.UDPConn, o offer, events chan<- media.Event) *echo {
	e := &echo{log: log, conn: conn, codecPT: o.Codec.PayloadType(), eventPT: o.EventPT, eventOK: o.EventOK, events: events}
	ap := o.Remote.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	e.remote.Store(&ap)
	return e
}

// readLoop runs until the socket is closed.
func (e *echo) readLoop() {
	var (
		buf     [1500]byte
		pkt     rtp.Packet
		det     = media.NewDTMFDetector(media.Rate8k)
		latched bool
		ssrc    uint32
	)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.log.Warn("rtp read failed", "error", err)
			}
			return
		}
		if err := media.ParseRTP(&pkt, buf[:n]); err != nil {
			continue // a few bad packets are tolerated
		}
		if pkt.PayloadType != e.codecPT && (!e.eventOK || pkt.PayloadType != e.eventPT) {
			e.foreign.Add(1) // a payload type the answer did not agree
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		// Symmetric RTP with latching: the first packet fixes where the caller's media
		// comes from (behind NAT, not what its SDP says); later packets from elsewhere are
		// dropped and counted, unless they carry the latched SSRC (the caller's NAT
		// rebinding), so nobody else can take the call's audio over.
		switch cur := e.remote.Load(); {
		case !latched:
			latched, ssrc = true, pkt.SSRC
			if *cur != from {
				e.log.Info("rtp source latched", "from", from, "sdp", *cur)
				e.remote.Store(&from)
			}
		case *cur != from && pkt.SSRC == ssrc:
			e.log.Info("rtp source moved", "from", from, "was", *cur)
			e.remote.Store(&from)
		case *cur != from:
			e.foreign.Add(1)
			continue
		}
		switch {
		case pkt.PayloadType == e.codecPT:
			e.rx.Add(1)
			e.push(pkt.Payload)
		case e.eventOK && pkt.PayloadType == e.eventPT:
			ev, ok, err := det.Push(pkt.Timestamp, pkt.Payload)
			if err != nil || !ok {
				continue
			}
			select {
			case e.events <- ev:
			default:
				e.log.Warn("dtmf event dropped", "digit", string(ev.Digit))
			}
		}
	}
}

func (e *echo) push(payload []byte) {
	if len(payload) == 0 || len(payload) > maxPayload {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.firstAt.IsZero() {
		e.firstAt = time.Now()
	}
	if drop := e.n + len(payload) - echoRing; drop > 0 { // full: drop the oldest
		e.r = (e.r + drop) % echoRing
		e.n -= drop
	}
	w := (e.r + e.n) % echoRing
	c := copy(e.ring[w:], payload)
	copy(e.ring[:], payload[c:])
	e.n += len(payload)
}

// pop copies the next 20 ms frame into dst once playback is due and a whole frame is held.
func (e *echo) pop(dst *[frameBytes]byte, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.firstAt.IsZero() || now.Sub(e.firstAt) < echoDelay || e.n < frameBytes {
		return false
	}
	c := copy(dst[:], e.ring[e.r:])
	copy(dst[c:], e.ring[:])
	e.r = (e.r + frameBytes) % echoRing
	e.n -= frameBytes
	return true
}

// playing says whether playback has begun.
func (e *echo) playing(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.firstAt.IsZero() && now.Sub(e.firstAt) >= echoDelay
}

// writeLoop runs until ctx is done.
func (e *echo) writeLoop(ctx context.Context) {
	var (
		payload [frameBytes]byte
		out     [12 + frameBytes]byte
		pz      = media.NewPacketizer(e.codecPT, media.ClockRateG711, 0)
	)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if !e.pop(&payload, now) {
				if e.playing(now) {
					pz.Skip(1) // an underrun: keep the timestamp on the clock, mark the resumption
				}
				continue
			}
			m, err := pz.Packetize(out[:], payload[:])
			if err != nil {
				continue
			}
			if _, err := e.conn.WriteToUDPAddrPort(out[:m], *e.remote.Load()); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				e.log.Debug("rtp write failed", "error", err)
				continue
			}
			e.tx.Add(1)
		}
	}
}
