package sip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// With a certificate configured, SIP over TLS answers OPTIONS and carries a call to echo,
// whose 200 names a sips: Contact with transport=tls.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Log: testLog(t), TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, nil, tl) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-test"), sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer closeUA(ua)
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	target := sip.Uri{Scheme: "sips", User: "echo", Host: "127.0.0.1", Port: tl.Addr().(*net.TCPAddr).Port, UriParams: sip.NewParams()}
	target.UriParams.Add("transport", "tls")

	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	opt := sip.NewRequest(sip.OPTIONS, target)
	opt.SetTransport("TLS")
	res, err := client.Do(rctx, opt)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TLS: %v %v", res, err)
	}

	dua := sipgo.DialogUA{Client: client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sips", User: "test", Host: "127.0.0.1"}}}
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	dlg, err := dua.Invite(rctx, target, offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer dlg.Close()
	if err := dlg.WaitAnswer(rctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("INVITE over TLS: %v", err)
	}
	if c := dlg.InviteResponse.Contact(); c == nil || c.Address.Scheme != "sips" {
		t.Errorf("200 Contact %v, want a sips: URI", c)
	} else if tr, _ := c.Address.UriParams.Get("transport"); tr != "tls" {
		t.Errorf("200 Contact %v, want transport=tls", c)
	}
	if err := dlg.Ack(rctx); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Bye(rctx); err != nil {
		t.Fatalf("BYE over TLS: %v", err)
	}
}
