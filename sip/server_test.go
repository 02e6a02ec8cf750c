package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/internal/testnet"
	"github.com/switchboard-go/switchboard/media"
)

// testLog writes the server's log to the test's output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// verifyNoLeaks fails the test if goroutines it started outlive it. The readers of UDP
// connections a test's own user agent dialled (readUDPConnection) are not counted: sipgo
// v1.7.2 may open one after its agent closed (a late ACK, a CANCEL) and keeps it a moment
// on a busy machine; the server's requests leave from its listening socket, never from one.
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	opts = append(opts, goleak.IgnoreCurrent(), sipgoCancelLeak)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// startServer serves on 127.0.0.1 with an ephemeral port, until the test ends.
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	return startServerWith(t, cfg, 0)
}

func startServerWith(t *testing.T, cfg Config, ringDelay time.Duration) string {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.ringDelay = ringDelay
	return serveTest(t, s, nil)
}

type testUA struct {
	ua     *sipgo.UserAgent
	client *sipgo.Client
	dialog sipgo.DialogUA
}

func newTestUA(t testing.TB) *testUA {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-test"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeUA(ua) })
	return &testUA{ua: ua, client: client, dialog: sipgo.DialogUA{
		Client:     client,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "test", Host: "127.0.0.1"}},
	}}
}

// closeUA closes a test's user agent for good. sipgo handles each response in a goroutine
// of its own, and a dialog answers a retransmitted 200 (the server's, when the ACK was
// slow on a busy machine) with an ACK that opens a new UDP connection when the agent's
// connections were just closed: its reader would outlive the test. So the agent is closed,
// the responses in hand are let finish, and whatever they opened is closed too.
func closeUA(ua *sipgo.UserAgent) {
	_ = ua.Close()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if !bytes.Contains(buf[:n], []byte("sip.(*TransactionLayer).handleResponseBackground")) {
			break
		}
	}
	_ = ua.Close()
}

func uri(t testing.TB, user, addr string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(fmt.Sprintf("sip:%s@%s", user, addr), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func offerSDP(port int, formats string, rtpmaps ...string) []byte {
	s := "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/AVP %s\r\n", port, formats)
	for _, m := range rtpmaps {
		s += "a=rtpmap:" + m + "\r\n"
	}
	return []byte(s + "a=ptime:20\r\na=sendrecv\r\n")
}

// invite places a call and returns the dialog, or the final status of a refused call.
func (u *testUA) invite(ctx context.Context, t testing.TB, target sip.Uri, body []byte) (*sipgo.DialogClientSession, int) {
	t.Helper()
	dlg, err := u.dialog.Invite(ctx, target, body, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		_ = dlg.Close()
		return nil, de.Res.StatusCode
	}
	if err != nil {
		t.Fatalf("wait answer: %v", err)
	}
	return dlg, int(dlg.InviteResponse.StatusCode)
}

func TestOptions(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.OPTIONS, uri(t, "echo", addr))
	res, err := u.client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %d, want 200", res.StatusCode)
	}
}

func TestInviteRefused(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestUA(t)
	for _, tc := range []struct {
		name string
		user string
		body []byte
		want int
	}{
		{"unknown user", "nobody", offerSDP(40000, "0"), 404},
		{"G722 only", "echo", offerSDP(40000, "9", "9 G722/8000"), 488},
		{"G729 only", "echo", offerSDP(40000, "18", "18 G729/8000"), 488},
		{"port out of range", "echo", offerSDP(70000, "0"), 488},
		{"encrypted media", "echo", []byte(strings.Replace(string(offerSDP(40000, "0")), "RTP/AVP", "RTP/SAVP", 1)), 488},
		{"unparseable SDP", "echo", []byte("this is not SDP"), 488},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			dlg, code := u.invite(ctx, t, uri(t, tc.user, addr), tc.body)
			if dlg != nil {
				_ = dlg.Close()
			}
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
		})
	}
}

func TestByeUnknownDialog(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.BYE, uri(t, "echo", addr))
	req.AppendHeader(sip.NewHeader("Call-ID", "no-such-call"))
	res, err := u.client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 481 {
		t.Fatalf("BYE: %d, want 481", res.StatusCode)
	}
}

func TestParseOfferPreference(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    []byte
		codec   string
		eventPT uint8
	}{
		{"PCMA first", offerSDP(4000, "8 0 101", "101 telephone-event/8000"), "PCMA", 101},
		{"unsupported then PCMU", offerSDP(4000, "9 0"), "PCMU", 0},
		{"event pt 96", offerSDP(4000, "0 96", "96 telephone-event/8000"), "PCMU", 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseSDP(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if o.Codecs[0].Name != tc.codec || o.EventPT != tc.eventPT {
				t.Fatalf("got %s/%d, want %s/%d", o.Codecs[0].Name, o.EventPT, tc.codec, tc.eventPT)
			}
			ans := newLocalSDP(netip.MustParseAddr("127.0.0.1"), 5000).marshal(o.Codecs[:1], o.EventPT, answerDirection(o.Direction, o.Held), false)
			var sd sdp.SessionDescription
			if err := sd.Unmarshal(ans); err != nil {
				t.Fatalf("answer does not parse: %v\n%s", err, ans)
			}
		})
	}
}

// TestEchoCall places a real call, sends 2 s of a 1 kHz tone as PCMU RTP and checks that a
// 1 kHz tone comes back about 0.5 s later, from our own SSRC, to the socket that sent it.
func TestEchoCall(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	localPort := rtpConn.LocalAddr().(*net.UDPAddr).Port

	dlg, code := u.invite(ctx, t, uri(t, "echo", addr), offerSDP(localPort, "0 101", "101 telephone-event/8000"))
	if dlg == nil {
		t.Fatalf("INVITE: %d, want 200", code)
	}
	defer dlg.Close()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var ans sdp.SessionDescription
	if err := ans.Unmarshal(dlg.InviteResponse.Body()); err != nil {
		t.Fatalf("answer: %v", err)
	}
	md := ans.MediaDescriptions[0]
	if got := md.MediaName.Formats; len(got) != 2 || got[0] != "0" || got[1] != "101" {
		t.Fatalf("answer formats %v, want [0 101]", got)
	}
	remote := &net.UDPAddr{IP: net.ParseIP(ans.ConnectionInformation.Address.Address), Port: md.MediaName.Port.Value}

	// Receive what comes back.
	const sendFrames = 100 // 2 s
	type rx struct {
		pcm   []int16
		first time.Time
		ssrc  uint32
		n     int
	}
	got := make(chan rx, 1)
	go func() {
		var (
			r   rx
			buf [1500]byte
			pkt rtp.Packet
			dec [480]int16
		)
		// The echo goes on sending (silence) after the tone: stop when the tone and its
		// delay are surely back.
		stop := time.Now().Add(sendFrames*media.FrameDuration + 3*time.Second)
		for {
			_ = rtpConn.SetReadDeadline(stop)
			n, err := rtpConn.Read(buf[:])
			if err != nil {
				got <- r
				return
			}
			if media.ParseRTP(&pkt, buf[:n]) != nil || pkt.PayloadType != 0 {
				continue
			}
			m := media.DecodePCMU(dec[:], pkt.Payload)
			loud := false
			for _, v := range dec[:m] {
				loud = loud || v > 2000 || v < -2000
			}
			if r.n == 0 { // the echo starts with silence: wait for the tone
				if !loud {
					continue
				}
				r.first, r.ssrc = time.Now(), pkt.SSRC
			}
			r.n++
			// The tone is judged on the frames that carry it: on a starved machine the
			// echo's jitter buffer may conceal a late frame with silence, which would
			// read as a lower frequency.
			if loud {
				r.pcm = append(r.pcm, dec[:m]...)
			}
		}
	}()

	const ourSSRC = 0x1234
	pz := media.NewPacketizer(0, 8000, ourSSRC)
	var (
		pcm     [160]int16
		payload [160]byte
		out     [172]byte
	)
	tick := time.NewTicker(media.FrameDuration)
	defer tick.Stop()
	var start time.Time
	for i := range sendFrames {
		<-tick.C
		for j := range pcm {
			s := i*160 + j
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*1000*float64(s)/8000))
		}
		media.EncodePCMU(payload[:], pcm[:])
		n, err := pz.Packetize(out[:], payload[:])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			start = time.Now()
		}
		if _, err := rtpConn.WriteToUDP(out[:n], remote); err != nil {
			t.Fatal(err)
		}
	}
	r := <-got // ends one second after the echo stops

	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("bye: %v", err)
	}
	// The call's RTP socket is closed once the BYE is answered: its port can be bound again.
	for deadline := time.Now().Add(2 * time.Second); ; {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: remote.Port})
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RTP port %d still bound after BYE: %v", remote.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if r.n < sendFrames*9/10 {
		t.Fatalf("received %d frames back, want about %d", r.n, sendFrames)
	}
	if r.ssrc == ourSSRC {
		t.Error("echo reuses the caller's SSRC")
	}
	if d := r.first.Sub(start); d < 450*time.Millisecond || d > 800*time.Millisecond {
		t.Errorf("echo delay %v, want about 500ms", d)
	}
	// What comes back after the tone is the echo's silence: judge the tone alone.
	if n := sendFrames * 160 * 9 / 10; len(r.pcm) > n {
		r.pcm = r.pcm[:n]
	}
	if f := zeroCrossFreq(r.pcm); math.Abs(f-1000) > 20 {
		t.Errorf("echo tone %.1f Hz, want 1000 Hz", f)
	}
	if p := goertzelRatio(r.pcm, 1000, 8000); p < 0.9 {
		t.Errorf("only %.2f of the echo's energy is at 1 kHz", p)
	}
}

// zeroCrossFreq estimates the frequency of a tone from its rising zero crossings.
func zeroCrossFreq(y []int16) float64 {
	first, last, n := -1, -1, 0
	for i := 1; i < len(y); i++ {
		if y[i-1] < 0 && y[i] >= 0 {
			if first < 0 {
				first = i
			}
			last = i
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) * 8000 / float64(last-first)
}

// goertzelRatio is the share of y's energy at freq.
func goertzelRatio(y []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2, total float64
	for _, v := range y {
		x := float64(v)
		s1, s2 = x+c*s1-s2, s1
		total += x * x
	}
	power := s1*s1 + s2*s2 - c*s1*s2
	if total == 0 {
		return 0
	}
	return 2 * power / (total * float64(len(y)))
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		allowAll bool
		want     bool
	}{
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.1.2.3", false, true},
		{"192.168.1.10", false, true},
		{"172.16.0.1", false, true},
		{"::ffff:10.0.0.1", false, true},
		{"8.8.8.8", false, false},
		{"2001:db8::1", false, false},
		{"8.8.8.8", true, true},
	} {
		s := &Server{cfg: Config{AllowAll: tc.allowAll}}
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "echo", Host: "127.0.0.1"})
		_, ref := s.authenticate(context.Background(), req, netip.MustParseAddr(tc.addr))
		if got := ref == nil; got != tc.want {
			t.Errorf("allowed(%s, AllowAll=%v) = %v, want %v", tc.addr, tc.allowAll, got, tc.want)
		}
	}
}

// A CANCEL while the call rings is answered 200 and the INVITE 487.
func TestCancelBeforeAnswer(t *testing.T) {
	// sipgo v1.7.2's client miscounts references to its UDP connection when it sends a
	// CANCEL ("UDP ref went negative"), and now and then leaves that connection's reader
	// running after UserAgent.Close. That goroutine is the test peer's, created by
	// createConnection → readUDPConnection; the server's listener is read by
	// readListenerConnection directly and stays checked.
	verifyNoLeaks(t, goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"))
	addr := startServerWith(t, Config{}, 5*time.Second)
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlg, err := u.dialog.Invite(ctx, uri(t, "echo", addr), offerSDP(40000, "0"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer dlg.Close()
	ringing := make(chan struct{})
	waitCtx, stop := context.WithCancel(ctx)
	defer stop()
	var once sync.Once
	err = dlg.WaitAnswer(waitCtx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == 180 {
			once.Do(func() { close(ringing); stop() })
		}
		return nil
	}})
	select {
	case <-ringing:
	default:
		t.Fatalf("no 180 before WaitAnswer returned %v", err)
	}
	wantCancelled(t, dlg, err)
}

// wantCancelled checks that WaitAnswer ended with err because the INVITE was cancelled: its
// final response is a 487.
func wantCancelled(t *testing.T, dlg *sipgo.DialogClientSession, err error) {
	t.Helper()
	var de *sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &de):
		if de.Res.StatusCode != 487 {
			t.Fatalf("INVITE ended with %d, want 487", de.Res.StatusCode)
		}
	case errors.Is(err, context.Canceled):
		// sipgo returns Canceled once the CANCEL got its 200, keeping the INVITE's final
		// response, which must be the 487.
		if dlg.InviteResponse == nil || dlg.InviteResponse.StatusCode != 487 {
			t.Fatalf("INVITE final response %v, want 487", dlg.InviteResponse.StartLine())
		}
	default:
		t.Fatalf("WaitAnswer: %v, want the INVITE cancelled", err)
	}
}

func TestOptionsTCP(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t, Config{})
	u := newTestUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.OPTIONS, uri(t, "echo", addr))
	req.SetTransport("TCP")
	res, err := u.client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TCP: %d, want 200", res.StatusCode)
	}
}

// Shutting the server down hangs up active calls with a BYE and closes their media.
func TestShutdownHangsUp(t *testing.T) {
	verifyNoLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, pc, nil) }()

	u := newTestUA(t)
	byes := make(chan string, 1) // the BYE's Reason header
	uas, err := sipgo.NewServer(u.ua)
	if err != nil {
		t.Fatal(err)
	}
	var callee *sipgo.DialogClientSession
	var mu sync.Mutex
	uas.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		d := callee
		mu.Unlock()
		if d == nil || d.ReadBye(req, tx) != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		reason := ""
		if h := req.GetHeader("Reason"); h != nil {
			reason = h.Value()
		}
		byes <- reason
	})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dlg, code := u.invite(ctx, t, uri(t, "echo", pc.LocalAddr().String()), offerSDP(40000, "0"))
	if dlg == nil {
		t.Fatalf("INVITE: %d, want 200", code)
	}
	defer dlg.Close()
	mu.Lock()
	callee = dlg
	mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	stopServer()
	select {
	case reason := <-byes:
		// A carrier sees a temporary failure, not a caller who hung up.
		if want := `Q.850;cause=41;text="Temporary failure"`; reason != want {
			t.Errorf("BYE Reason %q, want %q", reason, want)
		}
	case <-ctx.Done():
		t.Fatal("no BYE from the server on shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("server did not stop")
	}
}

// ListenAndServe serves UDP and TCP on the same port and returns when its context ends.
func TestListenAndServe(t *testing.T) {
	verifyNoLeaks(t)
	s, err := New(Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	addr := ""
	listen := func() {
		// ListenAndServe binds the address it is given; another program may name the
		// same port first, and then it is started again on another.
		addr = fmt.Sprintf("127.0.0.1:%d", testnet.Port(t))
		go func() { served <- s.ListenAndServe(sctx, addr) }()
	}
	listen()

	u := newTestUA(t)
	for _, transport := range []string{"UDP", "TCP"} {
		var res *sip.Response
		for {
			select {
			case err := <-served:
				if !testnet.AddrInUse(err) {
					t.Fatalf("ListenAndServe: %v", err)
				}
				listen()
			default:
			}
			req := sip.NewRequest(sip.OPTIONS, uri(t, "echo", addr))
			req.SetTransport(transport)
			rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			res, err = u.client.Do(rctx, req)
			rcancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // not listening yet
		}
		if err != nil {
			t.Fatalf("OPTIONS over %s: %v", transport, err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("OPTIONS over %s: %d, want 200", transport, res.StatusCode)
		}
	}
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ListenAndServe: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ListenAndServe did not return")
	}
}
