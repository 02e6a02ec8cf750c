package sip

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	for time.Since(start) < 900*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
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
// and UDP are still served; closing connections frees their places.
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
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Accepted in order: once the third is counted, the fourth is over the cap.
	waitFor(t, func() bool { return s.conns.open() == 3 })
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
	p := &rawPeer{t: t, transport: "TCP", conn: other, r: newReader(other)}
	defer other.Close()
	p.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", p.local(), addr)))
	p.expect(200, "")
	goodCall(t, addr) // over UDP

	// One more from 127.0.0.2 reaches the total of five: the next is refused.
	fifth, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, fifth)
	waitFor(t, func() bool { return s.conns.open() == 5 })
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("connection past the total cap not closed")
	}

	// Closing frees a place.
	_ = held[0].Close()
	waitFor(t, func() bool { return s.conns.open() == 4 })
	again, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pa := &rawPeer{t: t, transport: "TCP", conn: again, r: newReader(again)}
	defer again.Close()
	pa.send(rawRequest("OPTIONS", addr, rawHeaders("OPTIONS", "TCP", pa.local(), addr)))
	pa.expect(200, "")
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
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs := rawHeaders("OPTIONS", "TCP", victim.Addr().String(), addr)
		_, _ = c.Write([]byte(rawRequest("OPTIONS", addr, hdrs)))
		_ = c.Close()
	}
	// Silence can only be waited for: the dial, when it happens, is at once.
	select {
	case <-dialed:
		t.Fatal("the node connected to the address of a closed connection's Via")
	case <-time.After(3 * time.Second):
	}
}
