package sip

import (
	"container/list"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The edge of the server: what wraps the sockets given to Serve before sipgo reads them.
// sipgo's TCP accept loop ends at the first Accept error and its UDP read loop at the
// first read error, and it keeps a TCP connection open as long as the peer does: a node
// that ran out of file descriptors once stopped taking SIP over TCP for good, and idle
// connections were never closed. The edge retries what can be retried, caps connections,
// closes idle and trickling ones, and answers or logs (rate-limited) what sipgo would
// drop in silence.

// Defaults of the edge's limits (Config).
const (
	// RFC 5626 §4.4.1 has clients send a CRLF keep-alive every 95 to 120 s over TCP: an
	// idle timeout above that keeps their connections, and closes those that send nothing.
	defaultTCPIdleTimeout   = 150 * time.Second
	defaultTCPHeaderTimeout = 10 * time.Second
	defaultTCPMaxConns      = 4096
	defaultTCPMaxConnsPer   = 256
	// edgeWriteTimeout bounds a write to a peer that does not read.
	edgeWriteTimeout = 30 * time.Second
	// acceptFailingUnhealthy is how long an accept loop may retry before /health says so.
	acceptFailingUnhealthy = 10 * time.Second
)

// errMissingLength and errHeadTooLarge are messages on a stream whose end cannot be found.
var (
	errMissingLength = errors.New("missing Content-Length") // mandatory on a stream (RFC 3261 §20.14)
	errHeadTooLarge  = errors.New("header section too large")
)

// listenerState is what /health reports of one listener.
type listenerState struct {
	transport, addr string

	mu        sync.Mutex
	stopped   bool
	reason    string // why it stopped, or the error it is retrying after
	failing   atomic.Bool
	failSince time.Time
}

func (st *listenerState) stop(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopped = true
	st.reason = "stopped"
	if err != nil {
		st.reason = "stopped: " + err.Error()
	}
}

// fail records an error the listener retries after.
func (st *listenerState) fail(err error, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.failing.Load() {
		st.failSince = now
		st.failing.Store(true)
	}
	st.reason = err.Error()
}

// ok records a successful accept or read; cheap, as it runs for every one.
func (st *listenerState) ok() {
	if !st.failing.Load() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.failing.Store(false)
	st.reason = ""
}

// ListenerStatus is the state of one of the server's SIP listeners, for /health.
type ListenerStatus struct {
	Transport string `json:"transport"`
	Addr      string `json:"addr"`
	// Serving is false once the listener stopped, or while it has failed to accept or
	// read for more than ten seconds.
	Serving bool `json:"serving"`
	// Reason says why it stopped, or which error it is retrying after.
	Reason string `json:"reason,omitempty"`
}

func (st *listenerState) status(now time.Time) ListenerStatus {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := ListenerStatus{Transport: st.transport, Addr: st.addr, Serving: !st.stopped, Reason: st.reason}
	if st.failing.Load() && now.Sub(st.failSince) > acceptFailingUnhealthy {
		s.Serving = false
	}
	return s
}

// backoff is the wait before retrying a failed accept or read: 5 ms doubling to 1 s, as
// net/http's server does.
func backoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// connLimits caps the TCP and TLS connections of a server, in all and per source
// (sourceKey). At the total cap, a new connection takes the place of the oldest one that
// has not carried a valid request yet, rather than being refused: otherwise anyone could
// hold every place with connections that say nothing, and lock callers out.
type connLimits struct {
	max, perAddr int

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
	// unproven holds, oldest first, the connections that have carried no valid request.
	unproven list.List
}

func newConnLimits(max, perAddr int) *connLimits {
	return &connLimits{max: max, perAddr: perAddr, bySource: map[netip.Prefix]int{}}
}

// sourceKey is what the per-source cap counts by: an IPv4 address, or the /64 of an IPv6
// one. A single IPv6 host is usually given a /64 or more and may use any address in it, so
// counting exact addresses would cap nothing.
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// take admits c, and names the connection it evicted to make room, if any; ok is false
// when c is refused.
func (l *connLimits) take(c *edgeConn) (ok bool, evicted *edgeConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource[c.source] >= l.perAddr {
		return false, nil
	}
	if l.total >= l.max {
		front := l.unproven.Front()
		if front == nil {
			return false, nil
		}
		evicted = front.Value.(*edgeConn)
		l.releaseLocked(evicted)
	}
	l.total++
	l.bySource[c.source]++
	c.elem = l.unproven.PushBack(c)
	return true, evicted
}

// prove marks c as having carried a valid request: it is evicted no more.
func (l *connLimits) prove(c *edgeConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.elem != nil {
		l.unproven.Remove(c.elem)
		c.elem = nil
	}
}

func (l *connLimits) release(c *edgeConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(c)
}

func (l *connLimits) releaseLocked(c *edgeConn) {
	if c.released {
		return
	}
	c.released = true
	if c.elem != nil {
		l.unproven.Remove(c.elem)
		c.elem = nil
	}
	l.total--
	if l.bySource[c.source]--; l.bySource[c.source] <= 0 {
		delete(l.bySource, c.source)
	}
}

// open is the number of connections held.
func (l *connLimits) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// edgeListener is a TCP (or, with tls set, TLS) listener of the server: its Accept
// returns only admitted connections and never a temporary error, which would end sipgo's
// accept loop.
type edgeListener struct {
	net.Listener
	srv   *Server
	tls   *tls.Config
	state *listenerState

	closeOnce sync.Once
	closed    chan struct{}
}

func (s *Server) newEdgeListener(l net.Listener, transport string, cfg *tls.Config) *edgeListener {
	st := &listenerState{transport: transport, addr: l.Addr().String()}
	s.addListener(st)
	return &edgeListener{Listener: l, srv: s, tls: cfg, state: st, closed: make(chan struct{})}
}

func (l *edgeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *edgeListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return nil, err
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// EMFILE, ENFILE, ECONNABORTED, ENOBUFS…: wait and go on. The listener
			// itself only fails once closed.
			now := time.Now()
			l.state.fail(err, now)
			wait = backoff(wait)
			if ok, left := l.srv.edgeLog.allow(now); ok {
				l.srv.log.Warn("sip accept failed; retrying", "transport", l.state.transport, "error", err,
					"retry_in", wait, "suppressed", left)
			}
			select {
			case <-time.After(wait):
				continue
			case <-l.closed:
				return nil, net.ErrClosed
			}
		}
		wait = 0
		l.state.ok()
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		a := ap.Addr().Unmap()
		now := time.Now()
		ec := &edgeConn{srv: l.srv, raw: c, network: l.state.transport, source: sourceKey(a), raddr: c.RemoteAddr().String(),
			firstDue: now.Add(l.srv.cfg.TCPHeaderTimeout)}
		ok, evicted := l.srv.conns.take(ec)
		if !ok {
			l.srv.connsRefused.Add(1) // before the peer can see the close
			_ = c.Close()
			if ok, left := l.srv.edgeLog.allow(now); ok {
				l.srv.log.Warn("sip connection refused: too many connections", "transport", l.state.transport,
					"source", a.String(), "open", l.srv.conns.open(), "suppressed", left)
			}
			continue
		}
		if evicted != nil {
			// Its reader sees the connection fail and lets it go; its place is already ours.
			l.srv.connsEvicted.Add(1)
			_ = evicted.raw.Close()
			if ok, left := l.srv.edgeLog.allow(now); ok {
				l.srv.log.Warn("sip connection closed to make room: it carried no valid request", "transport", l.state.transport,
					"source", evicted.raddr, "open", l.srv.conns.open(), "suppressed", left)
			}
		}
		ec.Conn = c
		l.srv.streams.Store(ec.raddr, ec)
		if l.tls != nil {
			ec.Conn = tls.Server(c, l.tls)
			ec.handshake = true
		}
		return ec, nil
	}
}

// edgeConn is an admitted TCP or TLS connection. It follows the messages it carries, just
// enough to find where each ends, so that it can close a connection idle for
// TCPIdleTimeout, one whose message takes longer than TCPHeaderTimeout to arrive (the
// first one counted from the accept, so that a connection that says nothing goes as soon),
// and answer a message it cannot frame with 400 before closing it (RFC 3261 §18.3: with no
// usable Content-Length on a stream, the next message cannot be found).
type edgeConn struct {
	net.Conn
	srv     *Server
	raw     net.Conn // the TCP connection, under TLS if any
	network string   // "tcp" or "tls", as sipgo names its transports
	source  netip.Prefix
	raddr   string

	// Guarded by the server's connLimits.
	elem     *list.Element // in connLimits.unproven, until a valid request came
	released bool

	closeOnce sync.Once

	// entry is the connection in sipgo's pool, for the answers to its requests (see
	// claimEntry); set by the reader, read by Close, which may run on any goroutine.
	entryMu sync.Mutex
	entry   *sip.TCPConnection
	gone    bool // closed: no entry is to be made

	// Read side: sipgo reads a connection from one goroutine.
	claimed   bool      // claimEntry ran
	handshake bool      // a TLS handshake is still to be done
	firstDue  time.Time // when the first message must be whole; zero once it is
	inMsg     bool      // between the first byte of a message and its end
	started   time.Time // when its first byte came
	head      []byte    // its header section so far
	body      int       // bytes of its body still to come
}

func (c *edgeConn) Close() error {
	err := c.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // evicted (take): its socket closed under its reader
	}
	c.closeOnce.Do(func() {
		c.srv.conns.release(c)
		c.srv.streams.CompareAndDelete(c.raddr, c)
		c.entryMu.Lock()
		c.gone = true
		entry := c.entry
		c.entryMu.Unlock()
		if entry != nil {
			// sipgo may hold its pool's lock here: the entry goes later, from elsewhere.
			pool := c.srv.ua.TransportLayer().Pool(c.network)
			time.AfterFunc(entryKept, func() { _ = pool.CloseAndDelete(entry, c.raddr) })
		}
	})
	return err
}

// entryKept is how long the pool entry of a closed connection stays: 64×T1, the longest a
// server transaction lives once answered, so that the requests read from the connection
// are all answered, or not, before it goes.
const entryKept = 32 * time.Second

// claimEntry puts the connection in sipgo's pool, under the peer's address, as an entry of
// the edge's own, in place of sipgo's. sipgo looks a request's connection up there for its
// answers, after the request was read, and when it finds none it dials the host and port
// the request's Via names: anyone could make the node connect to any address and write to
// it, by closing the connection (or sending what sipgo's parser rejects, which makes sipgo
// close it) right after a request. sipgo drops its own entry as soon as it stops reading;
// the edge's stays for entryKept after the connection closed, and a write to it then
// fails: an answer that comes too late is dropped, never dialled for. The connection and
// its place under the caps go at once. (Transactions then hold the edge's entry, not
// sipgo's: the transaction layer's option to end them when their connection closes, off
// in New, would not find them.)
func (c *edgeConn) claimEntry() {
	pool := c.srv.ua.TransportLayer().Pool(c.network)
	if pool == nil {
		return
	}
	// A *sip.TCPConnection, as sipgo asserts its pool's connections are.
	entry := &sip.TCPConnection{Conn: c}
	// References of its own besides the pool's: transactions' TryClose, each paired with
	// the lookup that took one, never close the connection through it.
	entry.Ref(2)
	c.entryMu.Lock()
	if c.gone {
		c.entryMu.Unlock()
		return
	}
	c.entry = entry
	c.entryMu.Unlock()
	pool.Add(c.raddr, entry)
}

func (c *edgeConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(edgeWriteTimeout))
	return c.Conn.Write(b)
}

func (c *edgeConn) Read(b []byte) (int, error) {
	cfg := &c.srv.cfg
	if !c.claimed {
		// sipgo's reader starts once it has put the connection in its pool: nothing was
		// read from it yet, so no answer was looked up.
		c.claimed = true
		c.claimEntry()
	}
	if c.handshake {
		// The handshake is part of the first message: it must end within the header
		// timeout of the accept, however slowly its bytes come.
		c.handshake = false
		tc := c.Conn.(*tls.Conn)
		_ = tc.SetDeadline(c.firstDue)
		if err := tc.Handshake(); err != nil { //nolint:noctx // bounded by the deadline above; Read, which runs it, has no context
			c.closing("tls handshake failed", err)
			return 0, io.EOF
		}
		_ = tc.SetWriteDeadline(time.Time{})
	}
	for {
		now := time.Now()
		deadline := now.Add(cfg.TCPIdleTimeout)
		if c.inMsg {
			deadline = earlier(deadline, c.started.Add(cfg.TCPHeaderTimeout))
		}
		if !c.firstDue.IsZero() {
			deadline = earlier(deadline, c.firstDue)
		}
		_ = c.Conn.SetReadDeadline(deadline)
		n, err := c.Conn.Read(b)
		if n > 0 {
			if ferr := c.scan(b[:n], now); ferr != nil {
				c.refuse(ferr)
				return 0, io.EOF
			}
			return n, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			switch {
			case !c.firstDue.IsZero() && !time.Now().Before(c.firstDue):
				c.closing("sip connection sent no whole message within the header timeout", nil)
			case c.inMsg:
				c.closing("sip message not whole within the header timeout", nil)
			case c.srv.calls.carries(c.raddr):
				// A live call came over this connection: its BYE or re-INVITE may come
				// after a long silence, and we have no other way to reach a caller behind
				// NAT. Asked again at the next timeout, so that it goes once the call has.
				continue
			default:
				c.srv.idleClosed.Add(1) // routine: a peer that went away
			}
			return 0, io.EOF
		}
		return n, err
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// scan follows p, the next bytes of the stream, through messages: CRLF keep-alives
// between them (RFC 5626 §3.5.1), each one's header section up to its empty line, and
// the body its Content-Length announces.
func (c *edgeConn) scan(p []byte, now time.Time) error {
	for len(p) > 0 {
		switch {
		case !c.inMsg:
			if p[0] == '\r' || p[0] == '\n' {
				p = p[1:]
				continue
			}
			c.inMsg, c.started, c.head, c.body = true, now, c.head[:0], 0
		case c.body > 0:
			k := min(c.body, len(p))
			c.body -= k
			p = p[k:]
			if c.body == 0 {
				c.inMsg, c.firstDue = false, time.Time{}
			}
		default: // in the header section
			prev := len(c.head)
			c.head = append(c.head, p...)
			end := headerEnd(c.head[max(0, prev-3):])
			if end < 0 {
				if len(c.head) > maxMessage {
					return errHeadTooLarge
				}
				return nil
			}
			end += max(0, prev-3)
			n, found, err := contentLength(c.head[:end])
			if err != nil {
				return err
			}
			if !found {
				return errMissingLength
			}
			p = p[end-prev:]
			c.head = c.head[:end] // kept for a 400, until the next message
			c.body = n
			if n == 0 {
				c.inMsg, c.firstDue = false, time.Time{}
			}
		}
	}
	return nil
}

// refuse answers the message that could not be framed with 400 when it is a request that
// can be answered, and logs it; the caller then closes the connection.
func (c *edgeConn) refuse(err error) {
	c.srv.framingErrors.Add(1)
	reason := "Bad Content-Length"
	switch {
	case errors.Is(err, errMissingLength):
		reason = "Missing Content-Length header"
	case errors.Is(err, errHeadTooLarge):
		reason = "Header Section Too Large"
	}
	if end := headerEnd(c.head); end > 0 {
		if res := badRequest(c.head[:end], reason, c.raddr); res != nil {
			_, _ = c.Write(res)
		}
	}
	c.closing("sip message not framed; connection closed", err)
}

// closing logs, rate-limited, why the edge closes a connection.
func (c *edgeConn) closing(msg string, err error) {
	if ok, left := c.srv.edgeLog.allow(time.Now()); ok {
		args := []any{"source", c.raddr, "suppressed", left}
		if err != nil {
			args = append(args, "error", err)
		}
		if len(c.head) > 0 {
			args = append(args, "head", truncate(c.head, 200))
		}
		c.srv.log.Info(msg, args...)
	}
}

// edgePacketConn is the UDP socket of the server: its reads never fail but when it is
// closed (sipgo's UDP loop ends at the first error), and a request whose Content-Length
// is bad or longer than its datagram is answered 400 (RFC 3261 §18.3) and a response
// dropped, with a log line either way, rather than dropped in silence.
type edgePacketConn struct {
	net.PacketConn
	srv   *Server
	state *listenerState

	closeOnce sync.Once
	closed    chan struct{}
	// reading is closed at sipgo's first read: it has then taken the socket as the one
	// its UDP requests leave from (originator).
	readOnce sync.Once
	reading  chan struct{}
}

func (s *Server) newEdgePacketConn(pc net.PacketConn) *edgePacketConn {
	st := &listenerState{transport: "udp", addr: pc.LocalAddr().String()}
	s.addListener(st)
	return &edgePacketConn{PacketConn: pc, srv: s, state: st, closed: make(chan struct{}), reading: make(chan struct{})}
}

func (c *edgePacketConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.PacketConn.Close()
}

func (c *edgePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.readOnce.Do(func() { close(c.reading) })
	var wait time.Duration
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			select {
			case <-c.closed:
				return n, addr, err
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return n, addr, err
			}
			now := time.Now()
			c.state.fail(err, now)
			wait = backoff(wait)
			if ok, left := c.srv.edgeLog.allow(now); ok {
				c.srv.log.Warn("sip udp read failed; retrying", "error", err, "retry_in", wait, "suppressed", left)
			}
			select {
			case <-time.After(wait):
				continue
			case <-c.closed:
				return 0, nil, net.ErrClosed
			}
		}
		wait = 0
		c.state.ok()
		if c.framed(b[:n], addr) {
			return n, addr, nil
		}
	}
}

// framed says whether a datagram goes on to sipgo; one whose Content-Length cannot be
// right is answered or dropped here.
func (c *edgePacketConn) framed(msg []byte, addr net.Addr) bool {
	end := headerEnd(msg)
	if end < 0 {
		return true // not SIP enough to frame: sipgo's parser drops it, with a log line
	}
	n, found, err := contentLength(msg[:end])
	if err == nil && (!found || n <= len(msg)-end) {
		return true
	}
	c.srv.framingErrors.Add(1)
	isResponse := len(msg) >= 4 && string(msg[:4]) == "SIP/"
	if !isResponse {
		if res := badRequest(msg[:end], "Bad Content-Length", addr.String()); res != nil {
			_, _ = c.PacketConn.WriteTo(res, addr)
		}
	}
	if ok, left := c.srv.edgeLog.allow(time.Now()); ok {
		c.srv.log.Info("sip datagram with a bad Content-Length", "source", addr.String(), "answered", !isResponse,
			"head", truncate(msg[:end], 200), "suppressed", left)
	}
	return false
}
