package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A node's SIP TLS certificate is read from its PEM files; naming none serves no TLS, and
// a file that cannot be read is refused, named as the SIP TLS certificate.
func TestLoadTLS(t *testing.T) {
	t.Parallel()
	if cfg, err := LoadTLS("", ""); cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v; want nil, nil", cfg, err)
	}
	dir := t.TempDir()
	if _, err := LoadTLS(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "SIP TLS certificate") {
		t.Fatalf("missing files: %v; want an error naming the SIP TLS certificate", err)
	}
	cert, _ := selfSigned(t)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 || cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("config %+v: want the certificate, TLS 1.2 at least", cfg)
	}
}

// Start returns once SIP serves (an OPTIONS over UDP is answered at once) on every
// listener, TLS's too; Stop stops it and may be called again; an address taken is refused.
func TestStart(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cert, _ := selfSigned(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := s.Start(ctx, "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	ua := newTestUA(t)
	res, err := ua.client.Do(ctx, sip.NewRequest(sip.OPTIONS, uri(t, "echo", serving.Addr().String())))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v, %v; want 200", res, err)
	}
	// The same address again is taken: refused, and nothing left serving.
	again, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Start(ctx, serving.Addr().String(), ""); err == nil {
		t.Fatal("Start on a taken address: no error")
	}
	serving.Stop()
	serving.Stop()

	// With TLS, the TLS address is listened on as well; a taken one is refused by name.
	withTLS, err := New(Config{Log: testLog(t), TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := withTLS.Start(ctx, "127.0.0.1:0", taken.Addr().String()); err == nil || !strings.Contains(err.Error(), "listen tls") {
		t.Fatalf("Start with its TLS address taken: %v; want a listen tls error", err)
	}
	serving, err = withTLS.Start(ctx, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving.Stop()
}
