package sip

import (
	"context"
	"log/slog"
	"net"
	"strconv"
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
