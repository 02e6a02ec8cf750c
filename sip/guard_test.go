package sip

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// rawPeer speaks SIP bytes to the server over UDP or TCP, for messages no UA would send.
type rawPeer struct {
	t         *testing.T
	transport string
	conn      net.Conn
	r         *bufio.Reader
}

func dialRaw(t *testing.T, transport, addr string) *rawPeer {
	t.Helper()
	c, err := net.Dial(strings.ToLower(transport), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawPeer{t: t, transport: strings.ToUpper(transport), conn: c, r: newReader(c)}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 65536) }

// local is the peer's address, for its Via and Contact.
func (p *rawPeer) local() string { return p.conn.LocalAddr().String() }

func (p *rawPeer) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// rawResponse is the status line of what the server answered.
type rawResponse struct {
	code   int
	reason string
	raw    string
}

// read waits up to d for a response; ok is false when none came.
func (p *rawPeer) read(d time.Duration) (rawResponse, bool) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	var raw []byte
	if p.transport == "UDP" {
		buf := make([]byte, 65536)
		n, err := p.conn.Read(buf)
		if err != nil {
			return rawResponse{}, false
		}
		raw = buf[:n]
	} else {
		var b strings.Builder
		length := 0
		for {
			line, err := p.r.ReadString('\n')
			if err != nil {
				return rawResponse{}, false
			}
			if b.Len() == 0 && strings.TrimSpace(line) == "" {
				continue // a keep-alive
			}
			b.WriteString(line)
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(p.r, body); err != nil {
			return rawResponse{}, false
		}
		raw = append([]byte(b.String()), body...)
	}
	line, _, _ := strings.Cut(string(raw), "\r\n")
	f := strings.SplitN(line, " ", 3)
	if len(f) < 3 || f[0] != "SIP/2.0" {
		p.t.Fatalf("not a SIP response: %q", raw)
	}
	code, _ := strconv.Atoi(f[1])
	return rawResponse{code: code, reason: f[2], raw: string(raw)}, true
}

// expect reads a response and checks its status.
func (p *rawPeer) expect(code int, reason string) rawResponse {
	p.t.Helper()
	for {
		res, ok := p.read(5 * time.Second)
		if !ok {
			p.t.Fatalf("no answer, want %d %s", code, reason)
		}
		if res.code == 100 {
			continue
		}
		if res.code != code || (reason != "" && !strings.Contains(res.reason, reason)) {
			p.t.Fatalf("answer %d %s, want %d %s\n%s", res.code, res.reason, code, reason, res.raw)
		}
		return res
	}
}

var rawSeq atomic.Int64

// rawHeaders are the header fields of a well-formed request of method from peer to the
// server at addr, in order, each a whole line without its CRLF.
func rawHeaders(method, transport, from, addr string) []string {
	n := rawSeq.Add(1)
	return []string{
		fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK-raw-%d;rport", transport, from, n),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:raw@%s>;tag=raw%d", from, n),
		fmt.Sprintf("To: <sip:echo@%s>", addr),
		fmt.Sprintf("Call-ID: raw-%d@switchboard.test", n),
		fmt.Sprintf("CSeq: 1 %s", method),
		fmt.Sprintf("Contact: <sip:raw@%s;transport=%s>", from, strings.ToLower(transport)),
		"Content-Length: 0",
	}
}

// rawRequest joins a request line and header fields into a message.
func rawRequest(method, addr string, hdrs []string) string {
	return fmt.Sprintf("%s sip:echo@%s SIP/2.0\r\n%s\r\n\r\n", method, addr, strings.Join(hdrs, "\r\n"))
}

// goodCall places an echo call and hangs it up: the node still takes calls.
func goodCall(t testing.TB, addr string) {
	t.Helper()
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	dlg, code := u.invite(ctx, t, uri(t, "echo", addr), offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0"))
	if dlg == nil {
		t.Fatalf("good call refused: %d", code)
	}
	defer dlg.Close()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
}

// The reproduction of issue 11's first finding: an INVITE without Call-ID, from anywhere,
// over UDP and TCP, once panicked in onInvite and took the node down. It is answered 400
// naming the header, and the node takes the next call.
func TestInviteWithoutCallID(t *testing.T) {
	verifyNoLeaks(t)
	s, addr := startCallServer(t, Config{})
	_, port, _ := net.SplitHostPort(addr)
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			p := dialRaw(t, transport, addr)
			// The bytes of the report, to this server's port and from this peer's.
			msg := "INVITE sip:echo@127.0.0.1:" + port + " SIP/2.0\r\nVia: SIP/2.0/" + transport + " " + p.local() +
				";branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:echo@127.0.0.1>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
			p.send(msg)
			p.expect(400, "Call-ID")
			if s.panics.Load() != 0 {
				t.Fatal("a handler panicked")
			}
			goodCall(t, addr)
		})
	}
}

// Every header field of every method the server takes, removed in turn, over UDP and TCP:
// a 400 naming the field where RFC 3261 requires it, the method's usual answer where it
// does not, silence for an ACK; never a 5xx, never a dead node.
func TestMissingHeaders(t *testing.T) {
	verifyNoLeaks(t)
	s, addr := startCallServer(t, Config{})
	// What a method answers when nothing is wrong with the request: no call matches the
	// in-dialog ones.
	normal := map[string]int{"INVITE": 404, "OPTIONS": 200, "BYE": 481, "CANCEL": 481, "INFO": 481,
		"REFER": 481, "NOTIFY": 481, "UPDATE": 481, "ACK": 0}
	for _, transport := range []string{"UDP", "TCP"} {
		for _, method := range []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"} {
			for i := range rawHeaders(method, transport, "", addr) {
				name, _, _ := strings.Cut(rawHeaders(method, transport, "", addr)[i], ":")
				t.Run(transport+"/"+method+"/no "+name, func(t *testing.T) {
					p := dialRaw(t, transport, addr)
					hdrs := rawHeaders(method, transport, p.local(), addr)
					hdrs = append(hdrs[:i], hdrs[i+1:]...)
					before := s.rejected.Load()
					msg := rawRequest(method, addr, hdrs)
					if method == "INVITE" { // to nobody: a 404 ends it without a call
						msg = strings.Replace(msg, "sip:echo@", "sip:nobody@", 2)
					}
					p.send(msg)
					want, reason := normal[method], ""
					switch name {
					case "Call-ID", "From", "To", "Max-Forwards":
						want, reason = 400, name
					case "CSeq":
						want, reason = 400, "" // the transaction layer's stateless 400
					case "Via":
						want = 0 // nowhere to send an answer
					case "Contact":
						if method == "INVITE" {
							want, reason = 400, name
						}
					case "Content-Length":
						if transport == "TCP" {
							want, reason = 400, name // no way to find the end of the message
						}
					}
					if method == "ACK" {
						want = 0
					}
					switch {
					case want != 0:
						res := p.expect(want, reason)
						if method == "INVITE" {
							ackFailure(t, p, addr, hdrs, res)
						}
					case method == "ACK" && name != "Via" && name != "CSeq" && name != "Content-Length" && name != "Contact":
						// Dropped by the guard: wait until it has.
						waitFor(t, func() bool { return s.rejected.Load() > before })
					}
					if s.panics.Load() != 0 {
						t.Fatal("a handler panicked")
					}
				})
			}
		}
	}
	goodCall(t, addr)
}

// ackFailure acknowledges a final failure of an INVITE (RFC 3261 §17.1.1.3): same branch,
// the To of the response, CSeq of the INVITE's number, so that the server stops resending.
func ackFailure(t *testing.T, p *rawPeer, addr string, invite []string, res rawResponse) {
	t.Helper()
	var to string
	for _, l := range strings.Split(res.raw, "\r\n") {
		if k, _, _ := strings.Cut(l, ":"); strings.EqualFold(strings.TrimSpace(k), "To") {
			to = l
		}
	}
	var hdrs []string
	for _, h := range invite {
		k, _, _ := strings.Cut(h, ":")
		switch k {
		case "To":
			if to != "" {
				h = to
			}
		case "CSeq":
			h = "CSeq: 1 ACK"
		case "Contact":
			continue
		}
		hdrs = append(hdrs, h)
	}
	p.send(strings.Replace(rawRequest("ACK", addr, hdrs), "sip:echo@", "sip:nobody@", 1))
}

// serveTest serves s on loopback until the test ends, its TCP listener wrapped by wrap
// when given; it returns the address of UDP and TCP.
func serveTest(t testing.TB, s *Server, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		l = wrap(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
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
	return pc.LocalAddr().String()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A request of another SIP version is answered 505 (RFC 3261 §8.2.2.1... and §21.5.6), not
// taken as SIP/2.0.
func TestVersionNotSupported(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			p := dialRaw(t, transport, addr)
			for _, method := range []string{"OPTIONS", "INVITE"} {
				msg := strings.Replace(rawRequest(method, addr, rawHeaders(method, transport, p.local(), addr)), " SIP/2.0\r\n", " SIP/3.0\r\n", 1)
				p.send(msg)
				p.expect(505, "Version Not Supported")
			}
		})
	}
	goodCall(t, addr)
}

// A handler that panics is recovered: one log line, a 500, and the node goes on.
func TestHandlerPanicRecovered(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.handle("MESSAGE", func(req *sip.Request, tx sip.ServerTransaction) {
		var h *sip.ContactHeader
		_ = h.Address // nil dereference, as a handler bug would
	})
	addr := serveTest(t, s, nil)
	p := dialRaw(t, "UDP", addr)
	p.send(rawRequest("MESSAGE", addr, rawHeaders("MESSAGE", "UDP", p.local(), addr)))
	p.expect(500, "")
	if s.panics.Load() != 1 {
		t.Fatalf("%d panics counted, want 1", s.panics.Load())
	}
	goodCall(t, addr)
}
