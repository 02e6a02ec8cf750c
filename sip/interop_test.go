package sip

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

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
