package sip

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/otlptest"
	"github.com/switchboard-go/switchboard/telemetry"
)

// BenchmarkCallTraced is an echo call's whole life through a running server over loopback
// UDP, INVITE to 200, ACK, and BYE to its 200, with the node's calls untraced and traced (a
// span from the INVITE to the teardown, exported to an OTLP/HTTP receiver on loopback): the
// cost of tracing on the call path. Two servers, one of each, alternate, six rounds of each
// in one run, so that both see the same machine:
//
//	go test -run '^$' -bench BenchmarkCallTraced -benchtime 300x ./sip/
func BenchmarkCallTraced(b *testing.B) {
	// sipgo's own notes (a retransmission after the dialog is gone) would cut the figures' lines.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	rcv := otlptest.Start(b)
	tr, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: rcv.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown()
	targets := map[string]string{}
	for _, mode := range []string{"tracing=off", "tracing=on"} {
		reg := call.NewRegistry(nil)
		if mode == "tracing=on" {
			reg.Trace(tr)
		}
		s, err := New(Config{Log: slog.New(slog.DiscardHandler), Calls: reg})
		if err != nil {
			b.Fatal(err)
		}
		targets[mode] = serveTest(b, s, nil)
	}
	u := newTestUA(b)
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rtpConn.Close()
	offer := offerSDP(rtpConn.LocalAddr().(*net.UDPAddr).Port, "0")
	for range 6 {
		for _, mode := range []string{"tracing=off", "tracing=on"} {
			b.Run(mode, func(b *testing.B) {
				target := uri(b, "echo", targets[mode])
				b.ReportAllocs()
				for b.Loop() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					dlg, code := u.invite(ctx, b, target, offer)
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
				}
			})
		}
	}
}
