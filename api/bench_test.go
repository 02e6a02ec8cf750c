package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// benchConns is how many keep-alive connections the load client holds open.
const benchConns = 64

// BenchmarkGetAgent measures an authenticated GET /api/v1/agents/{id} through the real server
// and store, from a loopback client with 64 connections: requests a second and latency
// percentiles.
func BenchmarkGetAgent(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			ts := newTestServer(b, d)
			key := ts.newKey("bench", "bench", 10_000_000, store.ScopeAdmin)
			r := ts.do(http.MethodPost, "/api/v1/agents", key, map[string]any{"name": "Front desk", "instructions": "Answer briefly.", "first_message": "Hello!"})
			if r.Status != http.StatusCreated {
				b.Fatalf("create: %d %s", r.Status, r.Body)
			}
			id := r.JSON(b)["id"].(string)
			req := "GET /api/v1/agents/" + id + " HTTP/1.1\r\nHost: bench\r\nX-API-Key: " + key + "\r\n\r\n"
			load(b, ts.URL, func(int) string { return req }, http.StatusOK)
		})
	}
}

// BenchmarkCreateAgent measures an authenticated POST /api/v1/agents the same way.
func BenchmarkCreateAgent(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			ts := newTestServer(b, d)
			key := ts.newKey("bench", "bench", 10_000_000, store.ScopeAdmin)
			body := `{"name":"Front desk","instructions":"Answer briefly.","first_message":"Hello!","turn":{"endpointing_ms":500}}`
			req := "POST /api/v1/agents HTTP/1.1\r\nHost: bench\r\nX-API-Key: " + key +
				"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
			load(b, ts.URL, func(int) string { return req }, http.StatusCreated)
		})
	}
}

// load sends b.N requests over benchConns keep-alive connections and reports requests a
// second and p50/p99 latency. The client writes raw HTTP/1.1 and reads just enough of each
// answer to find its end, so that the figures measure the server rather than a client.
func load(b *testing.B, base string, request func(i int) string, wantStatus int) {
	b.Helper()
	// The switchboard binary runs with GOGC=400 unless told otherwise (cmd/switchboard);
	// measure the server as it runs.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	conns := make([]*benchConn, benchConns)
	for i := range conns {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = &benchConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func(c *benchConn) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				status, err := c.roundTrip(request(i))
				lat[i] = time.Since(t0)
				if err == nil && status != wantStatus {
					err = fmt.Errorf("status %d, want %d", status, wantStatus)
				}
				if err != nil {
					failed.Store(err)
					next.Store(int64(b.N))
					return
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

type benchConn struct {
	c net.Conn
	r *bufio.Reader
}

// roundTrip writes one request and reads its answer: the status line, the headers up to
// the blank line, and Content-Length bytes of body.
func (c *benchConn) roundTrip(req string) (int, error) {
	if _, err := io.WriteString(c.c, req); err != nil {
		return 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length := 0
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
		}
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
