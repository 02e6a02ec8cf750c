package realtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/realtime"
)

// countingListener counts the writes the server makes to its connections: each is one write
// system call on a TCP socket.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// streamServer serves the hub's SSE and WebSocket endpoints for tenant ten_b over loopback,
// counting the server's writes. stop ends it (the test defers it, to run before its leak
// check).
func streamServer(t *testing.T, hub *realtime.Hub) (ts *httptest.Server, cl *countingListener, stop func()) {
	t.Helper()
	srv := realtime.NewServer(hub, nil, realtime.Limits{Heartbeat: time.Hour}, nil)
	v := realtime.Viewer{TenantID: "ten_b", Key: "k"}
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) { srv.ServeSSE(w, r, v) })
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { srv.ServeWS(w, r, v) })
	ts = httptest.NewUnstartedServer(mux)
	cl = &countingListener{Listener: ts.Listener}
	ts.Listener = cl
	ts.Start()
	return ts, cl, func() { srv.Shutdown(); ts.Close() }
}

// backlog publishes n events of about 150 bytes each on call:c1 of ten_b.
func backlog(t *testing.T, hub *realtime.Hub, n int) {
	t.Helper()
	for i := range n {
		if err := hub.Publish("ten_b", "call:c1", realtime.TypeCallTranscript, map[string]any{"n": i, "text": strings.Repeat("x", 40)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWebSocketBacklogInOneWrite: a subscriber with sixty events waiting (a replay) gets them,
// one message each and in order, in one write with the subscription's ack, not a write
// apiece.
func TestWebSocketBacklogInOneWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	hub := realtime.NewHub(realtime.Options{})
	ts, cl, stop := streamServer(t, hub)
	defer stop()
	backlog(t, hub, 60)
	ctx, cancel := context.WithTimeout(context.Background(), hubDeadline)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	before := cl.writes.Load()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topics":["call:c1"],"since":1}`)); err != nil {
		t.Fatal(err)
	}
	for i := -1; i < 60; i++ {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		var f struct {
			Type  string
			Event struct{ Data struct{ N int } }
		}
		if err := json.Unmarshal(msg, &f); err != nil {
			t.Fatalf("message %d %q: %v", i+1, msg, err)
		}
		if i < 0 {
			if f.Type != "ack" {
				t.Fatalf("first message %s, want the ack", msg)
			}
			continue
		}
		if f.Type != "event" || f.Event.Data.N != i {
			t.Fatalf("message %d: %s, want event %d", i+1, msg, i)
		}
	}
	if got := cl.writes.Load() - before; got != 1 {
		t.Fatalf("the ack and 60 events took %d writes, want 1", got)
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// TestSSEBacklogInOneWrite: the same for an event stream resuming with Last-Event-ID.
func TestSSEBacklogInOneWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	hub := realtime.NewHub(realtime.Options{})
	ts, cl, stop := streamServer(t, hub)
	defer stop()
	backlog(t, hub, 60)
	ctx, cancel := context.WithTimeout(context.Background(), hubDeadline)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/events?topics=call:c1", nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for i := 0; i < 60; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", i, err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if want := fmt.Sprintf(`"data":{"n":%d,`, i); !strings.Contains(data, want) {
				t.Fatalf("event %d: %s", i, data)
			}
			i++
		}
	}
	// The response's head, the retry hint, then every event.
	if got := cl.writes.Load(); got != 3 {
		t.Fatalf("the stream took %d writes, want 3 (head, retry, the 60 events)", got)
	}
}

// TestWebSocketBatchesKeepPongsWhole: while events stream in batches, the pongs the
// library's reader sends for the client's pings travel inside them whole; every ping is
// answered and every event arrives once, in order.
func TestWebSocketBatchesKeepPongsWhole(t *testing.T) {
	defer goleak.VerifyNone(t)
	hub := realtime.NewHub(realtime.Options{QueueSize: 4096})
	ts, _, stop := streamServer(t, hub)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), hubDeadline)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topics":["call:c1"]}`)); err != nil {
		t.Fatal(err)
	}
	const events = 3000
	msgs := make(chan []byte, 64)
	readErr := make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			msgs <- msg
		}
	}()
	if m := <-msgs; !strings.HasPrefix(string(m), `{"type":"ack"`) {
		t.Fatalf("first message %s, want the ack", m)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range events {
			_ = hub.Publish("ten_b", "call:c1", realtime.TypeCallTranscript, map[string]int{"n": i})
		}
	}()
	pings := make(chan error, 1)
	go func() {
		defer wg.Done()
		for range 50 {
			if err := conn.Ping(ctx); err != nil {
				pings <- err
				return
			}
		}
		pings <- nil
	}()
	for i := 0; i < events; i++ {
		m, ok := <-msgs
		if !ok {
			t.Fatalf("after %d events: %v", i, <-readErr)
		}
		if want := fmt.Sprintf(`"data":{"n":%d}`, i); !strings.Contains(string(m), want) {
			t.Fatalf("event %d: %s", i, m)
		}
	}
	if err := <-pings; err != nil {
		t.Fatalf("ping: %v", err)
	}
	wg.Wait()
	conn.Close(websocket.StatusNormalClosure, "")
	for range msgs {
	}
}
