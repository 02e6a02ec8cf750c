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
// model's own (each run: authentication, the deployment read, the answer made, the run's
// session stored with its turn and closed, in one commit). In rounds of 64 requests the
// legs alternate: straight to the stand-in (a streamed completion read to its end, as the
// agent's brain asks it), then POST /v1/runner/{deployment} and its /stream, read to their
// ends, over keep-alive connections. Each leg reports the CPU the whole process (client,
// Switchboard and stand-in) spends per request. Modes as BenchmarkSessionMessages's: closed
// loop, and paced (each of the 64 workers sends one request every pace).
//
//	go test -run '^$' -bench AmarsiaRunner -benchtime 3200x ./api/
func BenchmarkAmarsiaRunner(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, pace := range benchPaces {
			b.Run(fmt.Sprintf("%s/runs=%d/%s", d, gwBenchStreams, paceName(pace)), func(b *testing.B) { benchAmarsiaRunner(b, d, pace) })
		}
	}
}

func benchAmarsiaRunner(b *testing.B, d store.Dialect, pace time.Duration) {
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
		if _, err := tg.run(client, 2*gwBenchStreams, gwBenchStreams, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var dr, rr, sr gwBenchRun
	var dcpu, rcpu, scpu time.Duration
	for done := 0; done < b.N; done += gwBenchStreams {
		n := min(gwBenchStreams, b.N-done)
		for _, leg := range []struct {
			tg   wholeTarget
			into *gwBenchRun
			cpu  *time.Duration
		}{{direct, &dr, &dcpu}, {runner, &rr, &rcpu}, {stream, &sr, &scpu}} {
			cpu := processCPU()
			res, err := leg.tg.run(client, n, gwBenchStreams, pace)
			if err != nil {
				b.Fatal(err)
			}
			*leg.cpu += processCPU() - cpu
			leg.into.total = append(leg.into.total, res.total...)
			leg.into.elapsed += res.elapsed
		}
	}
	b.StopTimer()
	for _, x := range []*gwBenchRun{&dr, &rr, &sr} {
		slices.Sort(x.total)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	perRun := func(cpu time.Duration, x gwBenchRun) float64 {
		return float64(cpu.Microseconds()) / float64(len(x.total))
	}
	b.ReportMetric(float64(len(rr.total))/rr.elapsed.Seconds(), "runs/s")
	b.ReportMetric(float64(len(sr.total))/sr.elapsed.Seconds(), "stream-runs/s")
	b.ReportMetric(float64(len(dr.total))/dr.elapsed.Seconds(), "direct/s")
	b.ReportMetric(ms(rr.total.p(50)-dr.total.p(50)), "added-p50-ms")
	b.ReportMetric(ms(rr.total.p(99)-dr.total.p(99)), "added-p99-ms")
	b.ReportMetric(ms(sr.total.p(50)-dr.total.p(50)), "stream-added-p50-ms")
	b.ReportMetric(ms(sr.total.p(99)-dr.total.p(99)), "stream-added-p99-ms")
	b.ReportMetric(ms(dr.total.p(50)), "direct-p50-ms")
	b.ReportMetric(perRun(rcpu, rr), "run-cpu-us")
	b.ReportMetric(perRun(scpu, sr), "stream-cpu-us")
	b.ReportMetric(perRun(dcpu, dr), "direct-cpu-us")
}

// wholeTarget is a request a benchmark sends and reads to its end.
type wholeTarget struct {
	url    string
	body   []byte
	header http.Header
}

// run sends n requests, concurrency at a time, paced (0: closed loop); every answer must be
// a 200.
func (tg wholeTarget) run(client *http.Client, n, concurrency int, pace time.Duration) (gwBenchRun, error) {
	out := gwBenchRun{total: make(gwDurations, n)}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	workers := min(concurrency, n)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				paced(start, pace, w, workers, k)
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
