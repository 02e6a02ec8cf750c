package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipCaller is a SIP user agent on loopback that places calls and sends requests to a node.
type sipCaller struct {
	t      *testing.T
	client *sipgo.Client
	dlgs   *sipgo.DialogClientCache
}

func newSIPCaller(t *testing.T) *sipCaller {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-drain-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	c := &sipCaller{t: t, client: client,
		dlgs: sipgo.NewDialogClientCache(client, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}})}
	// The node's BYE comes back on the socket the INVITE left from.
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := c.dlgs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		}
	})
	return c
}

// answered places a call to target and returns its dialog once answered and acknowledged.
func (c *sipCaller) answered(target string) *sipgo.DialogClientSession {
	c.t.Helper()
	res, dlg := c.invite(target)
	if res.StatusCode != sip.StatusOK {
		c.t.Fatalf("call %s: %d %s, want 200", target, res.StatusCode, res.Reason)
	}
	return dlg
}

// invite places a call to target and returns its final response; an answered call is
// acknowledged and its dialog returned for the caller to hang up.
func (c *sipCaller) invite(target string) (*sip.Response, *sipgo.DialogClientSession) {
	c.t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(target, &u); err != nil {
		c.t.Fatal(err)
	}
	offer := "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	dlg, err := c.dlgs.Invite(ctx, u, []byte(offer), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		c.t.Fatal(err)
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var refused *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &refused):
		_ = dlg.Close()
		return refused.Res, nil
	case err != nil:
		c.t.Fatalf("call %s: %v", target, err)
	}
	if err := dlg.Ack(ctx); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = dlg.Close() })
	return dlg.InviteResponse, dlg
}

// options sends an OPTIONS to target, as a proxy's dispatcher probes a node.
func (c *sipCaller) options(target string) *sip.Response {
	c.t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(target, &u); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	res, err := c.client.Do(ctx, sip.NewRequest(sip.OPTIONS, u))
	if err != nil {
		c.t.Fatalf("OPTIONS %s: %v", target, err)
	}
	return res
}

// TestDrain: a node told to stop with SWITCHBOARD_DRAIN_TIMEOUT takes no new call (SIP 503
// with Retry-After, OPTIONS 503 so that a proxy's dispatcher sends elsewhere, a WebRTC offer
// 503, /health/ready 503 naming the drain) while the calls it carries go on; once they have
// ended on their own it exits 0, their records completed by the far end's hang-up.
func TestDrain(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_DRAIN_TIMEOUT=2m"}
	key := createKey(t, env, "--name", "ci")
	n := startServe(t, env)
	echo := "sip:echo@" + n.sipAddr()
	caller := newSIPCaller(t)
	if res := caller.options(echo); res.StatusCode != sip.StatusOK {
		t.Fatalf("OPTIONS before the drain: %d", res.StatusCode)
	}
	held := caller.answered(echo)
	web := dialBrowser(t, n, key, `{"destination":"echo"}`)
	web.connect()

	n.signal(syscall.SIGTERM)
	n.waitLogged("draining: taking no new calls, waiting for those up to end", 10*time.Second)
	if status, _, body := n.raw("GET", "/health/ready", "", "", nil); status != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), `"name":"draining","healthy":false`) {
		t.Errorf("/health/ready while draining: %d %s", status, body)
	}
	if res := caller.options(echo); res.StatusCode != sip.StatusServiceUnavailable || res.GetHeader("Retry-After") == nil {
		t.Errorf("OPTIONS while draining: %d, want 503 with Retry-After", res.StatusCode)
	}
	if res, _ := caller.invite(echo); res.StatusCode != sip.StatusServiceUnavailable || res.GetHeader("Retry-After") == nil {
		t.Errorf("a new SIP call while draining: %d, want 503 with Retry-After", res.StatusCode)
	}
	if status, hdr, body := offerEcho(t, n, key); status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "draining") {
		t.Errorf("a new WebRTC call while draining: %d Retry-After %q %s", status, hdr.Get("Retry-After"), body)
	}
	// The calls it carries go on: the browser speaks and hears its echo.
	if err := web.SendTone(440); err != nil {
		t.Fatal(err)
	}
	web.waitSpeech(10, 15*time.Second, "the browser's echo while the node drains")
	select {
	case <-n.exited:
		t.Fatalf("the node exited with two calls up:\n%s", n.log)
	default:
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := held.Bye(ctx); err != nil {
		t.Fatalf("BYE while draining: %v", err)
	}
	if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+web.id, key, "", nil); status != http.StatusNoContent {
		t.Fatalf("hanging the browser up while draining: %d %s", status, body)
	}
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after the drain:\n%s", code, n.log)
	}
	if !n.log.logged("drained: every call ended") {
		t.Errorf("the node did not log that its calls ended:\n%s", n.log)
	}
	if strings.Contains(n.log.String(), "drain over: ending the calls left") {
		t.Errorf("the drain ended calls it should have let end:\n%s", n.log)
	}
}

// TestDrainEndsWhatIsLeft: the calls still up when the drain timeout passes, or when a
// second signal cuts the wait short, are ended by the node (the caller gets its BYE), and
// the node exits 0.
func TestDrainEndsWhatIsLeft(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, timeout string }{{"timeout", "1s"}, {"second signal", "2m"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_DRAIN_TIMEOUT=" + tc.timeout}
			n := startServe(t, env)
			held := newSIPCaller(t).answered("sip:echo@" + n.sipAddr())
			n.signal(syscall.SIGTERM)
			n.waitLogged("draining: taking no new calls, waiting for those up to end", 10*time.Second)
			if tc.timeout == "2m" {
				n.signal(syscall.SIGINT)
			}
			select {
			case <-held.Context().Done():
			case <-time.After(30 * time.Second):
				t.Fatalf("the call left at the end of the drain got no BYE:\n%s", n.log)
			}
			if code := n.waitExit(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d:\n%s", code, n.log)
			}
			if !n.log.logged("drain over: ending the calls left") {
				t.Errorf("the node did not log that it ended the calls left:\n%s", n.log)
			}
		})
	}
}
