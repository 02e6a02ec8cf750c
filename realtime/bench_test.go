package realtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/realtime"
)

// The stream benchmarks put the server (the hub and its SSE and WebSocket endpoints) in this
// process and the subscribers in a child process (this test binary again, in client mode),
// so that the memory measured per idle connection is the server's alone and each process
// stays within its file-descriptor limit. Subscribers alternate between SSE and WebSocket;
// each event carries its publishing time, and the child measures delivery latency from it.
//
// Run: make bench-realtime (go test -run '^$' -bench Streams -benchtime 1x ./realtime).

const clientModeEnv = "SWITCHBOARD_BENCH_CLIENT"

// In client mode the test binary is the subscribers' process and runs no tests.
func init() {
	if os.Getenv(clientModeEnv) != "" {
		os.Exit(runBenchClients())
	}
}

// benchPayload is the data of every benchmark event.
type benchPayload struct {
	Sent int64  `json:"sent"`
	Text string `json:"text"`
}

func BenchmarkStreams(b *testing.B) {
	for _, sc := range []struct {
		subs, topics, rate int
		seconds            float64
	}{
		{subs: 1, topics: 1, rate: 20000, seconds: 3},
		{subs: 100, topics: 100, rate: 10000, seconds: 3},
		{subs: 3000, topics: 100, rate: 1000, seconds: 4},
		{subs: 10000, topics: 100, rate: 1000, seconds: 5},
	} {
		name := fmt.Sprintf("subs=%d/topics=%d/rate=%d", sc.subs, sc.topics, sc.rate)
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				runStreams(b, sc.subs, sc.topics, sc.rate, sc.seconds)
			}
		})
	}
}

// clientReport is what the child prints when every subscriber saw the end.
type clientReport struct {
	Delivered int64   `json:"delivered"`
	Gaps      int64   `json:"gaps"`
	Missed    int64   `json:"missed"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	Errors    int64   `json:"errors"`
}

func runStreams(b *testing.B, subs, topics, rate int, seconds float64) {
	b.Helper()
	hub := realtime.NewHub(realtime.Options{QueueSize: 128})
	srv := realtime.NewServer(hub, nil, realtime.Limits{MaxConnsPerKey: subs + 10, Heartbeat: time.Minute}, nil)
	v := realtime.Viewer{TenantID: "ten_bench", Key: "bench"}
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) { srv.ServeSSE(w, r, v) })
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { srv.ServeWS(w, r, v) })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer srv.Shutdown()

	beforeHeap, beforeStack := serverMemory()
	_, lines := startClients(b, srv, ts.URL, "", subs, topics)
	afterHeap, afterStack := serverMemory()
	perSub := float64(afterHeap+afterStack-beforeHeap-beforeStack) / float64(subs) / 1024
	stackPerSub := float64(afterStack-beforeStack) / float64(subs) / 1024

	// Publish at the rate, over the topics in turn, for the duration; then an end event on
	// every topic.
	total := int(float64(rate) * seconds)
	interval := time.Second / time.Duration(rate)
	text := strings.Repeat("x", 100)
	b.ResetTimer()
	elapsed := publishPaced(total, interval, func(i int) {
		topic := "call:t" + strconv.Itoa(i%topics)
		if err := hub.Publish(v.TenantID, topic, realtime.TypeCallTranscript, benchPayload{Sent: time.Now().UnixNano(), Text: text}); err != nil {
			b.Fatal(err)
		}
	})
	for t := 0; t < topics; t++ {
		_ = hub.Publish(v.TenantID, "call:t"+strconv.Itoa(t), "bench.done", benchPayload{})
	}
	if !lines.Scan() {
		b.Fatalf("clients ended without a report: %v", lines.Err())
	}
	b.StopTimer()
	var rep clientReport
	if err := json.Unmarshal(lines.Bytes(), &rep); err != nil {
		b.Fatalf("report %q: %v", lines.Text(), err)
	}
	if rep.Errors > 0 {
		b.Fatalf("%d subscribers failed", rep.Errors)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rep.Delivered)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(rep.P50MS, "p50-ms")
	b.ReportMetric(rep.P99MS, "p99-ms")
	b.ReportMetric(float64(rep.Missed), "missed")
	b.ReportMetric(perSub, "KiB/idle-sub")
	b.ReportMetric(stackPerSub, "stack-KiB/idle-sub")
	b.ReportMetric(0, "ns/op")
}

// startClients starts the child that opens subs subscribers over topics (kind "ws" or "sse";
// "" mixes the two) and returns it and its output once every subscriber is open on srv. The
// child says READY once each subscriber's stream answered (its ack, or SSE's retry line),
// which the server sends after it opened the stream: srv counts them all by then. The
// child is killed when the benchmark ends, if it is still running.
func startClients(b *testing.B, srv *realtime.Server, url, kind string, subs, topics int) (*exec.Cmd, *bufio.Scanner) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientModeEnv+"=1", "BENCH_KIND="+kind,
		"BENCH_URL="+url, "BENCH_SUBS="+strconv.Itoa(subs), "BENCH_TOPICS="+strconv.Itoa(topics))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); cancel() })
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "READY" {
		b.Fatalf("clients did not get ready: %q", lines.Text())
	}
	if open := srv.Open(); open < subs {
		b.Fatalf("%d of %d subscribers open once the clients were ready", open, subs)
	}
	return cmd, lines
}

// publishPaced calls publish total times, the i-th at i intervals from the start (at once
// when behind), and returns how long it took.
func publishPaced(total int, interval time.Duration, publish func(i int)) time.Duration {
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	start := time.Now()
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			t.Reset(wait)
			<-t.C
		}
		publish(i)
	}
	return time.Since(start)
}

// serverMemory is the heap and the goroutine stacks in use after a collection.
func serverMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// runBenchClients is the child: it opens the subscribers, says READY, counts deliveries and
// latencies until every subscriber saw bench.done, and prints a clientReport.
func runBenchClients() int {
	base, _ := url.Parse(os.Getenv("BENCH_URL"))
	subs, _ := strconv.Atoi(os.Getenv("BENCH_SUBS"))
	topics, _ := strconv.Atoi(os.Getenv("BENCH_TOPICS"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var (
		ready, done sync.WaitGroup
		mu          sync.Mutex
		lat         []time.Duration
		rep         clientReport
		errs        atomic.Int64
	)
	sem := make(chan struct{}, 200) // connect a few hundred at a time: the accept backlog is finite
	ready.Add(subs)
	done.Add(subs)
	for i := 0; i < subs; i++ {
		topic := "call:t" + strconv.Itoa(i%topics)
		go func(i int) {
			defer done.Done()
			var local []time.Duration
			var delivered, gaps, missed int64
			onEvent := func(typ string, data []byte) bool {
				switch typ {
				case "bench.done":
					return false
				case realtime.TypeStreamGap:
					var g realtime.Gap
					_ = json.Unmarshal(data, &g)
					gaps++
					missed += int64(g.Missed)
					return true
				}
				if sent := sentTime(data); sent > 0 {
					local = append(local, time.Duration(time.Now().UnixNano()-sent))
				}
				delivered++
				return true
			}
			sem <- struct{}{}
			var err error
			useSSE := i%2 == 0
			switch os.Getenv("BENCH_KIND") {
			case "sse":
				useSSE = true
			case "ws":
				useSSE = false
			}
			if useSSE {
				err = sseClient(ctx, base, topic, &ready, sem, onEvent)
			} else {
				err = wsClient(ctx, base, topic, &ready, sem, onEvent)
			}
			if err != nil {
				errs.Add(1)
				fmt.Fprintln(os.Stderr, "subscriber", i, err)
			}
			mu.Lock()
			lat = append(lat, local...)
			rep.Delivered += delivered
			rep.Gaps += gaps
			rep.Missed += missed
			mu.Unlock()
		}(i)
	}
	ready.Wait()
	fmt.Println("READY")
	done.Wait()
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		rep.P50MS = float64(lat[n/2].Microseconds()) / 1000
		rep.P99MS = float64(lat[n*99/100].Microseconds()) / 1000
		rep.MaxMS = float64(lat[n-1].Microseconds()) / 1000
	}
	rep.Errors = errs.Load()
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}

// sseClient reads an event stream over a raw connection (cheaper than net/http's client for
// ten thousand of them).
func sseClient(ctx context.Context, base *url.URL, topic string, ready *sync.WaitGroup, sem chan struct{}, onEvent func(string, []byte) bool) error {
	var c net.Conn
	var err error
	for try := 0; try < 20; try++ {
		if c, err = (&net.Dialer{}).DialContext(ctx, "tcp", base.Host); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		<-sem
		ready.Done()
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	fmt.Fprintf(c, "GET /events?topics=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", topic, base.Host)
	r := bufio.NewReader(c)
	readyOnce := sync.OnceFunc(func() { <-sem; ready.Done() })
	defer readyOnce()
	var typ string
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case bytes.HasPrefix(line, []byte("retry:")):
			readyOnce()
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = string(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")):
			// Chunked transfer framing lines are skipped by the prefixes above. The whole
			// event is passed on: sentTime finds what it needs in it.
			if !onEvent(typ, line[6:]) {
				return nil
			}
		}
	}
}

// wsClient speaks just enough WebSocket by hand (the handshake, one masked frame out,
// unmasked frames in) to subscribe and read events as cheaply as the SSE client.
func wsClient(ctx context.Context, base *url.URL, topic string, ready *sync.WaitGroup, sem chan struct{}, onEvent func(string, []byte) bool) error {
	readyOnce := sync.OnceFunc(func() { <-sem; ready.Done() })
	defer readyOnce()
	var c net.Conn
	var err error
	for try := 0; try < 20; try++ {
		if c, err = (&net.Dialer{}).DialContext(ctx, "tcp", base.Host); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", base.Host)
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		return fmt.Errorf("handshake: %q %v", status, err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			break
		}
	}
	sub, _ := json.Marshal(map[string]any{"type": "subscribe", "topics": []string{topic}})
	frame := []byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0} // masked with a zero key
	if _, err := c.Write(append(frame, sub...)); err != nil {
		return err
	}
	var hdr [8]byte
	payload := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return err
		}
		op, n := hdr[0]&0x0f, int(hdr[1]&0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(r, hdr[:2]); err != nil {
				return err
			}
			n = int(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(r, hdr[:8]); err != nil {
				return err
			}
			n = int(binary.BigEndian.Uint64(hdr[:8]))
		}
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		if op == 0x8 {
			return fmt.Errorf("closed by the server: %q", payload)
		}
		if op != 0x1 {
			continue
		}
		switch {
		case bytes.HasPrefix(payload, []byte(`{"type":"ack"`)):
			readyOnce()
		case bytes.HasPrefix(payload, []byte(`{"type":"event"`)):
			if !onEvent(eventType(payload), payload) {
				return nil
			}
		case bytes.HasPrefix(payload, []byte(`{"type":"error"`)):
			return fmt.Errorf("error frame: %s", payload)
		}
	}
}

// sentTime finds the publishing time in an event without decoding all of it: ten thousand
// subscribers share the machine with the server.
func sentTime(data []byte) int64 {
	i := bytes.Index(data, []byte(`"sent":`))
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range data[i+7:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// eventType reads the type of the event inside a WebSocket event frame.
func eventType(frame []byte) string {
	const key = `"event":{"id":`
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return ""
	}
	rest := frame[i+len(key):]
	j := bytes.Index(rest, []byte(`"type":"`))
	if j < 0 {
		return ""
	}
	rest = rest[j+8:]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return ""
	}
	return string(rest[:k])
}

// BenchmarkHubPublish measures the hub alone: events a second published and fanned out to
// subscribers that drain their queues in goroutines, with no sockets. It bounds what the
// stream benchmarks can reach.
func BenchmarkHubPublish(b *testing.B) {
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			hub := realtime.NewHub(realtime.Options{QueueSize: 1024})
			topics := min(subs, 100)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < subs; i++ {
				sub := hub.Subscribe("ten_bench")
				if err := sub.Add([]string{"call:t" + strconv.Itoa(i%topics)}, 0, nil); err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer sub.Close()
					for {
						if _, err := sub.Next(ctx); err != nil {
							return
						}
						got.Add(1)
					}
				}()
			}
			data := benchPayload{Text: strings.Repeat("x", 100)}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				data.Sent = int64(i)
				if err := hub.Publish("ten_bench", "call:t"+strconv.Itoa(i%topics), realtime.TypeCallTranscript, data); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(hub.Stats().Dropped), "dropped")
			cancel()
			wg.Wait()
		})
	}
}
