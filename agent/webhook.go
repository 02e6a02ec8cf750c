package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/store"

	"github.com/switchboard-go/switchboard/telemetry"
)

// ErrPrivateAddress is a webhook whose host resolves to an address of this machine or its
// private networks, which a tool may not reach unless the server allows it: tools are
// configured by tenants, and must not become a way into the server's own network. It is
// netguard's error, so that errors.Is holds for either.
var ErrPrivateAddress = netguard.ErrPrivateAddress

// ErrBadHeader is a webhook header that could not be sent as it is (a CR or LF in its value
// would end it and start another); the store refuses such headers, and this refuses any
// that got in before it did.
var ErrBadHeader = errors.New("agent: webhook header is not valid")

// maxToolResult bounds what a webhook's answer may add to the conversation.
const maxToolResult = 64 << 10

// Webhooks runs tools by calling their HTTP webhooks.
type Webhooks struct {
	client *http.Client
}

// NewWebhooks returns a webhook runner. Unless allowPrivate, it refuses to connect to any
// address netguard does not count as public (loopback, private, link-local, CGNAT,
// multicast and their IPv6 forms), checked on the address actually dialled (after DNS), so
// a name that resolves inward is refused too.
func NewWebhooks(allowPrivate bool) *Webhooks {
	tr := netguard.NewTransport(allowPrivate)
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = 60 * time.Second
	return &Webhooks{client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could lead anywhere: the answer is the 3xx
	}}}
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
		if msg := netguard.ValidHeader(k, v); msg != "" {
			return "", fmt.Errorf("%w: %s: %s", ErrBadHeader, k, msg)
		}
		req.Header.Set(k, v)
	}
	// The tool's server sees the trace of the turn that called it; set after the tool's own
	// headers, so that a stale traceparent of theirs is not sent.
	telemetry.Inject(ctx, req.Header)
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
