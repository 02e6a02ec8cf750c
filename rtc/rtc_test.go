package rtc_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	callpkg "github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/testnet"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/rtc/rtctest"
)

func testLog() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newWebRTC(t testing.TB, cfg rtc.Config) *rtc.Engine {
	t.Helper()
	cfg.Log = testLog()
	w, err := rtc.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// call connects a test browser to a new peer of w.
func call(t testing.TB, ctx context.Context, w *rtc.Engine, opts rtctest.Options) (*rtctest.Client, *rtc.Peer) {
	t.Helper()
	c, err := rtctest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := c.Offer()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	p, err := w.Answer(ctx, offer, nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if !strings.Contains(p.Answer(), "a=candidate:") {
		t.Errorf("the answer carries no candidate:\n%s", p.Answer())
	}
	if err := c.Accept(p.Answer()); err != nil {
		c.Close()
		p.Hangup("test")
		t.Fatal(err)
	}
	return c, p
}

// echo plays back what the peer hears, as the echo destination does, until it ends.
func echo(p *rtc.Peer) {
	f := media.Frame{Samples: make([]int16, media.SamplesPerFrame(p.SampleRate()))}
	for p.ReadFrame(&f) == nil {
		if p.WriteFrame(&f) != nil {
			return
		}
	}
}

// TestWebRTCPeerEcho: a browser offers, the node answers with its candidates, ICE and
// DTLS connect on loopback, a 440 Hz tone sent as Opus comes back as a 440 Hz tone, the
// events reach the data channel, and a hang-up closes the browser's side.
func TestWebRTCPeerEcho(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWebRTC(t, rtc.Config{})
	c, p := call(t, ctx, w, rtctest.Options{})
	defer c.Close()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Connected():
	case <-ctx.Done():
		t.Fatal("the node's side did not connect")
	}
	p.SendEvent("call.transcript", map[string]any{"role": "user", "text": "hello"})
	done := make(chan struct{})
	go func() { defer close(done); echo(p) }()
	if err := c.SendTone(440); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	heard := c.Heard(time.Second)
	if f := rtctest.Frequency(heard, media.Rate48k); math.Abs(f-440) > 440*0.05 {
		t.Errorf("heard %.0f Hz, want 440 Hz", f)
	}
	if rms := rtctest.RMS(heard); rms < 1000 {
		t.Errorf("heard a level of %.0f", rms)
	}
	ev := waitEvent(t, c, "call.transcript")
	if ev["data"].(map[string]any)["text"] != "hello" {
		t.Errorf("event %v", ev)
	}
	p.SendEvent("call.ended", map[string]any{"ended_reason": "caller-hangup"})
	_ = p.Close()
	p.Hangup("caller-hangup")
	<-done
	waitEvent(t, c, "call.ended")
	select {
	case <-c.Failed():
	case <-time.After(5 * time.Second):
		t.Error("the browser was not told of the hang-up")
	}
	q := p.Quality()
	if q.PacketsReceived < 50 || q.PacketsSent < 50 || q.LossPercent > 1 {
		t.Errorf("quality %+v", q)
	}
	if p.Reason() != "closed" {
		t.Errorf("reason %q", p.Reason())
	}
}

func waitEvent(t *testing.T, c *rtctest.Client, typ string) map[string]any {
	t.Helper()
	deadline := time.After(15 * time.Second) // a data channel opens late on a busy machine
	seen := 0
	for {
		evs := c.Events()
		for _, raw := range evs[seen:] {
			var ev map[string]any
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				t.Fatalf("event %q: %v", raw, err)
			}
			if ev["type"] == typ {
				return ev
			}
		}
		seen = len(evs)
		select {
		case <-deadline:
			t.Fatalf("no %s event; got %v", typ, evs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestWebRTCOfferRefused: offers the node cannot answer are refused with the reason.
func TestWebRTCOfferRefused(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	w := newWebRTC(t, rtc.Config{})
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for _, tc := range []struct{ name, sdp, want string }{
		{"empty", "", "empty"},
		{"not SDP", "hello", "not SDP"},
		{"no audio", head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n", "no audio"},
		{"data only", head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n", "no audio"},
		{"no opus", head + "m=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "Opus"},
		{"opus without ice", head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := w.Answer(context.Background(), tc.sdp, nil)
			if err == nil {
				p.Hangup("test")
				t.Fatal("answered")
			}
			var oe *rtc.OfferError
			if !errors.As(err, &oe) || !errors.Is(err, rtc.ErrOffer) {
				t.Fatalf("error %v is not an OfferError", err)
			}
			if !strings.Contains(oe.Reason, tc.want) {
				t.Errorf("reason %q, want it to say %q", oe.Reason, tc.want)
			}
		})
	}
}

// TestWebRTCTrickle: a browser that offers without candidates and trickles them connects.
func TestWebRTCTrickle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWebRTC(t, rtc.Config{})
	c, err := rtctest.New(rtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offer, cands, err := c.OfferTrickle()
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Answer(ctx, offer, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Hangup("test")
	if err := c.Accept(p.Answer()); err != nil {
		t.Fatal(err)
	}
	var frag strings.Builder
	frag.WriteString("a=ice-ufrag:" + ufrag(offer) + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n")
	for line := range cands {
		frag.WriteString(line + "\r\n")
	}
	if _, err := p.AddICECandidates(ctx, []byte(frag.String())); err != nil {
		t.Fatalf("fragment %q: %v", frag.String(), err)
	}
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Connected():
	case <-ctx.Done():
		t.Fatal("the node's side did not connect")
	}

	for _, tc := range []struct{ name, frag, want string }{
		{"empty", "", "no a=candidate"},
		{"junk", "hello\r\n", "line 1"},
		{"bad candidate", "a=candidate:1 1 udp nope\r\n", "line 1"},
		{"other session", "a=ice-ufrag:zzzz\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n", "ice-ufrag"},
	} {
		_, err := p.AddICECandidates(ctx, []byte(tc.frag))
		if !errors.Is(err, rtc.ErrCandidate) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an ErrCandidate saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := p.AddICECandidates(ctx, []byte("a=end-of-candidates\r\n")); err != nil {
		t.Errorf("end of candidates: %v", err)
	}
}

func ufrag(sdp string) string {
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

// TestWebRTCICETimeout: a browser that never connects ends its peer with ice-failed.
func TestWebRTCICETimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	w := newWebRTC(t, rtc.Config{ConnectTimeout: time.Second})
	c, err := rtctest.New(rtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Answer(context.Background(), offer, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Hangup("test")
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the peer outlived its connect timeout")
	}
	if p.Reason() != string(callpkg.ReasonICEFailed) {
		t.Errorf("reason %q", p.Reason())
	}
}

// TestWebRTCPeerVanishes: a browser whose network goes away ends its peer with
// peer-disconnected once ICE gives up; one that closes its connection ends it at once.
func TestWebRTCPeerVanishes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWebRTC(t, rtc.Config{DisconnectedTimeout: time.Second, FailedTimeout: time.Second})
	for _, abrupt := range []bool{true, false} {
		c, p := call(t, ctx, w, rtctest.Options{})
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		<-p.Connected()
		start := time.Now()
		if abrupt {
			c.Vanish()
		} else {
			c.Close()
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("abrupt %v: the peer outlived its browser", abrupt)
		}
		if p.Reason() != string(callpkg.ReasonPeerDisconnected) {
			t.Errorf("abrupt %v: reason %q", abrupt, p.Reason())
		}
		t.Logf("abrupt %v: ended after %v", abrupt, time.Since(start).Round(time.Millisecond))
		p.Hangup("test")
		c.Close()
	}
}

// TestWebRTCLateEventsChannel: events sent before the client opens its events channel
// (after the answer, on a connection that negotiated data channels) wait for it, in order.
func TestWebRTCLateEventsChannel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWebRTC(t, rtc.Config{})
	c, p := call(t, ctx, w, rtctest.Options{LateEvents: true})
	defer c.Close()
	defer p.Hangup("test")
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	p.SendEvent("call.answered", map[string]any{"n": 1})
	p.SendEvent("call.transcript", map[string]any{"n": 2})
	time.Sleep(200 * time.Millisecond)
	if err := c.OpenEvents(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, "call.transcript")
	if evs := c.Events(); len(evs) != 2 || !strings.Contains(evs[0], "call.answered") {
		t.Errorf("events %v", evs)
	}
}

// A browser's keys come over the events channel ({"type":"dtmf","digit":"5"}) and reach the
// call as DTMF events; anything else sent there is ignored.
func TestWebRTCKeysFromBrowser(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWebRTC(t, rtc.Config{})
	c, p := call(t, ctx, w, rtctest.Options{})
	defer c.Close()
	defer p.Hangup("test")
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{`not json`, `{"type":"dtmf","digit":"55"}`, `{"type":"hello"}`, `{"type":"dtmf","digit":"5"}`} {
		if err := c.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-p.Events():
		if ev.Kind != media.EventDTMF || ev.Digit != '5' {
			t.Fatalf("event %+v, want the key 5", ev)
		}
	case <-ctx.Done():
		t.Fatal("the key never reached the call")
	}
}

// TestWebRTCSingleUDPPort: with one UDP port for every peer, two browsers connect through
// it and the answers name only that port.
func TestWebRTCSingleUDPPort(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the port is closed
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := testnet.Port(t)
	w := newWebRTC(t, rtc.Config{UDPPort: port})
	for range 2 {
		c, p := call(t, ctx, w, rtctest.Options{NoEvents: true})
		for _, l := range strings.Split(p.Answer(), "\n") {
			if strings.HasPrefix(l, "a=candidate:") && !strings.Contains(l, " "+strconv.Itoa(port)+" typ") {
				t.Errorf("candidate off the port %d: %s", port, l)
			}
		}
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		defer p.Hangup("test")
	}
}

// TestWebRTCPublicIP: behind a 1:1 NAT the answer's host candidates carry the public
// address.
func TestWebRTCPublicIP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	w := newWebRTC(t, rtc.Config{PublicIPs: []string{"203.0.113.7"}})
	c, err := rtctest.New(rtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offer, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Answer(context.Background(), offer, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Hangup("test")
	n := 0
	for _, l := range strings.Split(p.Answer(), "\n") {
		if strings.HasPrefix(l, "a=candidate:") && strings.Contains(l, "udp4") || strings.Contains(l, " 203.0.113.7 ") {
			n++
			if !strings.Contains(l, " 203.0.113.7 ") {
				t.Errorf("a host candidate without the public address: %s", l)
			}
		}
	}
	if n == 0 {
		t.Errorf("no candidate with the public address in:\n%s", p.Answer())
	}
}

// TestParseICEServers: the configuration's ICE servers as JSON or a list of URLs.
func TestParseICEServers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  bool
	}{
		{"", "[]", false},
		{"stun:stun.example.com:3478, turn:turn.example.com", `[{"urls":["stun:stun.example.com:3478"]},{"urls":["turn:turn.example.com"]}]`, false},
		{`[{"urls":"turn:t.example.com","username":"u","credential":"p"}]`, `[{"urls":["turn:t.example.com"],"username":"u","credential":"p"}]`, false},
		{`[{"urls":["stun:a.example.com","stun:b.example.com"]}]`, `[{"urls":["stun:a.example.com","stun:b.example.com"]}]`, false},
		{"http://stun.example.com", "", true},
		{`[{"urls":3}]`, "", true},
		{`[{"username":"u"}]`, "", true},
		{`[{`, "", true},
	} {
		got, err := rtc.ParseICEServers(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if tc.err {
			continue
		}
		if got == nil {
			got = []rtc.ICEServer{}
		}
		if b, _ := json.Marshal(got); string(b) != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, b, tc.want)
		}
	}
}

// TestWebRTCPortRange: the peers' ICE sockets stay within the configured ports.
func TestWebRTCPortRange(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lo := testnet.Ports(t, 51)
	w := newWebRTC(t, rtc.Config{PortMin: uint16(lo), PortMax: uint16(lo + 50)})
	c, p := call(t, ctx, w, rtctest.Options{NoEvents: true})
	defer c.Close()
	defer p.Hangup("test")
	for _, l := range strings.Split(p.Answer(), "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "a=candidate:") && len(f) > 5 {
			if port, _ := strconv.Atoi(f[5]); port < lo || port > lo+50 {
				t.Errorf("candidate off the range %d-%d: %s", lo, lo+50, l)
			}
		}
	}
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
}
