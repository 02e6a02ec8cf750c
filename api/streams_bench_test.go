package api_test

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// BenchmarkPublishPath measures the publish path of issue 16: an agent's PATCH, sent over a
// kept-alive connection, until its agent.updated event arrives on a subscriber's events
// socket (one WebSocket subscriber of agent:{id}), one request at a time, through the real
// server, store and hub; and the PATCH's own answer. It reports p50 and p99 of both.
//
//	go test -run '^$' -bench PublishPath -benchtime 2000x ./api/
func BenchmarkPublishPath(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			ss := newStreamServer(b, streamOptions{Dialect: d})
			key := ss.newKey("bench", "bench", 10_000_000, store.ScopeAdmin)
			id := ss.createAgent(b, key, "Front desk")
			sub := ss.mustDialWS(b, key)
			sub.subscribe("s1", "agent:"+id)
			u, err := url.Parse(ss.URL)
			if err != nil {
				b.Fatal(err)
			}
			c, err := net.Dial("tcp", u.Host)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			conn := &benchConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
			delivered := make([]time.Duration, b.N)
			answered := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				body := `{"name":"Front desk ` + strconv.Itoa(i) + `"}`
				req := "PATCH /api/v1/agents/" + id + " HTTP/1.1\r\nHost: bench\r\nX-API-Key: " + key +
					"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
				sent := time.Now()
				status, err := conn.roundTrip(req)
				answered[i] = time.Since(sent)
				if err != nil || status != http.StatusOK {
					b.Fatalf("PATCH: %d %v", status, err)
				}
				f := sub.nextOf("event")
				delivered[i] = f.At.Sub(sent)
			}
			b.StopTimer()
			for _, m := range []struct {
				name string
				d    []time.Duration
			}{{"publish-to-delivery", delivered}, {"answer", answered}} {
				slices.Sort(m.d)
				b.ReportMetric(float64(m.d[len(m.d)/2])/1e6, m.name+"-p50-ms")
				b.ReportMetric(float64(m.d[len(m.d)*99/100])/1e6, m.name+"-p99-ms")
			}
		})
	}
}
