package netguard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFileFetcher: a user's file is fetched within the limits, and the guard holds on the
// URL and on every redirect: a "public" server (one the test lets through) that redirects
// inward is refused before the inward server is reached. With the operator's allowance the
// same inward server serves the file.
func TestFileFetcher(t *testing.T) {
	var inward atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inward.Add(1)
		switch r.URL.Path {
		case "/big":
			w.Write(make([]byte, 2048))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/gone":
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("hello"))
		}
	}))
	defer target.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		w.Write([]byte("front"))
	}))
	defer front.Close()
	frontAddr := netip.MustParseAddrPort(front.Listener.Addr().String())
	testAllow = func(ap netip.AddrPort) bool { return ap == frontAddr }
	defer func() { testAllow = nil }()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	strict := NewFileFetcher(false, FileLimits{MaxBytes: 1024, Timeout: 500 * time.Millisecond, MaxRedirects: 2})
	if f, err := strict.Fetch(ctx, front.URL+"/"); err != nil || string(f.Data) != "front" {
		t.Fatalf("public file: %v", err)
	}
	for _, to := range []string{
		target.URL + "/x",
		front.URL + "/?to=" + target.URL + "/x",
		front.URL + "/?to=" + strings.Replace(target.URL, "127.0.0.1", "localhost", 1) + "/x",
		"http://169.254.169.254/latest/meta-data/",
		front.URL + "/?to=http://169.254.169.254/latest/meta-data/",
	} {
		if _, err := strict.Fetch(ctx, to); !IsPrivateAddress(err) {
			t.Errorf("%s: %v, want ErrPrivateAddress", to, err)
		}
	}
	if n := inward.Load(); n != 0 {
		t.Fatalf("an inward address was reached %d times", n)
	}
	// Three redirects are one too many.
	hop := front.URL + "/?to=" + front.URL + "/"
	for range 2 {
		hop = front.URL + "/?to=" + urlQuery(hop)
	}
	if _, err := strict.Fetch(ctx, hop); !errors.Is(err, ErrRedirects) {
		t.Errorf("three redirects: %v", err)
	}
	if _, err := strict.Fetch(ctx, "ftp://example.com/x"); !errors.Is(err, ErrFileURL) {
		t.Errorf("ftp: %v", err)
	}

	open := NewFileFetcher(true, FileLimits{MaxBytes: 1024, Timeout: 500 * time.Millisecond})
	f, err := open.Fetch(ctx, target.URL+"/x")
	if err != nil || string(f.Data) != "hello" || f.MediaType != "text/plain" {
		t.Fatalf("allowed private file: %+v %v", f, err)
	}
	if _, err := open.Fetch(ctx, target.URL+"/big"); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("2 KiB over 1 KiB: %v", err)
	}
	if _, err := open.Fetch(ctx, target.URL+"/gone"); !errors.Is(err, ErrFileStatus) {
		t.Errorf("404: %v", err)
	}
	if _, err := open.Fetch(ctx, target.URL+"/slow"); !errors.Is(err, ErrFileTimeout) {
		t.Errorf("slow: %v", err)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "?", "%3F", "=", "%3D").Replace(s)
}
