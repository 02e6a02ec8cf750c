package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// The calls of issue 4 end to end: a real sipgo user agent on loopback calls the server (or
// is called by it), with real RTP, and the tests judge what it hears, what it is sent and
// what the server records and publishes.

// testSecret seals the trunk passwords of the tests' stores.
var testSecret = []byte("switchboard-sip-test-secret-0123456789")

// sipgoCancelLeak is the reader sipgo v1.7.2's client leaves behind after a CANCEL (see
// TestCancelBeforeAnswer).
var sipgoCancelLeak = goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection")

// newCallStore opens a migrated SQLite store in the test's directory, with a tenant.
func newCallStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ten, err := st.EnsureTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return st, ten.ID
}

// startCallServer is startServer that also returns the server, for Hangup, Transfer and Dial.
func startCallServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	return startCallServerWith(t, cfg, 0)
}

func startCallServerWith(t *testing.T, cfg Config, ringDelay time.Duration) (*Server, string) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	pc, l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.ringDelay = ringDelay
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	<-s.ready // Dial needs the server serving
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	return s, pc.LocalAddr().String()
}

// published is one event the server published.
type published struct {
	Tenant, Topic, Type string
	Data                any
}

// eventLog is the tests' call.Publisher: it keeps every event and wakes those waiting for one.
type eventLog struct {
	mu     sync.Mutex
	events []published
	more   chan struct{} // closed and replaced at every event
}

func newEventLog() *eventLog { return &eventLog{more: make(chan struct{})} }

func (l *eventLog) Publish(tenantID, topic, typ string, data any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, published{Tenant: tenantID, Topic: topic, Type: typ, Data: data})
	close(l.more)
	l.more = make(chan struct{})
	return nil
}

// onCall returns the events of typ published on call topics that match accepts (nil: all).
func (l *eventLog) onCall(typ string, match func(published) bool) []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []published
	for _, e := range l.events {
		if e.Type == typ && strings.HasPrefix(e.Topic, "call:") && (match == nil || match(e)) {
			out = append(out, e)
		}
	}
	return out
}

// waitN waits until n events of typ that match have been published on call topics, and
// returns them.
func (l *eventLog) waitN(ctx context.Context, t *testing.T, n int, typ string, match func(published) bool) []published {
	t.Helper()
	for {
		l.mu.Lock()
		more := l.more
		l.mu.Unlock()
		if evs := l.onCall(typ, match); len(evs) >= n {
			return evs
		}
		select {
		case <-more:
		case <-ctx.Done():
			t.Fatalf("%d %s events, want %d: %v", len(l.onCall(typ, match)), typ, n, ctx.Err())
		}
	}
}

// wait waits for the first event of typ that matches.
func (l *eventLog) wait(ctx context.Context, t *testing.T, typ string, match func(published) bool) published {
	t.Helper()
	return l.waitN(ctx, t, 1, typ, match)[0]
}

// sipCall matches the life-cycle events (their data is the record) of the SIP call callID.
func sipCall(callID string) func(published) bool {
	return func(e published) bool {
		rec, ok := e.Data.(store.Call)
		return ok && rec.SIPCallID == callID
	}
}

// onTopic matches the events of the call whose record ID is id.
func onTopic(id string) func(published) bool {
	return func(e published) bool { return e.Topic == "call:"+id }
}

// dtmfOf reads the key of a call.dtmf event.
func dtmfOf(e published) call.DTMF {
	d, _ := e.Data.(call.DTMF)
	return d
}

// callLog keeps the server's log for the test to read, and echoes it to the test's output.
type callLog struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *callLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return l.b.Write(p)
}

func (l *callLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testCaller is a test UA that places calls and takes the server's requests inside them
// (BYE, REFER) through a sipgo server on the same user agent.
type testCaller struct {
	*testUA
	mu      sync.Mutex
	dialogs map[string]*sipgo.DialogClientSession // by Call-ID
	onRefer func(d *sipgo.DialogClientSession, req *sip.Request, tx sip.ServerTransaction)
	byes    chan string       // the Call-IDs of the BYEs received
	reasons map[string]string // the Reason header of each BYE received, by Call-ID
}

func newTestCaller(t *testing.T) *testCaller {
	t.Helper()
	c := &testCaller{testUA: newTestUA(t), dialogs: map[string]*sipgo.DialogClientSession{}, byes: make(chan string, 64), reasons: map[string]string{}}
	srv, err := sipgo.NewServer(c.ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		d := c.dialogOf(req.CallID().Value())
		if d == nil || d.ReadBye(req, tx) != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		if h := req.GetHeader("Reason"); h != nil {
			c.mu.Lock()
			c.reasons[req.CallID().Value()] = h.Value()
			c.mu.Unlock()
		}
		c.byes <- req.CallID().Value()
	})
	srv.OnRefer(func(req *sip.Request, tx sip.ServerTransaction) {
		c.mu.Lock()
		h := c.onRefer
		c.mu.Unlock()
		d := c.dialogOf(req.CallID().Value())
		if h == nil || d == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 603, "Decline", nil))
			return
		}
		h(d, req, tx)
	})
	return c
}

// byeReason is the Reason header of the server's BYE in the call callID ("" if none).
func (c *testCaller) byeReason(callID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reasons[callID]
}

func (c *testCaller) dialogOf(callID string) *sipgo.DialogClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogs[callID]
}

// try places a call and returns its dialog, answered and acknowledged, or the final
// response that refused it. It is safe from any goroutine.
func (c *testCaller) try(ctx context.Context, target sip.Uri, body []byte, opts sipgo.AnswerOptions, hdrs ...sip.Header) (*sipgo.DialogClientSession, *sip.Response, error) {
	// A Contact of the call's own: sipgo fills in the port of the DialogUA's shared one,
	// which races when calls are placed at once.
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "test", Host: "127.0.0.1"}}
	hdrs = append([]sip.Header{sip.NewHeader("Content-Type", "application/sdp"), contact}, hdrs...)
	dlg, err := c.testUA.dialog.Invite(ctx, target, body, hdrs...)
	if err != nil {
		return nil, nil, fmt.Errorf("invite: %w", err)
	}
	err = dlg.WaitAnswer(ctx, opts)
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		_ = dlg.Close()
		return nil, de.Res, nil
	}
	if err != nil {
		_ = dlg.Close()
		return nil, nil, fmt.Errorf("wait answer: %w", err)
	}
	c.mu.Lock()
	c.dialogs[dlg.InviteRequest.CallID().Value()] = dlg
	c.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		return nil, nil, fmt.Errorf("ack: %w", err)
	}
	return dlg, dlg.InviteResponse, nil
}

// call places a call that must be answered.
func (c *testCaller) call(ctx context.Context, t *testing.T, target sip.Uri, body []byte, opts sipgo.AnswerOptions) *sipgo.DialogClientSession {
	t.Helper()
	dlg, res, err := c.try(ctx, target, body, opts)
	if err != nil {
		t.Fatal(err)
	}
	if dlg == nil {
		t.Fatalf("INVITE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	t.Cleanup(func() { _ = dlg.Close() })
	return dlg
}

// status places a call that must be refused and returns the final response.
func (c *testCaller) status(ctx context.Context, t *testing.T, target sip.Uri, body []byte, opts sipgo.AnswerOptions, hdrs ...sip.Header) *sip.Response {
	t.Helper()
	dlg, res, err := c.try(ctx, target, body, opts, hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	if dlg != nil {
		bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dlg.Bye(bctx)
		_ = dlg.Close()
		t.Fatalf("INVITE answered 200, want it refused")
	}
	return res
}

// inDialog sends a request inside the caller's dialog d to the server's Contact and returns
// the final response.
func inDialog(ctx context.Context, t *testing.T, d *sipgo.DialogClientSession, method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) *sip.Response {
	t.Helper()
	req := sip.NewRequest(method, *d.InviteResponse.Contact().Address.Clone())
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	res, err := d.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return res
}

// reinvite sends a re-INVITE with offer (nil: an empty one) and acknowledges a 2xx, with
// ackBody as the answer in the ACK when the INVITE was empty.
func reinvite(ctx context.Context, t *testing.T, d *sipgo.DialogClientSession, offer, ackBody []byte) *sip.Response {
	t.Helper()
	ct := ""
	if offer != nil {
		ct = "application/sdp"
	}
	res := inDialog(ctx, t, d, sip.INVITE, ct, offer)
	if res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, *d.InviteResponse.Contact().Address.Clone())
		if ackBody != nil {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		}
		ack.SetBody(ackBody)
		if err := d.WriteRequest(ack); err != nil {
			t.Fatalf("ACK: %v", err)
		}
	}
	return res
}

// bye hangs up the caller's side of d.
func bye(ctx context.Context, t *testing.T, d *sipgo.DialogClientSession) {
	t.Helper()
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
}

// waitBye waits for the server's BYE in the call callID.
func (c *testCaller) waitBye(ctx context.Context, t *testing.T, callID string) {
	t.Helper()
	for {
		select {
		case id := <-c.byes:
			if id == callID {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no BYE from the server for %s", callID)
		}
	}
}

// sdpOffer is an offer of PCMU and telephone-event at ip:port in direction dir.
func sdpOffer(ip string, port int, dir string) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=ptime:20\r\na=%s\r\n", ip, port, dir))
}

// sdpAnswer is what the tests read of a session description.
type sdpAnswer struct {
	sessID, version uint64
	formats         []string
	rtpmaps         []string
	dir             string
	rtp             *net.UDPAddr
}

func parseAnswer(t *testing.T, body []byte) sdpAnswer {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Fatalf("SDP: %v\n%s", err, body)
	}
	if len(sd.MediaDescriptions) != 1 {
		t.Fatalf("SDP has %d media streams, want 1\n%s", len(sd.MediaDescriptions), body)
	}
	md := sd.MediaDescriptions[0]
	a := sdpAnswer{sessID: sd.Origin.SessionID, version: sd.Origin.SessionVersion, formats: md.MediaName.Formats, dir: dirSendRecv}
	for _, at := range md.Attributes {
		switch at.Key {
		case "rtpmap":
			a.rtpmaps = append(a.rtpmaps, at.Value)
		case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
			a.dir = at.Key
		}
	}
	conn := sd.ConnectionInformation
	if md.ConnectionInformation != nil {
		conn = md.ConnectionInformation
	}
	a.rtp = &net.UDPAddr{IP: net.ParseIP(conn.Address.Address), Port: md.MediaName.Port.Value}
	return a
}

// rtpPeer is the RTP socket of a test UA.
type rtpPeer struct {
	conn *net.UDPConn
	pz   *media.Packetizer
}

func newRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rtpPeer{conn: conn, pz: media.NewPacketizer(0, 8000, 0x5eed)}
}

func (p *rtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// packets collects for d the RTP packets of the payload types pts (all when none).
func (p *rtpPeer) packets(d time.Duration, pts ...uint8) []rtp.Packet {
	var out []rtp.Packet
	deadline := time.Now().Add(d)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		buf := make([]byte, 1500)
		n, err := p.conn.Read(buf)
		if err != nil {
			return out
		}
		var pkt rtp.Packet
		if media.ParseRTP(&pkt, buf[:n]) != nil {
			continue
		}
		if len(pts) == 0 || pkt.PayloadType == pts[0] || (len(pts) > 1 && pkt.PayloadType == pts[1]) {
			out = append(out, pkt)
		}
	}
}

// first waits up to d for n packets of payload type pt and returns them.
func (p *rtpPeer) first(n int, d time.Duration, pt uint8) []rtp.Packet {
	var out []rtp.Packet
	deadline := time.Now().Add(d)
	for len(out) < n {
		_ = p.conn.SetReadDeadline(deadline)
		buf := make([]byte, 1500)
		k, err := p.conn.Read(buf)
		if err != nil {
			return out
		}
		var pkt rtp.Packet
		if media.ParseRTP(&pkt, buf[:k]) == nil && pkt.PayloadType == pt {
			out = append(out, pkt)
		}
	}
	return out
}

// sendTone sends frames of a 1 kHz PCMU tone to to, paced at 20 ms.
func (p *rtpPeer) sendTone(t *testing.T, to *net.UDPAddr, frames int) {
	t.Helper()
	var (
		pcm     [160]int16
		payload [160]byte
		out     [200]byte
	)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	for i := range frames {
		for j := range pcm {
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i*160+j)/8000))
		}
		media.EncodePCMU(payload[:], pcm[:])
		n, err := p.pz.Packetize(out[:], payload[:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteToUDP(out[:n], to); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
}

// sendDTMF sends one key press as RFC 4733 telephone events of payload type pt.
func (p *rtpPeer) sendDTMF(t *testing.T, to *net.UDPAddr, digit rune, pt uint8) {
	t.Helper()
	pkts, err := media.AppendDTMFPackets(nil, digit, 160*time.Millisecond, 8000, 10)
	if err != nil {
		t.Fatal(err)
	}
	ts := p.pz.Timestamp()
	start := time.Now()
	var out [64]byte
	for _, pk := range pkts {
		time.Sleep(time.Until(start.Add(pk.At)))
		n, err := p.pz.PacketizeEvent(out[:], pt, pk.Marker, ts, pk.Payload[:])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteToUDP(out[:n], to); err != nil {
			t.Fatal(err)
		}
	}
	p.pz.Skip(len(pkts)) // the event's time passes on the audio clock
}

// checkTone judges 8 kHz audio: a 1 kHz tone.
//
// Frames of silence are left out first: an RTP session fills the slots its writer misses
// with silence (a starved machine can hold the tone's writer back for longer than the
// session waits), and the question is what the audio that carries sound is.
func checkTone(t *testing.T, pcm []int16, minRatio float64) {
	t.Helper()
	all := len(pcm)
	pcm = withoutSilence(pcm)
	if all < 8000 || len(pcm) < 4000 {
		t.Fatalf("only %d samples of audio, %d of them sound", all, len(pcm))
	}
	if f := zeroCrossFreq(pcm); math.Abs(f-1000) > 20 {
		t.Errorf("tone at %.1f Hz, want 1000 Hz", f)
	}
	if r := goertzelRatio(pcm, 1000, 8000); r < minRatio {
		t.Errorf("only %.2f of the audio's energy is at 1 kHz, want %.2f", r, minRatio)
	}
}

// withoutSilence drops the 20 ms frames of pcm (8 kHz) that are silent.
func withoutSilence(pcm []int16) []int16 {
	const frame = 160
	out := make([]int16, 0, len(pcm))
	for i := 0; i < len(pcm); i += frame {
		f := pcm[i:min(i+frame, len(pcm))]
		var peak int16
		for _, v := range f {
			peak = max(peak, v, -v)
		}
		if peak > 64 {
			out = append(out, f...)
		}
	}
	return out
}

// decodeG711 decodes PCMU or PCMA packets to 8 kHz samples.
func decodeG711(pkts []rtp.Packet) []int16 {
	var pcm []int16
	var buf [480]int16
	for _, p := range pkts {
		var n int
		if p.PayloadType == media.PayloadTypePCMA {
			n = media.DecodePCMA(buf[:], p.Payload)
		} else {
			n = media.DecodePCMU(buf[:], p.Payload)
		}
		pcm = append(pcm, buf[:n]...)
	}
	return pcm
}

// answeredCall waits for the answer of the SIP call callID and returns its record.
func answeredCall(ctx context.Context, t *testing.T, events *eventLog, callID string) store.Call {
	t.Helper()
	return events.wait(ctx, t, call.EventAnswered, sipCall(callID)).Data.(store.Call)
}

// endedCall waits for the end of the call and returns its stored record.
func endedCall(ctx context.Context, t *testing.T, events *eventLog, st *store.Store, tenantID, id string) *store.Call {
	t.Helper()
	events.wait(ctx, t, call.EventEnded, onTopic(id))
	rec, err := store.Get[store.Call](ctx, st, tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// testAgents answers every agent's calls with one handler: the seam through which the
// tests reach a *Call.
type testAgents struct{ h Handler }

func (a testAgents) AgentHandler(context.Context, string, string) (Handler, error) { return a.h, nil }

// listeningAgent is a handler that hands its call to the test and listens until it ends.
func listeningAgent(calls chan<- *Call) Handler {
	return HandlerFunc(func(ctx context.Context, c *Call) {
		calls <- c
		st := c.Stream()
		f := media.Frame{Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
		for st.ReadFrame(&f) == nil {
		}
	})
}

// agentNumber routes the SIP user number of the tenant to a new agent.
func agentNumber(t *testing.T, st *store.Store, tenantID, number string) {
	t.Helper()
	ctx := context.Background()
	a := store.NewAgent()
	a.Name = "listener"
	if err := store.Create(ctx, st, tenantID, a); err != nil {
		t.Fatal(err)
	}
	pn := store.NewPhoneNumber()
	pn.Number, pn.AgentID = number, &a.ID
	if err := store.Create(ctx, st, tenantID, pn); err != nil {
		t.Fatal(err)
	}
}

// The tone destination plays 1 kHz in the codec the caller prefers: the answer keeps the
// first codec of the offer that we support.
func TestToneCall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		formats string
		rtpmaps []string
		pt      uint8
		rtpmap  string
		clock   uint32
	}{
		{"PCMA before PCMU", "8 0 101", []string{"8 PCMA/8000", "0 PCMU/8000", "101 telephone-event/8000"}, 8, "8 PCMA/8000", 8000},
		{"opus first", "111 0 8 101", []string{"111 opus/48000/2", "101 telephone-event/8000"}, 111, "111 opus/48000/2", 48000},
		{"opus under 96 after G.729", "18 96 0", []string{"18 G729/8000", "96 opus/48000/2"}, 96, "96 opus/48000/2", 48000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			addr := startServer(t, Config{})
			u := newTestCaller(t)
			peer := newRTPPeer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			d := u.call(ctx, t, uri(t, "tone", addr), offerSDP(peer.port(), tc.formats, tc.rtpmaps...), sipgo.AnswerOptions{})
			a := parseAnswer(t, d.InviteResponse.Body())
			if a.formats[0] != strconv.Itoa(int(tc.pt)) || a.rtpmaps[0] != tc.rtpmap {
				t.Fatalf("answer formats %v %v, want %d (%s) first", a.formats, a.rtpmaps, tc.pt, tc.rtpmap)
			}
			if a.dir != dirSendRecv {
				t.Errorf("answer direction %s, want sendrecv", a.dir)
			}

			pkts := peer.first(100, 10*time.Second, tc.pt)
			if len(pkts) < 100 {
				t.Fatalf("%d tone packets, want 100", len(pkts))
			}
			for i := 1; i < len(pkts); i++ {
				dts := pkts[i].Timestamp - pkts[i-1].Timestamp
				if pkts[i].SequenceNumber == pkts[i-1].SequenceNumber+1 && dts%(tc.clock/50) != 0 {
					t.Fatalf("timestamps advance by %d, want multiples of %d (20 ms at %d Hz)", dts, tc.clock/50, tc.clock)
				}
			}
			var pcm []int16
			if tc.clock == 48000 {
				dec, err := media.NewOpusDecoder(8000)
				if err != nil {
					t.Fatal(err)
				}
				var buf [160]int16
				for i, p := range pkts {
					n, err := dec.Decode(buf[:], p.Payload)
					if err != nil {
						t.Fatalf("opus packet %d: %v", i, err)
					}
					if i >= 10 { // past the encoder's start
						pcm = append(pcm, buf[:n]...)
					}
				}
				checkTone(t, pcm, 0.8)
			} else {
				checkTone(t, decodeG711(pkts), 0.9)
			}
			bye(ctx, t, d)
		})
	}
}

// DTMF from the caller reaches the call as call.dtmf events, whether it comes as RFC 4733
// telephone events or as SIP INFO.
func TestDTMFFromCaller(t *testing.T) {
	verifyNoLeaks(t)
	events := newEventLog()
	logs := &callLog{t: t}
	addr := startServer(t, Config{Events: events, Log: slog.New(slog.NewTextHandler(logs, nil))})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	a := parseAnswer(t, d.InviteResponse.Body())
	if len(a.formats) != 2 || a.formats[1] != "101" {
		t.Fatalf("answer formats %v, want telephone-event 101", a.formats)
	}
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	dtmf := func(n int) published {
		t.Helper()
		return events.waitN(ctx, t, n, call.EventDTMF, onTopic(rec.ID))[n-1]
	}

	peer.sendTone(t, a.rtp, 10)
	peer.sendDTMF(t, a.rtp, '5', 101)
	peer.sendTone(t, a.rtp, 5)
	if e := dtmf(1); dtmfOf(e).Digit != "5" {
		t.Fatalf("RFC 4733: %+v, want digit 5", e)
	}

	res := inDialog(ctx, t, d, sip.INFO, "application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	if res.StatusCode != 200 {
		t.Fatalf("INFO dtmf-relay: %d, want 200", res.StatusCode)
	}
	if e := dtmf(2); dtmfOf(e).Digit != "5" || dtmfOf(e).DurationMS != 160 {
		t.Fatalf("INFO dtmf-relay: %+v, want digit 5 for 160 ms", e)
	}

	res = inDialog(ctx, t, d, sip.INFO, "application/dtmf", []byte("5"))
	if res.StatusCode != 200 {
		t.Fatalf("INFO dtmf: %d, want 200", res.StatusCode)
	}
	if e := dtmf(3); dtmfOf(e).Digit != "5" {
		t.Fatalf("INFO dtmf: %+v, want digit 5", e)
	}

	res = inDialog(ctx, t, d, sip.INFO, "application/vnd.example+json", []byte(`{"key":"5"}`))
	if res.StatusCode != 415 {
		t.Fatalf("INFO of an unknown type: %d, want 415", res.StatusCode)
	}
	if h := res.GetHeader("Accept"); h == nil || !strings.Contains(h.Value(), "application/dtmf-relay") {
		t.Errorf("415 without an Accept naming application/dtmf-relay: %v", h)
	}
	res = inDialog(ctx, t, d, sip.INFO, "application/dtmf-relay", []byte("Signal=x\r\n"))
	if res.StatusCode != 400 {
		t.Errorf("INFO with a bad signal: %d, want 400", res.StatusCode)
	}
	bye(ctx, t, d)
	events.wait(ctx, t, call.EventEnded, onTopic(rec.ID))
	if n := len(events.onCall(call.EventDTMF, onTopic(rec.ID))); n != 3 {
		t.Errorf("%d call.dtmf events, want 3", n)
	}
	if n := len(regexp.MustCompile(`(?m)msg=dtmf .*digit=5`).FindAllString(logs.String(), -1)); n != 3 {
		t.Errorf("%d dtmf lines in the server's log, want 3", n)
	}
}

// Call.SendDTMF plays digits to the far end as RFC 4733 events it can detect.
func TestDTMFToCaller(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "keys")
	calls := make(chan *Call, 1)
	addr := startServer(t, Config{Store: st, DefaultTenantID: tenant, Agents: testAgents{listeningAgent(calls)}})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "keys", addr), offerSDP(peer.port(), "0 96", "96 telephone-event/8000"), sipgo.AnswerOptions{})
	var c *Call
	select {
	case c = <-calls:
	case <-ctx.Done():
		t.Fatal("the agent got no call")
	}
	got := make(chan string, 1)
	go func() {
		det := media.NewDTMFDetector(8000)
		var digits []rune
		for _, p := range peer.packets(3*time.Second, 96) {
			if ev, ok, _ := det.Push(p.Timestamp, p.Payload); ok {
				digits = append(digits, ev.Digit)
			}
		}
		got <- string(digits)
	}()
	if err := c.SendDTMF("7#"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "7#" {
		t.Fatalf("the far end detected %q, want \"7#\"", s)
	}
	bye(ctx, t, d)
}

// Hold and resume by re-INVITE (RFC 3264 §8.4, RFC 2543's c=0.0.0.0): the answer mirrors
// the offered direction, RTP stops and resumes with it, the SDP version goes up with every
// change and only then, and call.hold and call.resumed tell the tenant.
func TestHoldResume(t *testing.T) {
	verifyNoLeaks(t)
	events := newEventLog()
	addr := startServer(t, Config{Events: events})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	first := parseAnswer(t, d.InviteResponse.Body())
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	if n := len(peer.first(20, 5*time.Second, 0)); n < 20 {
		t.Fatalf("%d packets before hold, want RTP", n)
	}

	// sending says whether the server sends RTP under the answer.
	sending := func(t *testing.T) bool {
		t.Helper()
		time.Sleep(200 * time.Millisecond) // what was on its way
		peer.packets(50*time.Millisecond, 0)
		return len(peer.packets(time.Second, 0)) > 0
	}
	version := first.version
	for _, step := range []struct {
		name, ip, offer, answer string
		send                    bool
		event                   string // the event the change publishes
	}{
		{"sendonly", "127.0.0.1", dirSendOnly, dirRecvOnly, false, call.EventHold},
		{"inactive", "127.0.0.1", dirInactive, dirInactive, false, ""},
		{"recvonly", "127.0.0.1", dirRecvOnly, dirSendOnly, true, ""},
		{"sendrecv", "127.0.0.1", dirSendRecv, dirSendRecv, true, call.EventResumed},
		{"c=0.0.0.0", "0.0.0.0", dirSendRecv, dirRecvOnly, false, call.EventHold},
		{"resumed", "127.0.0.1", dirSendRecv, dirSendRecv, true, call.EventResumed},
	} {
		res := reinvite(ctx, t, d, sdpOffer(step.ip, peer.port(), step.offer), nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: re-INVITE %d, want 200", step.name, res.StatusCode)
		}
		a := parseAnswer(t, res.Body())
		if a.dir != step.answer {
			t.Errorf("%s: answered %s, want %s", step.name, a.dir, step.answer)
		}
		if a.sessID != first.sessID || a.version != version+1 {
			t.Errorf("%s: o= %d %d, want session %d version %d", step.name, a.sessID, a.version, first.sessID, version+1)
		}
		version = a.version
		if got := sending(t); got != step.send {
			t.Errorf("%s: server sends RTP: %v, want %v", step.name, got, step.send)
		}
	}

	// The same offer again changes nothing: the version stays.
	res := reinvite(ctx, t, d, sdpOffer("127.0.0.1", peer.port(), dirSendRecv), nil)
	if a := parseAnswer(t, res.Body()); res.StatusCode != 200 || a.version != version || a.dir != dirSendRecv {
		t.Errorf("unchanged re-INVITE: %d, version %d %s, want 200, version %d sendrecv", res.StatusCode, a.version, a.dir, version)
	}
	// An empty re-INVITE gets our description as it stands; the answer comes in the ACK.
	res = reinvite(ctx, t, d, nil, sdpOffer("127.0.0.1", peer.port(), dirSendRecv))
	if res.StatusCode != 200 {
		t.Fatalf("empty re-INVITE: %d, want 200", res.StatusCode)
	}
	a := parseAnswer(t, res.Body())
	if a.sessID != first.sessID || a.version != version || a.dir != dirSendRecv || a.formats[0] != "0" {
		t.Errorf("empty re-INVITE: o= %d %d %s %v, want session %d version %d sendrecv PCMU", a.sessID, a.version, a.dir, a.formats, first.sessID, version)
	}
	if !sending(t) {
		t.Error("no RTP after the empty re-INVITE")
	}

	events.waitN(ctx, t, 2, call.EventResumed, onTopic(rec.ID))
	var got []string
	events.mu.Lock()
	for _, e := range events.events {
		if e.Topic == "call:"+rec.ID && (e.Type == call.EventHold || e.Type == call.EventResumed) {
			got = append(got, e.Type)
		}
	}
	events.mu.Unlock()
	want := []string{call.EventHold, call.EventResumed, call.EventHold, call.EventResumed}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", got, want)
	}
	bye(ctx, t, d)
}

// A call cancelled while it rings is recorded canceled.
func TestCancelRecorded(t *testing.T) {
	verifyNoLeaks(t, sipgoCancelLeak)
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServerWith(t, Config{Store: st, DefaultTenantID: tenant, Events: events}, 10*time.Second)
	u := newTestCaller(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := u.testUA.dialog.Invite(ctx, uri(t, "echo", addr), offerSDP(40000, "0"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitCtx, stop := context.WithCancel(ctx)
	defer stop()
	err = d.WaitAnswer(waitCtx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == 180 {
			stop() // hang up while it rings: WaitAnswer sends the CANCEL
		}
		return nil
	}})
	if err == nil {
		t.Fatal("the call was answered despite the CANCEL")
	}
	rec := events.wait(ctx, t, call.EventRinging, sipCall(d.InviteRequest.CallID().Value())).Data.(store.Call)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCanceled || got.EndedReason != string(call.ReasonCanceled) || got.AnsweredAt != nil || got.EndedAt == nil {
		t.Fatalf("record %s/%s answered %v ended %v, want canceled, never answered", got.Status, got.EndedReason, got.AnsweredAt, got.EndedAt)
	}
	if got.Direction != store.CallInbound || got.Destination != "echo" || got.TenantID != tenant {
		t.Errorf("record %+v, want an inbound call of the tenant to echo", got)
	}
}

// The caller's BYE ends the call; the record says so, with the media counted.
func TestByeFromCaller(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Node: "node-a"})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "echo", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	// The record is written behind the call: once the writer has caught up, it is live.
	if err := st.FlushCalls(ctx); err != nil {
		t.Fatal(err)
	}
	live, err := store.Get[store.Call](ctx, st, tenant, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if live.Status != store.CallInProgress || live.Codec != "PCMU" || live.Node != "node-a" || live.AnsweredAt == nil {
		t.Errorf("live record %s codec %q node %q answered %v, want in-progress PCMU on node-a", live.Status, live.Codec, live.Node, live.AnsweredAt)
	}
	peer.sendTone(t, parseAnswer(t, d.InviteResponse.Body()).rtp, 50)
	bye(ctx, t, d)

	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCallerHangup) {
		t.Fatalf("record %s/%s, want completed/caller-hangup", got.Status, got.EndedReason)
	}
	if got.Quality.PacketsReceived < 40 || got.Quality.PacketsSent == 0 {
		t.Errorf("quality %+v, want the 50 packets sent counted and some echoed", got.Quality)
	}
	if got.DurationSeconds <= 0 || got.EndedAt == nil || got.SIPCallID != d.InviteRequest.CallID().Value() {
		t.Errorf("record duration %v ended %v sip_call_id %q", got.DurationSeconds, got.EndedAt, got.SIPCallID)
	}
}

// Server.Hangup ends a live call from the API: the caller gets a BYE.
func TestHangupFromAPI(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	s, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	callID := d.InviteRequest.CallID().Value()
	rec := answeredCall(ctx, t, events, callID)
	if n := len(peer.first(10, 5*time.Second, 0)); n < 10 {
		t.Fatalf("%d tone packets before the hangup, want 10", n)
	}
	if err := s.Hangup(ctx, "ten_someone_else", rec.ID); !errors.Is(err, ErrCallNotFound) {
		t.Errorf("another tenant's hangup: %v, want not found", err)
	}
	if err := s.Hangup(ctx, tenant, rec.ID); err != nil {
		t.Fatal(err)
	}
	// Hangup returns once the record is final: the API answers with it.
	if now, err := store.Get[store.Call](ctx, st, tenant, rec.ID); err != nil || now.Status != store.CallCompleted {
		t.Errorf("record right after Hangup: %v %v, want completed", now, err)
	}
	u.waitBye(ctx, t, callID)
	if got, want := u.byeReason(callID), `Q.850;cause=16;text="Normal call clearing"`; got != want {
		t.Errorf("BYE Reason %q, want %q", got, want)
	}
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonAPIHangup) || got.Quality.PacketsSent == 0 {
		t.Fatalf("record %s/%s sent %d, want completed/api-hangup with the tone counted", got.Status, got.EndedReason, got.Quality.PacketsSent)
	}
	if err := s.Hangup(ctx, tenant, rec.ID); !errors.Is(err, ErrCallEnded) {
		t.Errorf("hanging up an ended call: %v, want ErrCallEnded", err)
	}
}

// A call whose RTP never comes ends after the media timeout, with a BYE.
func TestMediaTimeout(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, MediaTimeout: time.Second})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	callID := d.InviteRequest.CallID().Value()
	rec := answeredCall(ctx, t, events, callID)
	u.waitBye(ctx, t, callID)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonMediaTimeout) || got.Quality.PacketsReceived != 0 {
		t.Fatalf("record %s/%s received %d, want completed/media-timeout with nothing received", got.Status, got.EndedReason, got.Quality.PacketsReceived)
	}
	if got.DurationSeconds < 0.9 {
		t.Errorf("the call lasted %.2f s, want the 1 s timeout", got.DurationSeconds)
	}
}

// Offers we cannot take are answered 488, before and during a call (which goes on), and
// requests for a dialog we do not know 481.
func TestNotAcceptableAndUnknownDialog(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	base := string(sdpOffer("127.0.0.1", 40000, dirSendRecv))
	for _, tc := range []struct{ name, body string }{
		{"video only", strings.Replace(base, "m=audio", "m=video", 1)},
		{"telephone-event only", strings.Replace(base, "RTP/AVP 0 101", "RTP/AVP 101", 1)},
		{"multicast address", strings.Replace(base, "c=IN IP4 127.0.0.1", "c=IN IP4 239.1.2.3", 1)},
		{"port 0", strings.Replace(base, "m=audio 40000", "m=audio 0", 1)},
		{"no connection", strings.Replace(base, "c=IN IP4 127.0.0.1\r\n", "", 1)},
		{"DTLS", strings.Replace(base, "RTP/AVP", "UDP/TLS/RTP/SAVPF", 1)},
	} {
		if res := u.status(ctx, t, uri(t, "echo", addr), []byte(tc.body), sipgo.AnswerOptions{}); res.StatusCode != 488 {
			t.Errorf("%s: %d, want 488", tc.name, res.StatusCode)
		}
	}

	d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	res := reinvite(ctx, t, d, offerSDP(peer.port(), "18", "18 G729/8000"), nil)
	if res.StatusCode != 488 {
		t.Errorf("re-INVITE with G.729 only: %d, want 488", res.StatusCode)
	}
	peer.packets(100*time.Millisecond, 0)
	checkTone(t, decodeG711(peer.first(50, 5*time.Second, 0)), 0.9)

	// In-dialog requests with tags and a Call-ID nobody knows.
	for _, m := range []sip.RequestMethod{sip.BYE, sip.INFO, sip.NOTIFY, sip.REFER, sip.UPDATE, sip.INVITE} {
		req := sip.NewRequest(m, uri(t, "tone", addr))
		from := &sip.FromHeader{Address: uri(t, "test", "127.0.0.1"), Params: sip.NewParams()}
		from.Params.Add("tag", "caller-tag")
		to := &sip.ToHeader{Address: uri(t, "tone", addr), Params: sip.NewParams()}
		to.Params.Add("tag", "no-such-tag")
		callID := sip.CallIDHeader("no-such-call-" + string(m))
		req.AppendHeader(from)
		req.AppendHeader(to)
		req.AppendHeader(&callID)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: 2, MethodName: m})
		req.AppendHeader(&sip.ContactHeader{Address: uri(t, "test", "127.0.0.1")})
		req.SetBody(nil)
		var res *sip.Response
		var err error
		if m == sip.INVITE {
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(sdpOffer("127.0.0.1", 40000, dirSendRecv))
			var tx sip.ClientTransaction
			if tx, err = u.client.TransactionRequest(ctx, req); err == nil {
				select {
				case res = <-tx.Responses():
				case <-tx.Done():
					err = tx.Err()
				case <-ctx.Done():
					err = ctx.Err()
				}
				tx.Terminate()
			}
		} else {
			res, err = u.client.Do(ctx, req)
		}
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if res.StatusCode != 481 {
			t.Errorf("%s of an unknown dialog: %d, want 481", m, res.StatusCode)
		}
	}
	bye(ctx, t, d)
}

// A flood of INVITEs at the call limit is answered 503 and leaves the calls in progress
// alone.
func TestFloodAtCallLimit(t *testing.T) {
	verifyNoLeaks(t)
	const limit, flood = 5, 200
	s, addr := startCallServer(t, Config{MaxCalls: limit})
	u := newTestCaller(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	peers := make([]*rtpPeer, limit)
	dialogs := make([]*sipgo.DialogClientSession, limit)
	for i := range peers {
		peers[i] = newRTPPeer(t)
		dialogs[i] = u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peers[i].port(), dirSendRecv), sipgo.AnswerOptions{})
	}
	if n := s.Active(); n != limit {
		t.Fatalf("%d active calls, want %d", n, limit)
	}

	attacker := newTestCaller(t)
	codes := make(chan int, flood)
	retryAfter := make(chan bool, flood)
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, res, err := attacker.try(ctx, uri(t, "tone", addr), sdpOffer("127.0.0.1", 40000, dirSendRecv), sipgo.AnswerOptions{})
			switch {
			case err != nil:
				codes <- -1
			case d != nil:
				codes <- 200
				bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = d.Bye(bctx)
				cancel()
			default:
				codes <- res.StatusCode
				retryAfter <- res.GetHeader("Retry-After") != nil
			}
		}()
	}
	wg.Wait()
	close(codes)
	close(retryAfter)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[503] != flood {
		t.Errorf("flood answered %v, want %d × 503", count, flood)
	}
	for ok := range retryAfter {
		if !ok {
			t.Error("a 503 without Retry-After")
			break
		}
	}
	if n := s.refused.Load(); n < flood {
		t.Errorf("%d refusals counted, want %d", n, flood)
	}

	// The calls in progress still play their tone and hang up cleanly.
	for i, p := range peers {
		p.packets(20*time.Millisecond, 0)
		pkts := p.first(50, 5*time.Second, 0)
		if len(pkts) < 50 {
			t.Fatalf("call %d: %d packets after the flood, want its tone", i, len(pkts))
		}
		checkTone(t, decodeG711(pkts), 0.9)
		bye(ctx, t, dialogs[i])
	}
	for deadline := time.Now().Add(10 * time.Second); s.Active() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still active after their BYE", s.Active())
		}
	}
}

// newInboundTrunk stores an inbound trunk of the tenant with edit applied.
func newInboundTrunk(t *testing.T, st *store.Store, tenantID string, edit func(tr *store.Trunk)) *store.Trunk {
	t.Helper()
	tr := store.NewTrunk()
	tr.Name, tr.Direction = "pbx", "inbound"
	edit(tr)
	if err := store.Create(context.Background(), st, tenantID, tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// routeNumber routes the tenant's number to a built-in destination.
func routeNumber(t *testing.T, st *store.Store, tenantID, number, destination string) {
	t.Helper()
	pn := store.NewPhoneNumber()
	pn.Number, pn.Destination = number, destination
	if err := store.Create(context.Background(), st, tenantID, pn); err != nil {
		t.Fatal(err)
	}
}

// digestAuthorization answers the challenge ch for an INVITE with the digest uri duri.
func digestAuthorization(ch map[string]string, duri, user, password string) sip.Header {
	const nc, cnonce = "00000001", "0a4f113b"
	resp := digestResponse("INVITE", duri, user, password, ch["realm"], ch["nonce"], "auth", nc, cnonce)
	return sip.NewHeader("Authorization", fmt.Sprintf(
		`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s"`,
		user, ch["realm"], ch["nonce"], duri, resp, nc, cnonce))
}

// A trunk with a username and password takes calls to its tenant's numbers after digest
// authentication (RFC 3261 §22), from any address, loopback included.
func TestDigestTrunk(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	other, err := st.EnsureTenant(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	tr := newInboundTrunk(t, st, tenant, func(tr *store.Trunk) { tr.Inbound.Username, tr.Inbound.Password = "pbx", "s3cret pw" })
	routeNumber(t, st, tenant, "support", "echo")
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: other.ID, Events: events})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	target := uri(t, "support", addr)
	offer := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)

	res := u.status(ctx, t, target, offer, sipgo.AnswerOptions{})
	if res.StatusCode != 401 {
		t.Fatalf("no credentials: %d, want 401", res.StatusCode)
	}
	h := res.GetHeader("WWW-Authenticate")
	if h == nil || !strings.HasPrefix(h.Value(), "Digest ") || !strings.Contains(h.Value(), `realm="switchboard"`) || !strings.Contains(h.Value(), `qop="auth"`) {
		t.Fatalf("401 challenge %v, want a Digest challenge of realm switchboard with qop auth", h)
	}
	ch, err := parseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	// A built-in destination dialled by name from loopback without credentials is the
	// default tenant's, by its no-trunk rule: this tenant's trunk, which admits any address
	// after digest, neither challenges nor takes it.
	echo := u.call(ctx, t, uri(t, "echo", addr), offer, sipgo.AnswerOptions{})
	echoRec := answeredCall(ctx, t, events, echo.InviteRequest.CallID().Value())
	if echoRec.TenantID != other.ID || echoRec.TrunkID != nil {
		t.Errorf("loopback echo without credentials: record of tenant %s over trunk %v, want the default tenant's without one", echoRec.TenantID, echoRec.TrunkID)
	}
	bye(ctx, t, echo)
	endedCall(ctx, t, events, st, other.ID, echoRec.ID)
	if res := u.status(ctx, t, target, offer, sipgo.AnswerOptions{Username: "pbx", Password: "wrong"}); res.StatusCode != 403 {
		t.Errorf("wrong password: %d, want 403", res.StatusCode)
	}

	// sipgo answers the challenge itself.
	d := u.call(ctx, t, target, offer, sipgo.AnswerOptions{Username: "pbx", Password: "s3cret pw"})
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	if rec.TrunkID == nil || *rec.TrunkID != tr.ID || rec.TenantID != tenant || rec.Destination != "echo" {
		t.Errorf("record trunk %v tenant %s destination %q, want %s of %s to echo", rec.TrunkID, rec.TenantID, rec.Destination, tr.ID, tenant)
	}
	bye(ctx, t, d)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.TrunkID == nil || *got.TrunkID != tr.ID {
		t.Errorf("stored record %s trunk %v, want completed over %s", got.Status, got.TrunkID, tr.ID)
	}

	// The digest uri is the request URI as the caller wrote it: a transport parameter on
	// either side, or a default port spelled out, still names the same target.
	for _, tc := range []struct {
		name, target, duri string
		want               int
	}{
		{"uri with transport", "sip:support@" + addr, "sip:support@" + addr + ";transport=udp", 200},
		{"request URI with transport", "sip:support@" + addr + ";transport=udp", "sip:support@" + addr, 200},
		{"uri of another port", "sip:support@" + addr, "sip:support@127.0.0.1:5999", 403},
		{"uri of another user", "sip:support@" + addr, "sip:sales@" + addr, 403},
		{"uri of our host and port without user", "sip:support@" + addr, "sip:" + addr, 200},
		{"uri of another port without user", "sip:support@" + addr, "sip:127.0.0.1:5999", 403},
	} {
		var to sip.Uri
		if err := sip.ParseUri(tc.target, &to); err != nil {
			t.Fatal(err)
		}
		d, res, err := u.try(ctx, to, offer, sipgo.AnswerOptions{}, digestAuthorization(ch, tc.duri, "pbx", "s3cret pw"))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, res.StatusCode, tc.want)
		}
		if d != nil {
			bye(ctx, t, d)
			_ = d.Close()
		}
	}
}

// A trunk that allows the caller's address takes its calls without a challenge, for its
// tenant; one that does not leaves them refused.
func TestCIDRTrunk(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	other, err := st.EnsureTenant(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	routeNumber(t, st, tenant, "support", "tone")
	newInboundTrunk(t, st, tenant, func(tr *store.Trunk) { tr.Inbound.AllowedCIDRs = []string{"203.0.113.0/24"} })
	events := newEventLog()
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: other.ID, Events: events})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	offer := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)

	if res := u.status(ctx, t, uri(t, "support", addr), offer, sipgo.AnswerOptions{}); res.StatusCode != 403 {
		t.Fatalf("loopback with only a trunk for 203.0.113.0/24: %d, want 403", res.StatusCode)
	}

	tr := newInboundTrunk(t, st, tenant, func(tr *store.Trunk) { tr.Name, tr.Inbound.AllowedCIDRs = "lab", []string{"127.0.0.0/8"} })
	var seen []int
	d := u.call(ctx, t, uri(t, "support", addr), offer, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		seen = append(seen, res.StatusCode)
		return nil
	}})
	for _, code := range seen {
		if code == 401 || code == 407 {
			t.Errorf("challenged (%v) though the trunk allows the address", seen)
		}
	}
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	if rec.TrunkID == nil || *rec.TrunkID != tr.ID || rec.TenantID != tenant {
		t.Fatalf("record trunk %v tenant %s, want %s of %s", rec.TrunkID, rec.TenantID, tr.ID, tenant)
	}
	checkTone(t, decodeG711(peer.first(50, 5*time.Second, 0)), 0.9)
	bye(ctx, t, d)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.TrunkID == nil || *got.TrunkID != tr.ID || got.TenantID != tenant || got.Status != store.CallCompleted {
		t.Errorf("stored record %+v, want a completed call over %s", got, tr.ID)
	}
}

// A blind transfer (RFC 3515): the far end accepts the REFER and reports the new call's
// outcome by NOTIFY; an answered one ends our call, a failed one leaves it up.
func TestBlindTransfer(t *testing.T) {
	for _, tc := range []struct {
		name, to, frag string // frag "": the far end declines the REFER
		referTo        string
		statuses       []string
	}{
		{"answered", "+14155550123", "SIP/2.0 200 OK\r\n", "<sip:+14155550123@%s>", []string{"accepted", "completed"}},
		{"busy", "sip:desk@pbx.example.com", "SIP/2.0 486 Busy Here\r\n", "<sip:desk@pbx.example.com>", []string{"accepted", "failed"}},
		{"declined", "sip:desk@pbx.example.com", "", "<sip:desk@pbx.example.com>", []string{"rejected"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			events := newEventLog()
			s, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
			u := newTestCaller(t)
			peer := newRTPPeer(t)

			referTo := make(chan string, 1)
			notified := make(chan error, 1)
			u.mu.Lock()
			u.onRefer = func(d *sipgo.DialogClientSession, req *sip.Request, tx sip.ServerTransaction) {
				if h := req.GetHeader("Refer-To"); h != nil {
					referTo <- h.Value()
				}
				if tc.frag == "" {
					_ = tx.Respond(sip.NewResponseFromRequest(req, 603, "Decline", nil))
					return
				}
				if err := tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil)); err != nil {
					notified <- err
					return
				}
				go func() {
					n := sip.NewRequest(sip.NOTIFY, *d.InviteResponse.Contact().Address.Clone())
					n.AppendHeader(sip.NewHeader("Event", "refer"))
					n.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason=noresource"))
					n.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
					n.SetBody([]byte(tc.frag))
					res, err := d.Do(ctx, n)
					if err == nil && res.StatusCode != 200 {
						err = fmt.Errorf("NOTIFY answered %d", res.StatusCode)
					}
					notified <- err
				}()
			}
			u.mu.Unlock()

			d := u.call(ctx, t, uri(t, "tone", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
			callID := d.InviteRequest.CallID().Value()
			rec := answeredCall(ctx, t, events, callID)
			err := s.Transfer(ctx, tenant, rec.ID, tc.to)
			want := tc.referTo
			if strings.Contains(want, "%s") { // a number goes to the caller's host
				want = fmt.Sprintf(want, d.InviteRequest.From().Address.Host)
			}
			if got := <-referTo; got != want {
				t.Errorf("Refer-To %s, want %s", got, want)
			}
			if tc.frag == "" {
				if !errors.Is(err, ErrTransferRefused) {
					t.Fatalf("declined transfer: %v, want ErrTransferRefused", err)
				}
			} else {
				if err != nil {
					t.Fatalf("transfer: %v", err)
				}
				if err := <-notified; err != nil {
					t.Fatal(err)
				}
			}
			evs := events.waitN(ctx, t, len(tc.statuses), call.EventTransfer, onTopic(rec.ID))
			for i, e := range evs {
				if e.Data.(call.Transfer).Status != tc.statuses[i] {
					t.Errorf("call.transfer %d: %v, want %s", i, e.Data, tc.statuses[i])
				}
			}

			if tc.statuses[len(tc.statuses)-1] == "completed" {
				u.waitBye(ctx, t, callID)
				got := endedCall(ctx, t, events, st, tenant, rec.ID)
				if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonTransferred) {
					t.Fatalf("record %s/%s, want completed/transferred", got.Status, got.EndedReason)
				}
				return
			}
			// The call goes on: its tone still plays, and the caller hangs up.
			peer.packets(20*time.Millisecond, 0)
			checkTone(t, decodeG711(peer.first(50, 5*time.Second, 0)), 0.9)
			select {
			case id := <-u.byes:
				t.Fatalf("BYE for %s after a failed transfer", id)
			default:
			}
			bye(ctx, t, d)
			got := endedCall(ctx, t, events, st, tenant, rec.ID)
			if got.EndedReason != string(call.ReasonCallerHangup) {
				t.Errorf("record ended %s, want caller-hangup", got.EndedReason)
			}
		})
	}
}

// farEnd is the callee of outbound calls: a sipgo UA listening on loopback.
type farEnd struct {
	addr    string
	dialogs *sipgo.DialogServerCache
	byes    chan struct{}
}

func newFarEnd(t *testing.T, onInvite func(f *farEnd, req *sip.Request, tx sip.ServerTransaction)) *farEnd {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("far-end"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "far", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}}
	return serveFarEnd(t, ua, pc.LocalAddr().String(), contact, func(srv *sipgo.Server) error { return srv.ServeUDP(pc) }, pc.Close, onInvite)
}

// serveFarEnd runs a far end on ua at addr: its dialogs answer with contact, onInvite takes
// its INVITEs, ACKs and BYEs are its dialogs', and serve (its listener's loop) runs until the
// test ends and closeListener stops it.
func serveFarEnd(t *testing.T, ua *sipgo.UserAgent, addr string, contact sip.ContactHeader, serve func(*sipgo.Server) error,
	closeListener func() error, onInvite func(f *farEnd, req *sip.Request, tx sip.ServerTransaction)) *farEnd {
	t.Helper()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	f := &farEnd{addr: addr, byes: make(chan struct{}, 4)}
	f.dialogs = sipgo.NewDialogServerCache(client, contact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { onInvite(f, req, tx) })
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = f.dialogs.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := f.dialogs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		f.byes <- struct{}{}
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = serve(srv) }()
	t.Cleanup(func() {
		closeUA(ua)
		_ = closeListener()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the far end did not stop")
		}
	})
	return f
}

// answerWith has the far end ring, then answer with an offer of PCMU and telephone-event
// to peer, and hand over the dialog.
func answerWith(peer *rtpPeer, answered chan<- *sipgo.DialogServerSession, invites chan<- *sip.Request) func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
	return func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
		invites <- req
		d, err := f.dialogs.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
			return
		}
		if err := d.Respond(180, "Ringing", nil); err != nil {
			return
		}
		// It rings a while, as phones do: sipgo handles each response in a goroutine of its
		// own, and a 200 right behind the 180 may overtake it.
		time.Sleep(300 * time.Millisecond)
		res := sip.NewSDPResponseFromRequest(d.InviteRequest, sdpOffer("127.0.0.1", peer.port(), dirSendRecv))
		if err := d.WriteResponse(res); err != nil {
			// A call that ends at once sends its BYE right behind the ACK, and sipgo handles
			// each request in a goroutine of its own: the BYE may be read first, ending the
			// dialog before the ACK confirms it. The answer was taken all the same.
			select {
			case <-d.Context().Done():
			default:
				return
			}
		}
		answered <- d
	}
}

// statusesOf lists the statuses the call's life-cycle events carried, in order.
func statusesOf(events *eventLog, id string) []string {
	events.mu.Lock()
	defer events.mu.Unlock()
	var out []string
	for _, e := range events.events {
		if rec, ok := e.Data.(store.Call); ok && e.Topic == "call:"+id {
			out = append(out, rec.Status)
		}
	}
	return out
}

// An outbound call to a SIP URI: the far end gets our offer, rings, answers and hears the
// tone; the record goes from queued to completed when the far end hangs up.
func TestOutboundCall(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
	peer := newRTPPeer(t)
	answered := make(chan *sipgo.DialogServerSession, 1)
	invites := make(chan *sip.Request, 4)
	far := newFarEnd(t, answerWith(peer, answered, invites))

	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.Destination = tenant, "sip:far@"+far.addr, "tone"
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID == "" || rec.Status != store.CallQueued {
		t.Fatalf("dialled record %q %s, want an ID, queued", rec.ID, rec.Status)
	}
	var inv *sip.Request
	select {
	case inv = <-invites:
	case <-ctx.Done():
		t.Fatal("the far end got no INVITE")
	}
	if inv.Recipient.User != "far" {
		t.Errorf("request URI %s, want far@", inv.Recipient.String())
	}
	o := parseAnswer(t, inv.Body())
	if strings.Join(o.formats, " ") != "0 8 111 101" || o.dir != dirSendRecv {
		t.Errorf("offer formats %v %s, want 0 8 111 101 sendrecv", o.formats, o.dir)
	}
	for _, want := range []string{"0 PCMU/8000", "8 PCMA/8000", "111 opus/48000/2", "101 telephone-event/8000"} {
		if !strings.Contains(strings.Join(o.rtpmaps, "|"), want) {
			t.Errorf("offer rtpmaps %v lack %s", o.rtpmaps, want)
		}
	}
	var d *sipgo.DialogServerSession
	select {
	case d = <-answered:
	case <-ctx.Done():
		t.Fatal("the far end's answer was not acknowledged")
	}
	defer d.Close()
	checkTone(t, decodeG711(peer.first(100, 10*time.Second, 0)), 0.9)
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("far end BYE: %v", err)
	}
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.EndedReason != string(call.ReasonCalleeHangup) || got.Codec != "PCMU" ||
		got.Direction != store.CallOutbound || got.AnsweredAt == nil || got.SIPCallID != inv.CallID().Value() {
		t.Errorf("record %s/%s codec %q direction %s answered %v call-id %q", got.Status, got.EndedReason, got.Codec, got.Direction, got.AnsweredAt, got.SIPCallID)
	}
	want := []string{store.CallQueued, store.CallRinging, store.CallInProgress, store.CallCompleted}
	if got := statusesOf(events, rec.ID); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

// An outbound call the far end refuses busy, or lets ring past the call's timeout (which
// we CANCEL), is recorded busy or no-answer.
func TestOutboundUnanswered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		reason call.Reason
		hangup bool // Server.Hangup while it rings
	}{
		{"busy", store.CallBusy, call.ReasonBusy, false},
		{"no answer", store.CallNoAnswer, call.ReasonNoAnswer, false},
		{"hung up while ringing", store.CallCanceled, call.ReasonAPIHangup, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t, sipgoCancelLeak)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, tenant := newCallStore(t)
			events := newEventLog()
			s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
			canceled := make(chan bool, 1)
			cancelReason := make(chan string, 1)
			far := newFarEnd(t, func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
				if tc.status == store.CallBusy {
					_ = tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
					return
				}
				tx.OnCancel(func(r *sip.Request) {
					if h := r.GetHeader("Reason"); h != nil {
						cancelReason <- h.Value()
					}
				})
				d, err := f.dialogs.ReadInvite(req, tx)
				if err != nil {
					return
				}
				defer d.Close()
				_ = d.Respond(180, "Ringing", nil)
				select {
				case <-d.Context().Done():
					canceled <- true
				case <-time.After(20 * time.Second):
					canceled <- false
				}
			})

			rec := store.NewOutboundCall()
			rec.TenantID, rec.To, rec.Destination, rec.TimeoutSeconds = tenant, "sip:far@"+far.addr, "tone", 2
			if tc.hangup {
				rec.TimeoutSeconds = 60
			}
			start := time.Now()
			if err := s.Dial(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if tc.hangup {
				events.wait(ctx, t, call.EventRinging, onTopic(rec.ID))
				if err := s.Hangup(ctx, tenant, rec.ID); err != nil {
					t.Fatal(err)
				}
			}
			got := endedCall(ctx, t, events, st, tenant, rec.ID)
			if got.Status != tc.status || got.EndedReason != string(tc.reason) || got.AnsweredAt != nil {
				t.Errorf("record %s/%s answered %v, want %s/%s", got.Status, got.EndedReason, got.AnsweredAt, tc.status, tc.reason)
			}
			if tc.status == store.CallBusy {
				if fmt.Sprint(got.Metadata["sip_status"]) != "486" {
					t.Errorf("metadata %v, want sip_status 486", got.Metadata)
				}
				return
			}
			if !<-canceled {
				t.Error("the far end saw no CANCEL")
			}
			// The CANCEL says why: the caller gave up (normal clearing) or nobody answered.
			want := `Q.850;cause=19;text="No answer from user"`
			if tc.hangup {
				want = `Q.850;cause=16;text="Normal call clearing"`
			}
			select {
			case got := <-cancelReason:
				if got != want {
					t.Errorf("CANCEL Reason %s, want %s", got, want)
				}
			default:
				t.Errorf("the CANCEL had no Reason header, want %s", want)
			}
			if d := time.Since(start); !tc.hangup && d < 2*time.Second {
				t.Errorf("gave up after %v, want the 2 s timeout", d)
			}
		})
	}
}

// An outbound call over a trunk with credentials answers its proxy's 407 with a
// Proxy-Authorization the proxy can verify.
func TestOutboundProxyAuth(t *testing.T) {
	verifyNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, tenant := newCallStore(t)
	events := newEventLog()
	s, _ := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events})
	peer := newRTPPeer(t)
	answered := make(chan *sipgo.DialogServerSession, 1)
	invites := make(chan *sip.Request, 4)
	answer := answerWith(peer, answered, invites)
	const realmFar, nonce = "carrier", "bm9uY2UtMQ"
	var mu sync.Mutex
	var challenged []*sip.Request
	verdicts := make(chan string, 4)
	far := newFarEnd(t, func(f *farEnd, req *sip.Request, tx sip.ServerTransaction) {
		h := req.GetHeader("Proxy-Authorization")
		if h == nil {
			mu.Lock()
			challenged = append(challenged, req)
			mu.Unlock()
			res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="`+realmFar+`", nonce="`+nonce+`", qop="auth", algorithm=MD5`))
			_ = tx.Respond(res)
			return
		}
		c, err := parseCredentials(h.Value())
		switch {
		case err != nil:
			verdicts <- err.Error()
		case c.Username != "sb" || c.Realm != realmFar || c.Nonce != nonce || c.QOP != "auth":
			verdicts <- "credentials " + h.Value()
		case c.URI != req.Recipient.String():
			verdicts <- "digest uri " + c.URI + " is not the request URI " + req.Recipient.String()
		case digestResponse("INVITE", c.URI, "sb", "out s3cret", realmFar, nonce, c.QOP, c.NC, c.CNonce) != c.Response:
			verdicts <- "wrong digest"
		default:
			verdicts <- ""
			answer(f, req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
	})

	tr := store.NewTrunk()
	tr.Name, tr.Direction = "carrier", "outbound"
	tr.Outbound.Address, tr.Outbound.Username, tr.Outbound.Password, tr.Outbound.CallerID = far.addr, "sb", "out s3cret", "+14155550199"
	if err := store.Create(ctx, st, tenant, tr); err != nil {
		t.Fatal(err)
	}
	rec := store.NewOutboundCall()
	rec.TenantID, rec.To, rec.TrunkID, rec.Destination = tenant, "+14155550100", &tr.ID, "tone"
	if err := s.Dial(ctx, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-verdicts:
		if v != "" {
			t.Fatalf("the proxy refused the Proxy-Authorization: %s", v)
		}
	case <-ctx.Done():
		t.Fatal("no INVITE with Proxy-Authorization")
	}
	var d *sipgo.DialogServerSession
	select {
	case d = <-answered:
	case <-ctx.Done():
		t.Fatal("the answer was not acknowledged")
	}
	defer d.Close()
	inv := <-invites
	mu.Lock()
	first := challenged[0]
	mu.Unlock()
	if inv.CallID().Value() != first.CallID().Value() || inv.CSeq().SeqNo != first.CSeq().SeqNo+1 {
		t.Errorf("authenticated INVITE call-id %s cseq %d, want the challenged %s with cseq %d", inv.CallID().Value(), inv.CSeq().SeqNo, first.CallID().Value(), first.CSeq().SeqNo+1)
	}
	if inv.Recipient.User != "+14155550100" || inv.From().Address.User != "+14155550199" {
		t.Errorf("INVITE to %s from %s, want the number from the trunk's caller ID", inv.Recipient.String(), inv.From().Address.String())
	}
	checkTone(t, decodeG711(peer.first(50, 10*time.Second, 0)), 0.9)
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCompleted || got.TrunkID == nil || *got.TrunkID != tr.ID {
		t.Errorf("record %s over %v, want completed over %s", got.Status, got.TrunkID, tr.ID)
	}
}

// An INVITE without an offer (late offer, RFC 3261 §13.2.1): our offer goes in the 200 and
// the caller's answer in the ACK, whose codec the call then uses.
func TestLateOffer(t *testing.T) {
	verifyNoLeaks(t)
	events := newEventLog()
	addr := startServer(t, Config{Events: events})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := u.testUA.dialog.Invite(ctx, uri(t, "tone", addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("late-offer INVITE: %v", err)
	}
	u.mu.Lock()
	u.dialogs[d.InviteRequest.CallID().Value()] = d
	u.mu.Unlock()
	o := parseAnswer(t, d.InviteResponse.Body())
	if strings.Join(o.formats, " ") != "0 8 111 101" || o.dir != dirSendRecv {
		t.Fatalf("offer in the 200: %v %s, want 0 8 111 101 sendrecv", o.formats, o.dir)
	}
	ack := sip.NewRequest(sip.ACK, *d.InviteResponse.Contact().Address.Clone())
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(offerSDP(peer.port(), "8 101", "8 PCMA/8000", "101 telephone-event/8000"))
	if err := d.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	if rec.Codec != "PCMA" {
		t.Errorf("codec %q, want PCMA from the answer in the ACK", rec.Codec)
	}
	checkTone(t, decodeG711(peer.first(50, 5*time.Second, media.PayloadTypePCMA)), 0.9)
	bye(ctx, t, d)
}
