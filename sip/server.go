// Package sip owns SIP signalling: a sipgo server on UDP and TCP that answers inbound calls,
// negotiates their SDP (RFC 3264) and carries their RTP to a destination. Today the only
// destination is the built-in echo.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Config configures a Server.
type Config struct {
	Log *slog.Logger
	// PublicIP is the address put in our SDP and Contact; empty means the local address the
	// caller's request came in on.
	PublicIP string
	// RTPPortMin and RTPPortMax bound the RTP ports; both zero means any free port.
	RTPPortMin, RTPPortMax int
	// AllowAll accepts calls from any address; otherwise only loopback and private
	// addresses may call and others are refused with 403.
	AllowAll bool
}

// Server answers inbound calls.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	// Set by Serve before any request is handled.
	ctx     context.Context
	dialogs *sipgo.DialogServerCache

	// calls counts calls from INVITE to teardown; once closing is set no call is added.
	mu      sync.Mutex
	closing bool
	calls   sync.WaitGroup

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
	if cfg.RTPPortMin < 0 || cfg.RTPPortMax > 65535 || cfg.RTPPortMin > cfg.RTPPortMax {
		return nil, fmt.Errorf("sip: bad RTP port range %d-%d", cfg.RTPPortMin, cfg.RTPPortMax)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard"))
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
	s := &Server{cfg: cfg, log: cfg.Log, ua: ua, srv: srv, client: client}
	srv.OnOptions(s.onOptions)
	srv.OnInvite(s.onInvite)
	srv.OnAck(s.onAck)
	srv.OnBye(s.onBye)
	srv.OnCancel(s.onCancel)
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

// Serve serves SIP on pc (UDP) and l (TCP, may be nil) until ctx ends, then ends the active
// calls and returns. It takes ownership of both.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	host, portStr, _ := net.SplitHostPort(pc.LocalAddr().String())
	port, _ := strconv.Atoi(portStr)
	if s.cfg.PublicIP != "" {
		host = s.cfg.PublicIP
	} else if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = s.ua.Hostname()
	}
	s.ctx = ctx
	s.dialogs = sipgo.NewDialogServerCache(s.client, sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: "switchboard", Host: host, Port: port},
	})

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- s.srv.ServeUDP(pc) }()
	if l != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- s.srv.ServeTCP(l) }()
	}
	s.log.Info("sip listening", "addr", pc.LocalAddr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("sip: serve: %w", err)
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.log.Info("sip stopping: hanging up active calls")
	s.calls.Wait() // calls see ctx end and hang up
	_ = pc.Close()
	if l != nil {
		_ = l.Close()
	}
	_ = s.ua.Close()
	wg.Wait()
	return err
}

func respond(log *slog.Logger, req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)); err != nil {
		log.Warn("respond failed", "code", code, "error", err)
	}
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"))
	if err := tx.Respond(res); err != nil {
		s.log.Warn("respond failed", "error", err)
	}
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	_ = s.dialogs.ReadAck(req, tx) // an ACK outside a dialog is dropped
}

func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	// The transaction layer answers a CANCEL that matches a pending INVITE (200, then 487);
	// what reaches us matched nothing.
	respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	err := s.dialogs.ReadBye(req, tx)
	switch {
	case err == nil:
	case errors.Is(err, sipgo.ErrDialogDoesNotExists), errors.Is(err, sipgo.ErrDialogOutsideDialog):
		respond(s.log, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	default:
		s.log.Warn("bye failed", "error", err)
		respond(s.log, req, tx, sip.StatusBadRequest, "Bad Request")
	}
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	log := s.log.With("call_id", req.CallID().Value(), "source", req.Source())
	s.mu.Lock()
	closing := s.closing || s.ctx.Err() != nil
	if !closing {
		s.calls.Add(1)
	}
	s.mu.Unlock()
	if closing {
		respond(log, req, tx, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	defer s.calls.Done()
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		respond(log, req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	if !s.allowed(src.Addr()) {
		log.Info("call refused", "reason", "source not allowed")
		respond(log, req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	if req.Recipient.User != "echo" {
		log.Info("call refused", "reason", "no route", "user", req.Recipient.User)
		respond(log, req, tx, sip.StatusNotFound, "Not Found")
		return
	}
	o, err := parseOffer(req.Body())
	if err != nil {
		log.Info("call refused", "reason", "sdp", "error", err)
		respond(log, req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
		return
	}
	dlg, err := s.dialogs.ReadInvite(req, tx)
	if err != nil {
		log.Warn("invite rejected", "error", err)
		respond(log, req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	defer dlg.Close()
	if err := dlg.Respond(sip.StatusTrying, "Trying", nil); err != nil {
		return
	}
	if err := dlg.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
		return
	}
	if s.ringDelay > 0 {
		select {
		case <-time.After(s.ringDelay):
		case <-dlg.Context().Done(): // CANCEL: the transaction layer sent 200 and 487
			log.Info("call ended", "reason", "canceled")
			return
		case <-s.ctx.Done():
			_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
			return
		}
	}
	ip := s.localIP(src.Addr())
	conn, err := s.listenRTP(ip)
	if err != nil {
		log.Error("rtp socket", "error", err)
		_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	answer, err := answerSDP(o, ip, port)
	if err != nil {
		_ = conn.Close()
		_ = dlg.Respond(sip.StatusInternalServerError, "Server Internal Error", nil)
		return
	}
	c := newCall(log.With("codec", o.Codec.Name(), "rtp_port", port), dlg, conn, o)
	if err := dlg.RespondSDP(answer); err != nil {
		log.Info("answer failed", "error", err) // cancelled, or the caller went away
		_ = conn.Close()
		return
	}
	c.run(s.ctx)
}

func (s *Server) allowed(a netip.Addr) bool {
	a = a.Unmap()
	return s.cfg.AllowAll || a.IsLoopback() || a.IsPrivate()
}

// localIP is the address we give a caller at src for our RTP: the configured public IP, or
// the local address the kernel routes to src from.
func (s *Server) localIP(src netip.Addr) net.IP {
	if s.cfg.PublicIP != "" {
		return net.ParseIP(s.cfg.PublicIP)
	}
	src = src.Unmap()
	if src.IsLoopback() {
		return net.IP(src.AsSlice())
	}
	// A UDP "connection" sends nothing; it only asks the routing table for our address.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 9)))
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP
}

// listenRTP opens the call's RTP socket on an even port of the configured range.
func (s *Server) listenRTP(ip net.IP) (*net.UDPConn, error) {
	network := "udp4"
	if ip.To4() == nil {
		network = "udp6"
	}
	lo, hi := s.cfg.RTPPortMin, s.cfg.RTPPortMax
	if lo == 0 && hi == 0 {
		return net.ListenUDP(network, &net.UDPAddr{})
	}
	lo += lo & 1
	n := (hi-lo)/2 + 1
	if n <= 0 {
		return nil, ErrNoPort
	}
	start := rand.IntN(n)
	for i := range n {
		p := lo + 2*((start+i)%n)
		conn, err := net.ListenUDP(network, &net.UDPAddr{Port: p})
		if err == nil {
			return conn, nil
		}
	}
	return nil, fmt.Errorf("%w in %d-%d", ErrNoPort, s.cfg.RTPPortMin, s.cfg.RTPPortMax)
}
