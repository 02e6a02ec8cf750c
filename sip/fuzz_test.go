package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
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
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n" +
		"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:AAAA\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:tceMQ8ejDE0R4UAT03OladGjNnEMvcgtMh3kVlev|2^20\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 8\r\n" +
		"a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19abW1qY3dFaUZTVUdZZWNnZGxnb3FuYWtvNzF8MjA|2^20|1:4\r\n"))
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
		var crypto []sdesCrypto
		if r.Secure {
			sr, err := answerSRTP(r.Crypto)
			if err != nil {
				return // refused 488
			}
			crypto = sr.lines()
		}
		ans := newLocalSDP(netip.MustParseAddr("127.0.0.1"), 5000).marshalSRTP(crypto, r.Codecs[:1], r.EventPT, answerDirection(r.Direction, r.Held), true)
		var sd sdp.SessionDescription
		if err := sd.Unmarshal(ans); err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
		back, err := parseSDP(ans)
		if err != nil {
			t.Fatalf("our answer is not usable: %v\n%s", err, ans)
		}
		if back.Secure != r.Secure || (r.Secure && (len(back.Crypto) != 1 || back.Crypto[0].Tag != r.Crypto[0].Tag || back.Crypto[0].Suite != r.Crypto[0].Suite)) {
			t.Fatalf("our answer's SRTP %v %+v does not answer %+v\n%s", back.Secure, back.Crypto, r.Crypto, ans)
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

// fuzzMethods are the methods the server takes, each fuzzed from a valid request.
var fuzzMethods = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"}

// fuzzSeeds are valid requests of every method to the server at addr, and deterministic
// mutations of each: cut short, a header's value replaced by junk or by a very long one, a
// header doubled, bare LF line ends, a wrong Content-Length, and bytes flipped at random
// (from a fixed seed). An INVITE is to nobody, so that no call is left waiting for its ACK.
func fuzzSeeds(addr string) [][]byte {
	rng := rand.New(rand.NewPCG(11, 4475))
	var seeds [][]byte
	for _, method := range fuzzMethods {
		hdrs := rawHeaders(method, "UDP", "127.0.0.1:9", addr)
		body := ""
		switch method {
		case "INVITE", "UPDATE":
			body = string(offerSDP(40000, "0 8 101", "101 telephone-event/8000"))
			hdrs = append(hdrs[:len(hdrs)-1], "Content-Type: application/sdp", fmt.Sprintf("Content-Length: %d", len(body)))
		case "INFO":
			body = "Signal=5\r\nDuration=160\r\n"
			hdrs = append(hdrs[:len(hdrs)-1], "Content-Type: application/dtmf-relay", fmt.Sprintf("Content-Length: %d", len(body)))
		case "NOTIFY":
			body = "SIP/2.0 200 OK\r\n"
			hdrs = append(hdrs[:len(hdrs)-1], "Event: refer", "Content-Type: message/sipfrag", fmt.Sprintf("Content-Length: %d", len(body)))
		case "REFER":
			hdrs = append(hdrs, "Refer-To: <sip:agent@127.0.0.1>")
		}
		msg := strings.Replace(rawRequest(method, addr, hdrs), "sip:echo@", "sip:nobody@", 2) + body
		seeds = append(seeds, []byte(msg), []byte(msg[:len(msg)/3]), []byte(msg[:2*len(msg)/3]),
			[]byte(strings.ReplaceAll(msg, "\r\n", "\n")))
		for i := range hdrs {
			name, _, _ := strings.Cut(hdrs[i], ":")
			junk := slices.Clone(hdrs)
			junk[i] = name + ": \x00\xff<>;;==,,\"" + strings.Repeat("%", 3)
			long := slices.Clone(hdrs)
			long[i] = name + ": " + strings.Repeat("x", 3000)
			double := slices.Insert(slices.Clone(hdrs), i, hdrs[i])
			for _, h := range [][]string{junk, long, double} {
				seeds = append(seeds, []byte(strings.Replace(rawRequest(method, addr, h), "sip:echo@", "sip:nobody@", 2)+body))
			}
		}
		wrongLength := strings.Replace(msg, fmt.Sprintf("Content-Length: %d", len(body)), fmt.Sprintf("Content-Length: %d", len(body)+10), 1)
		seeds = append(seeds, []byte(wrongLength))
		for range 3 {
			b := []byte(msg)
			for range 1 + rng.IntN(8) {
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			}
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// FuzzServer sends requests of any shape to a running server, over UDP and over TCP: no
// handler panics, and after each the server still answers; after all of them it takes a
// call. `go test` runs it over fuzzSeeds: every method's valid request and its mutations.
func FuzzServer(f *testing.F) {
	s, err := New(Config{Log: slog.New(slog.DiscardHandler), MediaTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	<-s.ready
	addr := pc.LocalAddr().String()
	f.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			f.Error("server did not stop")
		}
	})
	for _, seed := range fuzzSeeds(addr) {
		f.Add(seed)
	}
	udp, err := net.Dial("udp", addr)
	if err != nil {
		f.Fatal(err)
	}
	defer udp.Close()
	live, err := net.Dial("udp", addr)
	if err != nil {
		f.Fatal(err)
	}
	defer live.Close()

	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _ = udp.Write(msg)
		tcp, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("TCP refused: %v", err)
		}
		defer tcp.Close()
		_ = tcp.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := tcp.Write(msg); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server does not read its TCP connections: %v", err)
			}
		}

		// The server answers: an OPTIONS of its own.
		p := &rawPeer{t: t, transport: "UDP", conn: live}
		p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "UDP", p.local(), addr)))
		for {
			res, ok := p.read(5 * time.Second)
			if !ok {
				t.Fatalf("no answer to OPTIONS after %q", msg)
			}
			if res.code == 200 && strings.Contains(res.raw, "OPTIONS") {
				break
			}
		}
		if n := s.panics.Load(); n != 0 {
			t.Fatalf("%d handler panics after %q", n, msg)
		}
	})
}

// TestFuzzSeedsThenCall sends every seed of FuzzServer over UDP and TCP at once, and then
// places a good call: what the fuzz target checks one input at a time, in one burst.
func TestFuzzSeedsThenCall(t *testing.T) {
	verifyNoLeaks(t)
	s, addr := startCallServer(t, Config{Log: slog.New(slog.DiscardHandler), TCPMaxConnsPerAddr: 1000})
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for _, seed := range fuzzSeeds(addr) {
		_, _ = udp.Write(seed)
		tcp, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, tcp)
		_, _ = tcp.Write(seed)
	}
	goodCall(t, addr)
	if n := s.panics.Load(); n != 0 {
		t.Fatalf("%d handler panics", n)
	}
}
