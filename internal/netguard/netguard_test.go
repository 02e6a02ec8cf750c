package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"169.254.0.1", false},
		{"100.64.0.1", false}, // CGNAT
		{"100.127.255.255", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"192.0.0.8", false},
		{"::", false},
		{"::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"febf::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped
		{"::ffff:169.254.169.254", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:8.8.8.8", true},
		{"::127.0.0.1", false},         // IPv4-compatible
		{"64:ff9b::7f00:1", false},     // NAT64 of 127.0.0.1
		{"64:ff9b::808:808", false},    // NAT64 well-known prefix, whatever it embeds
		{"64:ff9b:1::a00:1", false},    // NAT64 local use
		{"2002:7f00:1::1", false},      // 6to4
		{"2001:0:4136:e378::1", false}, // Teredo
		{"fec0::1", false},
	} {
		ip, err := netip.ParseAddr(tc.ip)
		if err != nil {
			t.Fatal(err)
		}
		if got := Public(ip); got != tc.public {
			t.Errorf("Public(%s) = %v, want %v", tc.ip, got, tc.public)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://api.openai.com/v1", true},
		{"https://api.groq.com/openai/v1", true},
		{"http://8.8.8.8/v1", true},
		{"http://internal.example/v1", true}, // a name: the dialer decides
		{"http://127.0.0.1:11434/v1", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"http://localhost:8080", false},
		{"http://LOCALHOST./", false},
		{"http://api.localhost/", false},
		{"http://[::1]:8080/", false},
		{"http://[::ffff:127.0.0.1]/", false},
		{"http://[fe80::1%25eth0]/", false},
		{"http://10.0.0.5/", false},
		{"http://100.64.1.1/", false},
		{"http://0.0.0.0:80/", false},
		{"http://2130706433/", false}, // 127.0.0.1 as one number
		{"http://0x7f000001/", false},
		{"http://0177.0.0.1/", false},
		{"http://127.1/", false},
		{"http://0xa9fea9fe/", false}, // 169.254.169.254
		{"http://1e3.example/", true},
	} {
		err := CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%s) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("CheckURL(%s) = %v, not ErrPrivateAddress", tc.url, err)
		}
	}
}

// TestTenantClientRefusesInward: the tenant client refuses loopback, metadata, link-local
// and names that resolve inward at connect time, without a byte reaching the target; with
// the operator's switch on it connects.
func TestTenantClientRefusesInward(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	strict := NewTenantClient(false)
	for _, u := range []string{
		srv.URL,
		strings.Replace(srv.URL, "127.0.0.1", "localhost", 1),
		strings.Replace(srv.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1),
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/",
		"http://[::1]:1/",
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := strict.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s: %v, want ErrPrivateAddress", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("an inward address was reached %d times", hits.Load())
	}
	allowed := NewTenantClient(true)
	defer allowed.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := allowed.Do(req)
	if err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
	resp.Body.Close()
}

// TestTenantClientRechecksRedirects: a server the guard lets through (the test's stand-in,
// counted as public through the package's test hook) redirects to loopback, to the metadata
// address and to a name resolving to loopback: each redirect is refused where it would
// connect, and its target never reached.
func TestTenantClientRechecksRedirects(t *testing.T) {
	var inward atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inward.Add(1) }))
	defer target.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
		}
	}))
	defer front.Close()
	frontAddr := netip.MustParseAddrPort(front.Listener.Addr().String())
	testAllow = func(ap netip.AddrPort) bool { return ap == frontAddr }
	defer func() { testAllow = nil }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewTenantClient(false)
	defer c.CloseIdleConnections()
	for _, to := range []string{
		target.URL + "/x",
		strings.Replace(target.URL, "127.0.0.1", "localhost", 1) + "/x",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:" + portOf(t, target) + "/x",
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, front.URL+"/?to="+to, strings.NewReader(`{}`))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("redirect to %s: %v, want ErrPrivateAddress", to, err)
		}
	}
	if inward.Load() != 0 {
		t.Fatalf("a redirect reached an inward address %d times", inward.Load())
	}
	// The hook itself works: the front answers when it does not redirect.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/?to=/done", nil)
	if resp, err := c.Do(req); err != nil {
		t.Fatalf("the allowed stand-in: %v", err)
	} else {
		resp.Body.Close()
	}
}

func portOf(t *testing.T, s *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestValidHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"Authorization", "Bearer x", true},
		{"X-Foo", "a\tb", true},
		{"X-Foo", "a\r\nX-Bar: 1", false},
		{"X-Foo", "a\rb", false},
		{"X-Foo", "a\nb", false},
		{"X-Foo", "a\x00b", false},
		{"X-Foo", "\x7f", false},
		{"", "v", false},
		{"X Foo", "v", false},
		{"X-Foo:", "v", false},
		{"X-Foo\r\n", "v", false},
		{"Ünicode", "v", false},
	} {
		if got := ValidHeader(tc.name, tc.value) == ""; got != tc.ok {
			t.Errorf("ValidHeader(%q, %q) ok = %v, want %v", tc.name, tc.value, got, tc.ok)
		}
	}
}
