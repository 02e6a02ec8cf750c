package sip

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// Early media end to end: an agent that plays before the answer is heard through a 183
// Session Progress, by a real sipgo UA with real RTP.

// earlyAgent is a test agent with early media: early runs before the answer, serve after.
type earlyAgent struct {
	early func(ctx context.Context, c *Call) bool
	serve func(ctx context.Context, c *Call)
}

func (a earlyAgent) ServeEarly(ctx context.Context, c *Call) bool { return a.early(ctx, c) }
func (a earlyAgent) ServeCall(ctx context.Context, c *Call)       { a.serve(ctx, c) }

// playTone writes d of a 1 kHz tone to st.
func playTone(st media.Stream, d time.Duration) error {
	tone := media.NewTone(1000, st.SampleRate(), 8000)
	f := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
	for range int(d / media.FrameDuration) {
		tone.Fill(f.Samples)
		if err := st.WriteFrame(&f); err != nil {
			return err
		}
	}
	return nil
}

// echoFrames plays back every frame it reads until the stream ends.
func echoFrames(st media.Stream) {
	f := media.Frame{Rate: st.SampleRate(), Samples: make([]int16, media.SamplesPerFrame(st.SampleRate()))}
	for st.ReadFrame(&f) == nil {
		if st.WriteFrame(&f) != nil {
			return
		}
	}
}

// arrival is an RTP packet and when it reached the test's peer.
type arrival struct {
	at  time.Time
	pkt rtp.Packet
}

// listen collects the packets of payload type pt that reach p, with their arrival times,
// until stop is called (at the latest when the test ends); stop returns them.
func (p *rtpPeer) listen(t *testing.T, pt uint8) (stop func() []arrival) {
	t.Helper()
	quit, out := make(chan struct{}), make(chan []arrival, 1)
	go func() {
		var got []arrival
		defer func() { out <- got }()
		for {
			select {
			case <-quit:
				return
			default:
			}
			_ = p.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			buf := make([]byte, 1500)
			n, err := p.conn.Read(buf)
			at := time.Now()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				return
			}
			var pkt rtp.Packet
			if media.ParseRTP(&pkt, buf[:n]) == nil && pkt.PayloadType == pt {
				got = append(got, arrival{at: at, pkt: pkt})
			}
		}
	}()
	var once sync.Once
	var got []arrival
	stop = func() []arrival {
		once.Do(func() {
			close(quit)
			got = <-out
		})
		return got
	}
	t.Cleanup(func() { stop() })
	return stop
}

// loudTone judges the frames of pkts that carry sound (the rest is silence): at least
// minFrames of them, a 1 kHz tone.
func loudTone(t *testing.T, what string, pkts []rtp.Packet, minFrames int) {
	t.Helper()
	var loud []rtp.Packet
	for _, p := range pkts {
		pcm := decodeG711([]rtp.Packet{p})
		peak := 0
		for _, v := range pcm {
			peak = max(peak, int(math.Abs(float64(v))))
		}
		if peak > 2000 {
			loud = append(loud, p)
		}
	}
	if len(loud) < minFrames {
		t.Fatalf("%s: %d frames of sound, want %d", what, len(loud), minFrames)
	}
	pcm := decodeG711(loud)
	if f := zeroCrossFreq(pcm); math.Abs(f-1000) > 20 {
		t.Errorf("%s: tone at %.1f Hz, want 1000 Hz", what, f)
	}
	if r := goertzelRatio(pcm, 1000, 8000); r < 0.9 {
		t.Errorf("%s: only %.2f of the energy at 1 kHz", what, r)
	}
}

// response is one response the test UA got to its INVITE, and when.
type response struct {
	at  time.Time
	res *sip.Response
}

// The agent plays a second of 1 kHz before the answer: the caller gets a 183 with our SDP,
// hears the tone before the 200 arrives, then the same stream carries the call (an echo).
// The caller sends nothing before the answer, which is no media timeout.
func TestEarlyMedia(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "early")
	events := newEventLog()
	streams := make(chan media.Stream, 2)
	agent := earlyAgent{
		early: func(ctx context.Context, c *Call) bool {
			streams <- c.Stream()
			if err := playTone(c.Stream(), time.Second); err != nil {
				t.Errorf("early tone: %v", err)
				return false
			}
			return true
		},
		serve: func(ctx context.Context, c *Call) {
			streams <- c.Stream()
			echoFrames(c.Stream())
		},
	}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events,
		Agents: testAgents{agent}, MediaTimeout: 800 * time.Millisecond})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	heard := peer.listen(t, media.PayloadTypePCMU)
	d, err := u.testUA.dialog.Invite(ctx, uri(t, "early", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv),
		sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []response
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		got = append(got, response{time.Now(), res})
		if res.StatusCode == sip.StatusSessionInProgress {
			// While the early media plays, the call rings.
			evs := events.onCall(call.EventRinging, sipCall(d.InviteRequest.CallID().Value()))
			if len(evs) == 1 {
				id := evs[0].Data.(store.Call).ID
				// The record is written behind the call: once the writer has caught up.
				if err := st.FlushCalls(ctx); err != nil {
					t.Error(err)
				}
				if rec, err := store.Get[store.Call](ctx, st, tenant, id); err != nil || rec.Status != store.CallRinging || rec.AnsweredAt != nil {
					t.Errorf("record during early media: %+v %v, want ringing, not answered", rec, err)
				}
			} else {
				t.Errorf("%d call.ringing events before the 183, want 1", len(evs))
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("INVITE: %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var codes []int
	var progress, ok response
	for _, r := range got {
		codes = append(codes, int(r.res.StatusCode))
		switch r.res.StatusCode {
		case sip.StatusSessionInProgress:
			progress = r
		case sip.StatusOK:
			ok = r
		}
	}
	if progress.res == nil || ok.res == nil || !progress.at.Before(ok.at) {
		t.Fatalf("responses %v, want a 183 before the 200", codes)
	}
	if ct := progress.res.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		t.Errorf("183 Content-Type %v, want application/sdp", ct)
	}
	if h := progress.res.GetHeader("Require"); h != nil {
		t.Errorf("183 with Require: %s, want it unreliable", h.Value())
	}
	early, answer := parseAnswer(t, progress.res.Body()), parseAnswer(t, ok.res.Body())
	if !bytes.Equal(progress.res.Body(), ok.res.Body()) || early.sessID != answer.sessID || early.version != answer.version {
		t.Errorf("the 200's SDP (o= %d %d) is not the 183's (o= %d %d)", answer.sessID, answer.version, early.sessID, early.version)
	}
	if early.formats[0] != "0" || early.dir != dirSendRecv {
		t.Errorf("183 SDP %v %s, want PCMU sendrecv", early.formats, early.dir)
	}

	// After the answer the caller talks, and the echo on the early stream plays it back.
	peer.sendTone(t, answer.rtp, 100)
	pkts := heard()
	bye(ctx, t, d)

	if len(pkts) == 0 || !pkts[0].at.Before(ok.at) {
		t.Fatalf("%d RTP packets, the first not before the 200", len(pkts))
	}
	var before, after []rtp.Packet
	for _, a := range pkts {
		if a.at.Before(ok.at) {
			before = append(before, a.pkt)
		} else {
			after = append(after, a.pkt)
		}
	}
	t.Logf("first RTP %v after the 183, 200 %v after it; %d packets before the 200", pkts[0].at.Sub(progress.at), ok.at.Sub(progress.at), len(before))
	loudTone(t, "early media", before, 45)
	loudTone(t, "echo after the answer", after, 50)
	if s1, s2 := <-streams, <-streams; s1 != s2 {
		t.Error("ServeCall got another stream than ServeEarly")
	}

	rec := answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	if rec.AnsweredAt == nil || rec.AnsweredAt.Sub(progress.at) < 800*time.Millisecond {
		t.Errorf("answered at %v, 183 at %v: want the answer after the second of early media", rec.AnsweredAt, progress.at)
	}
	if n := len(events.onCall(call.EventEarlyTone, onTopic(rec.ID))); n != 1 {
		t.Errorf("%d %s events, want 1", n, call.EventEarlyTone)
	}
	final := endedCall(ctx, t, events, st, tenant, rec.ID)
	if final.Status != store.CallCompleted || final.EndedReason != string(call.ReasonCallerHangup) {
		t.Errorf("record %s/%s, want completed/caller-hangup (no media timeout)", final.Status, final.EndedReason)
	}
}

// An agent that refuses after its early media: the INVITE is answered 480 and the record
// says failed, rejected; the call is never served.
func TestEarlyMediaRefused(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "early")
	events := newEventLog()
	agent := earlyAgent{
		early: func(ctx context.Context, c *Call) bool {
			_ = playTone(c.Stream(), 300*time.Millisecond)
			return false
		},
		serve: func(ctx context.Context, c *Call) { t.Error("a refused call was served") },
	}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: testAgents{agent}})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	heard := peer.listen(t, media.PayloadTypePCMU)
	offer := sdpOffer("127.0.0.1", peer.port(), dirSendRecv)
	var codes []int
	res := u.status(ctx, t, uri(t, "early", addr), offer, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		codes = append(codes, int(res.StatusCode))
		return nil
	}})
	if res.StatusCode != sip.StatusTemporarilyUnavailable {
		t.Fatalf("INVITE answered %d %s, want 480", res.StatusCode, res.Reason)
	}
	// sipgo's client hands each response over from a goroutine of its own: provisional
	// responses sent together may come out of order, but all before the final one.
	if !slices.Contains(codes, sip.StatusSessionInProgress) || codes[len(codes)-1] != sip.StatusTemporarilyUnavailable {
		t.Errorf("responses %v, want a 183, then the 480", codes)
	}
	var pkts []rtp.Packet
	for _, a := range heard() {
		pkts = append(pkts, a.pkt)
	}
	loudTone(t, "early media", pkts, 10)

	callID := res.CallID().Value()
	rec := events.wait(ctx, t, call.EventRinging, sipCall(callID)).Data.(store.Call)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallFailed || got.EndedReason != string(call.ReasonRejected) || got.AnsweredAt != nil || got.EndedAt == nil {
		t.Fatalf("record %s/%s answered %v ended %v, want failed/rejected, never answered", got.Status, got.EndedReason, got.AnsweredAt, got.EndedAt)
	}
	if len(events.onCall(call.EventAnswered, sipCall(callID))) != 0 {
		t.Error("call.answered published for a refused call")
	}
}

// A CANCEL during early media ends it: the INVITE gets 487, the agent's early media stops
// (even though it then asks to answer), no RTP follows, and the record says canceled.
func TestEarlyMediaCanceled(t *testing.T) {
	verifyNoLeaks(t, sipgoCancelLeak)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "early")
	events := newEventLog()
	stopped := make(chan error, 1)
	agent := earlyAgent{
		early: func(ctx context.Context, c *Call) bool {
			err := playTone(c.Stream(), 20*time.Second)
			if err == nil {
				err = errors.New("played to the end")
			}
			stopped <- err
			return true // too late: the caller is gone
		},
		serve: func(ctx context.Context, c *Call) { t.Error("a cancelled call was served") },
	}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: testAgents{agent}})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := u.testUA.dialog.Invite(ctx, uri(t, "early", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv),
		sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitCtx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	heard := make(chan int, 1)
	err = d.WaitAnswer(waitCtx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == sip.StatusSessionInProgress {
			once.Do(func() {
				wg.Add(1)
				go func() { // hang up once the early media is heard
					defer wg.Done()
					heard <- len(peer.first(10, 5*time.Second, media.PayloadTypePCMU))
					hangUp()
				}()
			})
		}
		return nil
	}})
	select {
	case n := <-heard:
		if n < 10 {
			t.Fatalf("%d early media packets before the CANCEL, want 10", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no 183 and early media before WaitAnswer returned %v", err)
	}
	wantCancelled(t, d, err)

	select {
	case err := <-stopped:
		if !errors.Is(err, media.ErrClosed) {
			t.Errorf("the early media stopped with %v, want the stream closed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the early media still plays after the CANCEL")
	}
	rec := events.wait(ctx, t, call.EventRinging, sipCall(d.InviteRequest.CallID().Value())).Data.(store.Call)
	got := endedCall(ctx, t, events, st, tenant, rec.ID)
	if got.Status != store.CallCanceled || got.EndedReason != string(call.ReasonCanceled) || got.AnsweredAt != nil {
		t.Fatalf("record %s/%s answered %v, want canceled, never answered", got.Status, got.EndedReason, got.AnsweredAt)
	}
	peer.packets(100 * time.Millisecond) // what was on its way
	if n := len(peer.packets(500*time.Millisecond, media.PayloadTypePCMU)); n != 0 {
		t.Errorf("%d RTP packets after the call ended, want none", n)
	}
}

// With a late offer (an INVITE without SDP) there is no answer to put in a 183: no early
// media, the call is answered as any other.
func TestEarlyMediaLateOffer(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "early")
	events := newEventLog()
	served := make(chan *Call, 1)
	agent := earlyAgent{
		early: func(ctx context.Context, c *Call) bool { t.Error("early media without an offer"); return true },
		serve: func(ctx context.Context, c *Call) { served <- c; echoFrames(c.Stream()) },
	}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: testAgents{agent}})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d, err := u.testUA.dialog.Invite(ctx, uri(t, "early", addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var codes []int
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		codes = append(codes, int(res.StatusCode))
		return nil
	}}); err != nil {
		t.Fatalf("late-offer INVITE: %v", err)
	}
	for _, c := range codes {
		if c == sip.StatusSessionInProgress {
			t.Errorf("responses %v: a 183 without an offer", codes)
		}
	}
	ack := sip.NewRequest(sip.ACK, *d.InviteResponse.Contact().Address.Clone())
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(offerSDP(peer.port(), "0"))
	if err := d.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("the call was not served")
	}
	answeredCall(ctx, t, events, d.InviteRequest.CallID().Value())
	bye(ctx, t, d)
}

// Recordings are of answered calls: the early media of a refused one leaves no file.
func TestEarlyMediaNotRecorded(t *testing.T) {
	verifyNoLeaks(t)
	st, tenant := newCallStore(t)
	agentNumber(t, st, tenant, "early")
	events := newEventLog()
	dir := t.TempDir()
	agent := earlyAgent{
		early: func(ctx context.Context, c *Call) bool { _ = playTone(c.Stream(), 200*time.Millisecond); return false },
		serve: func(ctx context.Context, c *Call) {},
	}
	_, addr := startCallServer(t, Config{Store: st, DefaultTenantID: tenant, Events: events, Agents: testAgents{agent}, RecordDir: dir})
	u := newTestCaller(t)
	peer := newRTPPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	res := u.status(ctx, t, uri(t, "early", addr), sdpOffer("127.0.0.1", peer.port(), dirSendRecv), sipgo.AnswerOptions{})
	if res.StatusCode != sip.StatusTemporarilyUnavailable {
		t.Fatalf("INVITE answered %d, want 480", res.StatusCode)
	}
	rec := events.wait(ctx, t, call.EventRinging, sipCall(res.CallID().Value())).Data.(store.Call)
	endedCall(ctx, t, events, st, tenant, rec.ID)
	if files, err := os.ReadDir(dir); err != nil || len(files) != 0 {
		t.Errorf("recordings %v %v, want none", files, err)
	}
}
