package sip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/sdp/v3"
)

// FuzzParseSDP feeds offers of any shape to the offer/answer code: it never panics, and
// whatever it accepts has an address, a codec we carry and a direction, and makes an
// answer that parses.
func FuzzParseSDP(f *testing.F) {
	f.Add(offerSDP(4000, "8 0 101", "101 telephone-event/8000"))
	f.Add(offerSDP(4000, "111 0", "111 opus/48000/2"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\na=rtcp:9 IN IP4 10.0.0.1\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nm=audio 5002 RTP/AVP 0\r\na=sendonly\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseSDP(body)
		if err != nil {
			return
		}
		if !r.RTP.IsValid() || r.RTP.Port() == 0 || len(r.Codecs) == 0 {
			t.Fatalf("accepted %+v", r)
		}
		switch r.Direction {
		case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
		default:
			t.Fatalf("direction %q", r.Direction)
		}
		ans := newLocalSDP(netip.MustParseAddr("127.0.0.1"), 5000).marshal(r.Codecs[:1], r.EventPT, answerDirection(r.Direction, r.Held), true)
		var sd sdp.SessionDescription
		if err := sd.Unmarshal(ans); err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
		if _, err := parseSDP(ans); err != nil {
			t.Fatalf("our answer is not usable: %v\n%s", err, ans)
		}
	})
}

// FuzzParseCredentials: Authorization headers of any shape never panic, and what parses
// verifies or not without panicking.
func FuzzParseCredentials(f *testing.F) {
	f.Add(`Digest username="trunk", realm="switchboard", nonce="abc", uri="sip:echo@127.0.0.1:5060;transport=udp", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"`)
	f.Add(`Digest username=a,nonce=b,uri=c,response=d`)
	f.Add(`Basic dXNlcjpwYXNz`)
	f.Add(`Digest username="unterminated`)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "echo", Host: "127.0.0.1", Port: 5060})
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseCredentials(v)
		if err != nil {
			return
		}
		if c.Username == "" || c.Nonce == "" || c.URI == "" || c.Response == "" {
			t.Fatalf("accepted %+v", c)
		}
		if c.verify(req, "secret") && !strings.Contains(v, c.Response) {
			t.Fatal("verified credentials it did not read")
		}
	})
}

// FuzzSipfragStatus: NOTIFY bodies of any shape never panic; a status read is a SIP one.
func FuzzSipfragStatus(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying"))
	f.Add([]byte("SIP/2.0 99999999999999999999 x"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if code, ok := sipfragStatus(body); ok && (code < 100 || code > 699) {
			t.Fatalf("status %d", code)
		}
	})
}

// Malformed SIP on the wire is dropped (or answered 400 when it can be answered at all) and
// disturbs nothing: the server still answers, over UDP and TCP.
func TestMalformedSIP(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	junk := []string{
		"\x00\x01\x02 not SIP at all",
		"INVITE sip:echo@127.0.0.1 SIP/2.0\r\n\r\n", // no headers
		"INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nContent-Length: 99999\r\n\r\nv=0",
		"SIP/2.0 200 OK\r\nCall-ID: nobody\r\n\r\n", // a response to nothing
		strings.Repeat("A", 60000),
		"OPTIONS sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\nCSeq: one OPTIONS\r\n\r\n",
	}
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, j := range junk {
		_, _ = udp.Write([]byte(j))
	}
	tcp, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range junk {
		_, _ = tcp.Write([]byte(j))
	}
	_ = tcp.Close()

	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, sip.NewRequest(sip.OPTIONS, uri(t, "echo", addr)))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS after junk: %v %v", res, err)
	}
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	dlg, code := u.invite(ctx, t, uri(t, "echo", addr), offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0"))
	if dlg == nil {
		t.Fatalf("INVITE after junk: %d", code)
	}
	defer dlg.Close()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
}
