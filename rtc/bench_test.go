package rtc_test

import (
	"context"
	"flag"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/rtc"
	"github.com/switchboard-go/switchboard/rtc/rtctest"
)

var (
	benchSessions = flag.Int("webrtc.sessions", 20, "concurrent browsers of BenchmarkWebRTCEcho")
	benchFor      = flag.Duration("webrtc.for", 20*time.Second, "how long BenchmarkWebRTCEcho measures")
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWebRTCEcho runs -webrtc.sessions browsers (pion peers sending a tone as Opus)
// against as many of the node's peers, each echoing what it hears as the echo destination
// does (decode, jitter buffer, encode, paced), on loopback, for -webrtc.for. It reports the
// packets lost each way and the CPU time per session, of the node's peers and the browsers
// together (the browsers send prepared packets and decode nothing, so the node's side is
// most of it). Run it once: go test -run - -bench WebRTCEcho -benchtime 1x -cpu 2
// -webrtc.sessions 150 ./realtime/
func BenchmarkWebRTCEcho(b *testing.B) {
	w := newWebRTC(b, rtc.Config{})
	n := *benchSessions
	// A second of a 440 Hz tone, encoded once.
	enc, err := media.NewOpusEncoder(media.OpusConfig{Rate: media.Rate48k, FEC: true, PacketLossPercent: 5})
	if err != nil {
		b.Fatal(err)
	}
	tone := media.NewTone(440, media.Rate48k, 8000)
	pcm := make([]int16, media.SamplesPerFrame(media.Rate48k))
	var packets [][]byte
	for range 50 {
		tone.Fill(pcm)
		buf := make([]byte, media.OpusMaxPacket)
		k, err := enc.Encode(buf, pcm)
		if err != nil {
			b.Fatal(err)
		}
		packets = append(packets, buf[:k])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clients := make([]*rtctest.Client, n)
	peers := make([]*rtc.Peer, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := rtctest.New(rtctest.Options{NoDecode: true, NoEvents: true})
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
			offer, err := c.Offer()
			if err != nil {
				errs <- err
				return
			}
			p, err := w.Answer(ctx, offer, nil)
			if err != nil {
				errs <- err
				return
			}
			peers[i] = p
			if err := c.Accept(p.Answer()); err != nil {
				errs <- err
				return
			}
			if err := c.WaitConnected(ctx); err != nil {
				errs <- err
				return
			}
			<-p.Connected()
		}()
	}
	wg.Wait()
	defer func() {
		for i := range n {
			if peers[i] != nil {
				peers[i].Hangup("done")
			}
			if clients[i] != nil {
				clients[i].Close()
			}
		}
	}()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	var echoes sync.WaitGroup
	for i := range n {
		echoes.Add(1)
		go func() { defer echoes.Done(); echo(peers[i]) }()
		clients[i].SendPackets(packets)
	}
	time.Sleep(2 * time.Second) // warm up: jitter buffers fill, the echo starts

	type count struct{ rx, lost int64 }
	snap := func() ([]count, []count) {
		cs, ps := make([]count, n), make([]count, n)
		for i := range n {
			rx, lost, _ := clients[i].Packets()
			cs[i] = count{rx, lost}
			q := peers[i].Quality()
			ps[i] = count{q.PacketsReceived, q.PacketsLost}
		}
		return cs, ps
	}
	c0, p0 := snap()
	cpu0, t0 := cpuTime(), time.Now()
	b.ResetTimer()
	time.Sleep(*benchFor)
	b.StopTimer()
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	c1, p1 := snap()
	for i := range n {
		clients[i].Stop()
		_ = peers[i].Close()
	}
	echoes.Wait()

	var toBrowser, toBrowserLost, toNode, toNodeLost int64
	for i := range n {
		toBrowser += c1[i].rx - c0[i].rx
		toBrowserLost += c1[i].lost - c0[i].lost
		toNode += p1[i].rx - p0[i].rx
		toNodeLost += p1[i].lost - p0[i].lost
	}
	expected := float64(n) * wall.Seconds() * 50
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(100*float64(toBrowserLost)/float64(max(1, toBrowser+toBrowserLost)), "loss%_to_browser")
	b.ReportMetric(100*float64(toNodeLost)/float64(max(1, toNode+toNodeLost)), "loss%_to_node")
	b.ReportMetric(100*(1-float64(toBrowser)/expected), "missing%_to_browser")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/float64(n), "cpu%_per_session")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu%_total")
}
