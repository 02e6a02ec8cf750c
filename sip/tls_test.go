package sip

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/store"
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

// An outbound call over TLS trusts the authorities of Config.TLSCAFile: a far end whose
// certificate they signed takes the call; with a file of other authorities the handshake
// fails and so does the call; a file with no certificate stops New.
func TestTLSCAFile(t *testing.T) {
	cert, pool := selfSigned(t)
	other, _ := selfSigned(t)
	dir := t.TempDir()
	write := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trusted, untrusted := write("ca.pem", cert.Certificate[0]), write("other.pem", other.Certificate[0])
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{TLSCAFile: empty}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without certificates: %v", err)
	}
	for _, tc := range []struct {
		name, ca string
		answered bool
	}{{"trusted", trusted, true}, {"untrusted", untrusted, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			events := newEventLog()
			s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, TLSCAFile: tc.ca}, cert, pool)
			peer := newRTPPeer(t)
			answered := make(chan *sipgo.DialogServerSession, 1)
			far := newTLSFarEnd(t, cert, pool, answerWith(peer, answered, make(chan *sip.Request, 4)))
			tr := store.NewTrunk()
			tr.Name, tr.Direction = "pbx", "outbound"
			tr.Outbound.Address, tr.Outbound.Transport = far.addr, "tls"
			if err := store.Create(ctx, st, tenant, tr); err != nil {
				t.Fatal(err)
			}
			rec := store.NewOutboundCall()
			rec.TenantID, rec.To, rec.Destination, rec.TrunkID = tenant, "far", "tone", &tr.ID
			if err := s.Dial(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if !tc.answered {
				if got := endedCall(ctx, t, events, st, tenant, rec.ID); got.Status != store.CallFailed || got.AnsweredAt != nil {
					t.Errorf("a call to a far end no trusted authority signed: %s/%s", got.Status, got.EndedReason)
				}
				return
			}
			var d *sipgo.DialogServerSession
			select {
			case d = <-answered:
			case <-ctx.Done():
				t.Fatal("the far end's answer was not acknowledged")
			}
			defer d.Close()
			if err := d.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			if got := endedCall(ctx, t, events, st, tenant, rec.ID); got.Status != store.CallCompleted {
				t.Errorf("record %s/%s, want completed", got.Status, got.EndedReason)
			}
		})
	}
}
