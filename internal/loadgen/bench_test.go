package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"
)

// BenchmarkCallCapacity places calls of PCMU to Switchboard's echo served in the same
// process, for a CPU profile of both sides (scripts/call-capacity.sh runs them as separate
// processes, as a server is sized). Each size is one run, whatever b.N:
//
//	go test -run '^$' -bench 'CallCapacity/calls=500$' -benchtime 1x -cpuprofile cpu.out ./internal/loadgen
//
// LOADGEN_DURATION sets each call's length (default 10s), LOADGEN_CODEC the codec.
func BenchmarkCallCapacity(b *testing.B) {
	d := 10 * time.Second
	if v := os.Getenv("LOADGEN_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	codec := os.Getenv("LOADGEN_CODEC")
	for _, n := range []int{100, 250, 500, 1000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			addr := startServer(b)
			b.ResetTimer()
			ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
			defer cancel()
			rep, err := Run(ctx, Config{
				Target: "sip:echo@" + addr, Calls: n, Rate: 100, Duration: d, Codec: codec,
				EchoDelay: 500 * time.Millisecond, Log: testLog(b, slog.LevelWarn),
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.Logf("\n%s", rep)
			b.ReportMetric(float64(rep.Answered), "answered")
			b.ReportMetric(float64(rep.PeakConcurrent), "peak-calls")
			b.ReportMetric(rep.LossPercent, "loss-%")
			b.ReportMetric(rep.Jitter.P99, "jitter-p99-ms")
			b.ReportMetric(rep.RoundTrip.P50, "rtt-p50-ms")
			b.ReportMetric(rep.RoundTrip.P99, "rtt-p99-ms")
			b.ReportMetric(rep.LoadCPU.Mean, "cpu-%") // the server and the generator: one process
			b.ReportMetric(0, "ns/op")
		})
	}
}
