package main

import (
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc/rtctest"
)

// hearsEcho waits until the browser has received n more packets than from and the last
// second it heard is its own 440 Hz tone come back; it returns the packets received.
func (b *browser) hearsEcho(from int64, n int64, what string) int64 {
	b.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rx, _, _ := b.Packets()
		heard := b.Heard(time.Second)
		if rx >= from+n && math.Abs(rtctest.Frequency(heard, media.Rate48k)-440) < 22 && rtctest.RMS(heard) >= 1000 {
			return rx
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %d packets of %d more, the last second at %.0f Hz with a level of %.0f; want the 440 Hz echo",
				what, rx-from, n, rtctest.Frequency(heard, media.Rate48k), rtctest.RMS(heard))
		}
	}
}

// TestWebRTCICERestart: a browser whose network changes mid-call (its socket moves to
// another port, and what the node sends to the old one is lost) restarts ICE with a new
// offer over the signalling it called with, the HTTP session (PATCH, application/sdp), WHIP
// (PATCH, a fragment of new ICE credentials) or the events socket (webrtc.offer with the
// call's id), and hears the echo again: the node
// kept the call through the silence (its ICE disconnected, not failed) and it stays one
// call with one record, ended by the caller, whose metadata counts the restart. A bad
// re-offer is refused naming sdp and the call goes on; another tenant's is not found.
func TestWebRTCICERestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The node notices the silence after 1 s and waits 10 s more for the restart.
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000",
		"SWITCHBOARD_ICE_DISCONNECTED_TIMEOUT=1s", "SWITCHBOARD_ICE_FAILED_TIMEOUT=10s"}
	key := createKey(t, env, "--name", "web")
	other := createKey(t, env, "--name", "other", "--tenant", "globex")
	n := startServe(t, env)
	const silent = "webrtc: the browser went silent; waiting for it to come back or restart ICE"
	// moved changes the browser's network and waits until the node has noticed the silence
	// (its count'th time).
	moved := func(b *browser, count int) {
		t.Helper()
		port := b.Port()
		if err := b.Move(); err != nil {
			t.Fatal(err)
		}
		if b.Port() == port {
			t.Fatalf("the browser stayed on port %d", port)
		}
		if !n.log.until(15*time.Second, func(out string) bool { return strings.Count(out, silent) >= count }) {
			t.Fatalf("the node did not notice the browser's silence:\n%s", n.log)
		}
	}
	ended := func(id string) map[string]any {
		t.Helper()
		return n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	}

	t.Run("HTTP", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"destination":"echo"}`)
		b.connect()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		rx := b.hearsEcho(0, 50, "before the move")
		path := "/api/v1/webrtc/sessions/" + b.id

		// A re-offer that is not one is refused, and the call goes on.
		if status, _, body := n.raw("PATCH", path, key, "application/sdp", []byte("hello")); status != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"sdp"`) {
			t.Errorf("PATCH a bad offer: %d %s, want 422 naming sdp", status, body)
		}
		rx = b.hearsEcho(rx, 25, "after a refused re-offer")

		moved(b, 1)
		offer, err := b.RestartOffer()
		if err != nil {
			t.Fatal(err)
		}
		if status, _, body := n.raw("PATCH", path, other, "application/sdp", []byte(offer)); status != http.StatusNotFound {
			t.Errorf("another tenant's re-offer: %d %s", status, body)
		}
		status, h, answer := n.raw("PATCH", path, key, "application/sdp", []byte(offer))
		if status != http.StatusOK || h.Get("Content-Type") != "application/sdp" || !strings.HasPrefix(string(answer), "v=0") {
			t.Fatalf("PATCH the restart offer: %d %v %s", status, h, answer)
		}
		if err := b.Accept(string(answer)); err != nil {
			t.Fatal(err)
		}
		b.hearsEcho(rx, 50, "after the ICE restart")
		n.waitLogged("webrtc: ICE restarted by the browser", 5*time.Second)

		if status, _, body := n.raw("DELETE", path, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		if c := ended(b.id); c["status"] != "completed" || c["ended_reason"] != "caller-hangup" || c["metadata"].(map[string]any)["ice_restarts"] != 1.0 {
			t.Errorf("call record: %s", toJSON(c))
		}
	})

	t.Run("WHIP fragment", func(t *testing.T) {
		// A WHIP client (RFC 9725) restarts ICE with a fragment of its new credentials and
		// candidates, and takes the node's new ones from the 200.
		c, offer := newOffer(t)
		status, h, answer := n.raw("POST", "/api/v1/webrtc/sessions?destination=echo&token="+key, "", "application/sdp", []byte(offer))
		if status != http.StatusCreated {
			t.Fatalf("WHIP: %d %s", status, answer)
		}
		if err := c.Accept(string(answer)); err != nil {
			t.Fatal(err)
		}
		loc := h.Get("Location")
		b := &browser{Client: c, t: t, n: n, id: strings.TrimPrefix(loc, "/api/v1/webrtc/sessions/")}
		b.connect()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		rx := b.hearsEcho(0, 50, "before the move")
		// New credentials without their password are no restart.
		if status, _, body := n.raw("PATCH", loc+"?token="+key, "", "application/trickle-ice-sdpfrag", []byte("a=ice-ufrag:zzzz\r\n")); status != http.StatusBadRequest || !strings.Contains(string(body), "ice-pwd") {
			t.Errorf("PATCH a ufrag alone: %d %s, want 400 asking for a=ice-pwd", status, body)
		}
		moved(b, 2)
		frag, err := b.RestartFragment()
		if err != nil {
			t.Fatal(err)
		}
		status, h, reply := n.raw("PATCH", loc+"?token="+key, "", "application/trickle-ice-sdpfrag", []byte(frag))
		if status != http.StatusOK || h.Get("Content-Type") != "application/trickle-ice-sdpfrag" || !strings.Contains(string(reply), "a=ice-pwd:") {
			t.Fatalf("PATCH the restart fragment: %d %v %s", status, h, reply)
		}
		if err := b.AcceptFragment(string(reply)); err != nil {
			t.Fatal(err)
		}
		b.hearsEcho(rx, 50, "after the ICE restart")
		if status, _, body := n.raw("DELETE", loc+"?token="+key, "", "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		if c := ended(b.id); c["status"] != "completed" || c["ended_reason"] != "caller-hangup" || c["metadata"].(map[string]any)["ice_restarts"] != 1.0 {
			t.Errorf("call record: %s", toJSON(c))
		}
	})

	t.Run("events socket", func(t *testing.T) {
		ws := dialEvents(t, n, key)
		c, offer := newOffer(t)
		ack := ws.command(map[string]any{"type": "webrtc.offer", "destination": "echo", "sdp": offer})
		var ans struct {
			ID  string `json:"id"`
			SDP string `json:"sdp"`
		}
		if ack.Type != "ack" || json.Unmarshal(ack.Result, &ans) != nil {
			t.Fatalf("webrtc.offer: %+v", ack)
		}
		if err := c.Accept(ans.SDP); err != nil {
			t.Fatal(err)
		}
		b := &browser{Client: c, t: t, n: n, id: ans.ID}
		b.connect()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		rx := b.hearsEcho(0, 50, "before the move")
		for _, tc := range []struct {
			fields map[string]any
			code   string
			field  string
		}{
			{map[string]any{"call_id": "call_01jzzzzzzzzzzzzzzzzzzzzzzz", "sdp": offer}, "not_found", ""},
			{map[string]any{"call_id": ans.ID, "sdp": ""}, "validation_error", "sdp"},
			{map[string]any{"call_id": ans.ID, "sdp": offer, "agent_id": "agt_x"}, "validation_error", "agent_id"},
		} {
			tc.fields["type"] = "webrtc.offer"
			f := ws.command(tc.fields)
			if f.Type != "error" || f.Error.Code != tc.code || (tc.field != "" && (len(f.Error.Details) == 0 || f.Error.Details[0].Field != tc.field)) {
				t.Errorf("re-offer %v: %+v, want %s naming %q", tc.fields, f, tc.code, tc.field)
			}
		}

		moved(b, 3)
		restart, err := b.RestartOffer()
		if err != nil {
			t.Fatal(err)
		}
		ack = ws.command(map[string]any{"type": "webrtc.offer", "call_id": ans.ID, "sdp": restart})
		var re struct {
			ID  string `json:"id"`
			SDP string `json:"sdp"`
		}
		if ack.Type != "ack" || json.Unmarshal(ack.Result, &re) != nil || re.ID != ans.ID || !strings.HasPrefix(re.SDP, "v=0") {
			t.Fatalf("webrtc.offer restarting the call: %+v", ack)
		}
		if err := b.Accept(re.SDP); err != nil {
			t.Fatal(err)
		}
		b.hearsEcho(rx, 50, "after the ICE restart")
		if f := ws.command(map[string]any{"type": "webrtc.hangup", "call_id": ans.ID}); f.Type != "ack" {
			t.Fatalf("webrtc.hangup: %+v", f)
		}
		if c := ended(ans.ID); c["status"] != "completed" || c["ended_reason"] != "caller-hangup" || c["metadata"].(map[string]any)["ice_restarts"] != 1.0 {
			t.Errorf("call record: %s", toJSON(c))
		}
	})

	// Three calls, one record each: a restart is no new call.
	status, list := n.call("GET", "/api/v1/calls?direction=web", key, "")
	if ids := itemIDs(t, list); status != http.StatusOK || len(ids) != 3 {
		t.Errorf("web calls: %d %v, want the three calls", status, list)
	}
}
