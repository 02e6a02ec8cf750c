package rtc

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-go/switchboard/media"
)

// receivingPeer is the receiving half of a peer, without a connection.
func receivingPeer(t testing.TB) *Peer {
	t.Helper()
	play, err := media.NewOpusPlayout(peerRate, media.DefaultJitterConfig.MaxPayload)
	if err != nil {
		t.Fatal(err)
	}
	return &Peer{jb: media.NewJitterBuffer(media.DefaultJitterConfig), stats: media.NewReceiverStats(media.ClockRateOpus), play: play}
}

// browserPackets encodes n frames of a 440 Hz tone as a browser does (Opus, in-band FEC).
func browserPackets(t testing.TB, n int) [][]byte {
	t.Helper()
	enc, err := media.NewOpusEncoder(media.OpusConfig{Rate: peerRate, FEC: true, PacketLossPercent: 20, MaxBandwidth: 8000})
	if err != nil {
		t.Fatal(err)
	}
	tone := media.NewTone(440, peerRate, 8000)
	pcm := make([]int16, media.SamplesPerFrame(peerRate))
	out := make([][]byte, n)
	for i := range out {
		tone.Fill(pcm)
		buf := make([]byte, media.OpusMaxPacket)
		k, err := enc.Encode(buf, pcm)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = buf[:k]
	}
	return out
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}

// TestPeerPlayout: silence before the browser's audio, a lost packet recovered (from the
// next one's FEC) with the tone's level, and silence again once the browser stops sending
// (DTX, mute), every frame on the clock.
func TestPeerPlayout(t *testing.T) {
	p := receivingPeer(t)
	out := make([]int16, media.SamplesPerFrame(peerRate))
	p.produce(out)
	if rms(out) != 0 {
		t.Fatal("noise before the browser's audio")
	}
	packets := browserPackets(t, 60)
	const lost = 30
	var pkt rtp.Packet
	now := time.Now()
	levels := []float64{}
	for i, payload := range packets {
		if i != lost {
			pkt.SequenceNumber, pkt.Timestamp, pkt.Payload = uint16(1000+i), uint32(i*960), payload
			p.received(&pkt, now.Add(time.Duration(i)*media.FrameDuration))
		}
		if i >= 3 { // the jitter buffer's depth
			p.produce(out)
			levels = append(levels, rms(out))
		}
	}
	// levels[k] is frame k's.
	if got, want := levels[lost], levels[lost-1]; got < want/2 {
		t.Errorf("the lost frame was played at a level of %.0f, its neighbour at %.0f", got, want)
	}
	for k := 5; k < len(levels); k++ {
		if floor := 2000.0; levels[k] < floor && k != lost+1 || levels[k] < floor/2 { // decoding settles after a loss
			t.Errorf("frame %d played at a level of %.0f", k, levels[k])
		}
	}
	if q := p.Quality(); q.PacketsLost != 1 || q.PacketsReceived != 59 {
		t.Errorf("quality %+v", q)
	}
	// The browser stops sending: concealment fades, then silence.
	silent := 0
	for range 100 {
		p.produce(out)
		if rms(out) == 0 {
			silent++
		}
	}
	if silent < 40 {
		t.Errorf("%d silent frames of 100 after the browser stopped", silent)
	}
}

// TestPeerPlayoutAllocs pins a received packet and a frame played at zero allocations.
func TestPeerPlayoutAllocs(t *testing.T) {
	p := receivingPeer(t)
	packets := browserPackets(t, 50)
	out := make([]int16, media.SamplesPerFrame(peerRate))
	var pkt rtp.Packet
	i := 0
	now := time.Now()
	step := func() {
		pkt.SequenceNumber, pkt.Timestamp, pkt.Payload = uint16(i), uint32(i*960), packets[i%len(packets)]
		p.received(&pkt, now)
		p.produce(out)
		i++
	}
	for range 10 {
		step()
	}
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Errorf("%.1f allocations a frame", a)
	}
}

// FuzzParseTrickle: any fragment is parsed or refused with ErrCandidate, never a panic.
func FuzzParseTrickle(f *testing.F) {
	f.Add([]byte("a=ice-ufrag:abcd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n"))
	f.Add([]byte("a=candidate:842163049 1 udp 1677729535 198.51.100.7 49203 typ srflx raddr 0.0.0.0 rport 0 generation 0\r\n"))
	f.Add([]byte("a=end-of-candidates"))
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, frag []byte) {
		tr, err := parseTrickle(frag)
		if err != nil {
			if !errors.Is(err, ErrCandidate) {
				t.Fatalf("error %v is not an ErrCandidate", err)
			}
			return
		}
		if len(tr.cands) == 0 && !tr.end && (tr.ufrag == "" || tr.pwd == "") {
			t.Fatal("accepted a fragment with nothing in it")
		}
	})
}

// FuzzCheckOffer: any offer is accepted or refused with an OfferError, never a panic.
func FuzzCheckOffer(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, offer string) {
		if err := checkOffer(offer); err != nil && !errors.Is(err, ErrOffer) {
			t.Fatalf("error %v is not an ErrOffer", err)
		}
	})
}

// TestICERestartFragments: a WHIP client's ICE restart is a fragment of new credentials (and
// maybe candidates); both credentials are needed. The offer it stands for is the session's
// with the new credentials, no old candidates and a higher version, and the node answers
// with its credentials and candidates.
func TestICERestartFragments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		frag string
		ok   bool
	}{
		{"a=ice-ufrag:new1\r\na=ice-pwd:secretsecretsecretsecret\r\n", true},
		{"a=ice-ufrag:new1\r\na=ice-pwd:secretsecretsecretsecret\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n", true},
		{"a=ice-ufrag:new1\r\n", false},
		{"a=ice-pwd:secretsecretsecretsecret\r\n", false},
	} {
		tr, err := parseTrickle([]byte(tc.frag))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrCandidate)) {
			t.Errorf("%q: %+v, %v; want ok %v", tc.frag, tr, err, tc.ok)
		}
	}
	const sdp = "v=0\r\no=- 42 7 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n" +
		"a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\na=rtpmap:111 opus/48000/2\r\n"
	got := withICECredentials(sdp, "new1", "newpwd")
	want := "v=0\r\no=- 42 8 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:new1\r\na=ice-pwd:newpwd\r\na=rtpmap:111 opus/48000/2\r\n"
	if got != want {
		t.Errorf("withICECredentials:\n%q\nwant\n%q", got, want)
	}
	if frag := string(answerFragment(sdp + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n")); frag !=
		"a=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n" {
		t.Errorf("answerFragment: %q", frag)
	}
}

// TestPeerEagerRead: a peer read eagerly (by an agent's ear) hands the browser's first
// packet over as soon as it is buffered, without the second that playout on the clock waits
// for, and conceals a missing one only at its deadline.
func TestPeerEagerRead(t *testing.T) {
	p := receivingPeer(t)
	p.readClock, p.done = media.NewPacer(), make(chan struct{})
	p.ReadEagerly()
	packets := browserPackets(t, 2)
	type read struct {
		at           time.Time
		played, lost uint64
	}
	reads := make(chan read)
	go func() {
		defer close(reads)
		var f media.Frame
		for p.ReadFrame(&f) == nil {
			at := time.Now()
			p.rmu.Lock()
			s := p.jb.Stats()
			p.rmu.Unlock()
			reads <- read{at: at, played: s.Played, lost: s.Lost}
		}
	}()
	t.Cleanup(func() {
		close(p.done)
		for range reads {
		}
	})
	timeout := time.After(10 * time.Second)
	next := func(what string, ok func(read) bool) read {
		t.Helper()
		for {
			select {
			case r := <-reads:
				if ok(r) {
					return r
				}
			case <-timeout:
				t.Fatal(what)
			}
		}
	}
	var pkt rtp.Packet
	pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, pkt.Payload = 7, 100, 960, packets[0]
	p.received(&pkt, time.Now())
	first := next("the browser's first packet was not read on its own", func(r read) bool { return r.played == 1 })
	concealed := next("the missing second frame was never concealed", func(r read) bool { return r.lost == 1 })
	if d := concealed.at.Sub(first.at); d < 2*media.FrameDuration-5*time.Millisecond {
		t.Errorf("the missing frame was concealed %v after the one before it, want the buffer's depth (40 ms)", d)
	}
}
