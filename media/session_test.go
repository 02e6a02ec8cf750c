package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// udpPair opens an RTP socket and, when withRTCP, an RTCP socket on the next port of
// 127.0.0.1.
func udpPair(t testing.TB, withRTCP bool) (rtpConn, rtcpConn *net.UDPConn) {
	t.Helper()
	for range 50 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if !withRTCP {
			return c, nil
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if port < 65535 {
			r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
			if err == nil {
				return c, r
			}
		}
		_ = c.Close()
	}
	t.Fatal("no pair of adjacent UDP ports")
	return nil, nil
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return unmapAddrPort(c.LocalAddr().(*net.UDPAddr).AddrPort())
}

// sessionPair returns two sessions talking to each other on loopback; tweak adjusts each
// configuration before the session starts.
func sessionPair(t testing.TB, codec CodecSpec, rate int, withRTCP bool, tweak func(i int, cfg *RTPConfig)) (a, b *RTPSession) {
	t.Helper()
	ca, ra := udpPair(t, withRTCP)
	cb, rb := udpPair(t, withRTCP)
	cfgA := RTPConfig{Conn: ca, RTCP: ra, Remote: addrOf(cb), Codec: codec, EventPT: 101, Rate: rate}
	cfgB := RTPConfig{Conn: cb, RTCP: rb, Remote: addrOf(ca), Codec: codec, EventPT: 101, Rate: rate}
	if tweak != nil {
		tweak(0, &cfgA)
		tweak(1, &cfgB)
	}
	var err error
	if a, err = NewRTPSession(cfgA); err != nil {
		t.Fatal(err)
	}
	if b, err = NewRTPSession(cfgB); err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a, b
}

var (
	specPCMU = CodecSpec{Name: "PCMU", PayloadType: 0, ClockRate: 8000, Channels: 1}
	specPCMA = CodecSpec{Name: "PCMA", PayloadType: 8, ClockRate: 8000, Channels: 1}
	specOpus = CodecSpec{Name: "opus", PayloadType: 111, ClockRate: 48000, Channels: 2}
)

func TestRTPSessionTone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
	}{
		{specPCMU, Rate8k}, {specPCMU, Rate16k}, {specPCMU, Rate48k},
		{specPCMA, Rate8k}, {specPCMA, Rate16k}, {specPCMA, Rate48k},
		{specOpus, Rate8k}, {specOpus, Rate16k}, {specOpus, Rate48k},
	} {
		t.Run(tc.codec.Name+"/"+itoa(tc.rate), func(t *testing.T) {
			t.Parallel()
			a, b := sessionPair(t, tc.codec, tc.rate, false, nil)
			// Past the jitter buffer's start and the codec's warm-up, the tone comes through
			// clean for 30 frames in a row.
			listenForTone(t, a, b, 1000, 30)
		})
	}
}

// listenForTone sends a tone from a while b reads, until b has heard run frames of it in
// a row, clean. The frames are judged as they come, for up to 10 s of them: on a busy
// machine a stalled sender or reader makes the receiver conceal a gap, as a real jitter
// buffer does, and the tone is heard again after it; a codec or resampler that garbles
// the tone never yields the run.
func listenForTone(t *testing.T, a, b *RTPSession, freq float64, run int) {
	t.Helper()
	const maxFrames = 500 // 10 s
	rate := a.SampleRate()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tone := NewTone(freq, rate, 8000)
		f := Frame{Rate: rate, Samples: make([]int16, SamplesPerFrame(rate))}
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			tone.Fill(f.Samples)
			if err := a.WriteFrame(&f); err != nil {
				done <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	f := Frame{}
	good, inRow, best := 0, 0, 0
	worst := math.Inf(1)
	for i := range maxFrames {
		if err := b.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		if i < 10 { // the jitter buffer's start and the codec's warm-up
			continue
		}
		snr, amp := fitToneSNR(t, f.Samples, freq, rate)
		worst = min(worst, snr)
		if snr < 15 || amp < 2000 {
			inRow = 0
			continue
		}
		good++
		inRow++
		best = max(best, inRow)
		if inRow == run {
			if i >= 10+run {
				t.Logf("%d of %d frames carried %.0f Hz before %d in a row (worst SNR %.1f dB)", good, i-9, freq, run, worst)
			}
			return
		}
	}
	t.Fatalf("%d of %d frames carry %.0f Hz, at most %d in a row (worst SNR %.1f dB)", good, maxFrames-10, freq, best, worst)
}

func itoa(n int) string { return strconv.Itoa(n/1000) + "k" }

// rawPeer is a hand-driven RTP endpoint on a plain UDP socket: it sends PCMU packets of a
// tone with whatever order, duplicates, SSRC or source address a test wants.
type rawPeer struct {
	conn    *net.UDPConn
	pz      *Packetizer
	tone    *Tone
	pcm     []int16
	payload []byte
}

func newRawPeer(t testing.TB) *rawPeer {
	t.Helper()
	c, _ := udpPair(t, false)
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{
		conn:    c,
		pz:      NewPacketizer(PayloadTypePCMU, ClockRateG711, 0),
		tone:    NewTone(1000, Rate8k, 8000),
		pcm:     make([]int16, 160),
		payload: make([]byte, 160),
	}
}

// packet returns the next packet of the tone.
func (r *rawPeer) packet() []byte {
	r.tone.Fill(r.pcm)
	EncodePCMU(r.payload, r.pcm)
	b := make([]byte, 12+160)
	n, _ := r.pz.Packetize(b, r.payload)
	return b[:n]
}

func (r *rawPeer) send(t testing.TB, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := r.conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// counter counts the datagrams arriving on c in the background.
func counter(t testing.TB, c *net.UDPConn) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	return &n
}

// grows waits until n grows by more than a few.
func grows(t testing.TB, n *atomic.Int64, what string) {
	t.Helper()
	from := n.Load()
	eventually(t, 5*time.Second, what, func() bool { return n.Load() > from+3 })
}

// still asserts that n does not move for a while. One packet is forgiven: a writer that
// read the old address just before the change may be descheduled before it sends.
func still(t testing.TB, n *atomic.Int64, what string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // packets in flight
	from := n.Load()
	time.Sleep(400 * time.Millisecond)
	if got := n.Load(); got > from+1 {
		t.Fatalf("%s: %d packets arrived", what, got-from)
	}
}

// pace sleeps until the i-th 20 ms tick after start: a sender on a schedule does not drift
// when the machine is loaded, as one sleeping 20 ms a packet would.
func pace(start time.Time, i int) {
	time.Sleep(time.Until(start.Add(time.Duration(i) * FrameDuration)))
}

// toneWriter writes frames of a tone to s until stopped.
func toneWriter(t testing.TB, s *RTPSession, freq float64) (stop func()) {
	t.Helper()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tone := NewTone(freq, s.SampleRate(), 8000)
		f := Frame{Rate: s.SampleRate(), Samples: make([]int16, SamplesPerFrame(s.SampleRate()))}
		for {
			select {
			case <-quit:
				return
			default:
			}
			tone.Fill(f.Samples)
			if err := s.WriteFrame(&f); err != nil {
				return
			}
		}
	}()
	var once bool
	stop = func() {
		if !once {
			once = true
			close(quit)
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// reader reads frames of s in the background; heard returns what was heard so far.
type reader struct {
	mu    sync.Mutex
	heard []int16
	quit  chan struct{}
	done  chan struct{}
}

func startReader(t testing.TB, s *RTPSession) *reader {
	t.Helper()
	r := &reader{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var f Frame
		for {
			select {
			case <-r.quit:
				return
			default:
			}
			if err := s.ReadFrame(&f); err != nil {
				return
			}
			r.mu.Lock()
			r.heard = append(r.heard, f.Samples...)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *reader) stop() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.done
}

// playedOut waits until s has received packets packets and r has read a few frames more,
// so the jitter buffer has played what it held.
func (r *reader) playedOut(t testing.TB, s *RTPSession, packets uint64) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d packets received", packets), func() bool { return s.Stats().PacketsReceived >= packets })
	mark := len(r.samples()) + 5*SamplesPerFrame(s.SampleRate())
	eventually(t, 5*time.Second, "the jitter buffer played out", func() bool { return len(r.samples()) >= mark })
}

func (r *reader) samples() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.heard...)
}

// eventually polls cond until it holds or the generous deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextEvent waits for an event of s.
func nextEvent(t testing.TB, s *RTPSession, d time.Duration) (Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		return ev, ok
	case <-time.After(d):
		t.Fatal("no event")
		return Event{}, false
	}
}

// checkTone asserts that the last frames of heard carry a tone of freq: a third of them in
// a row at least, clean (15 dB SNR at the tone's frequency, at a fair level). A starved
// machine delays senders and readers, and the frames concealed around such a stall may fail;
// a stage that is wrong (a codec, a rate, a resampler) fails every frame.
func checkTone(t testing.TB, heard []int16, rate int, freq float64, frames int) {
	t.Helper()
	per := SamplesPerFrame(rate)
	if len(heard) < frames*per {
		t.Fatalf("heard %d samples, want at least %d", len(heard), frames*per)
	}
	tail := heard[len(heard)-frames*per:]
	good, run, best := 0, 0, 0
	worst := math.Inf(1)
	for i := range frames {
		snr, amp := fitToneSNR(t, tail[i*per:(i+1)*per], freq, rate)
		if snr >= 15 && amp >= 2000 {
			good++
			run++
			best = max(best, run)
		} else {
			run = 0
		}
		worst = min(worst, snr)
	}
	if best < (frames+2)/3 {
		t.Fatalf("%d of %d frames carry %.0f Hz, at most %d in a row (worst SNR %.1f dB); heard %.1f Hz",
			good, frames, freq, best, worst, zeroCrossFreq(tail, rate))
	}
	if good < frames {
		t.Logf("%d of %d frames carry %.0f Hz (worst SNR %.1f dB)", good, frames, freq, worst)
	}
}

func TestRTPSessionReorderAndDuplicates(t *testing.T) {
	t.Parallel()
	peer := newRawPeer(t)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer.conn), Codec: specPCMU, Rate: Rate16k, MediaTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rd := startReader(t, s)
	to := addrOf(c)
	// Pairs arrive swapped, every fifth packet twice.
	start := time.Now()
	for i := 0; i < 60; i += 2 {
		p1, p2 := peer.packet(), peer.packet()
		peer.send(t, to, p2)
		peer.send(t, to, p1)
		if i%5 == 0 {
			peer.send(t, to, p1)
		}
		pace(start, i+2)
	}
	rd.playedOut(t, s, 66)
	rd.stop()
	st := s.Stats()
	if st.PacketsReceived != 60+6 {
		t.Errorf("received %d packets, want 66", st.PacketsReceived)
	}
	if st.Duplicates+st.Late == 0 {
		t.Errorf("no duplicate noticed: %+v", st)
	}
	if st.PacketsLost > 0 {
		t.Errorf("%d packets lost, want none", st.PacketsLost)
	}
	heard := rd.samples()
	// Skip the trailing silence after the last packet played.
	end := len(heard) - 3*SamplesPerFrame(Rate16k)
	for end > 0 && rms(heard[max(0, end-320):end]) < 1000 {
		end -= 320
	}
	checkTone(t, heard[:end], Rate16k, 1000, 20)
}

func TestRTPSessionLatching(t *testing.T) {
	t.Parallel()
	sdp := newRawPeer(t)   // where the SDP says the peer is
	peer := newRawPeer(t)  // where its media really comes from
	other := newRawPeer(t) // a stranger, later the peer's new NAT binding
	third := newRawPeer(t) // the peer after a re-INVITE
	atSDP, atPeer, atOther, atThird := counter(t, sdp.conn), counter(t, peer.conn), counter(t, other.conn), counter(t, third.conn)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(sdp.conn), Codec: specPCMU, Rate: Rate8k, MediaTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := addrOf(c)
	toneWriter(t, s, 1000)
	grows(t, atSDP, "media to the SDP address before latching")

	peer.send(t, to, peer.packet())
	eventually(t, 5*time.Second, "the first packet", func() bool { return s.Stats().PacketsReceived == 1 })
	grows(t, atPeer, "media to the latched source")
	still(t, atSDP, "media to the SDP address after latching")

	// A stranger is dropped, whatever it sends.
	before := s.Stats()
	other.send(t, to, other.packet())
	eventually(t, 5*time.Second, "the stranger's packet dropped", func() bool { return s.Stats().Dropped == before.Dropped+1 })
	if got := s.Stats().PacketsReceived; got != before.PacketsReceived {
		t.Fatalf("a stranger's packet was taken (%d received)", got)
	}
	still(t, atOther, "media to a stranger")

	// The peer's NAT rebinds: the latched SSRC from a new address moves the latch.
	other.pz = peer.pz
	other.send(t, to, other.packet())
	eventually(t, 5*time.Second, "the rebound packet", func() bool { return s.Stats().PacketsReceived == before.PacketsReceived+1 })
	grows(t, atOther, "media to the peer's new binding")
	still(t, atPeer, "media to the peer's old binding")

	// A re-INVITE with a new address starts latching over.
	if err := s.Update(RTPUpdate{Remote: addrOf(sdp.conn), Send: true, Receive: true}); err != nil {
		t.Fatal(err)
	}
	grows(t, atSDP, "media to the new address")
	third.send(t, to, third.packet())
	grows(t, atThird, "media to the new latch")
	still(t, atSDP, "media to the address of the re-INVITE after latching")

	// Payload types the SDP did not agree and garbage count as dropped.
	before = s.Stats()
	bad := third.packet()
	bad[1] = 96
	third.send(t, to, bad)
	third.send(t, to, []byte("not RTP"))
	eventually(t, 5*time.Second, "two drops", func() bool { return s.Stats().Dropped == before.Dropped+2 })
}

func TestRTPSessionSSRCChange(t *testing.T) {
	t.Parallel()
	peer := newRawPeer(t)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer.conn), Codec: specPCMU, Rate: Rate8k, MediaTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rd := startReader(t, s)
	to := addrOf(c)
	send := func(n int) {
		start := time.Now()
		for i := range n {
			peer.send(t, to, peer.packet())
			pace(start, i+1)
		}
	}
	send(40)
	// A transfer: a new SSRC with unrelated sequence numbers and timestamps, same place.
	peer.pz = NewPacketizer(PayloadTypePCMU, ClockRateG711, 0)
	peer.pz.pkt.SequenceNumber = peer.pz.pkt.SequenceNumber + 20000
	mark := len(rd.samples())
	send(40)
	rd.playedOut(t, s, 80)
	rd.stop()
	heard := rd.samples()[mark:]
	// Within a few frames of the change the new stream plays.
	checkTone(t, heard[:30*160], Rate8k, 1000, 20)
	if st := s.Stats(); st.PacketsLost > 2 || st.PacketsReceived != 80 {
		t.Fatalf("after an SSRC change: %+v", st)
	}
}

func TestRTPSessionDTMF(t *testing.T) {
	t.Parallel()
	a, b := sessionPair(t, specPCMU, Rate8k, false, nil)
	toneWriter(t, a, 1000)
	startReader(t, b)
	for _, key := range []struct {
		digit rune
		d     time.Duration
	}{{'5', 120 * time.Millisecond}, {'#', 60 * time.Millisecond}, {'A', 200 * time.Millisecond}} {
		if err := a.SendDTMF(key.digit, key.d); err != nil {
			t.Fatal(err)
		}
		ev, ok := nextEvent(t, b, 5*time.Second)
		if !ok || ev.Kind != EventDTMF || ev.Digit != key.digit {
			t.Fatalf("got %+v, want DTMF %c", ev, key.digit)
		}
		if ev.Duration < key.d-FrameDuration || ev.Duration > key.d+FrameDuration {
			t.Fatalf("digit %c lasted %v, want %v", key.digit, ev.Duration, key.d)
		}
	}
	if err := a.SendDTMF('x', 100*time.Millisecond); !errors.Is(err, ErrDTMF) {
		t.Fatalf("SendDTMF('x') = %v, want ErrDTMF", err)
	}

	// Signalling DTMF comes out the same way.
	b.Deliver(Event{Kind: EventDTMF, Digit: '*', Duration: 100 * time.Millisecond})
	if ev, ok := nextEvent(t, b, 5*time.Second); !ok || ev.Digit != '*' {
		t.Fatalf("delivered event came out as %+v", ev)
	}
}

func TestRTPSessionNoTelephoneEvent(t *testing.T) {
	t.Parallel()
	a, _ := sessionPair(t, specPCMA, Rate8k, false, func(_ int, cfg *RTPConfig) { cfg.EventPT = 0 })
	if err := a.SendDTMF('1', 100*time.Millisecond); !errors.Is(err, ErrNoTelephoneEvent) {
		t.Fatalf("SendDTMF = %v, want ErrNoTelephoneEvent", err)
	}
	ev := uint8(101)
	if err := a.Update(RTPUpdate{EventPT: &ev, Send: true, Receive: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendDTMF('1', 60*time.Millisecond); err != nil {
		t.Fatalf("SendDTMF after the update: %v", err)
	}
}

func TestRTPSessionHangupAndClose(t *testing.T) {
	t.Parallel()
	a, b := sessionPair(t, specPCMU, Rate8k, true, nil)
	if a.Reason() != "" {
		t.Fatalf("a live session has reason %q", a.Reason())
	}
	// A ReadFrame waiting for its tick returns when the stream ends.
	var f Frame
	if err := a.ReadFrame(&f); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			err = a.ReadFrame(&f)
		}
		readErr <- err
	}()
	a.Hangup("bye")
	if err := <-readErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame after Hangup: %v", err)
	}
	ev, ok := nextEvent(t, a, 5*time.Second)
	if !ok || ev.Kind != EventHangup || ev.Reason != "bye" {
		t.Fatalf("got %+v, want the hang-up", ev)
	}
	if _, ok := nextEvent(t, a, 5*time.Second); ok {
		t.Fatal("Events not closed after the hang-up")
	}
	w := Frame{Rate: Rate8k, Samples: make([]int16, 160)}
	if err := a.WriteFrame(&w); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteFrame after Hangup: %v", err)
	}
	if err := a.SendDTMF('1', 100*time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendDTMF after Hangup: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed")
	}
	if err := a.Close(); err != nil || a.Reason() != "bye" {
		t.Fatalf("Close after Hangup: %v, reason %q", err, a.Reason())
	}
	a.Hangup("again")
	a.Deliver(Event{Kind: EventDTMF, Digit: '1'})
	if a.Reason() != "bye" {
		t.Fatalf("reason became %q", a.Reason())
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Reason() != "closed" {
		t.Fatalf("reason %q, want closed", b.Reason())
	}
	if ev, ok := nextEvent(t, b, 5*time.Second); !ok || ev.Kind != EventHangup || ev.Reason != "closed" {
		t.Fatalf("got %+v, want the hang-up", ev)
	}
}

func TestRTPSessionMediaTimeout(t *testing.T) {
	t.Parallel()
	silent := newRawPeer(t)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(silent.conn), Codec: specPCMU, Rate: Rate8k, MediaTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, ok := nextEvent(t, s, 10*time.Second)
	if !ok || ev.Kind != EventHangup || ev.Reason != "media-timeout" || s.Reason() != "media-timeout" {
		t.Fatalf("got %+v (reason %q), want a media timeout", ev, s.Reason())
	}
}

func TestRTPSessionRTCPKeepsAlive(t *testing.T) {
	t.Parallel()
	// No RTP either way, only RTCP: the sessions stay up.
	a, b := sessionPair(t, specPCMU, Rate8k, true, func(_ int, cfg *RTPConfig) {
		cfg.MediaTimeout = 1500 * time.Millisecond
		cfg.RTCPInterval = 100 * time.Millisecond
	})
	time.Sleep(3 * time.Second)
	if a.Reason() != "" || b.Reason() != "" {
		t.Fatalf("ended with only RTCP flowing: %q, %q", a.Reason(), b.Reason())
	}
}

func TestRTPSessionHold(t *testing.T) {
	t.Parallel()
	a, b := sessionPair(t, specPCMU, Rate8k, false, nil)
	toneWriter(t, a, 1000)
	eventually(t, 5*time.Second, "media", func() bool { return b.Stats().PacketsReceived > 5 })

	// The peer holds us: we send nothing, WriteFrame keeps pacing.
	if err := a.Update(RTPUpdate{Send: false, Receive: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	sent, got := a.Stats().PacketsSent, b.Stats().PacketsReceived
	time.Sleep(500 * time.Millisecond)
	// One packet is forgiven: a WriteFrame past its check may be descheduled before it sends.
	if a.Stats().PacketsSent > sent+1 || b.Stats().PacketsReceived > got+1 {
		t.Fatalf("media flowed on hold: sent %d→%d, received %d→%d", sent, a.Stats().PacketsSent, got, b.Stats().PacketsReceived)
	}
	if err := a.Update(RTPUpdate{Send: true, Receive: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "media after the hold", func() bool { return b.Stats().PacketsReceived > got+5 })

	// While we do not receive, the media timeout waits.
	silent := newRawPeer(t)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(silent.conn), Codec: specPCMU, Rate: Rate8k, MediaTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(RTPUpdate{Send: true, Receive: false}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if s.Reason() != "" {
		t.Fatalf("ended on hold: %q", s.Reason())
	}
	if err := s.Update(RTPUpdate{Send: true, Receive: true}); err != nil {
		t.Fatal(err)
	}
	if ev, ok := nextEvent(t, s, 10*time.Second); !ok || ev.Reason != "media-timeout" {
		t.Fatalf("got %+v, want a media timeout after the hold", ev)
	}
}

// rtcpRelay forwards RTCP between two sessions with a delay each way, so the round trip
// is long enough to measure.
func rtcpRelay(t testing.TB, delay time.Duration, toA, toB netip.AddrPort) (facingA, facingB *net.UDPConn) {
	t.Helper()
	facingA, _ = udpPair(t, false)
	facingB, _ = udpPair(t, false)
	var wg sync.WaitGroup
	forward := func(from, via *net.UDPConn, to netip.AddrPort) {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := from.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			time.Sleep(delay) // in order: one goroutine per direction
			_, _ = via.WriteToUDPAddrPort(b, to)
		}
	}
	wg.Add(2)
	go forward(facingA, facingB, toB)
	go forward(facingB, facingA, toA)
	t.Cleanup(func() {
		_ = facingA.Close()
		_ = facingB.Close()
		wg.Wait()
	})
	return facingA, facingB
}

func TestRTPSessionRTCP(t *testing.T) {
	t.Parallel()
	ca, ra := udpPair(t, true)
	cb, rb := udpPair(t, true)
	relayA, relayB := rtcpRelay(t, 10*time.Millisecond, addrOf(ra), addrOf(rb))
	mk := func(conn, rtcpConn *net.UDPConn, remote *net.UDPConn, remoteRTCP netip.AddrPort) *RTPSession {
		s, err := NewRTPSession(RTPConfig{Conn: conn, RTCP: rtcpConn, Remote: addrOf(remote), RemoteRTCP: remoteRTCP,
			Codec: specPCMU, EventPT: 101, Rate: Rate8k, RTCPInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a := mk(ca, ra, cb, addrOf(relayA))
	b := mk(cb, rb, ca, addrOf(relayB))
	toneWriter(t, a, 1000)
	toneWriter(t, b, 700)
	startReader(t, a)
	startReader(t, b)
	eventually(t, 10*time.Second, "an RTT", func() bool { return a.Stats().RTT > 0 && b.Stats().RTT > 0 })
	for _, s := range []*RTPSession{a, b} {
		st := s.Stats()
		if st.RTT < 15*time.Millisecond || st.RTT > 2*time.Second {
			t.Errorf("RTT %v through a relay of 2×10 ms", st.RTT)
		}
		if st.RemoteLossFraction != 0 || st.PacketsReceived == 0 || st.PacketsSent == 0 {
			t.Errorf("stats %+v", st)
		}
	}

	// Once latched, RTCP from anywhere else is dropped.
	stranger := newRawPeer(t)
	rr, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 7}})
	if err != nil {
		t.Fatal(err)
	}
	before := a.Stats().Dropped
	stranger.send(t, addrOf(ra), rr)
	eventually(t, 5*time.Second, "the stranger's RTCP dropped", func() bool { return a.Stats().Dropped == before+1 })

	// A BYE is noted.
	bye, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1},
		&rtcp.Goodbye{Sources: []uint32{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayA.WriteToUDPAddrPort(bye, addrOf(ra)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the BYE", func() bool { return a.Stats().ByeReceived })
}

func TestRTPSessionRecording(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "call.wav")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	a, b := sessionPair(t, specPCMA, Rate16k, false, func(i int, cfg *RTPConfig) {
		if i == 1 {
			cfg.Record = file
		}
	})
	toneWriter(t, a, 1000)
	// b is an echo-like agent: it reads and answers with 500 Hz.
	tone := NewTone(500, Rate16k, 8000)
	var in Frame
	out := Frame{Rate: Rate16k, Samples: make([]int16, 320)}
	for range 75 {
		if err := b.ReadFrame(&in); err != nil {
			t.Fatal(err)
		}
		tone.Fill(out.Samples)
		if err := b.WriteFrame(&out); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	w, err := ReadWAV(file)
	if err != nil {
		t.Fatal(err)
	}
	// 75 ticks read, and the frame sent after the last of them, which Close writes rather
	// than lose.
	if w.Channels != 2 || w.Rate != Rate16k || len(w.Samples) != 2*76*320 {
		t.Fatalf("recording: %d channels at %d Hz, %d samples", w.Channels, w.Rate, len(w.Samples))
	}
	checkTone(t, w.Channel(0), Rate16k, 1000, 25)
	checkTone(t, w.Channel(1), Rate16k, 500, 25)
}

func TestRTPSessionCodecChange(t *testing.T) {
	t.Parallel()
	a, b := sessionPair(t, specPCMU, Rate16k, false, nil)
	toneWriter(t, a, 1000)
	rd := startReader(t, b)
	eventually(t, 5*time.Second, "G.711", func() bool { return b.Stats().PacketsReceived > 20 })
	// A session refresh repeating the codec keeps the codec's state.
	txOf := func(s *RTPSession) *txCodec {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return s.tx
	}
	before := txOf(a)
	pcmu := specPCMU
	pcmu.Name = "pcmu"
	if err := a.Update(RTPUpdate{Codec: &pcmu, Send: true, Receive: true}); err != nil {
		t.Fatal(err)
	}
	if txOf(a) != before {
		t.Fatal("the same codec was set up again")
	}
	opus := specOpus
	for _, s := range []*RTPSession{b, a} {
		if err := s.Update(RTPUpdate{Codec: &opus, Send: true, Receive: true}); err != nil {
			t.Fatal(err)
		}
	}
	mark := len(rd.samples())
	eventually(t, 20*time.Second, "a second and a half of Opus", func() bool { return len(rd.samples())-mark >= 75*320 })
	rd.stop()
	checkTone(t, rd.samples()[mark:], Rate16k, 1000, 20)
	bad := CodecSpec{Name: "G729", PayloadType: 18}
	if err := a.Update(RTPUpdate{Codec: &bad, Send: true, Receive: true}); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("Update to G.729: %v", err)
	}
}

func TestNewRTPSessionRejects(t *testing.T) {
	t.Parallel()
	c, _ := udpPair(t, false)
	defer c.Close()
	for _, tc := range []struct {
		name string
		cfg  RTPConfig
		want error
	}{
		{"no socket", RTPConfig{Codec: specPCMU, Rate: Rate8k}, nil},
		{"unknown codec", RTPConfig{Conn: c, Codec: CodecSpec{Name: "G722", PayloadType: 9}, Rate: Rate8k}, ErrUnknownCodec},
		{"wrong clock", RTPConfig{Conn: c, Codec: CodecSpec{Name: "PCMU", ClockRate: 16000}, Rate: Rate8k}, ErrUnknownCodec},
		{"rate", RTPConfig{Conn: c, Codec: specPCMU, Rate: 44100}, ErrUnsupportedRate},
	} {
		s, err := NewRTPSession(tc.cfg)
		if err == nil {
			_ = s.Close()
			t.Fatalf("%s: no error", tc.name)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestTone(t *testing.T) {
	tone := NewTone(1000, Rate16k, 10000)
	out := make([]int16, 0, 50*320)
	frame := make([]int16, 320)
	allocs := testing.AllocsPerRun(50, func() {
		tone.Fill(frame)
		out = append(out, frame...)
	})
	if allocs != 0 {
		t.Fatalf("Fill: %.1f allocations, want 0", allocs)
	}
	// Phase continuous across frames: one tone fits the whole run.
	snr, amp := fitToneSNR(t, out[320:], 1000, Rate16k)
	if snr < 60 || math.Abs(amp-10000) > 10 {
		t.Fatalf("SNR %.1f dB, amplitude %.1f", snr, amp)
	}
}

// pathPair is a sender's and a receiver's session whose media path is driven by hand, without
// the pacing of ReadFrame and WriteFrame: encode and packetize on one side, intake and play
// out on the other.
type pathPair struct {
	tx, rx *RTPSession
	from   netip.AddrPort
	in     Frame
	out    []int16
	tone   *Tone
}

func newPathPair(t testing.TB, codec CodecSpec, rate int) *pathPair {
	t.Helper()
	mk := func() *RTPSession {
		c, _ := udpPair(t, false)
		s, err := NewRTPSession(RTPConfig{Conn: c, Codec: codec, EventPT: 101, Rate: rate, MediaTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	p := &pathPair{tx: mk(), rx: mk(), from: netip.MustParseAddrPort("192.0.2.1:4000"), tone: NewTone(1000, rate, 8000)}
	p.in = Frame{Rate: rate, Samples: make([]int16, SamplesPerFrame(rate))}
	p.out = make([]int16, SamplesPerFrame(rate))
	return p
}

// frame carries one frame of the tone from tx to rx, and plays one out of rx.
func (p *pathPair) frame(t testing.TB, now time.Time) {
	p.tone.Fill(p.in.Samples)
	s := p.tx
	n, err := s.tx.encode(p.in.Samples)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.pz.Packetize(s.wpkt, s.tx.payload[:n])
	if err != nil {
		t.Fatal(err)
	}
	pkt := s.wpkt[:m]
	if s.srtp != nil { // what send and the RTP reader do with SRTP (newSRTPPathPair)
		if pkt, err = s.srtp.protectRTP(pkt); err != nil {
			t.Fatal(err)
		}
		if pkt, err = p.rx.srtp.unprotectRTP(pkt); err != nil {
			t.Fatal(err)
		}
	}
	p.rx.intake(pkt, p.from, now)
	p.rx.produce(p.out)
}

// dtmf carries a telephone-event packet from tx to rx.
func (p *pathPair) dtmf(now time.Time, ts uint32, end bool, dur uint16) {
	s := p.tx
	pl := s.dtmfBuf[:TelephoneEventSize] // the sender's spare buffer: no allocation
	_, _ = TelephoneEvent{Event: 5, End: end, Volume: 10, Duration: dur}.MarshalTo(pl)
	m, _ := s.pz.PacketizeEvent(s.wpkt, 101, false, ts, pl)
	p.rx.intake(s.wpkt[:m], p.from, now)
}

func TestRTPSessionPathZeroAllocs(t *testing.T) {
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
	}{{specPCMU, Rate8k}, {specPCMA, Rate16k}, {specOpus, Rate48k}, {specOpus, Rate16k}} {
		t.Run(tc.codec.Name+"/"+itoa(tc.rate), func(t *testing.T) {
			p := newPathPair(t, tc.codec, tc.rate)
			now := time.Now()
			for range 10 {
				now = now.Add(FrameDuration)
				p.frame(t, now)
			}
			ts := uint32(0)
			allocs := testing.AllocsPerRun(200, func() {
				now = now.Add(FrameDuration)
				p.frame(t, now)
				ts += 1000
				p.dtmf(now, ts, false, 400)
				p.dtmf(now, ts, true, 800)
				p.rx.produce(p.out)
			})
			if allocs != 0 {
				t.Fatalf("%.1f allocations per frame, want 0", allocs)
			}
			if st := p.rx.Stats(); st.PacketsReceived < 600 || st.Dropped != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestRTPSessionZeroAllocs pins the whole path of a real pair on loopback, both ways:
// WriteFrame's encoding and send, the reader goroutine's intake, ReadFrame's play-out.
// AllocsPerRun counts the allocations of every goroutine, so this test is not parallel.
func TestRTPSessionZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("paced in real time")
	}
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
		eager bool
	}{{specPCMU, Rate16k, false}, {specOpus, Rate48k, false}, {specPCMU, Rate8k, true}} {
		name := tc.codec.Name + "/" + itoa(tc.rate)
		if tc.eager {
			name += "/eager"
		}
		t.Run(name, func(t *testing.T) {
			a, b := sessionPair(t, tc.codec, tc.rate, false, nil)
			if tc.eager {
				a.ReadEagerly()
				b.ReadEagerly()
			}
			ta, tb := NewTone(1000, tc.rate, 8000), NewTone(700, tc.rate, 8000)
			n := SamplesPerFrame(tc.rate)
			wa, wb := Frame{Rate: tc.rate, Samples: make([]int16, n)}, Frame{Rate: tc.rate, Samples: make([]int16, n)}
			var ra, rb Frame
			step := func() {
				ta.Fill(wa.Samples)
				tb.Fill(wb.Samples)
				for _, err := range []error{a.WriteFrame(&wa), b.WriteFrame(&wb), a.ReadFrame(&ra), b.ReadFrame(&rb)} {
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			// Warm up until both have latched (a latch allocates, once).
			for i := 0; i < 10 || a.Stats().PacketsReceived == 0 || b.Stats().PacketsReceived == 0; i++ {
				if i > 500 {
					t.Fatal("no media after 10 s")
				}
				step()
			}
			if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
				t.Fatalf("%.2f allocations per frame, want 0", allocs)
			}
			if a.Stats().PacketsReceived < 40 || b.Stats().PacketsReceived < 40 {
				t.Fatalf("media did not flow: %+v %+v", a.Stats(), b.Stats())
			}
		})
	}
}

// FuzzRTPSessionIntake feeds datagrams from three addresses into a live session and plays
// out a frame after each: whatever comes, the session neither panics nor loses count.
func FuzzRTPSessionIntake(f *testing.F) {
	p := NewPacketizer(0, Rate8k, 0x1234)
	buf := make([]byte, 1500)
	n, _ := p.Packetize(buf, bytes.Repeat([]byte{0x55}, 160))
	pkt := append([]byte{0}, buf[:n]...)
	n, _ = p.PacketizeEvent(buf, 101, true, 160, []byte{5, 10, 0, 160})
	ev := append([]byte{0}, buf[:n]...)
	f.Add(append(append([]byte(nil), pkt...), ev...))
	f.Add([]byte{1, 0x80})
	seeds := []CodecSpec{specPCMU, specOpus}
	sessions := make([]*RTPSession, len(seeds))
	for i, codec := range seeds {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			f.Fatal(err)
		}
		s, err := NewRTPSession(RTPConfig{Conn: c, Codec: codec, EventPT: 101, Rate: Rate16k, MediaTimeout: -1})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = s.Close() })
		sessions[i] = s
	}
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:4000"),
		netip.MustParseAddrPort("192.0.2.1:4002"),
		netip.MustParseAddrPort("[2001:db8::1]:4000"),
	}
	out := make([]int16, SamplesPerFrame(Rate16k))
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		// data is a run of records: a byte choosing the session and the source, a length,
		// and that many bytes of datagram.
		for len(data) >= 2 {
			sel, l := data[0], int(data[1])
			data = data[2:]
			l = min(l, len(data))
			d := data[:l]
			data = data[l:]
			s := sessions[int(sel)%len(sessions)]
			before := s.Stats()
			now = now.Add(FrameDuration)
			s.intake(d, addrs[int(sel>>1)%len(addrs)], now)
			after := s.Stats()
			if after.PacketsReceived+after.Dropped != before.PacketsReceived+before.Dropped+1 {
				t.Fatalf("a datagram counted %d times", after.PacketsReceived+after.Dropped-before.PacketsReceived-before.Dropped)
			}
			s.produce(out)
		}
	})
}

// wirePacket is what a raw receiver saw of one RTP packet.
type wirePacket struct {
	pt      uint8
	marker  bool
	seq     uint16
	ts      uint32
	payload []byte
}

// capture collects the RTP packets arriving on c in the background.
func capture(t testing.TB, c *net.UDPConn) func() []wirePacket {
	t.Helper()
	var mu sync.Mutex
	var got []wirePacket
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		var p rtp.Packet
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if ParseRTP(&p, buf[:n]) != nil {
				continue
			}
			mu.Lock()
			got = append(got, wirePacket{p.PayloadType, p.Marker, p.SequenceNumber, p.Timestamp, append([]byte(nil), p.Payload...)})
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	return func() []wirePacket {
		mu.Lock()
		defer mu.Unlock()
		return append([]wirePacket(nil), got...)
	}
}

func TestRTPSessionWireFormat(t *testing.T) {
	t.Parallel()
	peer := newRawPeer(t)
	packets := capture(t, peer.conn)
	c, _ := udpPair(t, false)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer.conn), Codec: specPCMU, EventPT: 101, Rate: Rate8k, MediaTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tone := NewTone(1000, Rate8k, 8000)
	f := Frame{Rate: Rate8k, Samples: make([]int16, 160)}
	write := func(n int) {
		for range n {
			tone.Fill(f.Samples)
			if err := s.WriteFrame(&f); err != nil {
				t.Error(err)
				return
			}
		}
	}

	// A writer faster than real time is held to it.
	start := time.Now()
	write(25)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("25 frames written in %v: not paced", d)
	}
	// A writer that stops: nothing is sent, and the clock goes on.
	time.Sleep(300 * time.Millisecond)
	write(5)
	// A key press while audio is written.
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		write(40)
	}()
	eventually(t, 5*time.Second, "audio after the pause", func() bool { return len(packets()) >= 25+5+3 })
	if err := s.SendDTMF('9', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-writing
	eventually(t, 5*time.Second, "every packet", func() bool { return len(packets()) >= 25+5+30 })
	ps := packets()

	for i := 1; i < len(ps); i++ {
		if ps[i].seq != ps[i-1].seq+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, ps[i].seq, ps[i-1].seq)
		}
	}
	if !ps[0].marker {
		t.Error("the first packet has no marker")
	}
	// The resumption after the pause.
	gap := ps[25].ts - ps[24].ts
	// The upper bound is loose: a busy machine may stretch the pause.
	if !ps[25].marker || gap%160 != 0 || gap < 160*10 || gap > 160*250 {
		t.Errorf("after a 300 ms pause: marker %v, timestamp step %d", ps[25].marker, gap)
	}
	// The telephone event: one timestamp, a marker first, three ends, no audio inside.
	first, last := -1, -1
	for i, p := range ps {
		if p.pt == 101 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		t.Fatal("no telephone-event packet")
	}
	var ev TelephoneEvent
	ends := 0
	for i := first; i <= last; i++ {
		p := ps[i]
		if p.pt != 101 {
			t.Fatalf("audio packet %d amid the event", i)
		}
		if p.ts != ps[first].ts || p.marker != (i == first) {
			t.Fatalf("event packet %d: timestamp %d (first %d), marker %v", i, p.ts, ps[first].ts, p.marker)
		}
		if err := ev.Unmarshal(p.payload); err != nil || ev.Event != 9 {
			t.Fatalf("event packet %d: %+v, %v", i, ev, err)
		}
		if ev.End {
			ends++
		}
	}
	if ends != 3 || ev.Duration != 800 {
		t.Errorf("%d end packets, duration %d; want 3 and 800", ends, ev.Duration)
	}
	if first == 0 || last+1 >= len(ps) {
		t.Fatal("the event is not amid audio")
	}
	before, after := ps[first-1], ps[last+1]
	if after.pt != 0 || !after.marker || int32(after.ts-ps[first].ts) < 800 || int32(ps[first].ts-before.ts) < 160 {
		t.Errorf("audio around the event: before ts %d, event ts %d, after ts %d marker %v",
			before.ts, ps[first].ts, after.ts, after.marker)
	}
}

func TestRTPSessionConcealment(t *testing.T) {
	t.Parallel()
	// A packet lost in the network: G.711 repeats the last frame fading, Opus recovers it
	// from the in-band FEC of the next packet, already in the jitter buffer.
	for _, codec := range []CodecSpec{specPCMU, specOpus} {
		t.Run(codec.Name, func(t *testing.T) {
			t.Parallel()
			p := newPathPair(t, codec, Rate16k)
			now := time.Now()
			var out []int16
			for i := range 40 {
				now = now.Add(FrameDuration)
				p.tone.Fill(p.in.Samples)
				s := p.tx
				n, err := s.tx.encode(p.in.Samples)
				if err != nil {
					t.Fatal(err)
				}
				m, _ := s.pz.Packetize(s.wpkt, s.tx.payload[:n])
				if i != 25 {
					p.rx.intake(s.wpkt[:m], p.from, now)
				}
				p.rx.produce(p.out)
				out = append(out, p.out...)
			}
			js := p.rx.jb.Stats()
			if js.Lost != 1 {
				t.Fatalf("jitter buffer: %+v, want one frame concealed", js)
			}
			// Every frame from the codec's warm-up on, the concealed one included, is tone.
			for i := 10; i < 38; i++ {
				frame := out[i*320 : (i+1)*320]
				if snr, amp := fitToneSNR(t, frame, 1000, Rate16k); snr < 10 || amp < 3000 {
					t.Errorf("frame %d: SNR %.1f dB, amplitude %.0f", i, snr, amp)
				}
			}
		})
	}
}

func TestRTPSessionG711Ptime(t *testing.T) {
	t.Parallel()
	// A gateway sending 30 ms packets (and losing one): the session re-cuts them into
	// 20 ms frames and the tone plays through.
	for _, ptime := range []int{10, 30, 60} {
		t.Run(strconv.Itoa(ptime)+"ms", func(t *testing.T) {
			t.Parallel()
			peer := newRawPeer(t)
			c, _ := udpPair(t, false)
			s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer.conn), Codec: specPCMA, Rate: Rate16k, MediaTimeout: -1, JitterDepth: time.Duration(ptime+20) * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rd := startReader(t, s)
			to := addrOf(c)
			samples := ptime * 8
			pz := NewPacketizer(PayloadTypePCMA, ClockRateG711, 0)
			tone := NewTone(1000, Rate8k, 8000)
			pcm, payload := make([]int16, samples), make([]byte, samples)
			buf := make([]byte, 12+samples)
			packets := 1800 / ptime
			start := time.Now()
			for i := range packets {
				tone.Fill(pcm)
				EncodePCMA(payload, pcm)
				n, _ := pz.Packetize(buf, payload)
				pz.pkt.Timestamp += uint32(samples - 160) // Packetize counts 20 ms
				if i != packets/2 {
					peer.send(t, to, buf[:n])
				}
				time.Sleep(time.Until(start.Add(time.Duration((i+1)*ptime) * time.Millisecond)))
			}
			rd.playedOut(t, s, uint64(packets-1))
			rd.stop()
			st := s.Stats()
			if st.PacketsLost != 1 || st.PacketsReceived != uint64(packets-1) {
				t.Errorf("stats %+v, want one lost of %d", st, packets)
			}
			heard := rd.samples()
			end := len(heard) - 2*320
			for end > 0 && rms(heard[max(0, end-320):end]) < 1000 {
				end -= 320
			}
			checkTone(t, heard[:end], Rate16k, 1000, 40)
		})
	}
}

// An eager reader (the agent's ear) takes each frame as soon as it is next in order: one
// packet is heard without the second that playout on the clock waits for, a missing one is
// concealed no sooner than the buffer's depth (40 ms) after the frame before it, and a
// burst is read as it comes.
func TestRTPSessionEagerRead(t *testing.T) {
	t.Parallel()
	c, _ := udpPair(t, false)
	peer := newRawPeer(t)
	s, err := NewRTPSession(RTPConfig{Conn: c, Remote: addrOf(peer.conn), Codec: specPCMU, Rate: Rate8k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.ReadEagerly()
	type read struct {
		at     time.Time
		loud   bool
		played uint64
		lost   uint64
	}
	reads := make(chan read, 1024)
	go func() {
		defer close(reads)
		var f Frame
		for s.ReadFrame(&f) == nil {
			var peak int16
			for _, v := range f.Samples {
				peak = max(peak, v, -v)
			}
			s.mu.Lock()
			js := s.jb.Stats()
			s.mu.Unlock()
			reads <- read{at: time.Now(), loud: peak > 1000, played: js.Played, lost: js.Lost}
		}
	}()
	to := addrOf(c)
	next := func(what string, ok func(read) bool) read {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case r, open := <-reads:
				if !open {
					t.Fatalf("%s: the session ended", what)
				}
				if ok(r) {
					return r
				}
			case <-timeout:
				t.Fatalf("%s: not read within 10 s", what)
			}
		}
	}
	peer.send(t, to, peer.packet())
	first := next("the first packet, alone", func(r read) bool { return r.loud && r.played == 1 })
	concealed := next("the second, missing, concealed", func(r read) bool { return r.lost == 1 })
	if d := concealed.at.Sub(first.at); d < 2*FrameDuration-5*time.Millisecond {
		t.Errorf("the missing frame was concealed %v after the one before it, want the buffer's depth (40 ms)", d)
	}
	for range 10 {
		peer.send(t, to, peer.packet())
	}
	next("a burst of ten", func(r read) bool { return r.played >= 6 })
}
