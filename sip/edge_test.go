package sip

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// closedWithin waits up to d for the server to close c (a read ends in EOF or a reset),
// draining what it answers meanwhile; it reports whether it did.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// An idle TCP connection is closed after the idle timeout; one that sends CRLF keep-alives
// (RFC 5626) is not.
func TestTCPIdleClosed(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t), TCPIdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	alive, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()

	start := time.Now()
	// Keep-alives on one connection every 100 ms, for three times the idle timeout.
	stop := make(chan struct{})
	pinged := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				pinged <- nil
				return
			case <-tick.C:
				if _, err := alive.Write([]byte("\r\n\r\n")); err != nil {
					pinged <- err
					return
				}
			}
		}
	}()
	if !closedWithin(idle, 10*time.Second) {
		t.Fatal("idle connection still open after 10 s")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before its timeout", d)
	}
	// A silent connection opened now marks another idle timeout on the server's own clock:
	// the connection with keep-alives outlives that one too.
	witness, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer witness.Close()
	if !closedWithin(witness, 10*time.Second) {
		t.Fatal("second idle connection still open after 10 s")
	}
	close(stop)
	if err := <-pinged; err != nil {
		t.Fatalf("connection with keep-alives closed: %v", err)
	}
	// The pongs (RFC 5626 §4.4.1) came back on it, and it still carries requests.
	p := &rawPeer{t: t, transport: "TCP", conn: alive}
	p.r = newReader(alive)
	p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", p.local(), addr)))
	p.expect(200, "")
	if s.idleClosed.Load() == 0 {
		t.Fatal("idle close not counted")
	}
}

// A connection whose message trickles in is closed after the header timeout, whatever
// the idle timeout.
func TestTCPHeaderTimeout(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t), TCPHeaderTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", c.LocalAddr().String(), addr))
	closed := make(chan struct{})
	go func() { defer close(closed); closedWithin(c, 20*time.Second) }()
	start := time.Now()
	for i := 0; i < len(msg)-4; i++ { // a byte every 50 ms: the whole would take seconds
		select {
		case <-closed:
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Fatalf("closed after %v, before the header timeout", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := c.Write([]byte{msg[i]}); err != nil {
			break
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("trickling connection not closed")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the header timeout", d)
	}
}

// Past the cap of one address, a new connection is closed at once, while another address
// and UDP are still served. Past the total cap, the new connection takes the place of the
// oldest one that has carried no valid request, and is refused only when every one has;
// closing connections frees their places.
func TestTCPConnectionCap(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t), TCPMaxConnsPerAddr: 3, TCPMaxConns: 5})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	options := func(c net.Conn) {
		t.Helper()
		p := &rawPeer{t: t, transport: "TCP", conn: c, r: newReader(c)}
		p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", p.local(), addr)))
		p.expect(200, "")
	}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// Accepted in order: the first is the oldest.
		waitFor(t, func() bool { return s.conns.open() == i+1 })
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if !closedWithin(over, 5*time.Second) {
		t.Fatal("connection past the per-address cap not closed")
	}
	if s.connsRefused.Load() != 1 {
		t.Fatalf("%d refused, want 1", s.connsRefused.Load())
	}

	// Another source address is under its own cap.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("no 127.0.0.2 to dial from: %v", err)
	}
	defer other.Close()
	options(other)
	goodCall(t, addr) // over UDP

	// One more from 127.0.0.2 reaches the total of five.
	fifth, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, fifth)
	waitFor(t, func() bool { return s.conns.open() == 5 })

	// The next one takes the place of the oldest that said nothing valid: the first.
	sixth, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, sixth)
	if !closedWithin(held[0], 5*time.Second) {
		t.Fatal("the oldest silent connection not closed for a new one at the total cap")
	}
	options(sixth)
	if s.connsEvicted.Load() != 1 || s.conns.open() != 5 {
		t.Fatalf("%d evicted, %d open; want 1 and 5", s.connsEvicted.Load(), s.conns.open())
	}

	// Once every connection has carried a valid request, a new one is refused.
	for _, c := range []net.Conn{held[1], held[2], fifth} {
		options(c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("connection past the total cap not closed")
	}
	if s.connsRefused.Load() != 2 || s.connsEvicted.Load() != 1 {
		t.Fatalf("%d refused, %d evicted; want 2 and 1", s.connsRefused.Load(), s.connsEvicted.Load())
	}
	options(other)

	// Closing frees a place.
	_ = held[1].Close()
	waitFor(t, func() bool { return s.conns.open() == 4 })
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	options(again)
}

// flakyListener fails its first accepts as a process out of file descriptors would.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Accept errors (EMFILE) are retried with backoff: SIP over TCP is served afterwards, and
// the listener is reported serving.
func TestTCPAcceptErrorRetried(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	var fl *flakyListener
	addr := serveTest(t, s, func(l net.Listener) net.Listener {
		fl = &flakyListener{Listener: l}
		fl.fails.Store(5)
		return fl
	})
	p := dialRaw(t, "TCP", addr)
	p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", p.local(), addr)))
	p.expect(200, "")
	if fl.fails.Load() >= 0 {
		t.Fatal("the injected accept errors were not all seen")
	}
	for _, l := range s.Listeners() {
		if !l.Serving || l.Reason != "" {
			t.Fatalf("listener %+v after accept errors", l)
		}
	}
	goodCall(t, addr)
}

// A negative or huge Content-Length is answered 400 over UDP (RFC 3261 §18.3) and over
// TCP, where the connection is then closed: the end of the message cannot be found.
func TestBadContentLength(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	for _, transport := range []string{"UDP", "TCP"} {
		for _, cl := range []string{"-1", "99999999999", "4294967296", "70000", "12abc", "100"} {
			t.Run(transport+"/"+cl, func(t *testing.T) {
				if transport == "TCP" && cl == "100" {
					t.Skip("on a stream, a body still to come is not an error")
				}
				p := dialRaw(t, transport, addr)
				hdrs := rawHeaders("OPTIONS", transport, p.local(), addr)
				hdrs[len(hdrs)-1] = "Content-Length: " + cl
				p.send(rawRequest("OPTIONS", addr, hdrs))
				p.expect(400, "Content-Length")
				if transport == "TCP" && !closedWithin(p.conn, 5*time.Second) {
					t.Fatal("connection not closed after an unframeable message")
				}
			})
		}
	}
	if s.framingErrors.Load() == 0 {
		t.Fatal("framing errors not counted")
	}
	goodCall(t, addr)
}

// A listener that stops, or has failed to accept for long, is reported as not serving.
func TestListenersReported(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, s, nil)
	got := s.Listeners()
	if len(got) != 2 || got[0].Transport != "udp" || got[1].Transport != "tcp" || !got[0].Serving || !got[1].Serving {
		t.Fatalf("listeners %+v", got)
	}
	// An accept loop retrying for over ten seconds is not serving, though it has not stopped.
	tcp := s.listeners[1]
	tcp.fail(syscall.EMFILE, time.Now().Add(-11*time.Second))
	if l := s.Listeners()[1]; l.Serving || !strings.Contains(l.Reason, "too many open files") {
		t.Fatalf("listener failing for 11 s reported %+v", l)
	}
	tcp.ok()
	if l := s.Listeners()[1]; !l.Serving || l.Reason != "" {
		t.Fatalf("listener accepting again reported %+v", l)
	}
	tcp.stop(io.ErrUnexpectedEOF)
	if l := s.Listeners()[1]; l.Serving || !strings.Contains(l.Reason, "unexpected EOF") {
		t.Fatalf("stopped listener reported %+v", l)
	}
}

// A flood of unparsable datagrams is a few short warnings, not a line at ERROR with all the
// bytes of each.
func TestUnparsableLoggedQuietly(t *testing.T) {
	verifyNoLeaks(t)
	lb := &logBuffer{t: t}
	s, err := New(Config{Log: lb.logger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	p := dialRaw(t, "UDP", addr)
	junk := "INVITE <not a uri> SIP/2.0\r\n" + strings.Repeat("X-Junk: "+strings.Repeat("j", 100)+"\r\n", 15) + "\r\n"
	for range 200 {
		p.send(junk)
	}
	// The UDP loop parses in order: once this is answered, every datagram before it was read.
	p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "UDP", p.local(), addr)))
	p.expect(200, "")
	var lines []string
	for _, l := range strings.Split(lb.String(), "\n") {
		if strings.Contains(l, "failed to parse") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || len(lines) > 10 {
		t.Fatalf("%d lines about unparsable datagrams for 200, want 1 to 10", len(lines))
	}
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") || len(l) > 1000 {
			t.Fatalf("a line about an unparsable datagram: %d bytes: %s", len(l), l)
		}
	}
}

// A request over TCP whose connection closes before it is answered must not make the node
// connect to the host its Via names: sipgo, finding the connection gone, dials the Via's
// sent-by for the response, and anyone could point it at any address and port (a cross-
// protocol request forgery carrying header values of their choosing).
func TestNoDialToViaAfterClose(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	victim, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		for {
			c, err := victim.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
			select {
			case dialed <- struct{}{}:
			default:
			}
		}
	}()
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs := rawHeaders("OPTIONS", "TCP", victim.Addr().String(), addr)
		msg := rawRequest("OPTIONS", addr, hdrs)
		if i%2 == 1 {
			// Followed by what sipgo's parser rejects: sipgo then closes the connection
			// itself, its reader never seeing an error from the edge.
			msg += "NOT SIP AT ALL\r\n"
		}
		_, _ = c.Write([]byte(msg))
		_ = c.Close()
	}
	// Silence can only be waited for: the dial, when it happens, is at once.
	select {
	case <-dialed:
		t.Fatal("the node connected to the address of a closed connection's Via")
	case <-time.After(3 * time.Second):
	}
}

// A connection that sends nothing at all is closed at the header timeout, counted from the
// accept: it does not hold a place for the whole idle timeout.
func TestTCPSilentConnectionClosed(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t), TCPHeaderTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	start := time.Now()
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// CRLF keep-alives are no message: a connection that sends only those goes as soon.
	pinger, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pinger.Close()
	if _, err := pinger.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{silent, pinger} {
		if !closedWithin(c, 10*time.Second) {
			t.Fatal("a connection that sent no message still open after 10 s (the idle timeout is 150 s)")
		}
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the header timeout", d)
	}
	waitFor(t, func() bool { return s.conns.open() == 0 })

	// One whose first message came in time is then under the idle timeout only.
	p := dialRaw(t, "TCP", addr)
	p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", p.local(), addr)))
	p.expect(200, "")
	if closedWithin(p.conn, time.Second) {
		t.Fatal("a connection that sent a whole message closed at the header timeout")
	}
}

// The per-source cap counts an IPv4 address, or an IPv6 /64: a host given a /64 may use
// any address in it.
func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8:1:2::1", "2001:db8:1:2:abcd::7"},
		{"fe80::1%eth0", "fe80::2%eth1"},
	} {
		if ka, kb := sourceKey(netip.MustParseAddr(tc.a)), sourceKey(netip.MustParseAddr(tc.b)); ka != kb {
			t.Errorf("%s and %s counted apart: %v, %v", tc.a, tc.b, ka, kb)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
	} {
		if ka, kb := sourceKey(netip.MustParseAddr(tc.a)), sourceKey(netip.MustParseAddr(tc.b)); ka == kb {
			t.Errorf("%s and %s counted together: %v", tc.a, tc.b, ka)
		}
	}
	// And the cap holds on the key: the 257th connection of a /64 is refused.
	l := newConnLimits(10000, 256)
	for i := 0; i < 257; i++ {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
		ok, _ := l.take(&edgeConn{source: sourceKey(a)})
		if ok != (i < 256) {
			t.Fatalf("connection %d of one /64 admitted: %v", i+1, ok)
		}
	}
	if ok, _ := l.take(&edgeConn{source: sourceKey(netip.MustParseAddr("2001:db8:1:3::1"))}); !ok {
		t.Fatal("another /64 refused")
	}
}

// A connection that carried a call is closed for idleness once the call has ended: the
// call kept it open, not forever after.
func TestTCPIdleAfterCall(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t), TCPIdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	target := uri(t, "echo", addr)
	target.UriParams = sip.NewParams()
	target.UriParams.Add("transport", "tcp")
	dlg, code := u.invite(ctx, t, target, offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0"))
	if dlg == nil {
		t.Fatalf("call over TCP refused: %d", code)
	}
	defer dlg.Close()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// Silent while another connection, one request then silence, is closed for idleness
	// (an idle timeout passed on the server's clock), the call keeps its connection.
	witness := dialRaw(t, "TCP", addr)
	witness.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", witness.local(), addr)))
	witness.expect(200, "")
	if !closedWithin(witness.conn, 10*time.Second) {
		t.Fatal("an idle connection beside the call still open after 10 s")
	}
	for s.conns.open() != 1 {
		if ctx.Err() != nil {
			t.Fatalf("%d connections open once the idle one closed, want the call's", s.conns.open())
		}
		time.Sleep(5 * time.Millisecond)
	}
	beside := s.idleClosed.Load()
	if beside == 0 {
		t.Fatal("the idle connection beside the call was not closed for idleness")
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	for s.conns.open() != 0 {
		if ctx.Err() != nil {
			t.Fatalf("the connection of an ended call still open after %v", 20*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.idleClosed.Load() - beside; got != 1 {
		t.Fatalf("%d closed for idleness after the call, want 1", got)
	}
}

// A connection whose last requests the transaction layer absorbed (they never reach a
// handler) lets its place go as soon as the peer closes it.
func TestTCPAbsorbedRequestReleased(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, s, nil)
	for _, tc := range []struct {
		name string
		send func(p *rawPeer)
	}{
		{"no CSeq", func(p *rawPeer) { // the transaction layer's stateless 400
			hdrs := rawHeaders("OPTIONS", "TCP", p.local(), addr)
			hdrs = append(hdrs[:5], hdrs[6:]...)
			p.send(rawRequest("OPTIONS", addr, hdrs))
			p.expect(400, "")
		}},
		{"INVITE retransmitted", func(p *rawPeer) { // the transaction answers it again
			msg := strings.Replace(rawRequest("INVITE", addr, rawHeaders("INVITE", "TCP", p.local(), addr)), "sip:echo@", "sip:nobody@", 2)
			p.send(msg)
			p.expect(404, "")
			p.send(msg)
			p.expect(404, "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, "TCP", addr)
			tc.send(p)
			start := time.Now()
			_ = p.conn.Close()
			for s.conns.open() != 0 {
				if time.Since(start) > 10*time.Second {
					t.Fatal("connection still held 10 s after the peer closed it")
				}
				time.Sleep(5 * time.Millisecond)
			}
			// It was held for 5 s, waiting for a request the guard never sees.
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Fatalf("connection held %v after the peer closed it", d)
			}
		})
	}
	goodCall(t, addr)
}
