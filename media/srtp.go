package media

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// A session with RTPConfig.SRTP set carries SRTP and SRTCP (RFC 3711) instead of RTP and
// RTCP: what it sends is encrypted and authenticated with our master key, what it receives
// is authenticated and decrypted with the peer's before anything else looks at it, so that
// a packet that does not authenticate can neither latch the call's media nor reach its
// audio. The keys come from signalling (SDES, RFC 4568); the session knows nothing of how.
//
// Each direction of RTP and RTCP has a pion/srtp context of its own: the RTP reader and the
// RTCP reader each own their decrypting one, the RTCP reader its encrypting one, and the
// senders of RTP (WriteFrame, the silence filler, SendDTMF) share one under a lock held for
// the encryption only, never for the write to the socket. Packets are encrypted and
// decrypted in place in the buffers the session allocated once: a frame costs no allocation.

// SRTPSuite is an SRTP crypto suite by its SDES name (RFC 4568 §6.2).
type SRTPSuite string

// The suites a session carries: AES in counter mode with a 128-bit key, authenticated by
// HMAC-SHA1 with an 80-bit or a 32-bit tag on RTP (SRTCP's tag is 80 bits with both).
const (
	SRTPAES128SHA1_80 SRTPSuite = "AES_CM_128_HMAC_SHA1_80"
	SRTPAES128SHA1_32 SRTPSuite = "AES_CM_128_HMAC_SHA1_32"
)

// SRTPKeyLen is the length of a master key and its salt together (16 and 14 bytes), as an
// SDES inline key carries them.
const SRTPKeyLen = 30

// srtpReplayWindow is how far behind the newest packet one may come and still be taken:
// later than that, or seen before, it is dropped as a replay (RFC 3711 §3.3.2). It is wider
// than the jitter buffer ever holds.
const srtpReplayWindow = 256

// ErrSRTP is an SRTP configuration the session cannot carry: an unknown suite, a key of the
// wrong length.
var ErrSRTP = errors.New("media: unusable SRTP keys")

// SRTPConfig is what signalling agreed for a session's SRTP.
type SRTPConfig struct {
	Suite SRTPSuite
	// Local is our master key and salt (SRTPKeyLen bytes): what we send is encrypted with it.
	Local []byte
	// Remote is the peer's: what we receive is decrypted with it.
	Remote []byte
}

// profile is the pion/srtp protection profile of the suite.
func (s SRTPSuite) profile() (srtp.ProtectionProfile, error) {
	switch s {
	case SRTPAES128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	case SRTPAES128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, nil
	}
	return 0, fmt.Errorf("%w: suite %q", ErrSRTP, string(s))
}

// Supported says whether a session can carry the suite.
func (s SRTPSuite) Supported() bool {
	_, err := s.profile()
	return err == nil
}

// srtpContexts are a session's four SRTP contexts.
type srtpContexts struct {
	suite  SRTPSuite
	txMu   sync.Mutex // held by the senders of RTP around their encryption only
	txRTP  *srtp.Context
	txHdr  rtp.Header // under txMu: the header pion parses, kept so that it is not allocated
	txRTCP *srtp.Context
	rx     atomic.Pointer[srtpReceiver] // replaced by Update when the peer's key changes
	// rtcpOut is the RTCP reader's buffer for an encrypted report.
	rtcpOut []byte
}

// srtpReceiver decrypts what the peer sends: RTP on the RTP reader, RTCP on the RTCP reader.
type srtpReceiver struct {
	rtp, rtcp *srtp.Context
	hdr       rtp.Header  // the RTP reader's
	rtcpHdr   rtcp.Header // the RTCP reader's
}

// newSRTPContexts checks cfg and makes the session's contexts.
func newSRTPContexts(cfg SRTPConfig) (*srtpContexts, error) {
	prof, err := cfg.Suite.profile()
	if err != nil {
		return nil, err
	}
	if len(cfg.Local) != SRTPKeyLen {
		return nil, fmt.Errorf("%w: our key is %d bytes, want %d", ErrSRTP, len(cfg.Local), SRTPKeyLen)
	}
	c := &srtpContexts{suite: cfg.Suite, rtcpOut: make([]byte, maxDatagram)}
	key, salt := cfg.Local[:16], cfg.Local[16:]
	if c.txRTP, err = srtp.CreateContext(key, salt, prof); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	if c.txRTCP, err = srtp.CreateContext(key, salt, prof); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	rx, err := newSRTPReceiver(cfg.Suite, cfg.Remote)
	if err != nil {
		return nil, err
	}
	c.rx.Store(rx)
	return c, nil
}

func newSRTPReceiver(suite SRTPSuite, remote []byte) (*srtpReceiver, error) {
	prof, err := suite.profile()
	if err != nil {
		return nil, err
	}
	if len(remote) != SRTPKeyLen {
		return nil, fmt.Errorf("%w: the peer's key is %d bytes, want %d", ErrSRTP, len(remote), SRTPKeyLen)
	}
	key, salt := remote[:16], remote[16:]
	r := &srtpReceiver{}
	if r.rtp, err = srtp.CreateContext(key, salt, prof, srtp.SRTPReplayProtection(srtpReplayWindow)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	if r.rtcp, err = srtp.CreateContext(key, salt, prof, srtp.SRTCPReplayProtection(srtpReplayWindow)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	return r, nil
}

// protectRTP encrypts the RTP packet b in place; b must have room for the tag past its
// length (the senders' buffers are maxDatagram long).
func (c *srtpContexts) protectRTP(b []byte) ([]byte, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	return c.txRTP.EncryptRTP(b[:0], b, &c.txHdr)
}

// protectRTCP encrypts a compound RTCP packet into the RTCP reader's buffer.
func (c *srtpContexts) protectRTCP(b []byte) ([]byte, error) {
	if len(b) > maxDatagram-srtcpOverhead {
		return nil, fmt.Errorf("%w: RTCP packet of %d bytes", ErrSRTP, len(b))
	}
	n := copy(c.rtcpOut, b)
	return c.txRTCP.EncryptRTCP(c.rtcpOut[:0], c.rtcpOut[:n], nil)
}

// srtcpOverhead is what SRTCP adds to a packet: its index and an 80-bit tag.
const srtcpOverhead = 4 + 10

// unprotectRTP authenticates and decrypts the SRTP packet b in place (on the RTP reader).
func (c *srtpContexts) unprotectRTP(b []byte) ([]byte, error) {
	rx := c.rx.Load()
	return rx.rtp.DecryptRTP(b[:0], b, &rx.hdr)
}

// unprotectRTCP authenticates and decrypts the SRTCP packet b in place (on the RTCP reader).
func (c *srtpContexts) unprotectRTCP(b []byte) ([]byte, error) {
	rx := c.rx.Load()
	return rx.rtcp.DecryptRTCP(b[:0], b, &rx.rtcpHdr)
}
