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
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/store"
)

// sessionBenchSessions is how many sessions are answered at once (the load).
const sessionBenchSessions = 64

// BenchmarkSessionMessages measures the canonical messages route (POST
// /api/v1/sessions/{id}/messages as Server-Sent Events) with an instant stand-in model:
// 64 sessions answered at once, each worker sending its session's next message as soon as
// the last is answered, so that every answer is made over a history that grows. In the same
// run, alternating in rounds of 64 requests, the same load goes to the gateway's
// /v1/chat/completions (streamed) to the same stand-in: the session's added time to first
// token is beyond what the gateway itself adds. Time to first token is until the first text
// delta; total until the stream ends (the answer stored). Each answer stores two messages
// (the user's and the agent's) and publishes nothing (no hub).
//
// It runs on SQLite and, where TEST_DATABASE_URL names a server, on PostgreSQL. Besides the
// times it reports the CPU the whole process (client, Switchboard and stand-in) spends per
// answer on each leg: at 64 streams on two cores the added time to first token is mostly
// waiting for a core, so it follows the added CPU.
//
// Two modes. closed: each worker sends its session's next message the instant the last is
// answered, which saturates the two cores, so that the added time is mostly the queue of the
// added CPU. paced=…: open loop, each session sends one message every pace (the 64 spread
// evenly over it; one that is still being answered sends its next at once when done), an
// offered load well under what either path can take, so that the added time is the path's
// own latency rather than a queue.
//
//	go test -run '^$' -bench SessionMessages -benchtime 3200x ./api/
func BenchmarkSessionMessages(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, pace := range benchPaces {
			b.Run(fmt.Sprintf("%s/%s", d, paceName(pace)), func(b *testing.B) { benchSessionMessages(b, d, pace) })
		}
	}
}

// benchPaces are the benchmarks' modes: 0 is closed loop (saturation), anything else one
// request a worker every that long. 100 ms at 64 workers offers 640 requests a second, under
// a quarter of what the gateway answers on two cores and about half of what sessions on
// PostgreSQL do.
var benchPaces = []time.Duration{0, 100 * time.Millisecond}

func paceName(pace time.Duration) string {
	if pace == 0 {
		return "closed"
	}
	return "paced=" + pace.String()
}

// paced waits, for a worker's k-th request of a round that started at start, until its
// slot: worker w of workers sends at start + w·pace/workers + k·pace. Closed loop (pace 0)
// does not wait.
func paced(start time.Time, pace time.Duration, w, workers, k int) {
	if pace == 0 {
		return
	}
	if d := time.Until(start.Add(time.Duration(w)*pace/time.Duration(workers) + time.Duration(k)*pace)); d > 0 {
		time.Sleep(d)
	}
}

func benchSessionMessages(b *testing.B, d store.Dialect, pace time.Duration) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	g := newGW(b, d)
	g.oa.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "Hello there, friend. How can I help you today?"}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * sessionBenchSessions, MaxIdleConnsPerHost: 4 * sessionBenchSessions}}
	b.Cleanup(client.CloseIdleConnections)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.ts.API.Sessions().Shutdown(ctx)
	})
	ag := g.post(b, "/api/v1/agents", g.ts.Key, map[string]any{"name": "Bench", "instructions": "Be brief.", "model": "oai/gpt-test"})
	if ag.Status != http.StatusCreated {
		b.Fatalf("agent: %d %s", ag.Status, ag.Body)
	}
	agentID := ag.JSON(b)["id"].(string)
	var sessions, gateway []sessionBenchTarget
	for range sessionBenchSessions {
		s := g.post(b, "/api/v1/sessions", g.ts.Key, map[string]any{"agent_id": agentID})
		if s.Status != http.StatusCreated {
			b.Fatalf("session: %d %s", s.Status, s.Body)
		}
		sessions = append(sessions, sessionBenchTarget{
			url: g.ts.URL + "/api/v1/sessions/" + s.JSON(b)["id"].(string) + "/messages", body: []byte(`{"content":"Hello?"}`),
			header: http.Header{"X-Api-Key": {g.ts.Key}, "Content-Type": {"application/json"}, "Accept": {"text/event-stream"}},
			first:  []byte("event: text-delta\n"), last: []byte("event: finish\n"),
		})
		gateway = append(gateway, sessionBenchTarget{
			url: g.ts.URL + "/v1/chat/completions",
			body: []byte(`{"model":"oai/gpt-test","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],` +
				`"stream":true,"stream_options":{"include_usage":true}}`),
			header: http.Header{"X-Api-Key": {g.ts.Key}, "Content-Type": {"application/json"}},
			first:  []byte(`"content":"Hello `), last: []byte("data: [DONE]\n"),
		})
	}
	// Warm both paths.
	for _, tg := range [][]sessionBenchTarget{sessions, gateway} {
		if _, err := runSessionBench(client, tg, 2*sessionBenchSessions, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var s, gw sessionBenchRun
	for done := 0; done < b.N; done += sessionBenchSessions {
		n := min(sessionBenchSessions, b.N-done)
		for _, leg := range []struct {
			targets []sessionBenchTarget
			into    *sessionBenchRun
		}{{gateway, &gw}, {sessions, &s}} {
			cpu := processCPU()
			r, err := runSessionBench(client, leg.targets, n, pace)
			if err != nil {
				b.Fatal(err)
			}
			r.cpu = processCPU() - cpu
			leg.into.add(r)
		}
	}
	b.StopTimer()
	s.sort()
	gw.sort()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(len(s.ttft))/s.elapsed.Seconds(), "answers/s")
	b.ReportMetric(ms(s.ttft.p(50)-gw.ttft.p(50)), "added-p50-ttft-ms")
	b.ReportMetric(ms(s.ttft.p(99)-gw.ttft.p(99)), "added-p99-ttft-ms")
	b.ReportMetric(ms(s.ttft.p(50)), "session-p50-ttft-ms")
	b.ReportMetric(ms(s.total.p(50)), "session-p50-total-ms")
	b.ReportMetric(ms(gw.ttft.p(50)), "gateway-p50-ttft-ms")
	b.ReportMetric(float64(len(gw.ttft))/gw.elapsed.Seconds(), "gateway-completions/s")
	b.ReportMetric(float64(s.cpu.Microseconds())/float64(len(s.ttft)), "session-cpu-us/answer")
	b.ReportMetric(float64(gw.cpu.Microseconds())/float64(len(gw.ttft)), "gateway-cpu-us/answer")
	b.ReportMetric(ms(gw.ttft.p(99)), "gateway-p99-ttft-ms")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sessionBenchTarget is one stream a worker sends again and again.
type sessionBenchTarget struct {
	url         string
	body        []byte
	header      http.Header
	first, last []byte // the line of the first token, and the line that ends the answer
}

type sessionBenchRun struct {
	ttft, total gwDurations
	elapsed     time.Duration
	cpu         time.Duration // the process's, while the leg ran
}

func (r *sessionBenchRun) add(o sessionBenchRun) {
	r.ttft = append(r.ttft, o.ttft...)
	r.total = append(r.total, o.total...)
	r.elapsed += o.elapsed
	r.cpu += o.cpu
}

func (r *sessionBenchRun) sort() { slices.Sort(r.ttft); slices.Sort(r.total) }

// runSessionBench sends n streams, one worker per target (at most one stream of a target at
// a time: a session answers one message at a time), paced (0: closed loop).
func runSessionBench(client *http.Client, targets []sessionBenchTarget, n int, pace time.Duration) (sessionBenchRun, error) {
	out := sessionBenchRun{ttft: make(gwDurations, n), total: make(gwDurations, n)}
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	for w := 0; w < min(len(targets), n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, k := w, 0; i < n; i, k = i+len(targets), k+1 {
				paced(start, pace, w, len(targets), k)
				ttft, total, err := targets[w].stream(client)
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
	return out, first
}

func (tg sessionBenchTarget) stream(client *http.Client) (ttft, total time.Duration, err error) {
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
		if ttft == 0 && bytes.Contains(line, tg.first) {
			ttft = time.Since(start)
		}
		if bytes.Equal(line, tg.last) {
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
		return 0, 0, fmt.Errorf("%s: a stream without its first token or its end", tg.url)
	}
	return ttft, total, nil
}
