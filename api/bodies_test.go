package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// imageRequest streams a request of the surface with one inline image of n bytes of base64,
// without holding it: the test's own memory must not hide the server's.
func imageRequest(surface, model string, n int) (io.Reader, int64) {
	var head, tail string
	if surface == gwAnthropic {
		head = `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":[{"type":"text","text":"What is in it?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"`
		tail = `"}}]}]}`
	} else {
		head = `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"text","text":"What is in it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,`
		tail = `"}}]}]}`
	}
	return io.MultiReader(strings.NewReader(head), io.LimitReader(repeatByte('Q'), int64(n)), strings.NewReader(tail)),
		int64(len(head) + n + len(tail))
}

type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// bigUpstream is an OpenAI-compatible stand-in that reads each request's body without
// keeping it (so that only the server's memory is measured), counts the bytes, and answers
// once released.
type bigUpstream struct {
	*httptest.Server
	arrived chan int64
	release chan struct{}
}

func newBigUpstream(t *testing.T) *bigUpstream {
	u := &bigUpstream{arrived: make(chan int64, 64), release: make(chan struct{}, 64)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		u.arrived <- n
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"A picture."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// heapInUse is the heap's in-use spans, as runtime.MemStats.HeapInuse, without stopping the
// world.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// TestGatewayLargeBodiesStayBounded: ten concurrent 30 MB model requests, which took a node
// from 52 MB to 1.7 GB before, are held within the node's budget of large bodies: those the
// budget takes are answered, the others get 503 with Retry-After at once. Over three rounds,
// at the node's GOGC of 400, the heap stays under the bound README documents (twice the
// budget over what it was) and comes back down once the node is idle.
func TestGatewayLargeBodiesStayBounded(t *testing.T) {
	// Not parallel: it measures the process's heap, collected as a node's is.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	const (
		budget   = 64 << 20
		size     = 30_000_000
		requests = 10
		rounds   = 3
		admitted = budget / (size + 256) // 2
	)
	up := newBigUpstream(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "big", Kind: llm.KindOpenAI, BaseURL: up.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg, GatewayBodyBudget: budget})
	api.SetBodyBuffersIdle(ts.API, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // -race decodes slowly
	defer cancel()
	runtime.GC()
	base := heapInUse()

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapInUse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	type result struct {
		status     int
		retryAfter string
		body       []byte
		err        error
	}
	counts := map[int]int{}
	// Rounds, so that what one round left for the collector is there when the next comes.
	for round := 0; round < rounds; round++ {
		results := make(chan result, requests)
		var wg sync.WaitGroup
		for i := 0; i < requests; i++ {
			surface := gwOpenAI
			if i%2 == 1 {
				surface = gwAnthropic
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				body, n := imageRequest(surface, "big/vision", size)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+gwPath(surface), body)
				req.ContentLength = n
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", ts.Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				results <- result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b}
			}()
		}
		// The refused are answered at once, while the admitted wait at the upstream.
		for i := 0; i < requests-admitted; i++ {
			select {
			case r := <-results:
				if r.err != nil {
					t.Fatalf("request: %v", r.err)
				}
				counts[r.status]++
				if r.status == http.StatusServiceUnavailable && r.retryAfter == "" {
					t.Errorf("503 without Retry-After: %s", r.body)
				}
			case <-ctx.Done():
				t.Fatal("the refused requests were not answered")
			}
		}
		for i := 0; i < admitted; i++ {
			select {
			case n := <-up.arrived:
				if n < size {
					t.Errorf("the upstream got %d bytes, want the whole image", n)
				}
			case <-ctx.Done():
				t.Fatal("the admitted requests did not reach the upstream")
			}
		}
		for i := 0; i < admitted; i++ {
			up.release <- struct{}{}
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r.err != nil {
				t.Fatalf("request: %v", r.err)
			}
			counts[r.status]++
		}
	}
	close(stop)
	<-sampled
	if counts[http.StatusOK] != rounds*admitted || counts[http.StatusServiceUnavailable] != rounds*(requests-admitted) {
		t.Errorf("statuses %v, want %d × 200 and %d × 503", counts, rounds*admitted, rounds*(requests-admitted))
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: %d MiB before, peak %d MiB (+%d MiB) with %d rounds of %d × %d MB requests and a budget of %d MiB",
		base>>20, peak.Load()>>20, grew>>20, rounds, requests, size/1_000_000, budget>>20)
	if bound := int64(2 * budget); grew > bound {
		t.Errorf("the heap grew by %d MiB, over the bound of %d MiB", grew>>20, bound>>20)
	}
	// Idle, the node lets the bodies' buffers go (after 30 s; here, 100 ms).
	for {
		runtime.GC()
		after := int64(heapInUse()) - int64(base)
		if after <= 16<<20 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("idle, the heap holds %d MiB more than before the requests", after>>20)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestGatewayBodyLimit: a body over the limit is refused with 413 in the surface's dialect,
// whether its length is declared or only found while reading, and nothing is held after.
func TestGatewayBodyLimit(t *testing.T) {
	t.Parallel()
	up := newBigUpstream(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "big", Kind: llm.KindOpenAI, BaseURL: up.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, surface := range []string{gwOpenAI, gwAnthropic} {
		for _, chunked := range []bool{false, true} {
			body, n := imageRequest(surface, "big/vision", api.MaxGatewayBody)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+gwPath(surface), body)
			if !chunked {
				req.ContentLength = n
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", ts.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s chunked=%v: %v", surface, chunked, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
			var e gwErr
			if surface == gwOpenAI {
				e = gwOpenAIError(t, r, http.StatusRequestEntityTooLarge)
			} else {
				e = gwAnthropicError(t, r, http.StatusRequestEntityTooLarge)
				var wire struct {
					Error struct{ Type string } `json:"error"`
				}
				if err := json.Unmarshal(b, &wire); err != nil || wire.Error.Type != "request_too_large" {
					t.Errorf("anthropic type %q", wire.Error.Type)
				}
			}
			if !strings.Contains(e.Message, "33554432 bytes") {
				t.Errorf("%s chunked=%v: message %q does not say the limit", surface, chunked, e.Message)
			}
		}
	}
	// A body at the limit's side of it is taken.
	body, n := imageRequest(gwOpenAI, "big/vision", 1<<20)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", body)
	req.ContentLength = n
	req.Header.Set("X-API-Key", ts.Key)
	up.release <- struct{}{}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a 1 MiB image: %d", resp.StatusCode)
	}
}

// TestGatewayReusedBodiesStayApart: large bodies' buffers are reused from request to request,
// and what is decoded from a body lies in its buffer: every upstream still gets exactly its
// own request's image, on both surfaces, many at once, also after upstreams that answered
// before reading their request (a transport may still be writing one then). Under -race
// this also shows that nothing reads a buffer once it is reused.
func TestGatewayReusedBodiesStayApart(t *testing.T) {
	t.Parallel()
	var bad, got atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("X-Early") != "" || strings.Contains(r.URL.Path, "early") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"no"}}`)
			return
		}
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Content []struct {
					Text     string `json:"text"`
					ImageURL struct {
						URL string `json:"url"`
					} `json:"image_url"`
				} `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) != 1 || len(req.Messages[0].Content) != 2 {
			bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		want := req.Messages[0].Content[0].Text // the letter the image is made of
		img := strings.TrimPrefix(req.Messages[0].Content[1].ImageURL.URL, "data:image/png;base64,")
		if len(want) != 1 || len(img) < 1<<20 || strings.Trim(img, want) != "" {
			bad.Add(1)
		}
		got.Add(1)
		_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer up.Close()
	reg, err := llm.NewRegistry([]llm.ProviderConfig{
		{Name: "big", Kind: llm.KindOpenAI, BaseURL: up.URL},
		{Name: "early", Kind: llm.KindOpenAI, BaseURL: up.URL + "/early"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg, GatewayBodyBudget: 1 << 30})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		workers = 4
		each    = 8
	)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				letter := string(rune('A' + (w*each+i)%26))
				model, surface := "big/vision", gwOpenAI
				switch i % 4 {
				case 1:
					model = "early/vision"
				case 2:
					surface = gwAnthropic
				}
				size := 1<<20 + (w*each+i)*4099 // many sizes, a few pool classes
				var head, tail string
				if surface == gwAnthropic {
					head = `{"model":"` + model + `","max_tokens":8,"messages":[{"role":"user","content":[{"type":"text","text":"` + letter + `"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"`
					tail = `"}}]}]}`
				} else {
					head = `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"text","text":"` + letter + `"},{"type":"image_url","image_url":{"url":"data:image/png;base64,`
					tail = `"}}]}]}`
				}
				body := io.MultiReader(strings.NewReader(head), io.LimitReader(repeatByte(letter[0]), int64(size)), strings.NewReader(tail))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+gwPath(surface), body)
				req.ContentLength = int64(len(head) + size + len(tail))
				req.Header.Set("X-API-Key", ts.Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				want := http.StatusOK
				if model == "early/vision" {
					want = http.StatusBadRequest
				}
				if resp.StatusCode != want {
					t.Errorf("%s %s: %d, want %d", surface, model, resp.StatusCode, want)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d upstream requests carried another request's bytes", bad.Load())
	}
	if got.Load() != workers*each*3/4 {
		t.Errorf("the upstream checked %d images, want %d", got.Load(), workers*each*3/4)
	}
}

// floodResult is what a request of a gateway flood was answered.
type floodResult struct {
	status     int
	retryAfter string
	err        error
}

// floodClient sends a flood's requests. They expect 100 Continue before they send their
// bodies, so that a request the server refuses before reading its body gets the answer
// rather than a broken pipe, however slowly the machine goes.
var floodClient = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, MaxIdleConnsPerHost: 64}}

// flood sends requests model requests of the surface, each with an image of size bytes of
// base64 and a known length, at once, and delivers their answers on the channel it returns.
func flood(ctx context.Context, wg *sync.WaitGroup, ts *testServer, requests, size int) <-chan floodResult {
	results := make(chan floodResult, requests)
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, n := imageRequest(gwOpenAI, "big/vision", size)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+gwPath(gwOpenAI), body)
			req.ContentLength = n
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", ts.Key)
			req.Header.Set("Expect", "100-continue")
			resp, err := floodClient.Do(req)
			if err != nil {
				results <- floodResult{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- floodResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		}()
	}
	return results
}

// admit waits until admitted requests of a flood reached the upstream and the others were
// refused with 503 and Retry-After, which they are at once.
func admit(ctx context.Context, t *testing.T, up *bigUpstream, results <-chan floodResult, requests, admitted int, what string) {
	t.Helper()
	refused, arrived := 0, 0
	for refused < requests-admitted || arrived < admitted {
		select {
		case r := <-results:
			if r.err != nil || r.status != http.StatusServiceUnavailable || r.retryAfter == "" {
				t.Fatalf("%s: a request was answered %d (Retry-After %q, %v) while %d of %d had reached the upstream, want 503 past the budget",
					what, r.status, r.retryAfter, r.err, arrived, admitted)
			}
			refused++
		case <-up.arrived:
			if arrived++; arrived > admitted {
				t.Fatalf("%s: more than %d requests reached the upstream", what, admitted)
			}
		case <-ctx.Done():
			t.Fatalf("%s: %d requests reached the upstream and %d were refused, want %d and %d", what, arrived, refused, admitted, requests-admitted)
		}
	}
	// No more than that reach the upstream.
	select {
	case <-up.arrived:
		t.Fatalf("%s: more than %d requests reached the upstream", what, admitted)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestGatewaySmallBodiesStayBounded: bodies under a megabyte count against the node's budget
// too, or a flood of them would hold memory without bound (a thousand of 1 MiB, a
// gigabyte). Of three hundred concurrent half-megabyte requests, only what the budget holds
// reaches the upstream, the rest are refused at once with 503 and Retry-After, and the heap
// stays within the bound README documents. Large bodies leave the small ones a reserve:
// with large requests holding all they may, a chat turn with a long history still goes
// through. Nothing is counted once the requests are answered.
func TestGatewaySmallBodiesStayBounded(t *testing.T) {
	// Not parallel: it measures the process's heap, collected as a node's is.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	const (
		budget   = 32 << 20
		size     = 500_000
		requests = 300
	)
	_, overhead := imageRequest(gwOpenAI, "big/vision", 0)
	admitted := int(budget / (size + overhead))
	up := newBigUpstream(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "big", Kind: llm.KindOpenAI, BaseURL: up.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerConfig(t, store.SQLite, api.Config{DefaultRateLimit: 1_000_000, Models: reg, GatewayBodyBudget: budget})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runtime.GC()
	base := heapInUse()
	var peak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	stopSampling := func() { stopOnce.Do(func() { close(stop); <-sampled }) }
	defer stopSampling()
	defer floodClient.CloseIdleConnections()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapInUse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	var wg sync.WaitGroup
	results := flood(ctx, &wg, ts, requests, size)
	admit(ctx, t, up, results, requests, admitted, "half-megabyte requests")
	if held := api.GatewayBodiesInUse(ts.API); held != int64(admitted)*(size+overhead) {
		t.Errorf("%d bytes of bodies counted, want %d", held, int64(admitted)*(size+overhead))
	}
	stopSampling()
	grew := int64(peak.Load()) - int64(base)
	// The bodies, at most twice the budget, and each connection's own buffers and
	// goroutines, at both ends: the test's clients are in this process too.
	bound := int64(2*budget + requests*64<<10)
	t.Logf("heap in use: %d MiB before, peak %d MiB (+%d MiB) with %d × %d KB requests and a budget of %d MiB, %d admitted",
		base>>20, peak.Load()>>20, grew>>20, requests, size/1000, budget>>20, admitted)
	if grew > bound {
		t.Errorf("the heap grew by %d MiB, over the bound of %d MiB", grew>>20, bound>>20)
	}
	for i := 0; i < admitted; i++ {
		up.release <- struct{}{}
	}
	for i := 0; i < admitted; i++ {
		if r := <-results; r.err != nil || r.status != http.StatusOK {
			t.Fatalf("an admitted request: %d %v", r.status, r.err)
		}
	}
	wg.Wait()

	// Large bodies fill the budget but for the small bodies' reserve (2 MiB of 32): sized
	// so that, without it, they would leave no room for anything.
	const large = 28
	largeSize := int(budget/large - overhead)
	largeAdmitted := int((budget - 2<<20) / (int64(largeSize) + overhead))
	results = flood(ctx, &wg, ts, large, largeSize)
	admit(ctx, t, up, results, large, largeAdmitted, "large requests")
	chat := flood(ctx, &wg, ts, 1, 200_000)
	select {
	case <-up.arrived:
	case r := <-chat:
		t.Fatalf("a chat turn of 200 KB while large requests fill their part of the budget: %d %v", r.status, r.err)
	case <-ctx.Done():
		t.Fatal("the chat turn did not reach the upstream")
	}
	for i := 0; i < largeAdmitted+1; i++ {
		up.release <- struct{}{}
	}
	wg.Wait()
	if r := <-chat; r.status != http.StatusOK {
		t.Errorf("the chat turn: %d %v", r.status, r.err)
	}
	if held := api.GatewayBodiesInUse(ts.API); held != 0 {
		t.Errorf("%d bytes of bodies still counted once every request was answered", held)
	}
}
