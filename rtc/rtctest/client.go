// Package rtctest is a browser for tests: a real pion peer that offers Opus audio and
// the "events" data channel, sends audio, and keeps what it hears and the events it gets.
// Switchboard's WebRTC tests and benchmarks talk to the node through it over loopback.
package rtctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-go/switchboard/media"
)

// Options shape a client.
type Options struct {
	// NoEvents leaves the events data channel out of the offer.
	NoEvents bool
	// NoDecode keeps only packet counts of what is heard (benchmarks).
	NoDecode bool
	// Keep is how much heard audio is kept, most recent last (default 10 s).
	Keep time.Duration
	// LateEvents offers a data channel named "chat" instead: the events channel is opened
	// by OpenEvents, once connected.
	LateEvents bool
}

// Client is one browser.
type Client struct {
	opts  Options
	pc    *webrtc.PeerConnection
	conn  *movingConn
	mux   *ice.UDPMuxDefault
	track *webrtc.TrackLocalStaticSample
	dc    *webrtc.DataChannel
	// chatOpen is closed once the LateEvents channel is open.
	chatOpen chan struct{}

	connected chan struct{}
	connOnce  sync.Once
	failed    chan struct{}
	failOnce  sync.Once

	mu     sync.Mutex
	heard  []int16
	events []string
	evCh   chan string

	rxPackets atomic.Int64
	rxLost    atomic.Int64
	txPackets atomic.Int64
	// packetMu guards packetCh, closed at the next packet sent or received (Changed).
	packetMu sync.Mutex
	packetCh chan struct{}

	sendMu   sync.Mutex
	sendStop chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool
}

// New makes a client whose ICE runs over one UDP socket on loopback-reachable addresses.
func New(opts Options) (*Client, error) {
	if opts.Keep == 0 {
		opts.Keep = 10 * time.Second
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	udp, err := listenUDP()
	if err != nil {
		return nil, err
	}
	conn := &movingConn{conn: udp}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn,
		Logger: logging.NewDefaultLeveledLoggerForScope("udpmux", logging.LogLevelDisabled, io.Discard)})
	var se webrtc.SettingEngine
	se.LoggerFactory = &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled, Writer: io.Discard}
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICETimeouts(2*time.Second, 3*time.Second, time.Second)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	c := &Client{opts: opts, pc: pc, conn: conn, mux: mux, connected: make(chan struct{}), failed: make(chan struct{}),
		evCh: make(chan string, 1024)}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.failOnce.Do(func() { close(c.failed) })
		}
	})
	c.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"mic", "browser")
	if err != nil {
		c.Close()
		return nil, err
	}
	sender, err := pc.AddTrack(c.track)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		defer c.wg.Done()
		c.listen(tr)
	})
	switch {
	case opts.LateEvents:
		chat, err := pc.CreateDataChannel("chat", nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.chatOpen = make(chan struct{})
		chat.OnOpen(func() { close(c.chatOpen) })
	case !opts.NoEvents:
		if err := c.OpenEvents(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// OpenEvents opens the ordered "events" data channel whose messages Events keeps (with
// LateEvents, once the association carries the first channel).
func (c *Client) OpenEvents() error {
	if c.chatOpen != nil {
		select {
		case <-c.chatOpen:
		case <-time.After(5 * time.Second):
			return errors.New("rtctest: the data channels did not come up")
		}
	}
	ordered := true
	dc, err := c.pc.CreateDataChannel("events", &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return err
	}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		c.mu.Lock()
		c.events = append(c.events, string(m.Data))
		c.mu.Unlock()
		select {
		case c.evCh <- string(m.Data):
		default:
		}
	})
	c.dc = dc
	return nil
}

// Offer makes the client's offer with every candidate in it (no trickle).
func (c *Client) Offer() (string, error) { return c.offer(nil) }

// offer makes an offer with opts and waits for its candidates: they all go in it.
func (c *Client) offer(opts *webrtc.OfferOptions) (string, error) {
	offer, err := c.pc.CreateOffer(opts)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", errors.New("rtctest: candidates not gathered")
	}
	return c.pc.LocalDescription().SDP, nil
}

// OfferTrickle makes an offer without candidates; the candidates follow on the channel, as
// RFC 8840 fragment lines ("a=candidate:…"), then "a=end-of-candidates", then it closes.
func (c *Client) OfferTrickle() (string, <-chan string, error) {
	cands := make(chan string, 32)
	c.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			cands <- "a=end-of-candidates"
			close(cands)
			return
		}
		cands <- "a=" + cand.ToJSON().Candidate
	})
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return "", nil, err
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return "", nil, err
	}
	return offer.SDP, cands, nil
}

// Accept takes the node's answer.
func (c *Client) Accept(answer string) error {
	return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// WaitConnected waits for ICE and DTLS to be up.
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-c.failed:
		return errors.New("rtctest: the connection failed")
	case <-ctx.Done():
		return fmt.Errorf("rtctest: not connected: %w", ctx.Err())
	}
}

// Failed is closed once the connection failed or closed.
func (c *Client) Failed() <-chan struct{} { return c.failed }

// Send sends 20 ms Opus frames of 48 kHz audio that next fills, in real time, until Stop,
// Close or next returns false. Frames are encoded once per call of next.
func (c *Client) Send(next func(pcm []int16) bool) error {
	enc, err := media.NewOpusEncoder(media.OpusConfig{Rate: media.Rate48k, FEC: true, PacketLossPercent: 5})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	c.sendMu.Lock()
	if c.sendStop != nil {
		close(c.sendStop)
	}
	c.sendStop = stop
	c.sendMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		pcm := make([]int16, media.SamplesPerFrame(media.Rate48k))
		buf := make([]byte, media.OpusMaxPacket)
		t := time.NewTicker(media.FrameDuration)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if !next(pcm) {
				return
			}
			n, err := enc.Encode(buf, pcm)
			if err != nil {
				return
			}
			if c.track.WriteSample(pmedia.Sample{Data: buf[:n], Duration: media.FrameDuration}) == nil {
				c.txPackets.Add(1)
				c.packet()
			}
		}
	}()
	return nil
}

// SendPackets sends the same Opus packets over and over, one each 20 ms, until Stop or
// Close: the cheap sender of benchmarks.
func (c *Client) SendPackets(packets [][]byte) {
	stop := make(chan struct{})
	c.sendMu.Lock()
	if c.sendStop != nil {
		close(c.sendStop)
	}
	c.sendStop = stop
	c.sendMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(media.FrameDuration)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if c.track.WriteSample(pmedia.Sample{Data: packets[i%len(packets)], Duration: media.FrameDuration}) == nil {
				c.txPackets.Add(1)
				c.packet()
			}
		}
	}()
}

// Stop stops sending.
func (c *Client) Stop() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.sendStop != nil {
		close(c.sendStop)
		c.sendStop = nil
	}
}

// SendTone sends a tone of freq Hz.
func (c *Client) SendTone(freq float64) error {
	tone := media.NewTone(freq, media.Rate48k, 8000)
	return c.Send(func(pcm []int16) bool { tone.Fill(pcm); return true })
}

// SendPCM sends 48 kHz samples once, then silence.
func (c *Client) SendPCM(samples []int16) error {
	i := 0
	return c.Send(func(pcm []int16) bool {
		n := copy(pcm, samples[min(i, len(samples)):])
		clear(pcm[n:])
		i += len(pcm)
		return true
	})
}

func (c *Client) listen(tr *webrtc.TrackRemote) {
	var dec *media.OpusDecoder
	if !c.opts.NoDecode {
		var err error
		if dec, err = media.NewOpusDecoder(media.Rate48k); err != nil {
			return
		}
	}
	buf := make([]byte, 1500)
	pcm := make([]int16, 2*media.SamplesPerFrame(media.Rate48k))
	var pkt rtp.Packet
	var last uint16
	first := true
	keep := int(c.opts.Keep.Seconds() * media.Rate48k)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		if !first {
			if gap := int64(pkt.SequenceNumber - last); gap > 1 && gap < 1000 {
				c.rxLost.Add(gap - 1)
			}
		}
		first, last = false, pkt.SequenceNumber
		c.rxPackets.Add(1)
		c.packet()
		if dec == nil {
			continue
		}
		k, err := dec.Decode(pcm, pkt.Payload)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.heard = append(c.heard, pcm[:k]...)
		if over := len(c.heard) - keep; over > keep/2 {
			c.heard = append(c.heard[:0], c.heard[over:]...)
		}
		c.mu.Unlock()
	}
}

// Heard is the last d of audio heard, at 48 kHz.
func (c *Client) Heard(d time.Duration) []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.heard), int(d.Seconds()*media.Rate48k))
	return append([]int16(nil), c.heard[len(c.heard)-n:]...)
}

// HeardTotal is how many samples were heard since the start.
func (c *Client) Packets() (received, lost, sent int64) {
	return c.rxPackets.Load(), c.rxLost.Load(), c.txPackets.Load()
}

// Changed returns a channel closed at the next packet sent or received: a test waits on
// it to look at Packets again, rather than every few milliseconds.
func (c *Client) Changed() <-chan struct{} {
	c.packetMu.Lock()
	defer c.packetMu.Unlock()
	if c.packetCh == nil {
		c.packetCh = make(chan struct{})
	}
	return c.packetCh
}

func (c *Client) packet() {
	c.packetMu.Lock()
	defer c.packetMu.Unlock()
	if c.packetCh != nil {
		close(c.packetCh)
		c.packetCh = nil
	}
}

// SendMessage sends text on the events data channel, as a browser sends a key pressed.
func (c *Client) SendMessage(text string) error {
	if c.dc == nil {
		return errors.New("rtctest: no events channel")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.dc.ReadyState() != webrtc.DataChannelStateOpen {
		if time.Now().After(deadline) {
			return errors.New("rtctest: the events channel did not open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c.dc.SendText(text)
}

// Events are the data channel's messages so far.
func (c *Client) Events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

// EventsChan delivers each data channel message as it comes.
func (c *Client) EventsChan() <-chan string { return c.evCh }

// Vanish makes the client disappear without a word: its socket closes, as when a laptop
// lid shuts; the node only notices by ICE's silence.
func (c *Client) Vanish() {
	c.Stop()
	_ = c.conn.Close()
}

// Close closes the connection (the node is told, by DTLS) and waits for its goroutines.
func (c *Client) Close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.Stop()
	_ = c.pc.Close()
	_ = c.mux.Close()
	c.wg.Wait()
}

// Frequency estimates the dominant frequency of samples at rate by zero crossings.
func Frequency(samples []int16, rate int) float64 {
	if len(samples) < 2 {
		return 0
	}
	crossings := 0
	for i := 1; i < len(samples); i++ {
		if (samples[i-1] < 0) != (samples[i] < 0) {
			crossings++
		}
	}
	return float64(crossings) / 2 / (float64(len(samples)) / float64(rate))
}

// RMS is the root mean square level of samples.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, s := range samples {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum / float64(len(samples)))
}
