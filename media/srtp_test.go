package media

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpKeys is a fresh master key and salt for each side of a pair.
func srtpKeys(t testing.TB) (a, b []byte) {
	t.Helper()
	a, b = make([]byte, SRTPKeyLen), make([]byte, SRTPKeyLen)
	if _, err := rand.Read(a); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// withSRTP configures a pair of sessions for SRTP with suite: each encrypts with its own key
// and decrypts with the other's.
func withSRTP(suite SRTPSuite, ka, kb []byte, more func(i int, cfg *RTPConfig)) func(i int, cfg *RTPConfig) {
	return func(i int, cfg *RTPConfig) {
		if i == 0 {
			cfg.SRTP = &SRTPConfig{Suite: suite, Local: ka, Remote: kb}
		} else {
			cfg.SRTP = &SRTPConfig{Suite: suite, Local: kb, Remote: ka}
		}
		if more != nil {
			more(i, cfg)
		}
	}
}

// A pair of sessions carrying SRTP hears the tone each way with both suites, and their
// SRTCP reports come through: each side learns the round trip from the other's.
func TestRTPSessionSRTPTone(t *testing.T) {
	t.Parallel()
	for _, suite := range []SRTPSuite{SRTPAES128SHA1_80, SRTPAES128SHA1_32} {
		t.Run(string(suite), func(t *testing.T) {
			t.Parallel()
			ka, kb := srtpKeys(t)
			a, b := sessionPair(t, specPCMU, Rate8k, true, withSRTP(suite, ka, kb, func(_ int, cfg *RTPConfig) {
				cfg.RTCPInterval = 100 * time.Millisecond
			}))
			listenForTone(t, a, b, 1000, 30)
			listenForTone(t, b, a, 700, 30)
			for _, s := range []*RTPSession{a, b} {
				waitStats(t, s, 10*time.Second, func(st RTPStats) bool { return st.RTT != 0 }, "no round trip from SRTCP reports")
			}
			if da, db := a.Stats().Dropped, b.Stats().Dropped; da != 0 || db != 0 {
				t.Errorf("dropped %d and %d packets of a clean SRTP call", da, db)
			}
		})
	}
}

// What a session carrying SRTP sends is what an independent SRTP context of the suite
// decrypts with the session's key: on the wire it is encrypted (the tone's bytes are not
// there) and carries the suite's tag.
func TestRTPSessionSRTPOnTheWire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		suite SRTPSuite
		prof  srtp.ProtectionProfile
		tag   int
	}{{SRTPAES128SHA1_80, srtp.ProtectionProfileAes128CmHmacSha1_80, 10}, {SRTPAES128SHA1_32, srtp.ProtectionProfileAes128CmHmacSha1_32, 4}} {
		t.Run(string(tc.suite), func(t *testing.T) {
			t.Parallel()
			ours, theirs := srtpKeys(t)
			conn, _ := udpPair(t, false)
			peer, _ := udpPair(t, false)
			s, err := NewRTPSession(RTPConfig{Conn: conn, Remote: addrOf(peer), Codec: specPCMU, Rate: Rate8k, MediaTimeout: -1,
				SRTP: &SRTPConfig{Suite: tc.suite, Local: ours, Remote: theirs}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			dec, err := srtp.CreateContext(ours[:16], ours[16:], tc.prof)
			if err != nil {
				t.Fatal(err)
			}
			tone := NewTone(1000, Rate8k, 8000)
			f := Frame{Rate: Rate8k, Samples: make([]int16, SamplesPerFrame(Rate8k))}
			var plain [160]byte
			buf := make([]byte, 1500)
			for i := range 5 {
				tone.Fill(f.Samples)
				EncodePCMU(plain[:], f.Samples)
				if err := s.WriteFrame(&f); err != nil {
					t.Fatal(err)
				}
				_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := peer.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if n != 12+160+tc.tag {
					t.Fatalf("packet %d is %d bytes, want %d: 12 of header, 160 of PCMU, %d of tag", i, n, 12+160+tc.tag, tc.tag)
				}
				if bytes.Contains(buf[:n], plain[40:80]) {
					t.Fatalf("packet %d carries the tone in the clear", i)
				}
				var h rtp.Header
				out, err := dec.DecryptRTP(nil, buf[:n], &h)
				if err != nil {
					t.Fatalf("packet %d does not decrypt: %v", i, err)
				}
				if !bytes.Equal(out[12:], plain[:]) {
					t.Fatalf("packet %d decrypts to other audio than was written", i)
				}
			}
		})
	}
}

// A session carrying SRTP drops what does not authenticate: plain RTP, SRTP under another
// key. Neither latches the session's media to its sender nor is heard, and the peer that
// holds the key is still heard afterwards.
func TestRTPSessionSRTPForgedDropped(t *testing.T) {
	t.Parallel()
	ka, kb := srtpKeys(t)
	a, b := sessionPair(t, specPCMU, Rate8k, false, withSRTP(SRTPAES128SHA1_80, ka, kb, func(_ int, cfg *RTPConfig) {
		cfg.MediaTimeout = -1
	}))
	stranger, _ := udpPair(t, false)
	wrongKey, _ := srtpKeys(t)
	forger, err := srtp.CreateContext(wrongKey[:16], wrongKey[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	pz := NewPacketizer(0, 8000, 0xbad)
	loud := bytes.Repeat([]byte{0x10}, 160)
	buf := make([]byte, 1500)
	to := addrOf(a.conn)
	for i := range 20 {
		n, err := pz.Packetize(buf, loud)
		if err != nil {
			t.Fatal(err)
		}
		pkt := buf[:n]
		if i%2 == 1 {
			if pkt, err = forger.EncryptRTP(nil, pkt, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := stranger.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, a, 10*time.Second, func(st RTPStats) bool { return st.Dropped >= 20 }, "fewer than 20 forged packets dropped")
	if st := a.Stats(); st.PacketsReceived != 0 {
		t.Fatalf("forged packets taken: %+v", st)
	}
	listenForTone(t, b, a, 1000, 30)
	if got, want := *a.remote.Load(), addrOf(b.conn); got != want {
		t.Errorf("media latched to %v, want the peer's %v", got, want)
	}
}

// A re-offer with a new key: Update takes it, and the peer's media under the new key is
// heard; the session's own key does not change.
func TestRTPSessionSRTPNewRemoteKey(t *testing.T) {
	t.Parallel()
	ka, kb := srtpKeys(t)
	a, b := sessionPair(t, specPCMU, Rate8k, false, withSRTP(SRTPAES128SHA1_32, ka, kb, nil))
	listenForTone(t, b, a, 1000, 20)
	kb2, _ := srtpKeys(t)
	// b now sends under its new key (a new session on b's socket, as a phone that re-keys
	// starts its stream again) and a is told so.
	if err := a.Update(RTPUpdate{Send: true, Receive: true, SRTPRemote: kb2}); err != nil {
		t.Fatal(err)
	}
	b.srtp.txMu.Lock()
	ctx, err := srtp.CreateContext(kb2[:16], kb2[16:], srtp.ProtectionProfileAes128CmHmacSha1_32)
	if err != nil {
		t.Fatal(err)
	}
	b.srtp.txRTP = ctx
	b.srtp.txMu.Unlock()
	listenForTone(t, b, a, 700, 20)
	if err := a.Update(RTPUpdate{Send: true, Receive: true, SRTPRemote: []byte("short")}); !errors.Is(err, ErrSRTP) {
		t.Errorf("a key of 5 bytes: %v, want ErrSRTP", err)
	}
}

// Keys and suites a session cannot carry are refused when it is made.
func TestRTPSessionSRTPConfigRefused(t *testing.T) {
	t.Parallel()
	k, _ := srtpKeys(t)
	for _, cfg := range []SRTPConfig{
		{Suite: "AES_256_CM_HMAC_SHA1_80", Local: k, Remote: k},
		{Suite: SRTPAES128SHA1_80, Local: k[:16], Remote: k},
		{Suite: SRTPAES128SHA1_80, Local: k, Remote: nil},
	} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewRTPSession(RTPConfig{Conn: c, Codec: specPCMU, Rate: Rate8k, SRTP: &cfg})
		_ = c.Close()
		if !errors.Is(err, ErrSRTP) {
			t.Errorf("%s with keys of %d and %d bytes: %v, want ErrSRTP", cfg.Suite, len(cfg.Local), len(cfg.Remote), err)
		}
	}
	if _, b := sessionPair(t, specPCMU, Rate8k, false, nil); b.Update(RTPUpdate{Send: true, Receive: true, SRTPRemote: k}) == nil {
		t.Error("a plain RTP session took an SRTP key")
	}
}

// With SRTP, a frame through the media path still allocates nothing: encryption and
// decryption happen in place in the session's buffers.
func TestRTPSessionSRTPPathZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("pion/srtp takes its CTR keystream buffer from a sync.Pool, which the race detector empties at random")
	}
	for _, suite := range []SRTPSuite{SRTPAES128SHA1_80, SRTPAES128SHA1_32} {
		t.Run(string(suite), func(t *testing.T) {
			p := newSRTPPathPair(t, specPCMU, Rate8k, suite)
			now := time.Now()
			for range 10 {
				now = now.Add(FrameDuration)
				p.frame(t, now)
			}
			if allocs := testing.AllocsPerRun(200, func() {
				now = now.Add(FrameDuration)
				p.frame(t, now)
			}); allocs != 0 {
				t.Fatalf("%.1f allocations per frame, want 0", allocs)
			}
			if st := p.rx.Stats(); st.PacketsReceived < 200 || st.Dropped != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// newSRTPPathPair is newPathPair whose sessions carry SRTP with suite (suite "": plain RTP).
func newSRTPPathPair(t testing.TB, codec CodecSpec, rate int, suite SRTPSuite) *pathPair {
	t.Helper()
	p := newPathPair(t, codec, rate)
	if suite == "" {
		return p
	}
	ka, kb := srtpKeys(t)
	var err error
	if p.tx.srtp, err = newSRTPContexts(SRTPConfig{Suite: suite, Local: ka, Remote: kb}); err != nil {
		t.Fatal(err)
	}
	if p.rx.srtp, err = newSRTPContexts(SRTPConfig{Suite: suite, Local: kb, Remote: ka}); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitStats waits at most d until ok holds of s's statistics, looking again at each drop
// or round trip learnt (StatsChanged).
func waitStats(t *testing.T, s *RTPSession, d time.Duration, ok func(RTPStats) bool, what string) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := s.StatsChanged()
		if ok(s.Stats()) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s within %v: %+v", what, d, s.Stats())
		}
	}
}
