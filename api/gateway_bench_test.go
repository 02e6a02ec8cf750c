package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// gwBenchStreams is how many streams run at once at most.
const gwBenchStreams = 64

// BenchmarkGatewayStream measures what the gateway adds to a streamed chat completion: b.N
// streams straight to an instant stand-in upstream, then b.N streams of the same request
// through Switchboard (authentication, routing, translation to the neutral stream and back,
// flushing every chunk, recording usage in the store) to the same stand-in, over keep-alive
// connections, 64 at once (the load of the issue), and one at a time (the gateway's own
// latency, without queueing for the two cores). Time to first token is until the chunk
// with the answer's first word; total time until the response ends. It reports the added
// p50 and p99 of both, and completions a second through Switchboard.
//
//	go test -run '^$' -bench GatewayStream -benchtime 3000x ./api/
func BenchmarkGatewayStream(b *testing.B) {
	for _, n := range []int{gwBenchStreams, 1} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) { benchGatewayStream(b, n) })
	}
}

func benchGatewayStream(b *testing.B, concurrency int) {
	// As the switchboard binary runs (see load in bench_test.go).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	g := newGW(b, store.SQLite)
	g.oa.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "Hello there, friend. How can I help you today?"}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * gwBenchStreams, MaxIdleConnsPerHost: 2 * gwBenchStreams}}
	b.Cleanup(client.CloseIdleConnections)

	const prompt = `"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
	direct := gwBenchTarget{url: g.oa.URL + "/chat/completions", body: []byte(`{"model":"gpt-test",` + prompt),
		header: http.Header{"Authorization": {"Bearer " + gwOAIKey}, "Content-Type": {"application/json"}}}
	through := gwBenchTarget{url: g.ts.URL + "/v1/chat/completions", body: []byte(`{"model":"oai/gpt-test",` + prompt),
		header: http.Header{"X-Api-Key": {g.ts.Key}, "Content-Type": {"application/json"}}}

	// Warm both paths: connections from the client and from Switchboard to the upstream.
	for _, tg := range []gwBenchTarget{direct, through} {
		if _, err := tg.run(client, 2*gwBenchStreams, gwBenchStreams); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	d, err := direct.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	s, err := through.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(s.ttft.p(50)-d.ttft.p(50)), "added-p50-ttft-ms")
	b.ReportMetric(ms(s.ttft.p(99)-d.ttft.p(99)), "added-p99-ttft-ms")
	b.ReportMetric(ms(s.total.p(50)-d.total.p(50)), "added-p50-total-ms")
	b.ReportMetric(ms(s.total.p(99)-d.total.p(99)), "added-p99-total-ms")
	b.ReportMetric(ms(d.ttft.p(50)), "direct-p50-ttft-ms")
	b.ReportMetric(ms(d.ttft.p(99)), "direct-p99-ttft-ms")
	b.ReportMetric(float64(b.N)/s.elapsed.Seconds(), "completions/s")
	b.ReportMetric(float64(b.N)/d.elapsed.Seconds(), "direct-completions/s")
}

// gwBenchTarget is where a benchmark sends its streams.
type gwBenchTarget struct {
	url    string
	body   []byte
	header http.Header
}

// gwBenchRun is what n streams to a target took.
type gwBenchRun struct {
	ttft, total gwDurations
	elapsed     time.Duration
}

type gwDurations []time.Duration

// p is the q-th percentile; the slice is sorted.
func (d gwDurations) p(q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*q/100)]
}

// run sends n streams, concurrency at a time.
func (tg gwBenchTarget) run(client *http.Client, n, concurrency int) (gwBenchRun, error) {
	out := gwBenchRun{ttft: make(gwDurations, n), total: make(gwDurations, n)}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ttft, total, err := tg.stream(client)
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				out.ttft[i], out.total[i] = ttft, total
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	slices.Sort(out.ttft)
	slices.Sort(out.total)
	return out, first
}

// firstWord marks the chunk that carries the answer's first word, in either server's JSON.
var firstWord = []byte(`"content":"Hello `)

// stream makes one streamed completion and reads it to its end.
func (tg gwBenchTarget) stream(client *http.Client) (ttft, total time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url, bytes.NewReader(tg.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header = tg.header.Clone()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("%s: %d %s", tg.url, resp.StatusCode, b)
	}
	rd := bufio.NewReaderSize(resp.Body, 4096)
	done := false
	for {
		line, err := rd.ReadSlice('\n')
		if ttft == 0 && bytes.Contains(line, firstWord) {
			ttft = time.Since(start)
		}
		if bytes.Equal(line, []byte("data: [DONE]\n")) {
			done = true
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
	}
	total = time.Since(start)
	if ttft == 0 || !done {
		return 0, 0, fmt.Errorf("%s: a stream without its first word or [DONE]", tg.url)
	}
	return ttft, total, nil
}
