package sip

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/testnet"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// baresip (Debian baresip-core, installed by `make deps`) is a softphone with its own SIP
// and SRTP stacks: calling the echo with it proves the SRTP interoperates, not only that
// pion/srtp agrees with itself.

// baresipConfig writes a configuration for one call of baresip with account (its line in
// baresip's accounts file): SIP over TLS trusting ca, with cert as its own certificate when
// set (baresip then takes calls over TLS on the SIP port + 1, which it returns), SRTP
// mandatory (mediaenc=srtp-mand in the accounts, the suites baresip
// offers), PCMU, a 1 kHz sine as the microphone (ausine makes it at 48 kHz stereo only; baresip
// resamples), ALSA's null device as the speaker, and
// sndfile dumping what it hears to dir as WAV files.
func baresipConfig(t *testing.T, dir string, ca *x509.Certificate, cert *tls.Certificate, account string) (tlsPort int) {
	t.Helper()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	certLine := ""
	if cert != nil {
		key, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		pemFile := filepath.Join(dir, "cert.pem")
		b := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key})...)
		if err := os.WriteFile(pemFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		certLine = "sip_certificate\t\t" + pemFile + "\n"
	}
	port := testnet.Ports(t, 2)
	rtp := testnet.Ports(t, 4)
	cfg := fmt.Sprintf(`poll_method		epoll
sip_listen		127.0.0.1:%d
sip_cafile		%s
%scall_local_timeout	120
audio_player		alsa,null
audio_source		ausine,1000
ausrc_srate		48000
ausrc_channels		2
audio_alert		alsa,null
rtp_ports		%d-%d
rtcp_mux		no
jitter_buffer_delay	1-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			ausine.so
module			sndfile.so
module			srtp.so
module_tmp		account.so
module_app		menu.so
snd_path		%s
`, port, caFile, certLine, rtp, rtp+3, dir)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(account+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return port + 1
}

// baresip calls the echo over TLS with SRTP required on its side: the server answers
// RTP/SAVP, the call's record says srtp, both sides carried packets and none was dropped,
// and what baresip heard back, decrypted by its own SRTP stack, is its 1 kHz tone.
func TestSRTPBaresipEcho(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Skip("baresip not found (Debian baresip-core, installed by `make deps`)")
	}
	cert, pool := selfSigned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	srtpTrunk(t, st, tenant, store.TrunkSRTPRequired)
	events := newEventLog()
	s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)

	dir := t.TempDir()
	baresipConfig(t, dir, cert.Leaf, nil, "<sip:caller@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU")
	target := "sip:echo@" + s.tls // over TLS: the account's transport
	// baresip dials at start and quits after -t seconds, hanging the call up.
	cmd := exec.CommandContext(ctx, bin, "-s", "-f", dir, "-e", "/dial "+target, "-t", "6")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("baresip: %v\n%s", err, out.String())
	}
	ended := events.wait(ctx, t, call.EventEnded, func(published) bool { return true }).Data.(store.Call)
	rec := endedCall(ctx, t, events, st, tenant, ended.ID)
	if rec.MediaSecurity != "srtp" || rec.AnsweredAt == nil {
		t.Fatalf("record %s answered %v media_security %q, want an answered srtp call\n%s", rec.Status, rec.AnsweredAt, rec.MediaSecurity, out.String())
	}
	q := rec.Quality
	if q.PacketsReceived < 100 || q.PacketsSent < 100 {
		t.Errorf("packets received %d, sent %d: want over 100 each way in 6 s", q.PacketsReceived, q.PacketsSent)
	}
	heard := decodedDump(t, dir)
	checkTone(t, heard, 0.9)
	t.Logf("suite %v; baresip heard %d samples back", rec.Metadata["srtp_suite"], len(heard))
}

// decodedDump reads what baresip heard (sndfile's "-dec.wav" dump) as 8 kHz samples.
func decodedDump(t *testing.T, dir string) []int16 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*dec*.wav"))
	if len(files) != 1 {
		all, _ := os.ReadDir(dir)
		var names []string
		for _, e := range all {
			names = append(names, e.Name())
		}
		t.Fatalf("want one decoded dump in %s, have %v", dir, names)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	if w.Rate != 8000 || w.Channels != 1 {
		t.Fatalf("dump at %d Hz, %d channels; want 8000 Hz mono", w.Rate, w.Channels)
	}
	return w.Samples
}

// An outbound call through a trunk that requires SRTP reaches baresip, which answers by
// itself: the INVITE goes over TLS to sip:…;transport=tls with our RTP/SAVP offer, baresip
// answers with one of its suites, and the echo returns baresip's tone through both SRTP
// stacks; baresip hangs up with a BYE to our Contact, and the record says srtp.
func TestSRTPBaresipOutbound(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Skip("baresip not found (Debian baresip-core, installed by `make deps`)")
	}
	cert, pool := selfSigned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s := startTLSCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, cert, pool)

	dir := t.TempDir()
	port := baresipConfig(t, dir, cert.Leaf, &cert, "<sip:far@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU;answermode=auto")
	cmd := exec.CommandContext(ctx, bin, "-s", "-f", dir, "-t", "6")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-out.when("baresip is ready"):
	case err := <-exited:
		t.Fatalf("baresip exited before it was ready (%v):\n%s", err, out.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("baresip not ready:\n%s", out.String())
	}

	tr := store.NewTrunk()
	tr.Name, tr.Direction, tr.SRTP = "baresip", "outbound", store.TrunkSRTPRequired
	tr.Outbound.Address, tr.Outbound.Transport = fmt.Sprintf("127.0.0.1:%d", port), "tls"
	if err := store.Create(ctx, st, tenant, tr); err != nil {
		t.Fatal(err)
	}
	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.Destination, rec.TrunkID = tenant, "far", "echo", &tr.ID
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("baresip: %v\n%s", err, out.String())
	}
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.MediaSecurity != "srtp" || got.EndedReason != string(call.ReasonCalleeHangup) {
		t.Fatalf("record %s/%s media_security %q, want completed/callee-hangup, srtp\n%s", got.Status, got.EndedReason, got.MediaSecurity, out.String())
	}
	checkTone(t, decodedDump(t, dir), 0.9)
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// want and seen: seen is closed once the output holds want (when).
	want string
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	b.check()
	return n, err
}

// when returns a channel closed once the output holds s.
func (b *syncBuffer) when(s string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want, b.seen = s, make(chan struct{})
	b.check()
	return b.seen
}

// check closes seen once the output holds want; b.mu is held.
func (b *syncBuffer) check() {
	if b.seen != nil && b.want != "" && strings.Contains(b.b.String(), b.want) {
		close(b.seen)
		b.want = ""
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
