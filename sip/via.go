package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// originator is the one way every request Switchboard originates leaves the node: the
// INVITE of an outbound call and its CANCEL and ACK, and the in-dialog requests of any
// call (BYE, REFER, re-INVITE). sipgo's client hands each request to it (its TxRequester)
// once the request is built, whoever built it: our own code or sipgo's dialogs.
//
// Left to itself sipgo sends a request to a peer that has never sent to the node from a
// new socket on an ephemeral port, with that socket's address (0.0.0.0 when unbound) as
// Via sent-by and no rport; behind NAT the answers go to the wrong port, and trunks that
// filter by address and port, or refuse a 0.0.0.0 sent-by, refuse the request. Stamped
// here, a request over UDP leaves from the node's SIP socket, and every request names the
// node's advertised address and listening port in its Via, with rport (RFC 3581).
type originator struct {
	s  *Server
	tx *sip.TransactionLayer
	tp *sip.TransportLayer
}

// Request stamps req and sends it: an ACK straight to the transport (it has no
// transaction), any other request in a new client transaction.
func (o originator) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	if err := o.s.stamp(ctx, req); err != nil {
		return nil, err
	}
	if req.IsAck() {
		return nil, o.tp.WriteMsg(req)
	}
	tx, err := o.tx.Request(ctx, req)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return tx, nil
}

// errNoVia is a request that reached the originator without the Via sipgo gives every
// request it builds.
var errNoVia = errors.New("sip: request without a Via")

// stamp makes req leave from the node's SIP socket, as the node: over UDP from the
// listening socket itself; over any transport with the advertised address and the
// transport's listening port as its top Via's sent-by, and rport, so that the far end
// answers where the request came from. It is idempotent: a CANCEL that copies its INVITE's
// Via keeps the INVITE's branch and sent-by.
func (s *Server) stamp(ctx context.Context, req *sip.Request) error {
	via := req.Via()
	if via == nil {
		return errNoVia
	}
	host := s.advertisedFor(ctx, req.Destination())
	via.Host = host
	// sipgo gives an in-dialog request without a Contact (a BYE) the dialogs' default one,
	// whose host is the node's fallback name when SIP listens on every address: it names
	// the advertised address instead. A call's own Contact already does, and is left as is.
	if h := req.Contact(); h != nil && h.Address.Host == s.host && host != s.host {
		h.Address.Host = host
	}
	switch strings.ToLower(req.Transport()) {
	case "udp":
		via.Port = s.port
		s.udpAddr.Copy(&req.Laddr)
	case "tcp":
		via.Port = s.port
	case "tls":
		if s.tlsPort != 0 {
			via.Port = s.tlsPort
		}
	}
	if !via.Params.Has("rport") {
		via.Params.Add("rport", "")
	}
	return nil
}

// advertised is the address the node gives a far end at dst in Via and Contact: the public
// IP when one is set, else the address SIP listens on, else (listening on every address)
// the local address the kernel routes to dst from. Never an unspecified address.
func (s *Server) advertised(dst netip.Addr) string {
	if s.cfg.PublicIP != "" {
		return s.cfg.PublicIP
	}
	if ip := s.udpAddr.IP; ip != nil && !ip.IsUnspecified() {
		return addrIP(ip).String()
	}
	if dst.IsValid() && !dst.IsUnspecified() {
		return s.localIP(dst).String()
	}
	return s.host
}

// advertisedFor is advertised for the far end at hostport (a request's destination),
// resolving a host name only when the answer depends on it.
func (s *Server) advertisedFor(ctx context.Context, hostport string) string {
	if s.cfg.PublicIP != "" || (s.udpAddr.IP != nil && !s.udpAddr.IP.IsUnspecified()) {
		return s.advertised(netip.Addr{})
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	dst, err := netip.ParseAddr(host)
	if err != nil {
		if ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host); lerr == nil && len(ips) > 0 {
			dst = ips[0]
		}
	}
	return s.advertised(dst.Unmap())
}

// listenAddr is a socket's local address as sipgo's transport keys its connections: the
// originator's UDP requests name it as their local address, and sipgo then sends them on
// the listening socket rather than a socket of their own.
func listenAddr(a net.Addr) sip.Addr {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return sip.Addr{}
	}
	return sip.Addr{IP: u.IP, Port: u.Port}
}
