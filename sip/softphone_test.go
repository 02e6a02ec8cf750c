package sip

import (
	"context"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// These tests pin the bugs that real softphones (baresip, linphone) showed, each against a
// real peer: SIPp, or a sipgo UA with its own RTP socket.

// TestSIPpHangupAtAnswer has SIPp hang up each call the moment it is answered: the ACK and
// the BYE leave back to back, and the server may read the BYE first (sipgo reads each
// request on a goroutine of its own; UDP may reorder them), which the second scenario makes
// certain. Every call was answered, so every record must say completed, caller-hangup, with
// its answer time and its codec, never canceled.
func TestSIPpHangupAtAnswer(t *testing.T) {
	verifyNoLeaks(t)
	const calls = 16
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Node: "node-a"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, scenario := range []string{"uac_quick_bye.xml", "uac_bye_before_ack.xml"} {
		newSIPp(t, scenario, addr, 30*time.Second,
			"-s", "echo", "-m", strconv.Itoa(calls/2), "-r", "20", "-l", "4").run()
	}

	ended := events.waitN(ctx, t, calls, call.EventEnded, nil)
	for _, e := range ended {
		id := e.Data.(store.Call).ID
		got, err := store.Get[store.Call](ctx, st, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCallerHangup) ||
			got.AnsweredAt == nil || got.Codec != "PCMA" {
			t.Errorf("call %s recorded %s/%s answered_at %v codec %q; want completed/caller-hangup, answered, PCMA",
				id, got.Status, got.EndedReason, got.AnsweredAt, got.Codec)
		}
	}
}

// sendStalled sends frames of a 1 kHz PCMU tone to to, paced at 20 ms, except that the
// frames from stallAt on are held for stall frames and then sent at once: a caller whose
// sending stalls (a busy phone, a Wi-Fi hiccup) and catches up in a burst.
func (p *rtpPeer) sendStalled(t *testing.T, to *net.UDPAddr, frames, stallAt, stall int) {
	t.Helper()
	var (
		pcm     [160]int16
		payload [160]byte
	)
	held := make([][]byte, 0, stall)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for i := range frames {
		for j := range pcm {
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i*160+j)/8000))
		}
		media.EncodePCMU(payload[:], pcm[:])
		out := make([]byte, 200)
		n, err := p.pz.Packetize(out, payload[:])
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, out[:n])
		if i >= stallAt && i < stallAt+stall-1 {
			<-tick.C
			continue
		}
		for _, pkt := range held {
			if _, err := p.conn.WriteToUDP(pkt, to); err != nil {
				t.Fatal(err)
			}
		}
		held = held[:0]
		<-tick.C
	}
}

// TestLatePacketsCounted has a caller's sending stall for 560 ms and catch up in a burst:
// the packets of the stall come after their time and are not played. RFC 3550 counts them
// received, not lost; the record's quality and the call's end line must count them late.
func TestLatePacketsCounted(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	logs := &logBuffer{t: t}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Log: logs.logger()})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	const stall = 28 // 560 ms
	peer.sendStalled(t, parseAnswer(t, d.InviteResponse.Body()).rtp, 100, 25, stall)
	bye(ctx, t, d)

	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	// The jitter buffer holds about 60 ms: the first frames of the burst may still be in
	// time, the rest are not.
	if q := got.Quality; q.PacketsLate < stall/2 || q.PacketsLost != 0 || q.PacketsReceived < 90 {
		t.Errorf("quality %+v; want about %d packets late, none lost, all received", q, stall)
	}
	_, lines := logs.waitFor(`msg="call ended"`, 1, 5*time.Second)
	m := regexp.MustCompile(`late_packets=(\d+)`).FindStringSubmatch(strings.Join(lines, "\n"))
	if m == nil || m[1] != strconv.FormatInt(got.Quality.PacketsLate, 10) {
		t.Errorf("end-of-call line %q; want late_packets=%d", lines, got.Quality.PacketsLate)
	}
}

// TestSIPpOutboundEarlyMedia has the server dial SIPp, which answers with a 183 carrying
// its description before its 200: the call publishes call.early_media (with the callee's
// codec) before call.answered, as inbound early media does, and its record says who called
// (the From of our INVITE), not "".
func TestSIPpOutboundEarlyMedia(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})

	r := newSIPp(t, "uas_early_media.xml", "", 30*time.Second, "-m", "1")
	r.start(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.Destination = tenant, fmt.Sprintf("sip:service@127.0.0.1:%d", r.port), "tone"
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatalf("dial: %v", err)
	}
	events.wait(ctx, t, call.EventAnswered, onTopic(rec.ID))
	if err := s.Hangup(ctx, tenant, rec.ID); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	r.wait()
	got := endedCall(ctx, t, events, st, tenant, rec.ID)

	var order []string
	events.mu.Lock()
	for _, e := range events.events {
		if e.Topic == call.Topic(rec.ID) {
			order = append(order, e.Type)
		}
	}
	events.mu.Unlock()
	early := events.onCall(call.EventEarlyTone, onTopic(rec.ID))
	if len(early) != 1 {
		t.Fatalf("%d %s events, want 1 (events %v)", len(early), call.EventEarlyTone, order)
	}
	if em, _ := early[0].Data.(call.EarlyMedia); em.Codec != "PCMU" {
		t.Errorf("early media %+v, want the callee's PCMU", early[0].Data)
	}
	if i, j := indexOf(order, call.EventEarlyTone), indexOf(order, call.EventAnswered); i < 0 || j < i {
		t.Errorf("events %v, want call.early_media before call.answered", order)
	}
	if !strings.HasPrefix(got.From, "sip:switchboard@") || got.Status != store.CallCompleted {
		t.Errorf("record from %q status %s; want our INVITE's From, completed", got.From, got.Status)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// sdpOffer6 is sdpOffer with an IPv6 connection address, as linphone sends on a network
// that has IPv6.
func sdpOffer6(ip string, port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=test 1 1 IN IP6 %s\r\ns=test\r\nc=IN IP6 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n", ip, ip, port))
}

// TestIPv6MediaOffer has a caller signal over IPv4 and offer IPv6 media: the answer must
// be IPv6 media from an IPv6 socket, which the caller hears (the tone over IPv6), never
// IPv4 and then silence; a re-INVITE moving it to IPv4 is refused. An IPv6 offer the node cannot reach (a link-local address without
// its interface) is refused with 488 and a Warning saying why.
func TestIPv6MediaOffer(t *testing.T) {
	verifyNoLeaks(t)
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	peer := &rtpPeer{conn: conn, pz: media.NewPacketizer(0, 8000, 0x5eed)}
	t.Cleanup(func() { _ = conn.Close() })
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
	u := newTestCaller(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer6("::1", peer.port()), sipgo.AnswerOptions{})
	body := string(d.InviteResponse.Body())
	if !strings.Contains(body, "c=IN IP6 ::1\r\n") {
		t.Fatalf("answer to an IPv6 offer:\n%s\nwant c=IN IP6 ::1", body)
	}
	if pkts := peer.first(50, 10*time.Second, 0); len(pkts) < 50 {
		t.Fatalf("%d tone packets reached the caller over IPv6 in 10 s, want 50", len(pkts))
	} else {
		checkTone(t, decodeG711(pkts), 0.9)
	}
	// Moving the media to IPv4 in the call cannot work from its IPv6 socket: refused, and
	// the call goes on.
	if res := reinvite(ctx, t, d, sdpOffer("127.0.0.1", 4000, dirSendRecv), nil); res.StatusCode != sip.StatusNotAcceptableHere {
		t.Errorf("re-INVITE to IPv4 media answered %d, want 488", res.StatusCode)
	}
	if pkts := peer.first(10, 5*time.Second, 0); len(pkts) < 10 {
		t.Errorf("the tone stopped after a refused re-INVITE (%d packets)", len(pkts))
	}
	bye(ctx, t, d)
	events.wait(ctx, t, call.EventEnded, sipCall(d.InviteRequest.CallID().Value()))

	res := u.status(ctx, t, uri(t, "tone", addr), sdpOffer6("fe80::1", 4000), sipgo.AnswerOptions{})
	if res.StatusCode != sip.StatusNotAcceptableHere {
		t.Fatalf("unreachable IPv6 offer answered %d %s, want 488", res.StatusCode, res.Reason)
	}
	if w := res.GetHeader("Warning"); w == nil || !strings.HasPrefix(w.Value(), "300 ") || !strings.Contains(w.Value(), "fe80::1") {
		t.Errorf("488 Warning %v, want 300 naming the offered address", w)
	}
}

// TestListeningAgentSendsRTP has an agent that only listens, as one does through a long
// gather: the caller still gets RTP every 20 ms (silence), so that a media relay or a NAT
// between them keeps the call, where it used to get RTCP only.
func TestListeningAgentSendsRTP(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "listener")
	calls := make(chan *Call, 1)
	addr := startServer(t, Config{Store: st, DefaultTenantID: tenant, Agents: testAgents{listeningAgent(calls)}})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "listener", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	select {
	case <-calls:
	case <-ctx.Done():
		t.Fatal("the agent never got the call")
	}
	pkts := peer.packets(time.Second, 0)
	// 50 slots in a second; a busy machine may miss some.
	if len(pkts) < 25 {
		t.Fatalf("%d RTP packets in a second of an agent listening, want about 50", len(pkts))
	}
	pcm := decodeG711(pkts)
	var peak int
	for _, v := range pcm {
		peak = max(peak, int(v), -int(v))
	}
	if peak > 16 {
		t.Errorf("the listening agent's RTP peaks at %d, want silence", peak)
	}
	bye(ctx, t, d)
}

// TestSIPpIPv6Media has SIPp call the echo over IPv4 signalling with its media on IPv6
// (-mi ::1), as linphone did: its offer says c=IN IP6, the answer must too, and SIPp's
// audio must come in and go back out over IPv6.
func TestSIPpIPv6Media(t *testing.T) {
	verifyNoLeaks(t)
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = c.Close()
	}
	logs := &logBuffer{t: t}
	addr := startServer(t, Config{Log: logs.logger()})

	newSIPp(t, "uac_echo.xml", addr, 30*time.Second, "-s", "echo", "-m", "1", "-l", "1", "-mi", "::1").run()

	log, lines := logs.waitFor(`msg="call ended"`, 1, 5*time.Second)
	if len(lines) != 1 {
		t.Fatalf("want one call ended; got %q", lines)
	}
	if !regexp.MustCompile(`msg="call answered".*codec=PCMA`).MatchString(log) {
		t.Error("server log lacks the call answered with PCMA")
	}
	m := callEnded.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("no media counts in %q", lines[0])
	}
	rx, _ := strconv.Atoi(m[2])
	tx, _ := strconv.Atoi(m[3])
	if rx < 100 || tx < rx/2 {
		t.Errorf("rx %d, tx %d packets over IPv6; want SIPp's audio received and echoed", rx, tx)
	}
}
