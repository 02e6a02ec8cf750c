package sip

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkInviteSetup is the setup of an echo call through a running server over
// loopback UDP, INVITE to 200 (then ACK and BYE, outside the timing), with the guard's
// checks off and on: the cost of the checks on the INVITE path. The two alternate, six
// rounds of each in one run, so that both see the same machine:
//
//	go test -run '^$' -bench BenchmarkInviteSetup -benchtime 500x ./sip/
func BenchmarkInviteSetup(b *testing.B) {
	s, err := New(Config{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	addr := serveTest(b, s, nil)
	u := newTestUA(b)
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rtpConn.Close()
	offer := offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0")
	target := uri(b, "echo", addr)
	for range 6 {
		for _, checks := range []string{"checks=off", "checks=on"} {
			b.Run(checks, func(b *testing.B) {
				s.checksOff.Store(checks == "checks=off")
				b.ReportAllocs()
				for b.Loop() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					dlg, code := u.invite(ctx, b, target, offer)
					b.StopTimer()
					if dlg == nil {
						b.Fatalf("call refused: %d", code)
					}
					if err := dlg.Ack(ctx); err != nil {
						b.Fatal(err)
					}
					if err := dlg.Bye(ctx); err != nil {
						b.Fatal(err)
					}
					_ = dlg.Close()
					cancel()
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkCheckRequest is the guard's checks alone, on a parsed INVITE.
func BenchmarkCheckRequest(b *testing.B) {
	msg, err := newParser().ParseSIP([]byte(rawRequest("INVITE", "127.0.0.1:5060", rawHeaders("INVITE", "UDP", "127.0.0.1:5099", "127.0.0.1:5060"))))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	b.ReportAllocs()
	for b.Loop() {
		if code, _, _ := checkRequest(req); code != 0 {
			b.Fatal(code)
		}
	}
}

// BenchmarkEdgeFraming is what the UDP edge does to every datagram: find the end of its
// headers and read its Content-Length.
func BenchmarkEdgeFraming(b *testing.B) {
	hdrs := rawHeaders("INVITE", "UDP", "127.0.0.1:5099", "127.0.0.1:5060")
	body := string(offerSDP(40000, "0 8 101", "101 telephone-event/8000"))
	hdrs[len(hdrs)-1] = "Content-Length: " + strconv.Itoa(len(body))
	msg := []byte(rawRequest("INVITE", "127.0.0.1:5060", hdrs) + body)
	b.ReportAllocs()
	for b.Loop() {
		end := headerEnd(msg)
		if n, found, err := contentLength(msg[:end]); err != nil || !found || n != len(body) {
			b.Fatal(n, found, err)
		}
	}
}

// BenchmarkInviteSetupStored is the setup of echo calls, INVITE to 200, placed by 16 callers
// at once at a server that keeps its records in SQLite, with each call's record inserted on
// the INVITE's path (inline, as before) and behind the call (behind), alternating, six
// rounds of each. The figures are the setup's p50 and p99 and the calls set up a second.
//
//	go test -run '^$' -bench BenchmarkInviteSetupStored -benchtime 2000x ./sip/
func BenchmarkInviteSetupStored(b *testing.B) {
	// sipgo's own notes (a retransmission after the dialog is gone) would cut the figures' lines.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	ctx := context.Background()
	st, ten := benchStore(b)
	s, err := New(Config{Store: st, DefaultTenantID: ten.ID, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	addr := serveTest(b, s, nil)
	const callers = 16
	uas := make([]*testUA, callers)
	offers := make([][]byte, callers)
	for i := range uas {
		uas[i] = newTestUA(b)
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		offers[i] = offerSDP(c.LocalAddr().(*net.UDPAddr).Port, "0")
	}
	target := uri(b, "echo", addr)
	for range 6 {
		for _, mode := range []string{"records=inline", "records=behind"} {
			b.Run(mode, func(b *testing.B) {
				s.recordsInline.Store(mode == "records=inline")
				var mu sync.Mutex
				var setups []time.Duration
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for i := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
							t0 := time.Now()
							dlg, code := uas[i].invite(cctx, b, target, offers[i])
							d := time.Since(t0)
							if dlg == nil {
								cancel()
								b.Errorf("call refused: %d", code)
								return
							}
							_ = dlg.Ack(cctx)
							_ = dlg.Bye(cctx)
							_ = dlg.Close()
							cancel()
							mu.Lock()
							setups = append(setups, d)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(setups)
				if len(setups) == 0 {
					return
				}
				pct := func(p float64) float64 {
					return float64(setups[min(len(setups)-1, int(p*float64(len(setups))))].Microseconds()) / 1000
				}
				b.ReportMetric(pct(0.5), "setup-p50-ms")
				b.ReportMetric(pct(0.99), "setup-p99-ms")
				b.ReportMetric(float64(len(setups))/elapsed.Seconds(), "calls/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
