//go:build unix

package media

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The benchmarks of the RTP session measure what a call costs: the media path alone per
// frame (BenchmarkRTPSessionPath), a real pair on loopback in real time
// (BenchmarkRTPSessionLoopback), and many echo calls at once against a load generator in
// another process, so that only the sessions' CPU is counted (BenchmarkRTPSessionsEcho).

// cpuTime is the CPU, user and system, this process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRTPSessionPath is one frame through the media path, without sockets or pacing:
// encode and packetize on one session, intake (parse, latch, statistics, jitter buffer) and
// play-out (decode, resample) on the other.
func BenchmarkRTPSessionPath(b *testing.B) {
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
	}{{specPCMU, Rate8k}, {specPCMU, Rate16k}, {specOpus, Rate16k}, {specOpus, Rate48k}} {
		b.Run(tc.codec.Name+"/"+itoa(tc.rate), func(b *testing.B) {
			p := newPathPair(b, tc.codec, tc.rate)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(FrameDuration)
				p.frame(b, now)
			}
		})
	}
}

// BenchmarkRTPSessionLoopback is one 20 ms frame each way of a real pair of sessions on
// 127.0.0.1: WriteFrame, the reader goroutine, ReadFrame, on both sides. It runs in real
// time (20 ms an operation), so its figure is the CPU per frame of the call, both
// directions: cpu-µs/frame.
//
// The SRTP variants are the same pair carrying SRTP (srtp.go); run with -count to interleave
// them with plain RTP:
//
//	go test -run '^$' -bench 'RTPSessionLoopback/PCMU/8k' -benchtime 250x -count 3 ./media/
func BenchmarkRTPSessionLoopback(b *testing.B) {
	for _, tc := range []struct {
		codec CodecSpec
		rate  int
		suite SRTPSuite
	}{{specPCMU, Rate8k, ""}, {specPCMU, Rate8k, SRTPAES128SHA1_80}, {specPCMU, Rate8k, SRTPAES128SHA1_32},
		{specPCMU, Rate16k, ""}, {specOpus, Rate48k, ""}} {
		name := tc.codec.Name + "/" + itoa(tc.rate)
		if tc.suite != "" {
			name += "/" + string(tc.suite)
		}
		b.Run(name, func(b *testing.B) {
			tweak := func(_ int, cfg *RTPConfig) { cfg.MediaTimeout = -1 }
			if tc.suite != "" {
				ka, kb := srtpKeys(b)
				tweak = withSRTP(tc.suite, ka, kb, tweak)
			}
			a, c := sessionPair(b, tc.codec, tc.rate, false, tweak)
			n := SamplesPerFrame(tc.rate)
			ta, tc2 := NewTone(1000, tc.rate, 8000), NewTone(700, tc.rate, 8000)
			wa, wc := Frame{Rate: tc.rate, Samples: make([]int16, n)}, Frame{Rate: tc.rate, Samples: make([]int16, n)}
			var ra, rc Frame
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				ta.Fill(wa.Samples)
				tc2.Fill(wc.Samples)
				if err := a.WriteFrame(&wa); err != nil {
					b.Fatal(err)
				}
				if err := c.WriteFrame(&wc); err != nil {
					b.Fatal(err)
				}
				if err := a.ReadFrame(&ra); err != nil {
					b.Fatal(err)
				}
				if err := c.ReadFrame(&rc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/frame")
		})
	}
}

// Environment of BenchmarkRTPSessionsEcho.
const (
	envEchoCalls   = "SWITCHBOARD_ECHO_CALLS"   // calls; default: b.N (-benchtime=1000x)
	envEchoSeconds = "SWITCHBOARD_ECHO_SECONDS" // length of the run; default 6
	envEchoRate    = "SWITCHBOARD_ECHO_RATE"    // stream rate; default 8000 for G.711, 48000 for Opus
	envEchoRTCP    = "SWITCHBOARD_ECHO_RTCP"    // "0": no RTCP sockets
	envEchoPeer    = "SWITCHBOARD_ECHO_PEER"    // set in the load generator's process
)

// echoDelayFrames is the echo's delay line: it plays back what it heard 0.5 s before.
const echoDelayFrames = 25

// BenchmarkRTPSessionsEcho runs many echo calls at once, each an RTPSession (with its
// RTCP socket) and one goroutine that reads frames and writes them back 0.5 s later, like
// the echo destination. A load generator in a child process (this test binary again,
// TestEchoPeer) plays the callers: one socket per call sending a 1 kHz tone, receiving the
// echo. The figures are this process's CPU per call (getrusage), so the generator's cost
// is not counted, and the loss both ways:
//
//	go test -run '^$' -bench 'RTPSessionsEcho/PCMU' -benchtime 1000x ./media/
//	go test -run '^$' -bench 'RTPSessionsEcho/opus' -benchtime 150x ./media/
//
// cpu-%/call is the share of one core a call takes; calls/core is its inverse; loss-% is
// RTP packets lost in either direction; silent-% is the echoed frames in the steady state
// that came back without the tone (late play-out, concealment, dropped frames).
func BenchmarkRTPSessionsEcho(b *testing.B) {
	for _, codec := range []CodecSpec{specPCMU, specOpus} {
		b.Run(codec.Name, func(b *testing.B) {
			calls := b.N
			if v, err := strconv.Atoi(os.Getenv(envEchoCalls)); err == nil && v > 0 {
				calls = v
			}
			seconds := 6
			if v, err := strconv.Atoi(os.Getenv(envEchoSeconds)); err == nil && v >= 3 {
				seconds = v
			}
			rate := Rate8k
			if codec.Name == "opus" {
				rate = Rate48k
			}
			if v, err := strconv.Atoi(os.Getenv(envEchoRate)); err == nil && supportedRate(v) {
				rate = v
			}
			runEchoCalls(b, codec, rate, calls, seconds, os.Getenv(envEchoRTCP) != "0")
		})
	}
}

func runEchoCalls(b *testing.B, codec CodecSpec, rate, calls, seconds int, withRTCP bool) {
	sessions := make([]*RTPSession, calls)
	for i := range sessions {
		conn, rtcpConn := udpPair(b, withRTCP)
		s, err := NewRTPSession(RTPConfig{Conn: conn, RTCP: rtcpConn, Codec: codec, EventPT: 101, Rate: rate})
		if err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			echoCall(s)
		}()
	}
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
		wg.Wait()
	}()

	var in strings.Builder
	fmt.Fprintf(&in, "%s %d %d\n", codec.Name, codec.PayloadType, seconds)
	for _, s := range sessions {
		fmt.Fprintln(&in, addrOf(s.conn))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEchoPeer$")
	cmd.Env = append(os.Environ(), envEchoPeer+"=1")
	cmd.Stdin = strings.NewReader(in.String())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Measure the steady state: after the echo delay and the start-up, before the end.
	time.Sleep(2 * time.Second)
	jit0 := jitterTotals(sessions)
	wall0, cpu0 := time.Now(), cpuTime(b)
	time.Sleep(time.Duration(seconds)*time.Second - 2500*time.Millisecond)
	wall, cpu := time.Since(wall0), cpuTime(b)-cpu0
	jit := jitterTotals(sessions)
	jit.Played -= jit0.Played
	jit.Lost -= jit0.Lost
	jit.Late -= jit0.Late
	jit.Discarded -= jit0.Discarded
	jit.Trimmed -= jit0.Trimmed
	if err := cmd.Wait(); err != nil {
		b.Fatalf("load generator: %v\n%s", err, out.String())
	}
	var peer echoPeerResult
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "RESULT ") {
			if _, err := fmt.Sscanf(line, "RESULT sent=%d received=%d lost=%d frames=%d silent=%d late99=%d",
				&peer.sent, &peer.received, &peer.lost, &peer.frames, &peer.silent, &peer.lateP99); err != nil {
				b.Fatalf("load generator said %q: %v", line, err)
			}
		}
	}
	if peer.sent == 0 {
		b.Fatalf("load generator gave no result:\n%s", out.String())
	}
	var lostIn, receivedIn int64
	for _, s := range sessions {
		st := s.Stats()
		lostIn += max(st.PacketsLost, 0)
		receivedIn += int64(st.PacketsReceived)
	}
	peerCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	perCall := float64(cpu) / float64(wall) / float64(calls)
	b.ReportMetric(100*perCall, "cpu-%/call")
	b.ReportMetric(1/perCall, "calls/core")
	b.ReportMetric(100*float64(lostIn+peer.lost)/float64(max(1, receivedIn+lostIn+peer.received+peer.lost)), "loss-%")
	b.ReportMetric(100*float64(peer.silent)/float64(max(1, peer.frames)), "silent-%")
	// Diagnostics: frames the echoes' jitter buffers concealed in the measured window, and
	// the load generator's own CPU (a generator short of CPU sends late, and the echoes conceal).
	b.ReportMetric(100*float64(jit.Lost)/float64(max(1, jit.Played+jit.Lost)), "concealed-%")
	b.ReportMetric(float64(jit.Late+jit.Trimmed+jit.Discarded), "late+discarded")
	b.ReportMetric(100*float64(peerCPU)/float64(time.Duration(seconds)*time.Second), "generator-cpu-%")
	b.ReportMetric(lateP99(), "read-late-p99-ms")
	b.ReportMetric(float64(peer.lateP99), "generator-late-p99-ms")
}

// lateHist counts how late the echoes' ReadFrame returned against their 20 ms grid, in
// milliseconds, to tell a starved process from a starved generator.
var lateHist [256]atomic.Int64

func lateP99() float64 {
	var total int64
	for i := range lateHist {
		total += lateHist[i].Load()
	}
	var acc int64
	for i := range lateHist {
		acc += lateHist[i].Load()
		if acc*100 >= total*99 {
			return float64(i)
		}
	}
	return float64(len(lateHist))
}

// jitterTotals sums the jitter buffers' counters of the sessions.
func jitterTotals(sessions []*RTPSession) JitterStats {
	var t JitterStats
	for _, s := range sessions {
		s.mu.Lock()
		js := s.jb.Stats()
		s.mu.Unlock()
		t.Played += js.Played
		t.Lost += js.Lost
		t.Late += js.Late
		t.Discarded += js.Discarded
		t.Trimmed += js.Trimmed
	}
	return t
}

// echoCall is the echo destination: what it hears, it plays back 0.5 s later.
func echoCall(s *RTPSession) {
	n := SamplesPerFrame(s.SampleRate())
	ring := make([]int16, echoDelayFrames*n)
	out := Frame{Rate: s.SampleRate()}
	var in Frame
	var grid time.Time // the session's read clock, mirrored: it restarts after a stall
	for i := 0; ; i++ {
		if err := s.ReadFrame(&in); err != nil {
			return
		}
		now := time.Now()
		late := now.Sub(grid)
		switch {
		case i == 0 || late > readMaxLag:
			grid = now
		case late > 0:
			lateHist[min(int(late/time.Millisecond), len(lateHist)-1)].Add(1)
		}
		grid = grid.Add(FrameDuration)
		slot := ring[(i%echoDelayFrames)*n : (i%echoDelayFrames+1)*n]
		if i >= echoDelayFrames {
			out.Samples = slot
			if err := s.WriteFrame(&out); err != nil {
				return
			}
		}
		copy(slot, in.Samples)
	}
}

type echoPeerResult struct {
	sent, received, lost, frames, silent int64
	lateP99                              int64 // ms the generator's ticks came late, 99th percentile
}

// TestEchoPeer is the load generator of BenchmarkRTPSessionsEcho, run in its own process:
// stdin names the codec, its payload type and the seconds to run, then one session address
// a line. It sends a 1 kHz tone to each from a socket of its own, paced by one ticker, and
// judges what comes back.
func TestEchoPeer(t *testing.T) {
	if os.Getenv(envEchoPeer) == "" {
		t.Skip("the load generator of BenchmarkRTPSessionsEcho")
	}
	sc := bufio.NewScanner(os.Stdin)
	var name string
	var pt uint8
	var seconds int
	if !sc.Scan() {
		t.Fatal("no header")
	}
	if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &name, &pt, &seconds); err != nil {
		t.Fatal(err)
	}
	var targets []netip.AddrPort
	for sc.Scan() {
		targets = append(targets, netip.MustParseAddrPort(strings.TrimSpace(sc.Text())))
	}
	spec, kind, err := resolveCodec(CodecSpec{Name: name, PayloadType: pt})
	if err != nil {
		t.Fatal(err)
	}
	payloads := echoPeerPayloads(t, kind)

	start := time.Now()
	end := start.Add(time.Duration(seconds) * time.Second)
	// Echoes of frames sent before this are start-up; the tail is cut by the end.
	judgeFrom := start.Add(1500 * time.Millisecond)
	type call struct {
		conn *net.UDPConn
		pz   *Packetizer
	}
	cs := make([]call, len(targets))
	var res struct{ sent, received, lost, frames, silent atomic.Int64 }
	var wg sync.WaitGroup
	for i := range cs {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = call{conn: c, pz: NewPacketizer(spec.PayloadType, spec.ClockRate, 0)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dec *OpusDecoder
			if kind == codecOpus {
				dec, _ = NewOpusDecoder(Rate8k) // the cheapest, and enough to hear the tone
			}
			pcm := make([]int16, SamplesPerFrame(Rate48k))
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			var seq SequenceTracker
			var got int64
			_ = c.SetReadDeadline(end.Add(time.Second))
			for {
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				now := time.Now()
				if ParseRTP(&pkt, buf[:n]) != nil || pkt.PayloadType != spec.PayloadType {
					continue
				}
				seq.Update(pkt.SSRC, pkt.SequenceNumber)
				got++
				var m int
				if dec != nil {
					m, _ = dec.Decode(pcm, pkt.Payload)
				} else {
					m = DecodePCMU(pcm, pkt.Payload)
					if kind == codecPCMA {
						m = DecodePCMA(pcm, pkt.Payload)
					}
				}
				if now.After(judgeFrom) && now.Before(end) {
					res.frames.Add(1)
					if rms(pcm[:m]) < 1000 {
						res.silent.Add(1)
					}
				}
			}
			res.received.Add(int64(seq.Received()))
			res.lost.Add(max(seq.Lost(), 0))
		}()
	}
	// Senders in shards, each on the schedule (not a ticker): one that falls behind sends
	// its late packets at once, as a jittery network would, and does not drift.
	const shards = 4
	lates := make([][]time.Duration, shards)
	var swg sync.WaitGroup
	for sh := range shards {
		swg.Add(1)
		go func() {
			defer swg.Done()
			buf := make([]byte, 1500)
			for i := 0; ; i++ {
				due := start.Add(time.Duration(i) * FrameDuration)
				if !due.Before(end) {
					return
				}
				time.Sleep(time.Until(due))
				lates[sh] = append(lates[sh], time.Since(due))
				payload := payloads[i%len(payloads)]
				for j := sh; j < len(cs); j += shards {
					c := cs[j]
					n, err := c.pz.Packetize(buf, payload)
					if err != nil {
						panic(err)
					}
					if _, err := c.conn.WriteToUDPAddrPort(buf[:n], targets[j]); err == nil {
						res.sent.Add(1)
					}
				}
			}
		}()
	}
	swg.Wait()
	wg.Wait()
	late := slices.Concat(lates...)
	slices.Sort(late)
	fmt.Printf("RESULT sent=%d received=%d lost=%d frames=%d silent=%d late99=%d\n",
		res.sent.Load(), res.received.Load(), res.lost.Load(), res.frames.Load(), res.silent.Load(),
		late[len(late)*99/100].Milliseconds())
}

// echoPeerPayloads encodes a second of a 1 kHz tone, which the generator sends in a loop.
func echoPeerPayloads(t *testing.T, kind codecKind) [][]byte {
	tone := NewTone(1000, Rate48k, 8000)
	pcm := make([]int16, SamplesPerFrame(Rate48k))
	if kind == codecOpus {
		enc, err := NewOpusEncoder(OpusConfig{Rate: Rate48k})
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]byte, 50)
		for i := range out {
			tone.Fill(pcm)
			b := make([]byte, OpusMaxPacket)
			n, err := enc.Encode(b, pcm)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = b[:n]
		}
		return out
	}
	// 20 ms is 20 periods of 1 kHz: one frame repeats seamlessly.
	tone = NewTone(1000, Rate8k, 8000)
	tone.Fill(pcm[:160])
	b := make([]byte, 160)
	if kind == codecPCMU {
		EncodePCMU(b, pcm[:160])
	} else {
		EncodePCMA(b, pcm[:160])
	}
	return [][]byte{b}
}
