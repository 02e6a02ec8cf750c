package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// inviteStatus calls target over SIP and returns the final status of the INVITE; a call
// that is answered is hung up at once.
func inviteStatus(t *testing.T, target string) int {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-limits-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	dua := sipgo.DialogUA{Client: client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: "127.0.0.1"}}}
	var u sip.Uri
	if err := sip.ParseUri(target, &u); err != nil {
		t.Fatal(err)
	}
	offer := "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	dlg, err := dua.Invite(ctx, u, []byte(offer), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer dlg.Close()
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var refused *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &refused):
		return refused.Res.StatusCode
	case err != nil:
		t.Fatalf("call %s: %v", target, err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	return dlg.InviteResponse.StatusCode
}

// offerEcho posts a fresh WebRTC offer to the echo and returns the answer's status, headers
// and body.
func offerEcho(t *testing.T, n *node, key string) (int, http.Header, []byte) {
	t.Helper()
	_, offer := newOffer(t)
	body, _ := json.Marshal(map[string]any{"destination": "echo", "sdp": offer})
	return n.raw("POST", "/api/v1/webrtc/sessions", key, "application/json", body)
}

// TestCallLimits: a node with room for two calls, one per tenant, refuses a tenant's second
// call over every transport (a WebRTC offer 429 with Retry-After, SIP 486 Busy Here, a
// media-stream socket 429 before its upgrade), any call once the node is full (503 over
// HTTP with Retry-After, and over SIP), and takes calls again as they end.
func TestCallLimits(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_RATE_LIMIT=10000",
		"SWITCHBOARD_MAX_CALLS=2", "SWITCHBOARD_MAX_CALLS_PER_TENANT=1"}
	keyA := createKey(t, env, "--name", "a") // the default tenant, which SIP from loopback reaches
	keyB := createKey(t, env, "--name", "b", "--tenant", "beta")
	keyC := createKey(t, env, "--name", "c", "--tenant", "gamma")
	n := startServe(t, env)
	echo := "sip:echo@" + n.sipAddr()

	a := dialBrowser(t, n, keyA, `{"destination":"echo"}`)
	a.connect()
	status, hdr, body := offerEcho(t, n, keyA)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "limit of 1 concurrent calls") {
		t.Errorf("the tenant's second call: %d Retry-After %q %s; want 429 naming the limit", status, hdr.Get("Retry-After"), body)
	}
	if code := inviteStatus(t, echo); code != sip.StatusBusyHere {
		t.Errorf("the tenant's second call over SIP: %d, want 486 Busy Here", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+n.addr+"/api/v1/media-stream?agent=echo",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + keyA}}})
	if err == nil {
		conn.CloseNow()
		t.Error("the tenant's second call over a media stream was upgraded")
	} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the tenant's second call over a media stream: %v, want 429 before the upgrade", err)
	}

	b := dialBrowser(t, n, keyB, `{"destination":"echo"}`)
	b.connect()
	if status, hdr, body := offerEcho(t, n, keyC); status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "limit of 2 concurrent calls") {
		t.Errorf("a call to a full node: %d Retry-After %q %s; want 503 naming the limit", status, hdr.Get("Retry-After"), body)
	}
	if code := inviteStatus(t, echo); code != sip.StatusServiceUnavailable {
		t.Errorf("a call over SIP to a full node: %d, want 503", code)
	}

	// A's call ends: A calls again, over SIP; B's ends: C calls.
	if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+a.id, keyA, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if code := inviteStatus(t, echo); code != sip.StatusOK {
		t.Errorf("the tenant's call once its first ended: %d, want 200", code)
	}
	if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, keyB, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, _, body := offerEcho(t, n, keyC); status != http.StatusCreated {
		t.Errorf("a call once the node has room: %d %s", status, body)
	}
	if !strings.Contains(n.log.String(), "call refused") {
		t.Error("the refused SIP call was not logged")
	}
}
