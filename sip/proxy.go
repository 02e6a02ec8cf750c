package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SourceHeader is the header a trusted proxy (Config.TrustedProxies) puts on an INVITE to
// say where the caller's request came from, as ip:port; the shipped Kamailio configuration
// (deploy/kamailio) sets it. From any other source it is ignored.
const SourceHeader = "X-Switchboard-Source"

// errSourceHeader is a trusted proxy's SourceHeader that does not parse.
var errSourceHeader = errors.New("sip: " + SourceHeader + " is not ip:port")

// callerSource is where an INVITE came from: the packet's source, or, when that is a
// trusted proxy and the request carries SourceHeader, the address the proxy took the
// caller's request from. proxy is the packet's source when it was a proxy's (invalid
// otherwise). A trusted proxy's header that does not parse is an error: the call cannot be
// judged by the address it came from.
func (s *Server) callerSource(req *sip.Request) (src, proxy netip.AddrPort, err error) {
	pkt, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return pkt, proxy, fmt.Errorf("source %q: %w", req.Source(), err)
	}
	pkt = netip.AddrPortFrom(pkt.Addr().Unmap(), pkt.Port())
	h := req.GetHeader(SourceHeader)
	if h == nil || !s.trusted(pkt.Addr()) {
		return pkt, proxy, nil
	}
	v := strings.TrimSpace(h.Value())
	src, err = netip.ParseAddrPort(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil {
			return pkt, proxy, fmt.Errorf("%w: %q", errSourceHeader, v)
		}
		src = netip.AddrPortFrom(a, 0)
	}
	return netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), pkt, nil
}

// trusted says whether a is one of the node's proxies.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// outboundRoute is the Route header that sends outbound INVITEs through proxy (nil when
// proxy is empty): its URI with the loose-routing flag (RFC 3261 §16.12.1.1).
func outboundRoute(proxy string) (*sip.RouteHeader, error) {
	if proxy == "" {
		return nil, nil
	}
	text := proxy
	if !strings.HasPrefix(text, "sip:") && !strings.HasPrefix(text, "sips:") {
		text = "sip:" + text
	}
	var u sip.Uri
	if err := sip.ParseUri(text, &u); err != nil || u.Host == "" || u.User != "" {
		return nil, fmt.Errorf("sip: outbound proxy %q: want a SIP URI of a host, such as sip:10.0.0.5:5060", proxy)
	}
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	u.UriParams.Add("lr", "")
	return &sip.RouteHeader{Address: u}, nil
}

// CheckOutboundProxy says whether proxy is a usable Config.OutboundProxy.
func CheckOutboundProxy(proxy string) error {
	_, err := outboundRoute(proxy)
	return err
}
