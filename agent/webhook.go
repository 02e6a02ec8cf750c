package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// ErrPrivateAddress is a webhook whose host resolves to an address of this machine or its
// private networks, which a tool may not reach unless the server allows it: tools are
// configured by tenants, and must not become a way into the server's own network.
var ErrPrivateAddress = errors.New("agent: webhook address is private")

// maxToolResult bounds what a webhook's answer may add to the conversation.
const maxToolResult = 64 << 10

// Webhooks runs tools by calling their HTTP webhooks.
type Webhooks struct {
	client *http.Client
}

// NewWebhooks returns a webhook runner. Unless allowPrivate, it refuses to connect to
// loopback, private, link-local and unspecified addresses, checked on the address actually
// dialled (after DNS), so a name that resolves inward is refused too.
func NewWebhooks(allowPrivate bool) *Webhooks {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsUnspecified() || ip.IsMulticast() || isCGNAT(ip) {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
			}
			return nil
		}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 60 * time.Second}
	return &Webhooks{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could lead anywhere: the answer is the 3xx
	}}}
}

// isCGNAT reports the shared address space of carrier-grade NAT (100.64.0.0/10).
func isCGNAT(ip net.IP) bool {
	v4 := ip.To4()
	return v4 != nil && v4[0] == 100 && v4[1]&0xc0 == 64
}

// Run calls the tool's webhook with the call's arguments (a JSON object: the body of a
// POST, PUT or PATCH; query parameters of a GET or DELETE) and returns the answer's body.
// A failure is returned as an error whose text the model may read.
func (w *Webhooks) Run(ctx context.Context, t *store.Tool, arguments string) (string, error) {
	if strings.TrimSpace(arguments) == "" {
		arguments = "{}"
	}
	timeout := time.Duration(t.Webhook.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := t.Webhook.Method
	if method == "" {
		method = http.MethodPost
	}
	target := t.Webhook.URL
	var body io.Reader
	switch method {
	case http.MethodGet, http.MethodDelete:
		u, err := url.Parse(target)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("arguments", arguments)
		u.RawQuery = q.Encode()
		target = u.String()
	default:
		body = strings.NewReader(arguments)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Tools/1")
	req.Header.Set("X-Switchboard-Tool", t.Name)
	for k, v := range t.Webhook.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return "", ErrPrivateAddress
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("the tool did not answer within %s", timeout)
		}
		return "", fmt.Errorf("the tool could not be reached: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxToolResult))
	if err != nil {
		return "", fmt.Errorf("the tool's answer could not be read: %w", err)
	}
	if resp.StatusCode >= 300 {
		return "", fmt.Errorf("the tool answered %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
