// Package netguard owns where Switchboard may connect on a tenant's behalf. Tenants
// configure URLs that the node then calls: tools' webhooks, model providers, speech
// providers, and (to come) embedding providers. Without a guard each of these is a way into
// the node's own network: its loopback services, the cloud's metadata service at
// 169.254.169.254, the private networks behind it. Every such connection goes through a
// dialer of this package, which checks the address actually connected to (after DNS, on
// every redirect, on every new connection of a pool), so a name that resolves inward, or
// that is rebound to an inward address after it was checked, is refused too. Only the
// operator may relax the rule (the allowPrivate of the constructors, from a flag).
//
// It also holds the checks of what such a request may carry (ValidHeader).
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrPrivateAddress is a connection refused because its address is of this machine, of a
// private network, or otherwise not on the public internet.
var ErrPrivateAddress = errors.New("netguard: address is private (not on the public internet)")

// blocked are the ranges, beyond what netip.Addr's predicates name, that a tenant's request
// may not reach: shared, reserved and special-purpose space (RFC 6890 and successors), and
// the IPv6 forms that carry an IPv4 address a host or a translator would reach (NAT64,
// 6to4, Teredo, IPv4-compatible).
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated), :: and ::1 among them
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64, well-known prefix
	netip.MustParsePrefix("64:ff9b:1::/48"),  // NAT64, local use
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// Public reports whether a tenant's request may connect to ip: an address on the public
// internet, not of this machine, a private, link-local, unique-local, CGNAT or multicast
// network, nor a form of IPv6 that leads to one of those.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// testAllow, when set (only by this package's tests), lets a test's own stand-in on
// loopback count as public, so that a redirect from it can be seen refused. Nothing outside
// this package can set it: production code has no way around the rule but allowPrivate.
var testAllow func(netip.AddrPort) bool

// control is the net.Dialer Control of a guarded dialer: it runs for every connection,
// after name resolution, on the address about to be connected.
func control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
	}
	if testAllow != nil && testAllow(ap) {
		return nil
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ap.Addr())
	}
	return nil
}

// NewDialer is a dialer that, unless allowPrivate, refuses to connect to any address that
// is not Public.
func NewDialer(allowPrivate bool, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = control
	}
	return d
}

// NewTransport is an HTTP transport over NewDialer. It uses no proxy: a proxy would make the
// connection to the real target where no guard sees it.
func NewTransport(allowPrivate bool) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           NewDialer(allowPrivate, 10*time.Second).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// maxRedirects bounds the redirects a tenant's upstream may send a request through.
const maxRedirects = 5

// NewTenantClient is the HTTP client of every upstream a tenant configures: its model
// providers, its speech providers, and its embedding providers. Unless allowPrivate (the
// operator's --allow-private-providers), it connects only to public addresses, checked on
// every connection after DNS; redirects are followed (at most five, to http or https only)
// and each new connection they need is checked the same way. It has no overall timeout:
// callers bound their requests with contexts, and model streams may be long.
func NewTenantClient(allowPrivate bool) *http.Client {
	return &http.Client{Transport: NewTransport(allowPrivate), CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("netguard: stopped after %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("netguard: redirect to a %s URL", req.URL.Scheme)
	}
	return nil
}

// CheckURL refuses, before anything is stored, a URL whose host is obviously not public: an
// IP address that is not Public, or localhost. It is a courtesy to the tenant (a clear
// error at once rather than a failing call later); the dialer's check is the guard, since a
// name may resolve anywhere. It does not resolve names.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !Public(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
	}
	if ip, ok := legacyIPv4(host); ok && !Public(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
	}
	return nil
}

// legacyIPv4 reads the forms of an IPv4 address that inet_aton accepts and netip does not
// (2130706433, 0x7f000001, 0177.0.0.1, 127.1), which some resolvers still honour.
func legacyIPv4(host string) (netip.Addr, bool) {
	if host == "" || strings.Trim(host, "0123456789abcdefx.") != "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(32-8*(len(vals)-1)) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// IsPrivateAddress reports whether err is, or wraps, a connection the guard refused.
func IsPrivateAddress(err error) bool { return errors.Is(err, ErrPrivateAddress) }
