package loadgen

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/sip"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

func verifyNoLeaks(t *testing.T) {
	t.Helper()
	// sipgo v1.7.2's client now and then leaves the reader of its UDP connection running
	// after UserAgent.Close (see sip/server_test.go, TestCancelBeforeAnswer).
	opts := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection")}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// startServer serves Switchboard's SIP server on 127.0.0.1 with an ephemeral port until
// the test ends, and returns its address.
func startServer(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pc, l, err := sip.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sip.New(sip.Config{Log: testLog(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
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
	return pc.LocalAddr().String()
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog(t, slog.LevelWarn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	return rep
}

// Twenty calls of three seconds to the echo: all answered, nothing lost, and the audio
// back half a second later, as the echo holds it.
func TestEchoCalls(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t)
	for _, codec := range []string{"pcmu", "pcma", "opus"} {
		t.Run(codec, func(t *testing.T) {
			calls, d := 20, 3*time.Second
			if codec != "pcmu" {
				calls, d = 5, 2*time.Second
			}
			rep := run(t, Config{
				Target: "sip:echo@" + addr, Calls: calls, Rate: 50, Duration: d,
				Codec: codec, EchoDelay: 500 * time.Millisecond, ServerPID: os.Getpid(),
			})
			if codec == "opus" && rep.Failures["488"] == calls {
				t.Skip("the server refuses Opus (488 Not Acceptable Here): no Opus in its SDP yet")
			}
			checkEcho(t, rep, calls, d)
		})
	}
}

// checkRoundTrip wants the audio back 500–700 ms after it was sent, as the echo holds it
// 500 ms. A frame the pacer sent late still plays in its slot of the echo's clock, so it
// comes back sooner by as much: the pacer's worst lateness (a few ms on a quiet machine)
// widens the bounds.
func checkRoundTrip(t *testing.T, rep *Report) {
	t.Helper()
	// The measurement itself is pinned to the sample elsewhere; here the server shares the
	// machine with the generator (and, in a full test run, with everything else), so its
	// own lateness widens the top of the window: the typical round trip must still be the
	// echo's half second.
	// The node's send clock runs from the call's answer (it sends silence until the echo
	// speaks), so the echo's frames go out on that clock's 20 ms slots, not on the phase of
	// what it heard: a round trip may read up to one frame short of the half second.
	const slot = float64(media.FrameDuration / time.Millisecond)
	lo, hi := 500-slot-rep.PacerMaxLagMs-2, 1100+rep.PacerMaxLagMs
	if rep.RoundTrip.P50 < 500-slot || rep.RoundTrip.P50 > 700+rep.PacerMaxLagMs || rep.RoundTrip.Min < lo || rep.RoundTrip.Max > hi {
		t.Errorf("round trip %.1f–%.1f ms (p50 %.1f), want within %.1f–%.1f ms (the echo holds 500 ms; the pacer lagged up to %.1f ms)",
			rep.RoundTrip.Min, rep.RoundTrip.Max, rep.RoundTrip.P50, lo, hi, rep.PacerMaxLagMs)
	}
}

func checkEcho(t *testing.T, rep *Report, calls int, d time.Duration) {
	t.Helper()
	if rep.Attempted != calls || rep.Answered != calls || rep.Failed != 0 {
		t.Fatalf("attempted %d, answered %d, failed %d %v; want %d answered", rep.Attempted, rep.Answered, rep.Failed, rep.Failures, calls)
	}
	if rep.RemoteHangups != 0 || rep.ByeFailed != 0 || rep.SilentCalls != 0 {
		t.Errorf("remote hang-ups %d, failed BYEs %d, silent calls %d; want none", rep.RemoteHangups, rep.ByeFailed, rep.SilentCalls)
	}
	frames := int64(calls) * int64(d/media.FrameDuration)
	if rep.PacketsSent+rep.PacerSkippedFrames != frames {
		t.Errorf("sent %d packets and skipped %d, want %d in all", rep.PacketsSent, rep.PacerSkippedFrames, frames)
	}
	// The echo plays back on its own clock for as long as the call lasts, silence included.
	if rep.PacketsReceived < rep.PacketsSent*9/10 || rep.PacketsLost != 0 || rep.LossPercent != 0 {
		t.Errorf("received %d packets for %d sent, lost %d (%.2f%%); want as many, none lost", rep.PacketsReceived, rep.PacketsSent, rep.PacketsLost, rep.LossPercent)
	}
	// One burst a second.
	if want := calls * int(d/time.Second); rep.RoundTrip.Count < want*8/10 {
		t.Errorf("%d round trips measured, want about %d", rep.RoundTrip.Count, want)
	}
	checkRoundTrip(t, rep)
	// An onset that matches nothing sent is a fault of the measurement, unless the generator
	// itself skipped frames (a machine too busy to send on time cuts a burst, and the echo
	// of the cut is a new onset): then a few are allowed.
	allowed := 0
	if rep.PacerSkippedFrames > 0 {
		allowed = max(1, rep.RoundTrip.Count/10)
	}
	if rep.OnsetsUnmatched > allowed {
		t.Errorf("%d onsets heard matched none sent (the pacer skipped %d frames)", rep.OnsetsUnmatched, rep.PacerSkippedFrames)
	}
	if rep.Setup.Count != calls || rep.Setup.Max <= 0 {
		t.Errorf("setup times %+v", rep.Setup)
	}
	if rep.ServerCPU == nil || rep.LoadCPU == nil || rep.ServerCPU.Seconds <= 0 {
		t.Errorf("CPU not measured: server %+v, load %+v", rep.ServerCPU, rep.LoadCPU)
	}
}

// Calls to a user the server does not know fail with 404, counted by status.
func TestRefusedCalls(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t)
	rep := run(t, Config{Target: "sip:nobody@" + addr, Calls: 4, Total: 6, Duration: time.Second, EchoDelay: 500 * time.Millisecond})
	if rep.Attempted != 6 || rep.Answered != 0 || rep.Failed != 6 || rep.Failures["404"] != 6 {
		t.Fatalf("attempted %d, answered %d, failed %d %v; want six 404s", rep.Attempted, rep.Answered, rep.Failed, rep.Failures)
	}
	if !strings.Contains(rep.String(), "404×6") {
		t.Errorf("summary does not give the failures by status:\n%s", rep)
	}
}

// Over TCP, and with more calls than may be up at once, every call is placed in turn.
func TestTCPAndTotal(t *testing.T) {
	verifyNoLeaks(t)
	addr := startServer(t)
	rep := run(t, Config{Target: "sip:echo@" + addr, Transport: "tcp", Calls: 3, Total: 6, Duration: time.Second, EchoDelay: 500 * time.Millisecond})
	if rep.Answered != 6 || rep.PeakConcurrent != 3 {
		t.Fatalf("answered %d (want 6), peak %d at once (want 3); failures %v", rep.Answered, rep.PeakConcurrent, rep.Failures)
	}
	if rep.PacketsLost != 0 || rep.RoundTrip.Count < 6 {
		t.Errorf("lost %d, %d round trips", rep.PacketsLost, rep.RoundTrip.Count)
	}
}

// A server that never answers is a timeout, and the run does not wait for sipgo's Timer B.
func TestSetupTimeout(t *testing.T) {
	verifyNoLeaks(t)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	began := time.Now()
	rep := run(t, Config{Target: "sip:echo@" + silent.LocalAddr().String(), Calls: 2, Duration: time.Second, SetupTimeout: 300 * time.Millisecond})
	if rep.Failures["timeout"] != 2 {
		t.Fatalf("failures %v, want two timeouts", rep.Failures)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("run took %v", d)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no calls", Config{Target: "sip:echo@127.0.0.1", Duration: time.Second}},
		{"short duration", Config{Target: "sip:echo@127.0.0.1", Calls: 1, Duration: time.Millisecond}},
		{"codec", Config{Target: "sip:echo@127.0.0.1", Calls: 1, Duration: time.Second, Codec: "g729"}},
		{"transport", Config{Target: "sip:echo@127.0.0.1", Calls: 1, Duration: time.Second, Transport: "sctp"}},
		{"target", Config{Target: "sip:", Calls: 1, Duration: time.Second}},
		{"negative rate", Config{Target: "sip:echo@127.0.0.1", Calls: 1, Duration: time.Second, Rate: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// The round trip is measured to the sample: audio that comes back 504.625 ms later, in
// frames that do not line up with the ones sent, measures 504.625 ms.
func TestRoundTripMeasure(t *testing.T) {
	for _, name := range []string{"pcmu", "opus"} {
		t.Run(name, func(t *testing.T) {
			codec, _ := lookupCodec(name)
			pat, err := newPattern(codec, nil)
			if err != nil {
				t.Fatal(err)
			}
			const shift = 4037 // samples at 8 kHz: 504.625 ms
			epoch := time.Now()
			c := &call{pat: pat, epoch: epoch, echo: 500 * time.Millisecond}
			dec, _ := newDecoder(codec)
			c.rx = receiver{pt: 0, stats: media.NewReceiverStats(8000), decode: media8k, det: newOnsetDetector(), roundTrips: make([]time.Duration, 0, 16)}
			// What the sender heard of its own loop, at detectRate, as the echo hears it.
			var heard []int16
			var pcm [maxRxSamples]int16
			const frames = 200 // 4 s
			for k := range frames {
				pl := pat.payloads[k%len(pat.payloads)]
				n, err := dec(pcm[:], pl)
				if err != nil {
					t.Fatal(err)
				}
				heard = append(heard, pcm[:n]...)
				if off := pat.onsets[k%len(pat.onsets)]; off >= 0 { // as send records it
					at := time.Duration(k)*media.FrameDuration + time.Duration(off)*time.Second/detectRate
					i := c.onsetN.Add(1) - 1
					c.onsetAt[i%sentOnsets].Store(int64(at))
				}
			}
			back := append(make([]int16, shift), heard...)
			pz := media.NewPacketizer(0, 8000, 0)
			var payload [160]byte
			out := make([]byte, 172)
			for m := 0; (m+1)*160 <= len(back); m++ {
				media.EncodePCMU(payload[:], back[m*160:(m+1)*160])
				n, _ := pz.Packetize(out, payload[:])
				c.receive(out[:n], epoch.Add(time.Duration(m)*media.FrameDuration))
			}
			if len(c.rx.roundTrips) != 4 {
				t.Fatalf("%d round trips from %d onsets heard, want 4", len(c.rx.roundTrips), c.rx.onsets)
			}
			for _, rt := range c.rx.roundTrips {
				if want := 504625 * time.Microsecond; rt != want {
					t.Errorf("round trip %v, want %v", rt, want)
				}
			}
		})
	}
}

// media8k decodes PCMU: the stream the test sends back, whatever the codec sent.
func media8k(dst []int16, pl []byte) (int, error) { return media.DecodePCMU(dst, pl), nil }

// The default loop has one onset a second, at the start of its burst.
func TestPatternOnsets(t *testing.T) {
	for _, name := range []string{"pcmu", "pcma", "opus"} {
		codec, _ := lookupCodec(name)
		pat, err := newPattern(codec, nil)
		if err != nil {
			t.Fatal(err)
		}
		var at []int
		for k, off := range pat.onsets {
			if off >= 0 {
				at = append(at, k)
			}
		}
		if len(pat.payloads) != periodFrames || len(at) != 1 || at[0] < burstAt || at[0] > burstAt+1 || pat.spacing != time.Second {
			t.Errorf("%s: %d frames, onsets in frames %v, spacing %v; want 50 frames, one onset at frame %d, 1 s", name, len(pat.payloads), at, pat.spacing, burstAt)
		}
	}
}

// Sending and receiving a frame allocate nothing.
func TestSteadyStateAllocs(t *testing.T) {
	codec, _ := lookupCodec("pcmu")
	pat, err := newPattern(codec, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dec, _ := newDecoder(codec)
	c := &call{
		conn: conn, remote: sink.LocalAddr().(*net.UDPAddr).AddrPort(), pat: pat, epoch: time.Now(), echo: 500 * time.Millisecond,
		pz: media.NewPacketizer(0, 8000, 0), out: make([]byte, 12+pat.maxPayload), frames: 1 << 30,
		rx: receiver{pt: 0, stats: media.NewReceiverStats(8000), decode: dec, det: newOnsetDetector(), roundTrips: make([]time.Duration, 0, 1)},
	}
	if a := testing.AllocsPerRun(500, func() { c.send(time.Now()); c.frame++ }); a != 0 {
		t.Errorf("sending a frame: %v allocations, want 0", a)
	}
	pz := media.NewPacketizer(0, 8000, 0)
	pkt := make([]byte, 172)
	k := 0
	if a := testing.AllocsPerRun(500, func() {
		n, _ := pz.Packetize(pkt, pat.payloads[k%len(pat.payloads)])
		k++
		c.receive(pkt[:n], time.Now())
	}); a != 0 {
		t.Errorf("receiving a frame: %v allocations, want 0", a)
	}
}

func TestParseAnswer(t *testing.T) {
	pcmu, _ := lookupCodec("pcmu")
	opus, _ := lookupCodec("opus")
	sdp := func(formats string, maps ...string) []byte {
		s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP " + formats + "\r\n"
		for _, m := range maps {
			s += "a=rtpmap:" + m + "\r\n"
		}
		return []byte(s)
	}
	for _, tc := range []struct {
		name  string
		codec codecSpec
		body  []byte
		pt    uint8
		ok    bool
	}{
		{"pcmu static", pcmu, sdp("0 101", "101 telephone-event/8000"), 0, true},
		{"pcmu mapped", pcmu, sdp("0", "0 PCMU/8000"), 0, true},
		{"opus other pt", opus, sdp("96", "96 opus/48000/2"), 96, true},
		{"pcma instead", pcmu, sdp("8"), 0, false},
		{"not sdp", pcmu, []byte("hello"), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap, pt, err := parseAnswer(tc.body, tc.codec)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (pt != tc.pt || ap != netip.MustParseAddrPort("10.0.0.7:4000")) {
				t.Fatalf("got %v pt %d", ap, pt)
			}
		})
	}
}

// The CPU time read from /proc follows the process's own account of it.
func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Skip(err)
	}
	self0 := selfCPU()
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, want := after-before, selfCPU()-self0
	if got < want/2 || got > want*2+50*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v", got, want)
	}
	if _, err := processCPU(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// A WAV file at another rate is resampled and looped, and its own onsets measure the
// round trip: here a 200 ms burst of 600 Hz every 1.5 s, written at 16 kHz.
func TestWAVAudio(t *testing.T) {
	verifyNoLeaks(t)
	path := filepath.Join(t.TempDir(), "bursts.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := media.NewWAVWriter(f, media.Rate16k, 1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 3*media.Rate16k/2)
	for i := range media.Rate16k / 5 {
		pcm[i] = int16(10000 * math.Sin(2*math.Pi*600*float64(i)/media.Rate16k))
	}
	if err := w.Write(pcm); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	addr := startServer(t)
	rep := run(t, Config{Target: "sip:echo@" + addr, Calls: 3, Duration: 3 * time.Second, WAV: path, EchoDelay: 500 * time.Millisecond})
	if rep.Answered != 3 || rep.PacketsLost != 0 {
		t.Fatalf("answered %d, lost %d", rep.Answered, rep.PacketsLost)
	}
	// Onsets at 0 and 1.5 s of each call.
	if rep.RoundTrip.Count != 6 {
		t.Errorf("%d round trips, want 6", rep.RoundTrip.Count)
	}
	checkRoundTrip(t, rep)
	if rep.Audio != path {
		t.Errorf("audio %q, want the file", rep.Audio)
	}
}
