package sip

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/store"
)

// The interop cases other servers' users keep reporting, each played by SIPp against an
// in-process server (see sipp_test.go).

// sippMessages is SIPp's message trace of the run: what it sent and received.
func sippMessages(t *testing.T, r *sippRun) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.dir, "*_messages.log"))
	var all string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all += string(b)
	}
	return all
}

// TestSIPpDigestURIWithoutUser: SIPp answers a trunk's challenge with its own digest,
// whose uri names our host and port without the user the INVITE dialled; a uri naming our
// host and port is the request's target all the same, and the call is taken.
func TestSIPpDigestURIWithoutUser(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	other, err := st.EnsureTenant(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	newInboundTrunk(t, st, tenant, func(tr *store.Trunk) { tr.Inbound.Username, tr.Inbound.Password = "pbx", "s3cret-pw" })
	routeNumber(t, st, tenant, "support", "echo")
	logs := &logBuffer{t: t}
	_, addr := serveForSIPp(t, Config{Log: logs.logger(), Store: st, DefaultTenantID: other.ID})

	r := newSIPp(t, "uac_digest.xml", addr, 30*time.Second, "-s", "support", "-m", "1", "-l", "1", "-au", "pbx", "-ap", "s3cret-pw")
	r.run()
	msgs := sippMessages(t, r)
	if !regexp.MustCompile(`Authorization: Digest .*uri="sip:127\.0\.0\.1:\d+"`).MatchString(msgs) {
		t.Errorf("SIPp's digest uri is not host and port alone; the case is not exercised:\n%s", lastBytes([]byte(msgs), 3000))
	}
	if _, lines := logs.waitFor(`msg="call ended"`, 1, 5*time.Second); len(lines) != 1 {
		t.Fatalf("want one call ended; got %q", lines)
	}
}

// TestSIPpTelephoneEventFirst: an offer listing telephone-event before its audio codec is
// answered in the audio codec (uac_event_first.xml checks the answer), and the call runs on
// PCMU.
func TestSIPpTelephoneEventFirst(t *testing.T) {
	verifyNoLeaks(t)
	logs := &logBuffer{t: t}
	addr := startServer(t, Config{Log: logs.logger()})
	r := newSIPp(t, "uac_event_first.xml", addr, 30*time.Second, "-s", "echo", "-m", "1", "-l", "1")
	r.run()
	log, lines := logs.waitFor(`msg="call ended"`, 1, 5*time.Second)
	if len(lines) != 1 || !regexp.MustCompile(`msg="call answered".*codec=PCMU`).MatchString(log) {
		t.Fatalf("want one call answered in PCMU; got %q", lines)
	}
}

// TestSIPpStaleReInvite: a re-INVITE that changes the codec and keeps the o= version of the
// first offer is answered in the new codec (uac_reinvite_stale.xml checks it), with our
// o= version raised, as RFC 3264 §8 asks of a changed description.
func TestSIPpStaleReInvite(t *testing.T) {
	verifyNoLeaks(t)
	logs := &logBuffer{t: t}
	addr := startServer(t, Config{Log: logs.logger()})
	r := newSIPp(t, "uac_reinvite_stale.xml", addr, 30*time.Second, "-s", "echo", "-m", "1", "-l", "1")
	r.run()
	log, _ := logs.waitFor(`msg="call ended"`, 1, 5*time.Second)
	if !regexp.MustCompile(`msg=re-INVITE .*changed=true`).MatchString(log) {
		t.Errorf("server log lacks the re-INVITE's change of codec")
	}
	// Our o= line in each 200 OK SIPp received, in order.
	var versions []string
	for _, m := range regexp.MustCompile(`(?s)SIP/2\.0 200 OK.*?o=\S+ \d+ (\d+) IN`).FindAllStringSubmatch(sippMessages(t, r), -1) {
		versions = append(versions, m[1])
	}
	if len(versions) < 2 || versions[0] == versions[1] {
		t.Errorf("our o= versions in the two answers %v, want the second raised", versions)
	}
}

// TestSIPpReferThroughProxy: a call that came through record-routing proxies is
// transferred; the REFER and the BYE that ends the transferred call follow the route set
// (uac_refer_proxy.xml checks their Request-URI and Route headers, and only the first route
// reaches SIPp), and the NOTIFY reporting the new call answered ends the call transferred.
func TestSIPpReferThroughProxy(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	logs := &logBuffer{t: t}
	s, addr := serveForSIPp(t, Config{Log: logs.logger(), Store: st, DefaultTenantID: tenant, Events: events})

	r := newSIPp(t, "uac_refer_proxy.xml", addr, 30*time.Second, "-s", "echo", "-m", "1", "-l", "1")
	r.start(false)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(sippMessages(t, r))
		}
	})
	answered := events.wait(ctx, t, call.EventAnswered, func(published) bool { return true })
	id := answered.Data.(store.Call).ID
	if err := s.Transfer(ctx, tenant, id, "sip:desk@pbx.example.com"); err != nil {
		t.Fatalf("transfer: %v\n%s", err, r.report())
	}
	r.wait()
	if got := endedCall(ctx, t, events, st, tenant, id); got.EndedReason != string(call.ReasonTransferred) {
		t.Errorf("call ended %s, want transferred", got.EndedReason)
	}
}

// TestSIPpOutboundReferThroughProxy: an outbound call answered through record-routing
// proxies is transferred; its ACK, REFER and BYE follow the reversed route set
// (uas_refer_proxy.xml checks them), and the NOTIFY reporting the new call answered ends the
// call transferred.
func TestSIPpOutboundReferThroughProxy(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := newEventLog()
	logs := &logBuffer{t: t}
	s, _ := serveForSIPp(t, Config{Log: logs.logger(), Events: events})

	r := newSIPp(t, "uas_refer_proxy.xml", "", 30*time.Second, "-m", "1")
	r.start(true)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(sippMessages(t, r))
		}
	})
	rec := &store.Call{To: fmt.Sprintf("sip:service@127.0.0.1:%d", r.port), Destination: "echo",
		TimeoutSeconds: 10, Direction: store.CallOutbound}
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatalf("dial: %v", err)
	}
	events.wait(ctx, t, call.EventAnswered, onTopic(rec.ID))
	if err := s.Transfer(ctx, rec.TenantID, rec.ID, "sip:desk@pbx.example.com"); err != nil {
		t.Fatalf("transfer: %v\n%s", err, r.report())
	}
	r.wait()
	ended := events.wait(ctx, t, call.EventEnded, onTopic(rec.ID)).Data.(store.Call)
	if ended.EndedReason != string(call.ReasonTransferred) {
		t.Errorf("call ended %s, want transferred", ended.EndedReason)
	}
}
