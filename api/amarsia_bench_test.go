package api_test

import (
	"bytes"
	"context"
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

// BenchmarkAmarsiaRunner measures Amarsia's runner with a text part against an instant
// stand-in model, 64 runs at once: runs a second, and the latency the runner adds to the
// model's own (each run: authentication, the deployment read, a session created, the turn
// answered and stored, the session closed). Each round sends b.N requests straight to the
// stand-in (a streamed completion read to its end, as the agent's brain asks it), then b.N
// runs of POST /v1/runner/{deployment} and b.N of its /stream, read to their ends, over
// keep-alive connections.
//
//	go test -run '^$' -bench AmarsiaRunner -benchtime 2000x ./api/
func BenchmarkAmarsiaRunner(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(fmt.Sprintf("%s/runs=%d", d, gwBenchStreams), func(b *testing.B) { benchAmarsiaRunner(b, d) })
	}
}

func benchAmarsiaRunner(b *testing.B, d store.Dialect) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	r := newAmarsiaRig(b, d, true)
	r.up.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "Hello there, friend. How can I help you today?"}
	})
	dep := r.createID("/api/v1/agents/"+r.agentID+"/deployments", r.Key, map[string]any{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * gwBenchStreams, MaxIdleConnsPerHost: 2 * gwBenchStreams}}
	b.Cleanup(client.CloseIdleConnections)
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	with := func(kv ...string) http.Header {
		h := jsonCT.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	direct := wholeTarget{url: r.up.URL + "/chat/completions", header: with("Authorization", "Bearer k"),
		body: []byte(`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"stream":true,"stream_options":{"include_usage":true}}`)}
	run := []byte(`{"content":[{"type":"text","text":"Hello?"}]}`)
	runner := wholeTarget{url: r.URL + "/v1/runner/" + dep, header: with("x-api-key", r.Key), body: run}
	stream := wholeTarget{url: r.URL + "/v1/runner/" + dep + "/stream", header: with("x-api-key", r.Key), body: run}
	for _, tg := range []wholeTarget{direct, runner, stream} {
		if _, err := tg.run(client, 2*gwBenchStreams, gwBenchStreams); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	dr, err := direct.run(client, b.N, gwBenchStreams)
	if err != nil {
		b.Fatal(err)
	}
	rr, err := runner.run(client, b.N, gwBenchStreams)
	if err != nil {
		b.Fatal(err)
	}
	sr, err := stream.run(client, b.N, gwBenchStreams)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/rr.elapsed.Seconds(), "runs/s")
	b.ReportMetric(float64(b.N)/sr.elapsed.Seconds(), "stream-runs/s")
	b.ReportMetric(float64(b.N)/dr.elapsed.Seconds(), "direct/s")
	b.ReportMetric(ms(rr.total.p(50)-dr.total.p(50)), "added-p50-ms")
	b.ReportMetric(ms(rr.total.p(99)-dr.total.p(99)), "added-p99-ms")
	b.ReportMetric(ms(sr.total.p(50)-dr.total.p(50)), "stream-added-p50-ms")
	b.ReportMetric(ms(sr.total.p(99)-dr.total.p(99)), "stream-added-p99-ms")
	b.ReportMetric(ms(dr.total.p(50)), "direct-p50-ms")
}

// wholeTarget is a request a benchmark sends and reads to its end.
type wholeTarget struct {
	url    string
	body   []byte
	header http.Header
}

// run sends n requests, concurrency at a time; every answer must be a 200.
func (tg wholeTarget) run(client *http.Client, n, concurrency int) (gwBenchRun, error) {
	out := gwBenchRun{total: make(gwDurations, n)}
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
				took, err := tg.once(client)
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				out.total[i] = took
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	slices.Sort(out.total)
	return out, first
}

func (tg wholeTarget) once(client *http.Client) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url, bytes.NewReader(tg.body))
	if err != nil {
		return 0, err
	}
	req.Header = tg.header.Clone()
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %d %s", tg.url, resp.StatusCode, body)
	}
	return time.Since(start), nil
}
