package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWebRTCCallsEndWithTheirKey: WebRTC calls spend for the key that started them, so
// revoking the key hangs them up, whether they were offered over HTTP or over the events
// socket, within a second, each recorded with the ended reason credential-revoked, as is
// the key's media-stream call. A call that ended before is no longer registered: the
// revocation ends the three live calls and the socket, nothing else.
func TestWebRTCCallsEndWithTheirKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000"}
	admin := createKey(t, env, "--name", "operator")
	n := startServe(t, env)
	status, created := n.call(http.MethodPost, "/api/v1/keys", admin, `{"name":"browser","scopes":["read","write"]}`)
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/keys: %d %v", status, created)
	}
	key, keyID := fmt.Sprint(created["key"]), fmt.Sprint(created["id"])

	// A call hung up before the revocation.
	gone := dialBrowser(t, n, key, `{"destination":"echo"}`)
	gone.connect()
	if status, _, body := n.raw(http.MethodDelete, "/api/v1/webrtc/sessions/"+gone.id, key, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}

	overHTTP := dialBrowser(t, n, key, `{"destination":"echo"}`)
	overHTTP.connect()
	ws := dialEvents(t, n, key)
	c, offer := newOffer(t)
	ack := ws.command(map[string]any{"type": "webrtc.offer", "destination": "echo", "sdp": offer})
	var ans struct {
		ID  string `json:"id"`
		SDP string `json:"sdp"`
	}
	if ack.Type != "ack" || json.Unmarshal(ack.Result, &ans) != nil || ans.ID == "" {
		t.Fatalf("webrtc.offer: %+v %s", ack, ack.Result)
	}
	if err := c.Accept(ans.SDP); err != nil {
		t.Fatal(err)
	}
	overWS := &browser{Client: c, t: t, n: n, id: ans.ID}
	overWS.connect()
	for _, b := range []*browser{overHTTP, overWS} {
		b.waitEvent("call.answered", 10*time.Second, nil)
	}
	stream := dialTwilio(t, n, key, "echo")
	stream.speak(tone(600, time.Second))
	stream.waitLoud(10, 10*time.Second, "the media stream's echo")

	if status, _, body := n.raw(http.MethodDelete, "/api/v1/keys/"+keyID, admin, "", nil); status != http.StatusNoContent {
		t.Fatalf("revoke the key: %d %s", status, body)
	}
	revoked := time.Now()
	for _, b := range []*browser{overHTTP, overWS} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		select {
		case <-b.Failed():
		case <-ctx.Done():
			t.Fatalf("call %s still connected 10 s after its key was revoked", b.id)
		}
		cancel()
		took := time.Since(revoked)
		t.Logf("call %s ended %v after the revocation", b.id, took)
		if took > time.Second {
			t.Errorf("call %s ended %v after its key was revoked, want within a second", b.id, took)
		}
		rec := n.waitCall(admin, b.id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
		if rec["ended_reason"] != "credential-revoked" || rec["status"] != "completed" {
			t.Errorf("call %s: status %v, ended %v; want completed, credential-revoked", b.id, rec["status"], rec["ended_reason"])
		}
	}
	var streamID string
	_, list := n.call(http.MethodGet, "/api/v1/calls?limit=100", admin, "")
	for _, it := range list["items"].([]any) {
		if c := it.(map[string]any); c["from"] == "+15551230000" {
			streamID = fmt.Sprint(c["id"])
		}
	}
	if rec := n.waitCall(admin, streamID, "ended", func(c map[string]any) bool { return c["ended_at"] != nil }); rec["ended_reason"] != "credential-revoked" {
		t.Errorf("the media-stream call: ended %v, want credential-revoked", rec["ended_reason"])
	}
	if rec := n.waitCall(admin, gone.id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil }); rec["ended_reason"] != "caller-hangup" {
		t.Errorf("the call hung up before: ended %v, want caller-hangup", rec["ended_reason"])
	}
	// Three calls and the events socket, not the call that had ended.
	n.waitLogged("credential revoked", 5*time.Second)
	for _, line := range strings.Split(n.log.String(), "\n") {
		if strings.Contains(line, "credential revoked") && strings.Contains(line, keyID) && !strings.Contains(line, "connections_closed=4") {
			t.Errorf("the revocation ended other than the three calls and the socket: %s", line)
		}
	}
}
