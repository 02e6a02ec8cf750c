// Package sip owns SIP signalling: a sipgo server on UDP, TCP and TLS that answers inbound
// calls from trunks and softphones (trunk matching, digest authentication, routing by the
// dialled number), places outbound calls through trunks, negotiates SDP (RFC 3264) and
// carries each call's audio as a media.Stream to its handler: an agent, or one of the
// built-in destinations (echo, tone).
package sip

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// Config configures a Server.
type Config struct {
	Log *slog.Logger
	// PublicIP is the address put in our SDP and Contact; empty means the local address the
	// far end's request came in on.
	PublicIP string
	// RTPPortMin and RTPPortMax bound the RTP ports; both zero means any free port.
	RTPPortMin, RTPPortMax int
	// AllowAll widens the default tenant's no-trunk rule to every address: while the
	// default tenant has no inbound trunks, a caller from anywhere reaches its numbers and
	// the built-in destinations. Otherwise that rule takes loopback and private callers only.
	// Other tenants' calls are decided by their own trunks either way.
	AllowAll bool
	// Store holds trunks, phone numbers and call records; nil serves the built-in
	// destinations only and keeps no records.
	Store *store.Store
	// DefaultTenantID owns calls that come in without a trunk (loopback, private networks).
	DefaultTenantID string
	// Node names this server in call records, so that a restart fails only its own calls.
	Node string
	// Events receives call events; nil publishes none.
	Events call.Publisher
	// Agents answers calls routed to agents; nil answers them 480.
	Agents Agents
	// MediaTimeout ends a call whose RTP stopped for this long (zero: 30 s).
	MediaTimeout time.Duration
	// MaxCalls bounds concurrent INVITE transactions and calls of this server, refused or
	// not; more are answered 503 (zero: 5,000). It guards the server against a flood.
	MaxCalls int
	// Calls, when set, is the node's registry of live calls, shared with its other
	// transports: the server's calls are found in it, and it bounds the node's calls and each
	// tenant's once a call is routed: a call over the node's limit is answered 503, one over
	// its tenant's 486 Busy Here; an outbound call over either is refused with its
	// *callcap.LimitError. Nil: the server keeps a registry of its own, without limits.
	Calls *call.Registry
	// TLS, when set, serves the TLS listener given to Serve.
	TLS *tls.Config
	// TLSClient is what requests leaving over TLS (outbound calls through a trunk whose
	// transport is tls) verify the far end with; nil: the system's roots.
	TLSClient *tls.Config
	// TLSCAFile, when TLSClient is nil, is a PEM file of the certificate authorities that
	// requests leaving over TLS trust instead of the system's (a PBX or carrier whose
	// certificate a private authority signed).
	TLSCAFile string
	// RecordDir, when set, receives a stereo WAV of every answered call, "<call id>.wav":
	// the far end on the left, Switchboard on the right.
	RecordDir string
	// Recordings, when its Dir is set, says which calls are recorded (every call, or those
	// of agents that ask), in how many channels and for how long, as for every transport;
	// it replaces RecordDir.
	Recordings call.Recordings
	// TCPIdleTimeout closes a SIP TCP or TLS connection that carries nothing, not even a
	// CRLF keep-alive, for this long, unless a live call came over it; once the call has
	// ended, the next silence this long closes it (zero: 150 s, above the 95-120 s
	// keep-alive interval of RFC 5626).
	TCPIdleTimeout time.Duration
	// TCPHeaderTimeout closes a connection whose message (headers and body) is not whole
	// this long after its first byte, and one whose first message (with its TLS handshake)
	// is not whole this long after it was accepted (zero: 10 s).
	TCPHeaderTimeout time.Duration
	// TCPMaxConns bounds the SIP TCP and TLS connections of the server together (zero:
	// 4,096), TCPMaxConnsPerAddr those from one IPv4 address or IPv6 /64 (zero: 256). A
	// connection past the per-source cap is closed as soon as it is accepted; one past the
	// total takes the place of the oldest connection that has carried no valid request
	// yet, and is closed only when there is none.
	TCPMaxConns, TCPMaxConnsPerAddr int
	// RegisterSync is how often the server reads which trunks register with their
	// provider, renews its lease on those it registers and takes over those whose node
	// stopped renewing (zero: 30 s; a lease lasts three of these). Trunks changed through
	// this node's API are taken up at once (TrunksChanged).
	RegisterSync time.Duration
	// RegisterRetry is the wait after a failed registration, doubled at each failure in a
	// row up to RegisterRetryMax (zero: 5 s and 5 min).
	RegisterRetry, RegisterRetryMax time.Duration
	// OpusComplexity is the Opus encoder's complexity, 0-10 (zero: the media default, cheap
	// enough for many calls a core).
	OpusComplexity int
	// TrustedProxies are the SIP proxies in front of the node (Kamailio): from them, and
	// from nobody else, an INVITE's X-Switchboard-Source header says where the caller's
	// request came from, and trunks' allow-lists, the no-trunk rule and the media's route
	// judge that address rather than the proxy's.
	TrustedProxies []netip.Prefix
	// OutboundProxy, a SIP URI (sip:host:port, ;transport=tcp), is where outbound INVITEs
	// go, with a Route header naming it (RFC 3261 §8.1.2): the proxy routes them on, and
	// in-dialog requests follow the route set its Record-Route gives. Empty: straight to
	// the callee.
	OutboundProxy string
}

// Server answers inbound calls and places outbound ones.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	nonces *nonces
	calls  *registry
	regs   *registrations
	// proxyRoute sends outbound INVITEs through Config.OutboundProxy; nil: straight.
	proxyRoute *sip.RouteHeader

	// Set by Serve before any request is handled.
	ctx      context.Context
	ready    chan struct{}
	host     string
	port     int // of UDP and TCP
	tlsPort  int
	udpAddr  sip.Addr // the UDP socket's local address: where requests over UDP leave from
	dialogUA *sipgo.DialogUA

	// wg counts calls from INVITE to teardown; once closing is set no call is added.
	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
	active  atomic.Int64

	// Counters of what was refused or dropped, for the log and tests.
	refused  atomic.Uint64
	rejected atomic.Uint64 // requests the guard answered (or dropped, ACKs) for a fault
	panics   atomic.Uint64 // handler panics recovered
	guardLog *logLimit

	// The edge (edge.go): connection limits, what it closed or refused, and the state of
	// each listener for /health.
	conns         *connLimits
	connsRefused  atomic.Uint64
	connsEvicted  atomic.Uint64 // closed at the total cap for a new one (connLimits)
	idleClosed    atomic.Uint64
	framingErrors atomic.Uint64
	edgeLog       *logLimit
	streams       sync.Map // a TCP or TLS peer's "ip:port" → its *edgeConn
	listenersMu   sync.Mutex
	listeners     []*listenerState

	// checksOff skips the guard's checks (not its recovery): the benchmark of their cost
	// turns them off and on in one run.
	checksOff atomic.Bool
	// recordsInline inserts a new inbound call's record on the INVITE's path, as Switchboard
	// did before records were written behind the call: the benchmark of what that cost
	// (BenchmarkInviteSetupStored) sets it.
	recordsInline atomic.Bool

	// ringDelay holds a call in the ringing state before answering; tests set it to
	// exercise CANCEL.
	ringDelay time.Duration
}

// New builds a Server; it listens when ListenAndServe or Serve is called.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PublicIP != "" && net.ParseIP(cfg.PublicIP) == nil {
		return nil, fmt.Errorf("sip: public IP %q is not an IP address", cfg.PublicIP)
	}
	route, err := outboundRoute(cfg.OutboundProxy)
	if err != nil {
		return nil, err
	}
	if cfg.RTPPortMin < 0 || cfg.RTPPortMax > 65535 || cfg.RTPPortMin > cfg.RTPPortMax {
		return nil, fmt.Errorf("sip: bad RTP port range %d-%d", cfg.RTPPortMin, cfg.RTPPortMax)
	}
	if cfg.MediaTimeout == 0 {
		cfg.MediaTimeout = 30 * time.Second
	}
	if cfg.MaxCalls == 0 {
		cfg.MaxCalls = 5000
	}
	if cfg.TCPIdleTimeout < 0 || cfg.TCPHeaderTimeout < 0 || cfg.TCPMaxConns < 0 || cfg.TCPMaxConnsPerAddr < 0 {
		return nil, fmt.Errorf("sip: TCP timeouts and connection limits must be zero (the default) or more")
	}
	cfg.TCPIdleTimeout = cmp.Or(cfg.TCPIdleTimeout, defaultTCPIdleTimeout)
	cfg.TCPHeaderTimeout = cmp.Or(cfg.TCPHeaderTimeout, defaultTCPHeaderTimeout)
	cfg.TCPMaxConns = cmp.Or(cfg.TCPMaxConns, defaultTCPMaxConns)
	cfg.TCPMaxConnsPerAddr = cmp.Or(cfg.TCPMaxConnsPerAddr, defaultTCPMaxConnsPer)
	// sipgo's transport and transaction layers log every unparsable message at ERROR with
	// its bytes: through quietLog, a flood of junk is a few short lines.
	quiet := quietLog(cfg.Log)
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent("switchboard"), sipgo.WithUserAgentParser(newParser()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet))}
	if cfg.TLSClient == nil && cfg.TLSCAFile != "" {
		if cfg.TLSClient, err = loadTLSClient(cfg.TLSCAFile); err != nil {
			return nil, err
		}
	}
	if cfg.TLSClient != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(cfg.TLSClient))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(cfg.Log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Log, ua: ua, srv: srv, client: client, nonces: newNonces(),
		calls: newRegistry(cfg.Calls), ready: make(chan struct{}), guardLog: newLogLimit(20, 10*time.Second),
		edgeLog: newLogLimit(20, 10*time.Second),
		conns:   newConnLimits(cfg.TCPMaxConns, cfg.TCPMaxConnsPerAddr), proxyRoute: route}
	client.TxRequester = originator{s: s, tx: ua.TransactionLayer(), tp: ua.TransportLayer()}
	s.regs = newRegistrations(s)
	s.handle(sip.OPTIONS, s.onOptions)
	s.handle(sip.INVITE, s.onInvite)
	s.handle(sip.ACK, s.onAck)
	s.handle(sip.BYE, s.onBye)
	s.handle(sip.CANCEL, s.onCancel)
	s.handle(sip.INFO, s.onInfo)
	s.handle(sip.NOTIFY, s.onNotify)
	s.handle(sip.REFER, s.onRefer)
	s.handle(sip.UPDATE, s.onUpdate)
	srv.OnNoRoute(s.guard(s.onNoRoute))
	return s, nil
}

// ListenAndServe serves SIP on UDP and TCP at addr until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	pc, l, err := Listen(ctx, addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, pc, l)
}

// Listen opens the UDP socket and the TCP listener of addr, on one port. With port 0 the
// system picks the UDP port, and the TCP port of the same number may be taken: then it
// picks again, a few times.
func Listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	_, port, _ := net.SplitHostPort(addr)
	tries := 1
	if port == "0" {
		tries = 20
	}
	var err error
	for i := 0; i < tries; i++ {
		var pc net.PacketConn
		pc, err = lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("sip: listen udp %s: %w", addr, err)
		}
		var l net.Listener
		l, err = lc.Listen(ctx, "tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		_ = pc.Close()
	}
	return nil, nil, fmt.Errorf("sip: listen tcp %s: %w", addr, err)
}

// Serve serves SIP on pc (UDP), l (TCP, may be nil) and, when Config.TLS is set, tl (TLS,
// may be nil) until ctx ends; then it ends the active calls (each gets a BYE) and returns.
// It takes ownership of the listeners.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, l net.Listener, tl ...net.Listener) error {
	host, portStr, _ := net.SplitHostPort(pc.LocalAddr().String())
	port, _ := strconv.Atoi(portStr)
	if s.cfg.PublicIP != "" {
		host = s.cfg.PublicIP
	} else if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = s.ua.Hostname()
	}
	s.ctx, s.host, s.port, s.udpAddr = ctx, host, port, listenAddr(pc.LocalAddr())
	s.dialogUA = &sipgo.DialogUA{Client: s.client, ContactHDR: s.contactFor("udp", host)}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	serve := func(st *listenerState, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run()
			if err == nil && ctx.Err() == nil {
				err = errors.New("sipgo stopped serving") // its UDP loop returns nil on a read error
			}
			st.stop(err)
			errc <- err
		}()
	}
	epc := s.newEdgePacketConn(pc)
	pc = epc
	serve(epc.state, func() error { return s.srv.ServeUDP(epc) })
	if l != nil {
		el := s.newEdgeListener(l, "tcp", nil)
		l = el
		serve(el.state, func() error { return s.srv.ServeTCP(el) })
	}
	for i, t := range tl {
		if t == nil {
			continue
		}
		if s.cfg.TLS == nil {
			_ = t.Close()
			continue
		}
		if a, ok := t.Addr().(*net.TCPAddr); ok {
			s.tlsPort = a.Port
		}
		el := s.newEdgeListener(t, "tls", s.cfg.TLS)
		tl[i] = el
		serve(el.state, func() error { return s.srv.ServeTLS(el) })
	}
	// Ready once every listener is registered (/health, asked as soon as the node says it
	// serves, reports each of them) and sipgo reads the UDP socket: only then has it the
	// socket that outbound requests leave from.
	select {
	case <-epc.reading:
	case err := <-errc:
		errc <- err // the loop below reports it
	case <-ctx.Done():
	}
	close(s.ready)
	s.log.Info("sip listening", "addr", pc.LocalAddr().String())
	regsDone := make(chan struct{})
	go func() { defer close(regsDone); s.regs.run(ctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if ctx.Err() == nil {
			err = fmt.Errorf("sip: serve: %w", err)
		} else {
			err = nil
		}
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.log.Info("sip stopping: hanging up active calls", "calls", s.active.Load())
	s.wg.Wait() // calls see ctx end and hang up
	<-regsDone  // trunks unregister from the SIP socket before it closes
	_ = pc.Close()
	if l != nil {
		_ = l.Close()
	}
	for _, t := range tl {
		if t != nil {
			_ = t.Close()
		}
	}
	_ = s.ua.Close()
	wg.Wait()
	return err
}

// addListener registers a listener's state for Listeners.
func (s *Server) addListener(st *listenerState) {
	s.listenersMu.Lock()
	defer s.listenersMu.Unlock()
	s.listeners = append(s.listeners, st)
}

// Ready is closed once Serve has taken its listeners: from then on Listeners reports each of
// them and outbound calls can be placed.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Listeners reports the server's SIP listeners (UDP, TCP, TLS): whether each serves, and
// why not. Before Serve there are none.
func (s *Server) Listeners() []ListenerStatus {
	s.listenersMu.Lock()
	defer s.listenersMu.Unlock()
	now := time.Now()
	out := make([]ListenerStatus, 0, len(s.listeners))
	for _, st := range s.listeners {
		out = append(out, st.status(now))
	}
	return out
}

// contactFor is our Contact for calls over transport.
func (s *Server) contactFor(transport, host string) sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "switchboard", Host: host, Port: s.port}
	switch strings.ToLower(transport) {
	case "tcp":
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tcp")
	case "tls":
		u.Scheme, u.Port = "sips", s.tlsPort
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tls")
	}
	return sip.ContactHeader{Address: u}
}

// admit counts a new call unless the server is closing or full.
func (s *Server) admit() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.ctx.Err() != nil {
		return sip.StatusServiceUnavailable, false
	}
	if s.active.Load() >= int64(s.cfg.MaxCalls) {
		return sip.StatusServiceUnavailable, false
	}
	s.wg.Add(1)
	s.active.Add(1)
	return 0, true
}

func (s *Server) release() {
	s.active.Add(-1)
	s.wg.Done()
}

func respond(log *slog.Logger, req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		log.Warn("respond failed", "code", code, "error", err)
	}
}

// allowHeader lists the methods we take.
var allowHeader = sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY, UPDATE")

// localIP is the address we give a far end at dst for our RTP: the configured public IP, or
// the local address the kernel routes to dst from.
func (s *Server) localIP(dst netip.Addr) netip.Addr {
	if s.cfg.PublicIP != "" {
		a, _ := netip.ParseAddr(s.cfg.PublicIP)
		return a.Unmap()
	}
	dst = dst.Unmap()
	if dst.IsLoopback() {
		return dst
	}
	// A UDP "connection" sends nothing; it only asks the routing table for our address.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	defer conn.Close()
	return addrIP(conn.LocalAddr().(*net.UDPAddr).IP)
}

// Active is the number of calls being set up or carried.
func (s *Server) Active() int { return int(s.active.Load()) }
