package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Defaults of FileLimits.
const (
	DefaultFileMaxBytes     = 20 << 20
	DefaultFileTimeout      = 30 * time.Second
	DefaultFileMaxRedirects = 3
)

// FileLimits bound the fetch of one file a user named by URL (a runner's file_uri): its size,
// the time the whole fetch may take, and the redirects it may follow.
type FileLimits struct {
	MaxBytes     int64
	Timeout      time.Duration
	MaxRedirects int
}

func (l FileLimits) withDefaults() FileLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultFileMaxBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultFileTimeout
	}
	if l.MaxRedirects <= 0 {
		l.MaxRedirects = DefaultFileMaxRedirects
	}
	return l
}

// Errors of FileFetcher.Fetch besides ErrPrivateAddress; each says what the user can change.
var (
	ErrFileURL      = errors.New("netguard: not an absolute http or https URL")
	ErrFileTooLarge = errors.New("netguard: file is larger than allowed")
	ErrFileTimeout  = errors.New("netguard: file took too long to fetch")
	ErrFileStatus   = errors.New("netguard: file server did not answer 200")
	ErrRedirects    = errors.New("netguard: too many redirects")
)

// File is a fetched file: its bytes and the media type its server declared ("" when none).
type File struct {
	Data      []byte
	MediaType string
}

// FileFetcher fetches the files users name by URL, on the node's behalf. It is the tenant
// rule of this package applied to downloads: unless allowPrivate (the operator's
// --allow-private-files), it connects only to public addresses, checked after DNS on every
// connection and every redirect, and it bounds what a file may cost the node.
type FileFetcher struct {
	client *http.Client
	lim    FileLimits
	strict bool
}

// precheck refuses at once a URL whose host is plainly not public (CheckURL): an address
// written in one of the forms some resolvers honour (2130706433) is refused as what it
// is, not as a name that does not resolve. The dialer's check, after DNS, is the guard.
func (f *FileFetcher) precheck(u *url.URL) error {
	if testAllow != nil {
		if ap, err := netip.ParseAddrPort(u.Host); err == nil && testAllow(ap) {
			return nil
		}
	}
	return CheckURL(u.String())
}

// NewFileFetcher returns a fetcher with the limits (zero fields take the defaults).
func NewFileFetcher(allowPrivate bool, lim FileLimits) *FileFetcher {
	lim = lim.withDefaults()
	t := NewTransport(allowPrivate)
	t.MaxIdleConnsPerHost = 8
	f := &FileFetcher{lim: lim, strict: !allowPrivate}
	f.client = &http.Client{Transport: t, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > lim.MaxRedirects {
			return fmt.Errorf("%w: more than %d", ErrRedirects, lim.MaxRedirects)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: redirected to a %s URL", ErrFileURL, req.URL.Scheme)
		}
		if f.strict {
			return f.precheck(req.URL)
		}
		return nil
	}}
	return f
}

// Limits are the fetcher's limits.
func (f *FileFetcher) Limits() FileLimits { return f.lim }

// Fetch downloads the file at raw within the limits. A private address, of the URL or of a
// redirect, is ErrPrivateAddress, refused by the dialer before it connects; the other
// failures wrap the errors above.
func (f *FileFetcher) Fetch(ctx context.Context, raw string) (*File, error) {
	return f.FetchHeld(ctx, raw, nil)
}

// FetchHeld is Fetch with the bytes of the file reserved by hold before they are read: the
// whole file at once when the server says its length, in steps of holdStep as it arrives
// otherwise. An error of hold ends the fetch and is returned as it is (wrapped), so that the
// caller can bound what all of its fetches hold together.
func (f *FileFetcher) FetchHeld(ctx context.Context, raw string, hold func(n int64) error) (*File, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ErrFileURL
	}
	if f.strict {
		if err := f.precheck(u); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.lim.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, ErrFileURL
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.classify(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s", ErrFileStatus, resp.Status)
	}
	if resp.ContentLength > f.lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrFileTooLarge, resp.ContentLength, f.lim.MaxBytes)
	}
	var data []byte
	switch {
	case hold != nil && resp.ContentLength >= 0:
		// The client reads no more than the length the server gave.
		if err := hold(resp.ContentLength); err != nil {
			return nil, err
		}
		data = make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, data); err != nil {
			return nil, f.classify(ctx, err)
		}
	case hold != nil:
		data, err = io.ReadAll(&heldReader{r: io.LimitReader(resp.Body, f.lim.MaxBytes+1), hold: hold})
	default:
		data, err = io.ReadAll(io.LimitReader(resp.Body, f.lim.MaxBytes+1))
	}
	if err != nil {
		return nil, f.classify(ctx, err)
	}
	if int64(len(data)) > f.lim.MaxBytes {
		return nil, fmt.Errorf("%w: at most %d bytes", ErrFileTooLarge, f.lim.MaxBytes)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &File{Data: data, MediaType: mt}, nil
}

// holdStep is what a file of unknown length reserves at a time.
const holdStep = 64 << 10

// heldReader reserves each holdStep of r before reading it.
type heldReader struct {
	r     io.Reader
	hold  func(n int64) error
	ahead int64
}

// errHold marks an error of the caller's hold, which classify returns as it is.
type errHold struct{ err error }

func (e errHold) Error() string { return e.err.Error() }
func (e errHold) Unwrap() error { return e.err }

func (hr *heldReader) Read(p []byte) (int, error) {
	if hr.ahead == 0 {
		if err := hr.hold(holdStep); err != nil {
			return 0, errHold{err}
		}
		hr.ahead = holdStep
	}
	if int64(len(p)) > hr.ahead {
		p = p[:hr.ahead]
	}
	n, err := hr.r.Read(p)
	hr.ahead -= int64(n)
	return n, err
}

func (f *FileFetcher) classify(ctx context.Context, err error) error {
	var held errHold
	switch {
	case errors.As(err, &held):
		return held.err
	case errors.Is(err, ErrPrivateAddress), errors.Is(err, ErrRedirects), errors.Is(err, ErrFileURL):
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: more than %s", ErrFileTimeout, f.lim.Timeout)
	}
	return fmt.Errorf("netguard: fetch failed: %w", err)
}
