package realtime_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
)

var (
	fanoutSubs = flag.String("fanout.subs", "1000,5000", "subscribers of the one topic, a comma list")
	fanoutRate = flag.Int("fanout.deliveries", 100000, "deliveries a second to aim at: the topic's publish rate is this over the subscribers")
	fanoutFor  = flag.Duration("fanout.for", 5*time.Second, "how long to publish")
)

// BenchmarkFanout is the hub's fan-out to many WebSocket subscribers of one topic: the server
// in this process, the subscribers in a child (this test binary in client mode), each on its
// own loopback socket. Besides delivery latency it measures what each delivery costs the
// server: CPU (user and system, from getrusage) and write system calls (the kernel's count in
// /proc/self/io), over the publishing and until every subscriber has had every event.
//
// Run: go test -run '^$' -bench Fanout -benchtime 1x ./realtime
func BenchmarkFanout(b *testing.B) {
	for _, f := range strings.Split(*fanoutSubs, ",") {
		subs, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || subs <= 0 {
			b.Fatalf("-fanout.subs: %q is not a count", f)
		}
		rate := max(1, *fanoutRate/subs)
		b.Run(fmt.Sprintf("subs=%d/rate=%d", subs, rate), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				runFanout(b, subs, rate, *fanoutFor)
			}
		})
	}
}

func runFanout(b *testing.B, subs, rate int, d time.Duration) {
	b.Helper()
	hub := realtime.NewHub(realtime.Options{QueueSize: 128})
	srv := realtime.NewServer(hub, nil, realtime.Limits{MaxConnsPerKey: subs + 10, Heartbeat: time.Minute}, nil)
	v := realtime.Viewer{TenantID: "ten_bench", Key: "bench"}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { srv.ServeWS(w, r, v) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer srv.Shutdown()

	cmd, lines := startClients(b, srv, ts.URL, "ws", subs, 1)

	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	text := strings.Repeat("x", 100)
	cpu0, writes0 := serverCost(b)
	b.ResetTimer()
	elapsed := publishPaced(total, interval, func(int) {
		if err := hub.Publish(v.TenantID, "call:t0", realtime.TypeCallTranscript, benchPayload{Sent: time.Now().UnixNano(), Text: text}); err != nil {
			b.Fatal(err)
		}
	})
	_ = hub.Publish(v.TenantID, "call:t0", "bench.done", benchPayload{})
	if !lines.Scan() {
		b.Fatalf("clients ended without a report: %v", lines.Err())
	}
	cpu1, writes1 := serverCost(b)
	b.StopTimer()
	var rep clientReport
	if err := json.Unmarshal(lines.Bytes(), &rep); err != nil {
		b.Fatalf("report %q: %v", lines.Text(), err)
	}
	if rep.Errors > 0 {
		b.Fatalf("%d subscribers failed", rep.Errors)
	}
	// The child exits once it has reported: its CPU is the subscribers' side of the work.
	_ = cmd.Wait()
	var clientCPU time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		clientCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// The end event reached every subscriber too: its writes are in the count.
	n := float64(rep.Delivered + int64(subs))
	b.ReportMetric(float64(rep.Delivered)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(rep.P50MS, "p50-ms")
	b.ReportMetric(rep.P99MS, "p99-ms")
	b.ReportMetric(float64(cpu1-cpu0)/1e3/n, "server-cpu-us/delivery")
	b.ReportMetric(float64(writes1-writes0)/n, "writes/delivery")
	b.ReportMetric(float64(clientCPU)/1e3/n, "client-cpu-us/delivery")
	b.ReportMetric(float64(rep.Missed), "missed")
	b.ReportMetric(0, "ns/op")
}

// serverCost is this process's CPU time so far and its write system calls so far.
func serverCost(b *testing.B) (cpu time.Duration, writes int64) {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no write counts without /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			writes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return cpu, writes
}
