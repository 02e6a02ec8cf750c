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
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkAlumiaChat measures POST /api/v1/chat against an instant stand-in model, 64
// sessions at once (each worker talks in a session of its own, one message after another, as
// a user does): answers a second, and what it adds to the time to first token beyond the
// model gateway's own. Each round sends b.N requests four ways over keep-alive connections:
// straight to the stand-in, through the gateway (/v1/chat/completions: authentication,
// routing, translation, usage), and through /api/v1/chat (the same, plus X-Alumia-Org, the
// session: its user message stored before the model is asked, the stored history read, the
// answer stored before the stream ends, and the UI message stream); and, to tell what the
// Alumia layer adds from what the sessions engine costs, through the canonical route's SSE
// (POST /api/v1/sessions/{id}/messages). Time to first token is until the event carrying
// the answer's first word; total until the answer's end.
//
//	go test -run '^$' -bench AlumiaChat -benchtime 2000x ./api/
func BenchmarkAlumiaChat(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		for _, n := range []int{gwBenchStreams, 1} {
			b.Run(fmt.Sprintf("%s/sessions=%d", d, n), func(b *testing.B) { benchAlumiaChat(b, d, n) })
		}
	}
}

func benchAlumiaChat(b *testing.B, d store.Dialect, concurrency int) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	ab := newAlumiaBench(b, d, api.Config{DefaultRateLimit: 1 << 30, ChatRateLimit: 1 << 30})
	ab.up.Respond(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "Hello there, friend. How can I help you today?"}
	})
	plain := ab.ts.createID("/api/v1/agents", ab.admin, map[string]any{"name": "Plain", "instructions": "Be brief.", "model": "oai/gpt-test"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * gwBenchStreams, MaxIdleConnsPerHost: 4 * gwBenchStreams}}
	b.Cleanup(client.CloseIdleConnections)

	const prompt = `"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello?"}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	doneLine := []byte("data: [DONE]\n")
	direct := chatBenchTarget{url: ab.up.URL + "/chat/completions", marker: []byte(`"content":"Hello `), end: doneLine,
		header: with(jsonCT, "Authorization", "Bearer k"), body: func(int) []byte { return []byte(`{"model":"gpt-test",` + prompt) }}
	gateway := chatBenchTarget{url: ab.ts.URL + "/v1/chat/completions", marker: []byte(`"content":"Hello `), end: doneLine,
		header: with(jsonCT, "X-Api-Key", ab.ts.Key), body: func(int) []byte { return []byte(`{"model":"oai/gpt-test",` + prompt) }}

	// A session per worker and route, made by its first chat.
	sids, canonical := make([]string, gwBenchStreams), make([]string, gwBenchStreams)
	for w := range 2 * gwBenchStreams {
		r := ab.chatRaw(b, "127.0.0.1", ab.key, hello(plain))
		if r.Status != http.StatusOK {
			b.Fatalf("first chat: %d %s", r.Status, r.Body)
		}
		if w < gwBenchStreams {
			sids[w] = r.Header.Get("X-Session-Id")
		} else {
			canonical[w-gwBenchStreams] = r.Header.Get("X-Session-Id")
		}
	}
	// The canonical route's stream (the sessions engine's own cost, in its SSE shape).
	canon := chatBenchTarget{marker: []byte(`"delta":"Hello `), end: []byte(`"type":"finish"`),
		header: with(jsonCT, "X-Api-Key", ab.admin, "Accept", "text/event-stream"),
		body:   func(int) []byte { return []byte(`{"role":"user","content":"Hello?"}`) }}
	canonURL := func(w int) string { return ab.ts.URL + "/api/v1/sessions/" + canonical[w] + "/messages" }
	canon.urlOf = canonURL
	chat := chatBenchTarget{url: ab.ts.URL + "/api/v1/chat", marker: []byte(`"delta":"Hello `), end: doneLine,
		header: with(jsonCT, "Authorization", "Bearer "+ab.key, "X-Alumia-Org", "acme"),
		body: func(w int) []byte {
			return []byte(`{"sessionId":"` + sids[w] + `","messages":[{"role":"user","content":"Hello?"}]}`)
		}}

	for _, tg := range []chatBenchTarget{direct, gateway, canon, chat} {
		if _, err := tg.run(client, 2*gwBenchStreams, gwBenchStreams); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	dr, err := direct.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	gr, err := gateway.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	nr, err := canon.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	cr, err := chat.run(client, b.N, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/cr.elapsed.Seconds(), "answers/s")
	b.ReportMetric(float64(b.N)/gr.elapsed.Seconds(), "gateway-completions/s")
	b.ReportMetric(ms(cr.ttft.p(50)-gr.ttft.p(50)), "added-over-gateway-p50-ttft-ms")
	b.ReportMetric(ms(cr.ttft.p(99)-gr.ttft.p(99)), "added-over-gateway-p99-ttft-ms")
	b.ReportMetric(ms(gr.ttft.p(50)-dr.ttft.p(50)), "gateway-added-p50-ttft-ms")
	b.ReportMetric(ms(cr.ttft.p(50)-nr.ttft.p(50)), "added-over-canonical-p50-ttft-ms")
	b.ReportMetric(float64(b.N)/nr.elapsed.Seconds(), "canonical-answers/s")
	b.ReportMetric(ms(cr.ttft.p(50)), "chat-p50-ttft-ms")
	b.ReportMetric(ms(cr.total.p(50)), "chat-p50-total-ms")
	b.ReportMetric(ms(cr.total.p(99)), "chat-p99-total-ms")
}

// chatBenchTarget is where a benchmark sends its streams; body(w) is worker w's request.
type chatBenchTarget struct {
	url string
	// urlOf, when set, is worker w's URL.
	urlOf  func(worker int) string
	header http.Header
	body   func(worker int) []byte
	marker []byte
	// end is in the line that ends the answer.
	end []byte
}

// run sends n streams, concurrency at a time; worker w sends only its own requests, one
// after another.
func (tg chatBenchTarget) run(client *http.Client, n, concurrency int) (gwBenchRun, error) {
	out := gwBenchRun{ttft: make(gwDurations, n), total: make(gwDurations, n)}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	for w := range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				url := tg.url
				if tg.urlOf != nil {
					url = tg.urlOf(w)
				}
				ttft, total, err := tg.stream(client, url, tg.body(w))
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

func (tg chatBenchTarget) stream(client *http.Client, url string, body []byte) (ttft, total time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
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
		return 0, 0, fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	rd := bufio.NewReaderSize(resp.Body, 4096)
	done := false
	for {
		line, err := rd.ReadSlice('\n')
		if ttft == 0 && bytes.Contains(line, tg.marker) {
			ttft = time.Since(start)
		}
		if bytes.Contains(line, tg.end) {
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
		return 0, 0, fmt.Errorf("%s: a stream without its first word or its end", url)
	}
	return ttft, total, nil
}
