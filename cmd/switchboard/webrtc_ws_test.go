package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc/rtctest"
)

// eventsSocket is a client of /api/v1/ws that sends commands and reads their replies and
// the events of its topics.
type eventsSocket struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
	next int
	// events are the event frames read while waiting for a reply.
	events []wsFrame
}

type wsFrame struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Action string          `json:"action"`
	Result json.RawMessage `json:"result"`
	Error  struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Field string `json:"field"`
		} `json:"details"`
	} `json:"error"`
	Event struct {
		Type  string         `json:"type"`
		Topic string         `json:"topic"`
		Data  map[string]any `json:"data"`
	} `json:"event"`
}

func dialEvents(t *testing.T, n *node, key string) *eventsSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws://"+n.addr+"/api/v1/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{}}, HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatalf("dial the events socket: %v", err)
	}
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	return &eventsSocket{t: t, conn: conn, ctx: ctx}
}

func (s *eventsSocket) read() wsFrame {
	s.t.Helper()
	_, raw, err := s.conn.Read(s.ctx)
	if err != nil {
		s.t.Fatalf("read the events socket: %v", err)
	}
	var f wsFrame
	if err := json.Unmarshal(raw, &f); err != nil {
		s.t.Fatalf("frame %s: %v", raw, err)
	}
	return f
}

// command sends a command with a fresh request id and returns its ack or error, keeping the
// events that come before it.
func (s *eventsSocket) command(fields map[string]any) wsFrame {
	s.t.Helper()
	s.next++
	id := "r" + strconv.Itoa(s.next)
	fields["id"] = id
	frame, _ := json.Marshal(fields)
	if err := s.conn.Write(s.ctx, websocket.MessageText, frame); err != nil {
		s.t.Fatal(err)
	}
	for {
		f := s.read()
		if f.Type == "event" {
			s.events = append(s.events, f)
			continue
		}
		if f.ID != id || (f.Type != "ack" && f.Type != "error") {
			s.t.Fatalf("%s: got a %s frame for request %q", frame, f.Type, f.ID)
		}
		return f
	}
}

// waitEvent reads until an event of that type on topic arrives.
func (s *eventsSocket) waitEvent(topic, typ string) wsFrame {
	s.t.Helper()
	for _, f := range s.events {
		if f.Event.Topic == topic && f.Event.Type == typ {
			return f
		}
	}
	for {
		f := s.read()
		if f.Type == "event" && f.Event.Topic == topic && f.Event.Type == typ {
			return f
		}
	}
}

// TestWebRTCOverWS signals a pion browser's call over the events socket instead of
// /api/v1/webrtc/sessions: the offer is answered in the ack, the end of candidates is trickled, the
// echo sends the browser's tone back, the call's events come on the same socket once it
// subscribes to call:{id}, and webrtc.hangup ends the call as the caller's hang-up. Refusals
// are error frames naming the field, as over HTTP; another tenant's call is not found and a
// read-only key may not call.
func TestWebRTCOverWS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "web")
	reader := createKey(t, env, "--name", "reader", "--scopes", "read")
	other := createKey(t, env, "--name", "other", "--tenant", "globex")
	n := startServe(t, env)

	ws := dialEvents(t, n, key)
	c, offer := newOffer(t)
	ack := ws.command(map[string]any{"type": "webrtc.offer", "destination": "echo", "sdp": offer})
	var ans struct {
		ID         string           `json:"id"`
		SDP        string           `json:"sdp"`
		ICEServers []map[string]any `json:"ice_servers"`
	}
	if ack.Type != "ack" || ack.Action != "webrtc.offer" || json.Unmarshal(ack.Result, &ans) != nil ||
		!strings.HasPrefix(ans.ID, "call_") || !strings.HasPrefix(ans.SDP, "v=0") || ans.ICEServers == nil {
		t.Fatalf("webrtc.offer: %+v %s", ack, ack.Result)
	}
	topic := "call:" + ans.ID
	if f := ws.command(map[string]any{"type": "subscribe", "topics": []string{topic}}); f.Type != "ack" {
		t.Fatalf("subscribe %s: %+v", topic, f)
	}
	if err := c.Accept(ans.SDP); err != nil {
		t.Fatal(err)
	}
	// The offer held every candidate; the end of them is trickled as a browser would.
	if f := ws.command(map[string]any{"type": "webrtc.candidate", "call_id": ans.ID, "candidate": "a=end-of-candidates"}); f.Type != "ack" {
		t.Errorf("webrtc.candidate: %+v", f)
	}
	cctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitConnected(cctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SendTone(440); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rx, _, _ := c.Packets(); rx >= 75 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the echo sent back less than 1.5 s of audio in 10 s")
		}
	}
	heard := c.Heard(time.Second)
	if f := rtctest.Frequency(heard, media.Rate48k); math.Abs(f-440) >= 22 || rtctest.RMS(heard) < 1000 {
		t.Fatalf("the echo sounds at %.0f Hz with a level of %.0f, want 440 Hz", f, rtctest.RMS(heard))
	}
	ws.waitEvent(topic, "call.answered")

	t.Run("refused", func(t *testing.T) {
		const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
		for _, tc := range []struct {
			cmd         map[string]any
			code, field string
		}{
			// An offer without audio.
			{map[string]any{"type": "webrtc.offer", "destination": "echo", "sdp": head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"}, "validation_error", "sdp"},
			{map[string]any{"type": "webrtc.offer", "destination": "echo"}, "validation_error", "sdp"},
			{map[string]any{"type": "webrtc.offer", "destination": "music", "sdp": "v=0"}, "validation_error", "destination"},
			// With call_id it is a re-offer of that call (an ICE restart), which names no target.
			{map[string]any{"type": "webrtc.offer", "destination": "echo", "sdp": "v=0", "call_id": "x"}, "validation_error", "destination"},
			{map[string]any{"type": "webrtc.offer", "agent_id": "agt_01jzzzzzzzzzzzzzzzzzzzzzzz", "sdp": "v=0"}, "not_found", ""},
			{map[string]any{"type": "webrtc.candidate", "call_id": ans.ID, "candidate": "a=candidate:nonsense"}, "validation_error", "candidate"},
			{map[string]any{"type": "webrtc.candidate", "call_id": ans.ID}, "validation_error", "candidate"},
			{map[string]any{"type": "webrtc.hangup"}, "validation_error", "call_id"},
			{map[string]any{"type": "webrtc.hangup", "call_id": "call_01jzzzzzzzzzzzzzzzzzzzzzzz"}, "not_found", ""},
		} {
			f := ws.command(tc.cmd)
			if f.Type != "error" || f.Error.Code != tc.code || tc.field != "" && (len(f.Error.Details) == 0 || f.Error.Details[0].Field != tc.field) {
				t.Errorf("%v: %+v, want %s naming %q", tc.cmd, f, tc.code, tc.field)
			}
		}
		// Another tenant's socket knows no such call; a read-only key may watch but not call.
		globex := dialEvents(t, n, other)
		for _, typ := range []string{"webrtc.hangup", "webrtc.candidate"} {
			if f := globex.command(map[string]any{"type": typ, "call_id": ans.ID, "candidate": "a=end-of-candidates"}); f.Type != "error" || f.Error.Code != "not_found" {
				t.Errorf("another tenant's %s: %+v", typ, f)
			}
		}
		ro := dialEvents(t, n, reader)
		if f := ro.command(map[string]any{"type": "webrtc.hangup", "call_id": ans.ID}); f.Type != "error" || f.Error.Code != "authorization_error" {
			t.Errorf("a read-only key's hang-up: %+v", f)
		}
	})

	if f := ws.command(map[string]any{"type": "webrtc.hangup", "call_id": ans.ID}); f.Type != "ack" || f.Action != "webrtc.hangup" {
		t.Fatalf("webrtc.hangup: %+v", f)
	}
	ev := ws.waitEvent(topic, "call.ended")
	if ev.Event.Data["id"] != ans.ID || ev.Event.Data["ended_reason"] != "caller-hangup" {
		t.Errorf("call.ended: %v", ev.Event.Data)
	}
	rec := n.waitCall(key, ans.ID, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	// From the socket's client, as a call offered over HTTP is from the request's.
	if rec["status"] != "completed" || rec["ended_reason"] != "caller-hangup" || rec["destination"] != "echo" || rec["from"] != "127.0.0.1" {
		t.Errorf("call record: %s", toJSON(rec))
	}
	if f := ws.command(map[string]any{"type": "webrtc.hangup", "call_id": ans.ID}); f.Type != "error" || f.Error.Code != "not_found" {
		t.Errorf("webrtc.hangup of an ended call: %+v", f)
	}
}
