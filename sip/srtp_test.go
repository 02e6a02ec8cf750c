package sip

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// The SRTP tests run real SIP over TLS on loopback: a sipgo UA calls the server (or takes
// its outbound calls), and its media is a real UDP socket whose packets pion/srtp encrypts
// and decrypts with the keys of the SDP, as a phone's SRTP stack would.

// tlsServer is a server under test listening on UDP, TCP and TLS.
type tlsServer struct {
	*Server
	udp, tls string // "127.0.0.1:port"
	pool     *x509.CertPool
}

// startTLSCallServer starts a server with a self-signed certificate for 127.0.0.1; cfg.TLS
// and, unless set, cfg.TLSClient (trusting pool) are filled in.
func startTLSCallServer(t *testing.T, cfg Config, cert tls.Certificate, pool *x509.CertPool) *tlsServer {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClient == nil && cfg.TLSCAFile == "" {
		cfg.TLSClient = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l, tl) }()
	<-s.ready
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &tlsServer{Server: s, udp: pc.LocalAddr().String(), tls: tl.Addr().String(), pool: pool}
}

// newTLSCaller is a test caller whose UA trusts pool for SIP over TLS.
func newTLSCaller(t *testing.T, pool *x509.CertPool) *testCaller {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-test"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeUA(ua) })
	return &testCaller{testUA: &testUA{ua: ua, client: client, dialog: sipgo.DialogUA{
		Client:     client,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "test", Host: "127.0.0.1"}},
	}}, dialogs: map[string]*sipgo.DialogClientSession{}, byes: make(chan string, 8), reasons: map[string]string{}}
}

// tlsURI is a sips: URI of user at addr over TLS.
func tlsURI(t *testing.T, user, addr string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri("sips:"+user+"@"+addr+";transport=tls", &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// srtpPeer is the media of a phone that speaks SRTP: a UDP socket, its own key, and the
// far end's key once the SDP has told it.
type srtpPeer struct {
	conn   *net.UDPConn
	suite  media.SRTPSuite
	key    []byte // ours: what we send is encrypted with it
	pz     *media.Packetizer
	remote []byte // the far end's
}

func newSRTPPeer(t *testing.T, suite media.SRTPSuite) *srtpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	key := make([]byte, media.SRTPKeyLen)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return &srtpPeer{conn: conn, suite: suite, key: key, pz: media.NewPacketizer(0, 8000, 0x5eed)}
}

func (p *srtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func profileOf(t *testing.T, suite media.SRTPSuite) srtp.ProtectionProfile {
	t.Helper()
	switch suite {
	case media.SRTPAES128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80
	case media.SRTPAES128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	t.Fatalf("suite %s", suite)
	return 0
}

// cryptoLine is an a=crypto value with the peer's key.
func (p *srtpPeer) cryptoLine(tag int, suite media.SRTPSuite) string {
	return fmt.Sprintf("%d %s inline:%s", tag, suite, base64.StdEncoding.EncodeToString(p.key))
}

// savpOffer is an RTP/SAVP description of PCMU at the peer with the given a=crypto values.
func (p *srtpPeer) savpOffer(crypto ...string) []byte {
	s := fmt.Sprintf("v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n", p.port())
	for _, c := range crypto {
		s += "a=crypto:" + c + "\r\n"
	}
	return []byte(s + "a=ptime:20\r\na=sendrecv\r\n")
}

// srtpDescription is what a test reads of the far end's SRTP description.
type srtpDescription struct {
	proto  string
	crypto []string
	rtp    *net.UDPAddr
}

func readSRTPDescription(t *testing.T, body []byte) srtpDescription {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("SDP: %v\n%s", err, body)
	}
	md := sd.MediaDescriptions[0]
	d := srtpDescription{proto: strings.Join(md.MediaName.Protos, "/")}
	for _, a := range md.Attributes {
		if a.Key == "crypto" {
			d.crypto = append(d.crypto, a.Value)
		}
	}
	conn := sd.ConnectionInformation
	if md.ConnectionInformation != nil {
		conn = md.ConnectionInformation
	}
	d.rtp = &net.UDPAddr{IP: net.ParseIP(conn.Address.Address), Port: md.MediaName.Port.Value}
	return d
}

// takeKey takes the far end's key from its a=crypto line, which must carry tag and suite.
func (p *srtpPeer) takeKey(t *testing.T, line string, tag int, suite media.SRTPSuite) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != fmt.Sprint(tag) || f[1] != string(suite) || !strings.HasPrefix(f[2], "inline:") {
		t.Fatalf("a=crypto:%s, want tag %d, suite %s and an inline key", line, tag, suite)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[2], "inline:"))
	if err != nil || len(key) != media.SRTPKeyLen {
		t.Fatalf("a=crypto:%s: key of %d bytes (%v), want %d", line, len(key), err, media.SRTPKeyLen)
	}
	if bytes.Equal(key, p.key) {
		t.Fatal("the server answered with the caller's own key")
	}
	p.remote = key
}

// sendTone sends frames of a 1 kHz PCMU tone to to as SRTP, paced at 20 ms.
func (p *srtpPeer) sendTone(t *testing.T, to *net.UDPAddr, frames int) {
	t.Helper()
	enc, err := srtp.CreateContext(p.key[:16], p.key[16:], profileOf(t, p.suite))
	if err != nil {
		t.Fatal(err)
	}
	var (
		pcm     [160]int16
		payload [160]byte
		out     [200]byte
	)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for i := range frames {
		for j := range pcm {
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i*160+j)/8000))
		}
		media.EncodePCMU(payload[:], pcm[:])
		n, err := p.pz.Packetize(out[:], payload[:])
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := enc.EncryptRTP(nil, out[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
}

// receive decrypts what comes for d: the PCMU packets' audio, and how many packets did not
// decrypt (or came in the clear).
func (p *srtpPeer) receive(t *testing.T, d time.Duration) (pcm []int16, undecryptable int) {
	t.Helper()
	dec, err := srtp.CreateContext(p.remote[:16], p.remote[16:], profileOf(t, p.suite))
	if err != nil {
		t.Fatal(err)
	}
	var out [480]int16
	buf := make([]byte, 1500)
	deadline := time.Now().Add(d)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, err := p.conn.Read(buf)
		if err != nil {
			return pcm, undecryptable
		}
		var h rtp.Header
		plain, err := dec.DecryptRTP(nil, buf[:n], &h)
		if err != nil {
			undecryptable++
			continue
		}
		if h.PayloadType != 0 {
			continue
		}
		k := media.DecodePCMU(out[:], plain[h.MarshalSize():])
		pcm = append(pcm, out[:k]...)
	}
}

// srtpTrunk stores the default tenant's inbound trunk for 127.0.0.1 with the SRTP mode.
func srtpTrunk(t *testing.T, st *store.Store, tenant, mode string) *store.Trunk {
	t.Helper()
	return newInboundTrunk(t, st, tenant, func(tr *store.Trunk) {
		tr.Inbound.AllowedCIDRs = []string{"127.0.0.1/32"}
		tr.SRTP = mode
	})
}

// A phone offers RTP/SAVP over TLS to the echo: the answer is RTP/SAVP with one a=crypto
// line, the first suite offered that we carry, under the offer's tag, with a key of our
// own; the tone sent encrypted comes back encrypted, and decrypted it is the tone. The
// record says the media was SRTP. With a trunk that requires SRTP, and without a trunk.
func TestSRTPEchoOverTLS(t *testing.T) {
	verifyNoLeaks(t)
	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		suite media.SRTPSuite
		trunk string // the trunk's srtp mode; "": no trunk
	}{
		{media.SRTPAES128SHA1_80, ""},
		{media.SRTPAES128SHA1_32, store.TrunkSRTPRequired},
	} {
		t.Run(string(tc.suite), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			if tc.trunk != "" {
				srtpTrunk(t, st, tenant, tc.trunk)
			}
			events := newEventLog()
			s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)
			caller := newTLSCaller(t, pool)
			peer := newSRTPPeer(t, tc.suite)
			// A suite we do not carry comes first: the answer takes the first we do.
			offer := peer.savpOffer("1 AES_256_CM_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(make([]byte, 46)),
				peer.cryptoLine(7, tc.suite))
			dlg := caller.call(ctx, t, tlsURI(t, "echo", s.tls), offer, sipgo.AnswerOptions{})
			ans := readSRTPDescription(t, dlg.InviteResponse.Body())
			if ans.proto != "RTP/SAVP" || len(ans.crypto) != 1 {
				t.Fatalf("answer %s with %d a=crypto lines, want RTP/SAVP with one\n%s", ans.proto, len(ans.crypto), dlg.InviteResponse.Body())
			}
			peer.takeKey(t, ans.crypto[0], 7, tc.suite)

			got := make(chan []int16, 1)
			bad := make(chan int, 1)
			go func() {
				pcm, n := peer.receive(t, 4*time.Second)
				got <- pcm
				bad <- n
			}()
			peer.sendTone(t, ans.rtp, 100)
			pcm := <-got
			if n := <-bad; n > 0 {
				t.Errorf("%d packets from the echo did not decrypt", n)
			}
			checkTone(t, pcm, 0.9)

			rec := answeredCall(ctx, t, events, dlg.InviteRequest.CallID().Value())
			bye(ctx, t, dlg)
			ended := endedCall(ctx, t, events, st, tenant, rec.ID)
			if ended.MediaSecurity != "srtp" || ended.Metadata["srtp_suite"] != string(tc.suite) {
				t.Errorf("record media_security %q, srtp_suite %v; want srtp, %s", ended.MediaSecurity, ended.Metadata["srtp_suite"], tc.suite)
			}
			if ended.Status != store.CallCompleted || ended.Quality.PacketsReceived < 90 {
				t.Errorf("record %s with %d packets received", ended.Status, ended.Quality.PacketsReceived)
			}
		})
	}
}

// What cannot carry SRTP is refused 488 with a Warning that says why: an RTP/SAVP offer
// over UDP (its keys in the clear), one over TLS without a suite we carry, and a plain
// RTP/AVP offer on a trunk that requires SRTP, over TLS or not. Nothing is recorded
// answered.
func TestSRTPRefused(t *testing.T) {
	verifyNoLeaks(t)
	cert, pool := selfSigned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)
	caller := newTLSCaller(t, pool)
	peer := newSRTPPeer(t, media.SRTPAES128SHA1_80)
	savp := peer.savpOffer(peer.cryptoLine(1, media.SRTPAES128SHA1_80))
	avp := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)

	for _, tc := range []struct {
		name    string
		trunk   string // the trunk's srtp mode before the call; "": none
		target  sip.Uri
		offer   []byte
		warning string
	}{
		{"savp over udp", "", uri(t, "echo", s.udp), savp, "SRTP keys travel only over SIP TLS"},
		{"savp without a suite we carry", "", tlsURI(t, "echo", s.tls),
			peer.savpOffer("1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(make([]byte, 46))), "without a crypto suite we carry"},
		{"savp with an MKI", "", tlsURI(t, "echo", s.tls),
			peer.savpOffer("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(peer.key) + "|2^20|1:4"), "without a crypto suite we carry"},
		{"avp on a trunk requiring srtp, over tls", store.TrunkSRTPRequired, tlsURI(t, "echo", s.tls), avp, "SRTP is required on this trunk"},
		{"avp on a trunk requiring srtp, over udp", store.TrunkSRTPRequired, uri(t, "echo", s.udp), avp, "SRTP is required on this trunk"},
		{"savp over udp on a trunk requiring srtp", store.TrunkSRTPRequired, uri(t, "echo", s.udp), savp, "SRTP keys travel only over SIP TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.trunk != "" {
				tr := srtpTrunk(t, st, tenant, tc.trunk)
				t.Cleanup(func() { _ = store.Delete[store.Trunk](context.Background(), st, tenant, tr.ID) })
			}
			res := caller.status(ctx, t, tc.target, tc.offer, sipgo.AnswerOptions{})
			if res.StatusCode != sip.StatusNotAcceptableHere {
				t.Fatalf("answered %d %s, want 488", res.StatusCode, res.Reason)
			}
			if w := headerValue(res, "Warning"); !strings.HasPrefix(w, "399 ") || !strings.Contains(w, tc.warning) {
				t.Errorf("Warning %q, want 399 with %q", w, tc.warning)
			}
		})
	}
	if n := len(events.onCall(call.EventAnswered, func(published) bool { return true })); n != 0 {
		t.Errorf("%d calls answered", n)
	}
}

// newTLSFarEnd is the callee of outbound calls over SIP TLS: a sipgo UA on a TLS listener.
func newTLSFarEnd(t *testing.T, cert tls.Certificate, pool *x509.CertPool, onInvite func(f *farEnd, req *sip.Request, tx sip.ServerTransaction)) *farEnd {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("far-end"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sips", User: "far", Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, UriParams: sip.NewParams()}}
	contact.Address.UriParams.Add("transport", "tls")
	return serveFarEnd(t, ua, l.Addr().String(), contact, func(srv *sipgo.Server) error { return srv.ServeTLS(l) }, l.Close, onInvite)
}

// answerSRTPWith has the far end answer an RTP/SAVP offer with the offer's first line under its
// own key (or refuse it 488 when refuse says so, taking the plain offer that follows).
func answerSRTPWith(t *testing.T, peer *srtpPeer, refuseSAVP bool, answered chan<- *sipgo.DialogServerSession, offers chan<- []byte) func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
	return func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
		offers <- req.Body()
		o := readSRTPDescription(t, req.Body())
		if o.proto == "RTP/SAVP" && refuseSAVP {
			res := sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
			res.AppendHeader(sip.NewHeader("Warning", `399 far "no SRTP here"`))
			_ = tx.Respond(res)
			return
		}
		d, err := f.dialogs.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
			return
		}
		body := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)
		if o.proto == "RTP/SAVP" {
			f := strings.Fields(o.crypto[0])
			body = peer.savpOffer(peer.cryptoLine(atoi(f[0]), media.SRTPSuite(f[1])))
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[2], "inline:"))
			peer.suite, peer.remote = media.SRTPSuite(f[1]), key
		}
		if err := d.WriteResponse(sip.NewSDPResponseFromRequest(d.InviteRequest, body)); err != nil {
			return
		}
		answered <- d
	}
}

func atoi(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}

// Outbound calls through a trunk with SRTP leave over TLS and offer RTP/SAVP with both
// suites, a key each: under "required", the far end's answer picks one, and the tone the
// call plays reaches it encrypted under our key; under "offer", a far end that refuses
// RTP/SAVP with 488 is offered RTP/AVP and the call goes on in the clear. A trunk with SRTP
// asked to reach a callee over UDP places no call.
func TestSRTPOutbound(t *testing.T) {
	verifyNoLeaks(t)
	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		mode     string
		refuse   bool
		security string
	}{
		{store.TrunkSRTPRequired, false, "srtp"},
		{store.TrunkSRTPOffer, true, "none"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			events := newEventLog()
			s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)
			peer := newSRTPPeer(t, media.SRTPAES128SHA1_80)
			answered := make(chan *sipgo.DialogServerSession, 1)
			offers := make(chan []byte, 4)
			far := newTLSFarEnd(t, cert, pool, answerSRTPWith(t, peer, tc.refuse, answered, offers))

			tr := store.NewTrunk()
			tr.Name, tr.Direction, tr.SRTP = "carrier", "outbound", tc.mode
			tr.Outbound.Address, tr.Outbound.Transport = far.addr, "tls"
			if err := store.Create(ctx, st, tenant, tr); err != nil {
				t.Fatal(err)
			}
			rec := store.NewOutboundCall()
			rec.TenantID, rec.To, rec.Destination, rec.TrunkID = tenant, "far", "tone", &tr.ID
			if err := s.Dial(ctx, rec); err != nil {
				t.Fatal(err)
			}
			var first []byte
			select {
			case first = <-offers:
			case <-ctx.Done():
				t.Fatal("the far end got no INVITE")
			}
			o := readSRTPDescription(t, first)
			if o.proto != "RTP/SAVP" || len(o.crypto) != 2 ||
				!strings.Contains(o.crypto[0], string(media.SRTPAES128SHA1_80)) || !strings.Contains(o.crypto[1], string(media.SRTPAES128SHA1_32)) {
				t.Fatalf("offer %s with a=crypto %q, want RTP/SAVP with both suites", o.proto, o.crypto)
			}
			if o.crypto[0][strings.Index(o.crypto[0], "inline:"):] == o.crypto[1][strings.Index(o.crypto[1], "inline:"):] {
				t.Error("both offered lines carry one key")
			}
			if tc.refuse {
				second := readSRTPDescription(t, <-offers)
				if second.proto != "RTP/AVP" || len(second.crypto) != 0 {
					t.Fatalf("after the 488, offer %s with %d a=crypto lines, want RTP/AVP without", second.proto, len(second.crypto))
				}
			}
			var d *sipgo.DialogServerSession
			select {
			case d = <-answered:
			case <-ctx.Done():
				t.Fatal("the far end's answer was not acknowledged")
			}
			defer d.Close()
			if tc.refuse {
				checkTone(t, decodeG711((&rtpPeer{conn: peer.conn}).first(100, 10*time.Second, 0)), 0.9)
			} else {
				pcm, bad := peer.receive(t, 2500*time.Millisecond)
				if bad > 0 {
					t.Errorf("%d packets did not decrypt", bad)
				}
				checkTone(t, pcm, 0.9)
			}
			if err := d.Bye(ctx); err != nil {
				t.Fatalf("far end BYE: %v", err)
			}
			got := endedCall(ctx, t, events, st, tenant, rec.ID)
			if got.Status != store.CallCompleted || got.MediaSecurity != tc.security {
				t.Errorf("record %s, media_security %q; want completed, %s", got.Status, got.MediaSecurity, tc.security)
			}

			// The trunk cannot reach a callee over UDP with SRTP: the keys would be in the clear.
			udp := store.NewOutboundCall()
			udp.TenantID, udp.To, udp.Destination, udp.TrunkID = tenant, "sip:far@"+s.udp, "tone", &tr.ID
			if err := s.Dial(ctx, udp); !errors.Is(err, ErrSRTPNeedsTLS) {
				t.Errorf("dial over UDP: %v, want ErrSRTPNeedsTLS", err)
			}
		})
	}
}

// The a=crypto lines we take, and those we leave for want of understanding them whole.
func TestParseCrypto(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, media.SRTPKeyLen))
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key, true},
		{"2 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31", true},
		{"3 AES_CM_128_HMAC_SHA1_80 inline:" + strings.TrimRight(key, "="), true},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:4", false}, // an MKI
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:4", false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + " UNENCRYPTED_SRTP", false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + key + ";inline:" + key, false},
		{"1 AES_256_CM_HMAC_SHA1_80 inline:" + key, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=", false},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + key, false},
		{"1 AES_CM_128_HMAC_SHA1_80 key:" + key, false},
		{"", false},
	} {
		if _, ok := parseCrypto(tc.line); ok != tc.ok {
			t.Errorf("parseCrypto(%q) = %v, want %v", tc.line, ok, tc.ok)
		}
	}
}

// A call carrying SRTP goes on through re-INVITEs: a hold that repeats the offer is answered
// RTP/SAVP with our same key under the offer's new tag; a new key from the phone is taken,
// and what the phone then sends under it is echoed; a re-offer that drops SRTP is refused
// 488 and the call goes on encrypted.
func TestSRTPReinvite(t *testing.T) {
	verifyNoLeaks(t)
	cert, pool := selfSigned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)
	caller := newTLSCaller(t, pool)
	peer := newSRTPPeer(t, media.SRTPAES128SHA1_32)
	dlg := caller.call(ctx, t, tlsURI(t, "echo", s.tls), peer.savpOffer(peer.cryptoLine(1, media.SRTPAES128SHA1_32)), sipgo.AnswerOptions{})
	first := readSRTPDescription(t, dlg.InviteResponse.Body())
	peer.takeKey(t, first.crypto[0], 1, media.SRTPAES128SHA1_32)
	ourKey := peer.remote

	// Hold and resume under a new tag: the same key of ours answers, under that tag.
	for _, dir := range []string{dirSendOnly, dirSendRecv} {
		offer := bytes.Replace(peer.savpOffer(peer.cryptoLine(5, media.SRTPAES128SHA1_32)), []byte("a=sendrecv"), []byte("a="+dir), 1)
		res := reinvite(ctx, t, dlg, offer, nil)
		if res.StatusCode != sip.StatusOK {
			t.Fatalf("re-INVITE %s: %d %s", dir, res.StatusCode, res.Reason)
		}
		a := readSRTPDescription(t, res.Body())
		if a.proto != "RTP/SAVP" || len(a.crypto) != 1 {
			t.Fatalf("re-INVITE %s answered %s with %q", dir, a.proto, a.crypto)
		}
		peer.takeKey(t, a.crypto[0], 5, media.SRTPAES128SHA1_32)
		if !bytes.Equal(peer.remote, ourKey) {
			t.Fatalf("re-INVITE %s changed our key", dir)
		}
	}

	// RTP/AVP in the middle of an SRTP call: refused, and the call carries on.
	if res := reinvite(ctx, t, dlg, sdpOffer("127.0.0.1", peer.port(), dirSendRecv), nil); res.StatusCode != sip.StatusNotAcceptableHere {
		t.Fatalf("re-INVITE without SRTP: %d %s, want 488", res.StatusCode, res.Reason)
	}

	// The phone re-keys (a new stream, as phones re-key): the echo decrypts under its new key.
	newKey := make([]byte, media.SRTPKeyLen)
	if _, err := rand.Read(newKey); err != nil {
		t.Fatal(err)
	}
	peer.key = newKey
	peer.pz = media.NewPacketizer(0, 8000, 0x5eee)
	res := reinvite(ctx, t, dlg, peer.savpOffer(peer.cryptoLine(2, media.SRTPAES128SHA1_32)), nil)
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("re-INVITE with a new key: %d %s", res.StatusCode, res.Reason)
	}
	peer.takeKey(t, readSRTPDescription(t, res.Body()).crypto[0], 2, media.SRTPAES128SHA1_32)
	got := make(chan []int16, 1)
	go func() {
		pcm, _ := peer.receive(t, 4*time.Second)
		got <- pcm
	}()
	peer.sendTone(t, first.rtp, 100)
	checkTone(t, <-got, 0.9)

	rec := answeredCall(ctx, t, events, dlg.InviteRequest.CallID().Value())
	bye(ctx, t, dlg)
	if ended := endedCall(ctx, t, events, st, tenant, rec.ID); ended.MediaSecurity != "srtp" || ended.Status != store.CallCompleted {
		t.Errorf("record %s media_security %q", ended.Status, ended.MediaSecurity)
	}
}
