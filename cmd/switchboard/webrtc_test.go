package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc/rtctest"
)

// browser is a test browser calling a node over WebRTC.
type browser struct {
	*rtctest.Client
	t  *testing.T
	n  *node
	id string
}

// raw sends a request with a body of the given content type and returns status, headers and
// body.
func (n *node) raw(method, path, key, contentType string, body []byte) (int, http.Header, []byte) {
	n.t.Helper()
	req, err := http.NewRequestWithContext(n.t.Context(), method, "http://"+n.addr+path, bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// newOffer is a pion client, closed when the test ends, and its offer.
func newOffer(t *testing.T) (*rtctest.Client, string) {
	t.Helper()
	c, err := rtctest.New(rtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	return c, offer
}

// dialBrowser offers a call to target ({"agent_id":…} or {"destination":…} as JSON fields)
// and takes the answer; it does not wait for the connection.
func dialBrowser(t *testing.T, n *node, key, target string) *browser {
	t.Helper()
	c, offer := newOffer(t)
	body, _ := json.Marshal(map[string]any{"sdp": offer})
	body = append([]byte(target[:len(target)-1]+","), body[1:]...)
	status, _, raw := n.raw("POST", "/api/v1/webrtc/sessions", key, "application/json", body)
	var ans struct {
		ID         string           `json:"id"`
		SDP        string           `json:"sdp"`
		ICEServers []map[string]any `json:"ice_servers"`
	}
	if status != http.StatusCreated || json.Unmarshal(raw, &ans) != nil || !strings.HasPrefix(ans.ID, "call_") || ans.ICEServers == nil {
		t.Fatalf("POST /api/v1/webrtc/sessions: %d %s", status, raw)
	}
	if err := c.Accept(ans.SDP); err != nil {
		t.Fatal(err)
	}
	return &browser{Client: c, t: t, n: n, id: ans.ID}
}

func (b *browser) connect() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 10*time.Second)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		b.t.Fatal(err)
	}
}

// waitEvent waits for an event of the data channel of that type and returns its data.
func (b *browser) waitEvent(typ string, d time.Duration, match func(data map[string]any) bool) map[string]any {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, raw := range b.Events() {
			var ev struct {
				Type string         `json:"type"`
				Data map[string]any `json:"data"`
			}
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				b.t.Fatalf("event %q is not JSON: %v", raw, err)
			}
			if ev.Type == typ && (match == nil || match(ev.Data)) {
				return ev.Data
			}
		}
		if time.Now().After(deadline) {
			var types []string
			for _, raw := range b.Events() {
				var ev struct{ Type string }
				_ = json.Unmarshal([]byte(raw), &ev)
				types = append(types, ev.Type)
			}
			b.t.Fatalf("no %s event on the data channel within %v; got %v", typ, d, types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPackets waits at most d until ok holds of the packets received and sent, looking
// again at each packet.
func (b *browser) waitPackets(d time.Duration, what string, ok func(rx, tx int64) bool) {
	b.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := b.Changed()
		if rx, _, tx := b.Packets(); ok(rx, tx) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			rx, _, tx := b.Packets()
			b.t.Fatalf("%s: not within %v (%d packets received, %d sent)", what, d, rx, tx)
		}
	}
}

// waitQuiet waits at most d for gap without a packet received: what the node says is over
// (it sends nothing while its agent is quiet).
func (b *browser) waitQuiet(gap, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	quiet := time.NewTimer(gap)
	defer quiet.Stop()
	last, _, _ := b.Packets()
	for {
		ch := b.Changed()
		if rx, _, _ := b.Packets(); rx != last {
			last = rx
			quiet.Reset(gap)
		}
		select {
		case <-ch:
		case <-quiet.C:
			return
		case <-deadline.C:
			b.t.Fatalf("%s never ended", what)
		}
	}
}

// speechFrames counts the 20 ms frames of the last d heard that carry speech.
func (b *browser) speechFrames(d time.Duration) int {
	heard := b.Heard(d)
	spf := media.SamplesPerFrame(media.Rate48k)
	n := 0
	for i := 0; i+spf <= len(heard); i += spf {
		if rtctest.RMS(heard[i:i+spf]) > 300 {
			n++
		}
	}
	return n
}

func (b *browser) waitSpeech(frames int, d time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for b.speechFrames(10*time.Second) < frames {
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: heard %d frames of speech within %v, want %d", what, b.speechFrames(10*time.Second), d, frames)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// read48k reads a 16 kHz WAV of testdata/speech/16k at 48 kHz.
func read48k(t *testing.T, name string) []int16 {
	t.Helper()
	f, err := os.Open("../../testdata/speech/16k/" + name + ".wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.ReadWAV(f)
	if err != nil || w.Channels != 1 {
		t.Fatalf("%s: %v", name, err)
	}
	rs, err := media.NewResampler(w.Rate, media.Rate48k)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, rs.OutLen(len(w.Samples))+media.Rate48k/10)
	k, err := rs.Resample(out, w.Samples)
	if err != nil {
		t.Fatal(err)
	}
	return out[:k]
}

// TestWebRTCCalls calls a node from a pion browser over loopback: the echo destination by
// JSON and by WHIP, trickled candidates, refused offers, the demo agent's greeting as Opus,
// a conversation with a model agent (stand-ins for the model and the speech providers)
// whose events come over the data channel, a hang-up by DELETE, a browser that never
// connects and one that vanishes. Each call's record says how it ended.
func TestWebRTCCalls(t *testing.T) {
	t.Parallel()
	model := llmtest.NewOpenAI(t)
	voice := speechtest.NewOpenAI(t)
	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  - name: voice\n    kind: openai\n    base_url: "+voice.URL+"\n    api_key: sk-voice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SWITCHBOARD_DATA_DIR=" + filepath.Join(dir, "data"), "SWITCHBOARD_RATE_LIMIT=10000", "SWITCHBOARD_DEMO=true",
		"OPENAI_BASE_URL=" + model.URL, "OPENAI_API_KEY=sk-model", "SWITCHBOARD_PROVIDERS_FILE=" + providers,
		"SWITCHBOARD_ICE_SERVERS=stun:stun.example.com:3478", "SWITCHBOARD_ICE_CONNECT_TIMEOUT=2s",
		"SWITCHBOARD_ICE_DISCONNECTED_TIMEOUT=1s", "SWITCHBOARD_ICE_FAILED_TIMEOUT=1s"}
	key := createKey(t, env, "--name", "web")
	other := createKey(t, env, "--name", "other", "--tenant", "globex")
	n := startServe(t, env)
	n.waitLogged("demo agent created: call sip:demo@ this node", 10*time.Second)

	ended := func(id string) map[string]any {
		t.Helper()
		return n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	}

	t.Run("config", func(t *testing.T) {
		status, cfg := n.call("GET", "/api/v1/webrtc/config?token="+key, "", "")
		if status != http.StatusOK || !strings.Contains(toJSON(cfg), "stun:stun.example.com:3478") {
			t.Fatalf("config: %d %v", status, cfg)
		}
	})

	t.Run("echo", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"destination":"echo"}`)
		b.connect()
		if err := b.SendTone(440); err != nil {
			t.Fatal(err)
		}
		// A second and a half of the echo: the tone comes back half a second late.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if rx, _, _ := b.Packets(); rx >= 75 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the echo sent back less than 1.5 s of audio in 10 s")
			}
		}
		// A second of the echo, clean. On a busy machine a stall of either end leaves a gap
		// in the last second heard, concealed as a jitter buffer does; the tone is judged
		// again until a second without one, for up to 10 s.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			heard := b.Heard(time.Second)
			f := rtctest.Frequency(heard, media.Rate48k)
			if math.Abs(f-440) < 22 && rtctest.RMS(heard) >= 1000 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the echo sounds at %.0f Hz with a level of %.0f, want 440 Hz", f, rtctest.RMS(heard))
			}
		}
		// Loopback loses nothing on a quiet machine; a starved one can drop a datagram or two
		// from a full socket buffer, which is not what this test is about.
		if rx, lost, _ := b.Packets(); lost > rx/20 {
			t.Errorf("%d packets of the echo lost of %d", lost, rx)
		}
		b.waitEvent("call.answered", 5*time.Second, nil)
		// Another tenant knows no such session.
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, other, "", nil); status != http.StatusNotFound {
			t.Errorf("another tenant's DELETE: %d %s", status, body)
		}
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		b.waitEvent("call.ended", 5*time.Second, nil)
		c := ended(b.id)
		q, _ := c["quality"].(map[string]any)
		if c["status"] != "completed" || c["ended_reason"] != "caller-hangup" || c["direction"] != "web" || c["destination"] != "echo" ||
			c["codec"] != "opus" || q["packets_received"].(float64) < 75 || q["packets_sent"].(float64) < 60 {
			t.Errorf("call record: %s", toJSON(c))
		}
		if status, _, _ := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNotFound {
			t.Errorf("DELETE of an ended session: %d", status)
		}
	})

	t.Run("WHIP and trickle", func(t *testing.T) {
		c, err := rtctest.New(rtctest.Options{NoEvents: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		offer, cands, err := c.OfferTrickle()
		if err != nil {
			t.Fatal(err)
		}
		status, h, answer := n.raw("POST", "/api/v1/webrtc/sessions?destination=echo&token="+key, "", "application/sdp", []byte(offer))
		loc := h.Get("Location")
		if status != http.StatusCreated || h.Get("Content-Type") != "application/sdp" || !strings.HasPrefix(loc, "/api/v1/webrtc/sessions/call_") ||
			!strings.HasPrefix(string(answer), "v=0") || h.Get("Link") != `<stun:stun.example.com:3478>; rel="ice-server"` {
			t.Fatalf("WHIP: %d %v %s", status, h, answer)
		}
		if err := c.Accept(string(answer)); err != nil {
			t.Fatal(err)
		}
		var frag strings.Builder
		for line := range cands {
			frag.WriteString(line + "\r\n")
		}
		if status, _, body := n.raw("PATCH", loc+"?token="+key, "", "application/trickle-ice-sdpfrag", []byte(frag.String())); status != http.StatusNoContent {
			t.Fatalf("PATCH %q: %d %s", frag.String(), status, body)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			ct, body string
			key      string
			want     int
		}{
			{"application/trickle-ice-sdpfrag", "a=candidate:nonsense\r\n", key, http.StatusBadRequest},
			{"application/trickle-ice-sdpfrag", "hello", key, http.StatusBadRequest},
			{"application/json", `{}`, key, http.StatusUnsupportedMediaType},
			{"application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", other, http.StatusNotFound},
			{"application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", key, http.StatusNoContent},
		} {
			status, _, body := n.raw("PATCH", loc, tc.key, tc.ct, []byte(tc.body))
			if status != tc.want || (tc.want == http.StatusBadRequest && !strings.Contains(string(body), "line 1")) {
				t.Errorf("PATCH %s %q: %d %s, want %d", tc.ct, tc.body, status, body, tc.want)
			}
		}
		if status, _, body := n.raw("DELETE", loc+"?token="+key, "", "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		if c := ended(strings.TrimPrefix(loc, "/api/v1/webrtc/sessions/")); c["ended_reason"] != "caller-hangup" {
			t.Errorf("call record: %s", toJSON(c))
		}
	})

	t.Run("refused", func(t *testing.T) {
		const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
		for _, tc := range []struct {
			body   string
			status int
			field  string
		}{
			{`{"destination":"echo","sdp":"` + strings.ReplaceAll(head, "\r\n", `\r\n`) + `m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"}`, 422, "sdp"},
			{`{"destination":"echo","sdp":"` + strings.ReplaceAll(head, "\r\n", `\r\n`) + `m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"}`, 422, "sdp"},
			{`{"destination":"echo","sdp":"hello"}`, 422, "sdp"},
			{`{"destination":"music","sdp":"v=0"}`, 422, "destination"},
			{`{"agent_id":"agt_01jzzzzzzzzzzzzzzzzzzzzzzz","sdp":"v=0"}`, 404, ""},
			{`{"destination":"echo"}`, 422, "sdp"},
		} {
			status, _, raw := n.raw("POST", "/api/v1/webrtc/sessions", key, "application/json", []byte(tc.body))
			if status != tc.status || !strings.Contains(string(raw), `"field":"`+tc.field) && tc.field != "" {
				t.Errorf("POST %s: %d %s, want %d naming %s", tc.body, status, raw, tc.status, tc.field)
			}
		}
	})

	t.Run("ICE never connects", func(t *testing.T) {
		_, offer := newOffer(t)
		status, h, _ := n.raw("POST", "/api/v1/webrtc/sessions?destination=tone", key, "application/sdp", []byte(offer))
		if status != http.StatusCreated {
			t.Fatalf("WHIP: %d", status)
		}
		// The browser never takes the answer.
		rec := ended(strings.TrimPrefix(h.Get("Location"), "/api/v1/webrtc/sessions/"))
		if rec["status"] != "failed" || rec["ended_reason"] != "ice-failed" || rec["answered_at"] != nil {
			t.Errorf("call record: %s", toJSON(rec))
		}
	})

	t.Run("hung up through the calls API while ringing", func(t *testing.T) {
		// The rule of every transport: a call hung up before it was answered was canceled.
		_, offer := newOffer(t)
		status, h, _ := n.raw("POST", "/api/v1/webrtc/sessions?destination=tone", key, "application/sdp", []byte(offer))
		if status != http.StatusCreated {
			t.Fatalf("WHIP: %d", status)
		}
		id := strings.TrimPrefix(h.Get("Location"), "/api/v1/webrtc/sessions/")
		status, rec := n.call("POST", "/api/v1/calls/"+id+"/hangup", key, "")
		if status != http.StatusOK || rec["ended_reason"] != "api-hangup" || rec["status"] != "canceled" || rec["answered_at"] != nil {
			t.Errorf("hangup: %d %s", status, toJSON(rec))
		}
	})

	t.Run("hung up through the calls API", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"destination":"echo"}`)
		b.connect()
		// The browser can see its side connected before the node sees its own; the call is
		// answered when the node's side connects.
		n.waitCall(key, b.id, "answered", func(c map[string]any) bool { return c["answered_at"] != nil })
		if status, body := n.call("POST", "/api/v1/calls/"+b.id+"/transfer", key, `{"to":"+15550002"}`); status != http.StatusConflict {
			t.Errorf("transfer of a web call: %d %v", status, body)
		}
		status, rec := n.call("POST", "/api/v1/calls/"+b.id+"/hangup", key, "")
		if status != http.StatusOK || rec["ended_reason"] != "api-hangup" || rec["status"] != "completed" {
			t.Errorf("hangup: %d %s", status, toJSON(rec))
		}
		select {
		case <-b.Failed():
		case <-time.After(5 * time.Second):
			t.Error("the browser was not hung up")
		}
	})

	t.Run("browser vanishes", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"destination":"tone"}`)
		b.connect()
		b.waitSpeech(25, 5*time.Second, "tone")
		b.Vanish()
		start := time.Now()
		rec := ended(b.id)
		if rec["status"] != "completed" || rec["ended_reason"] != "peer-disconnected" {
			t.Errorf("call record: %s", toJSON(rec))
		}
		if d := time.Since(start); d > 6*time.Second {
			t.Errorf("the call ended %v after the browser vanished", d)
		}
	})

	t.Run("demo agent", func(t *testing.T) {
		status, list := n.call("GET", "/api/v1/agents", key, "")
		var agentID string
		for _, it := range list["items"].([]any) {
			if a := it.(map[string]any); a["name"] == "Demo receptionist" {
				agentID = a["id"].(string)
			}
		}
		if status != http.StatusOK || agentID == "" {
			t.Fatalf("no demo agent: %d %v", status, list)
		}
		b := dialBrowser(t, n, key, `{"agent_id":"`+agentID+`"}`)
		b.connect()
		b.waitSpeech(50, 15*time.Second, "the demo agent's greeting")
		b.waitEvent("call.agent_speech", 10*time.Second, nil)
		b.Close() // the browser closes its connection: the node hears of it by DTLS
		rec := ended(b.id)
		if rec["status"] != "completed" || rec["ended_reason"] != "peer-disconnected" || rec["agent_id"] != agentID {
			t.Errorf("call record: %s", toJSON(rec))
		}
		if r, _ := rec["report"].(map[string]any); r == nil || r["ended_reason"] != "peer-disconnected" {
			t.Errorf("report: %v", rec["report"])
		}
	})

	t.Run("model agent", func(t *testing.T) {
		status, ag := n.call("POST", "/api/v1/agents", key, `{"name":"Orders","model":"openai/gpt-test","instructions":"You answer questions about orders.",`+
			`"first_message":"Hello, how can I help?","transcriber":{"provider":"voice","model":"whisper-1"},"voice":{"provider":"espeak","voice":"en-us","speed":1}}`)
		if status != http.StatusCreated {
			t.Fatalf("POST agent: %d %v", status, ag)
		}
		var mu sync.Mutex
		current := ""
		voice.Respond(func(r speechtest.TranscriptionRequest) speechtest.Transcript {
			mu.Lock()
			defer mu.Unlock()
			return speechtest.Transcript{Text: current}
		})
		model.Enqueue(llmtest.Reply{Text: "Your order has shipped. It arrives tomorrow."})
		b := dialBrowser(t, n, key, `{"agent_id":"`+ag["id"].(string)+`"}`)
		b.connect()
		b.waitSpeech(25, 15*time.Second, "greeting")
		time.Sleep(time.Second) // the greeting is over
		before := len(voice.Transcriptions())
		mu.Lock()
		current = "Where is my order?"
		mu.Unlock()
		if err := b.SendPCM(read48k(t, "where_is_my_order")); err != nil {
			t.Fatal(err)
		}
		b.waitEvent("call.transcript", 20*time.Second, func(d map[string]any) bool { return d["text"] == "Where is my order?" })
		b.waitEvent("call.agent_speech", 20*time.Second, func(d map[string]any) bool {
			return strings.Contains(toJSON(d), "shipped")
		})
		trs := voice.Transcriptions()
		if len(trs) <= before || trs[len(trs)-1].Seconds() < 1 {
			t.Errorf("the transcriber got %d requests, the last of %.2f s; want the caller's words as audio", len(trs)-before, trs[len(trs)-1].Seconds())
		}
		sawTranscript := false
		for _, r := range model.Requests() {
			sawTranscript = sawTranscript || strings.Contains(string(r.Body), "Where is my order?")
		}
		if !sawTranscript {
			t.Error("the model never saw the caller's words")
		}
		if status, _, body := n.raw("DELETE", "/api/v1/webrtc/sessions/"+b.id, key, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", status, body)
		}
		b.waitEvent("call.ended", 5*time.Second, nil)
		rec := ended(b.id)
		if rec["status"] != "completed" || rec["ended_reason"] != "caller-hangup" {
			t.Errorf("call record: %s", toJSON(rec))
		}
		_, tr := n.call("GET", "/api/v1/calls/"+b.id+"/transcript", key, "")
		if !strings.Contains(toJSON(tr), "Where is my order?") {
			t.Errorf("transcript: %s", toJSON(tr))
		}
	})

	// Last: the node stops with a browser on the line; the call ends as shutdown and the
	// browser is hung up before the process exits.
	t.Run("shutdown", func(t *testing.T) {
		b := dialBrowser(t, n, key, `{"destination":"echo"}`)
		b.connect()
		n.signal(syscall.SIGTERM)
		select {
		case <-b.Failed():
		case <-time.After(10 * time.Second):
			t.Error("the browser was not hung up at shutdown")
		}
		if code := n.waitExit(30 * time.Second); code != 0 {
			t.Errorf("exit code %d", code)
		}
		ok := false
		for _, line := range strings.Split(n.log.String(), "\n") {
			ok = ok || strings.Contains(line, `msg="call ended"`) && strings.Contains(line, "call_id="+b.id) && strings.Contains(line, "reason=shutdown")
		}
		if !ok {
			t.Errorf("the call's end as shutdown is not logged:\n%s", n.log)
		}
	})
}
