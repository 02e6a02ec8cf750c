package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// The harness of the stream tests: a test server with the realtime hub and its SSE and
// WebSocket endpoints wired in as cmd/switchboard wires them, and real clients of both.

// streamWait bounds every wait of the stream tests for something to arrive.
const streamWait = 10 * time.Second

// streamServer is a test server that also serves events.
type streamServer struct {
	*testServer
	Hub     *realtime.Hub
	Streams *realtime.Server
	// client is the SSE client: a transport of its own, closed when the test ends.
	client *http.Client
}

// streamOptions configure a stream server; zero values take the defaults.
type streamOptions struct {
	Dialect store.Dialect // SQLite unless set
	Hub     realtime.Options
	Limits  realtime.Limits
}

// newStreamServer starts a server with a hub and stream endpoints. The test must not run in
// parallel with others: when it ends, after the server and its store are closed, it checks
// that no goroutine it started is left.
func newStreamServer(t testing.TB, o streamOptions) *streamServer {
	t.Helper()
	// Registered first, so that it runs last, when everything else is closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})

	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if o.Dialect == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	// The topic checker needs the store the harness opens; it is handed over once the
	// store exists, before any request.
	var st atomic.Pointer[store.Store]
	check := func(ctx context.Context, tenantID, kind, id string) error {
		return api.TopicChecker(st.Load())(ctx, tenantID, kind, id)
	}
	hub := realtime.NewHub(o.Hub)
	streams := realtime.NewServer(hub, check, o.Limits, nil)
	ts := newTestServerOpts(t, opts, api.Config{DefaultRateLimit: 1_000_000, Hub: hub, Streams: streams})
	st.Store(ts.Store)
	ss := &streamServer{testServer: ts, Hub: hub, Streams: streams, client: &http.Client{Transport: &http.Transport{}}}
	// Streams never end by themselves: end them before the server waits for its requests.
	t.Cleanup(func() {
		streams.Shutdown()
		ss.client.CloseIdleConnections()
	})
	return ss
}

// wsURL is the WebSocket endpoint, with query (may be empty).
func (ss *streamServer) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(ss.URL, "http") + "/api/v1/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// waitOpen waits until the server holds n streams.
func (ss *streamServer) waitOpen(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for ss.Streams.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", ss.Streams.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wireEvent is an event as the streams send it.
type wireEvent struct {
	ID       uint64          `json:"id"`
	Type     string          `json:"type"`
	TenantID string          `json:"tenant_id"`
	Topic    string          `json:"topic"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
}

// agentChange decodes the data of an agent.updated event.
func (ev wireEvent) agentChange(t testing.TB) (id, action, name string) {
	t.Helper()
	var d struct {
		AgentID string `json:"agent_id"`
		Action  string `json:"action"`
		Agent   *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"agent"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("agent.updated data %s: %v", ev.Data, err)
	}
	if d.Agent != nil {
		if d.Agent.ID != d.AgentID {
			t.Fatalf("agent.updated data names agent %s and carries %s", d.AgentID, d.Agent.ID)
		}
		name = d.Agent.Name
	}
	return d.AgentID, d.Action, name
}

// wireError is the canonical error shape.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"details"`
}

func (e *wireError) names(field string) bool {
	for _, d := range e.Details {
		if d.Field == field {
			return true
		}
	}
	return false
}

// sseMsg is one message of an event stream: the fields before a blank line.
type sseMsg struct {
	ID, Event, Data, Retry string
	Comments               []string
	Lines                  []string
}

// sseConn is an open event stream read by a real net/http client.
type sseConn struct {
	t      testing.TB
	Resp   *http.Response
	msgs   chan sseMsg
	done   chan struct{}
	err    error // why reading stopped, once done is closed
	ctx    context.Context
	cancel context.CancelFunc
}

// openSSE opens GET /api/v1/events?query with the header. A 200 is read as a stream;
// anything else is read whole and answered.
func (ss *streamServer) openSSE(t testing.TB, query string, h http.Header) (*sseConn, response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url := ss.URL + "/api/v1/events"
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := ss.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: read body: %v", url, err)
		}
		return nil, response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	c := &sseConn{t: t, Resp: resp, msgs: make(chan sseMsg, 1024), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go c.read()
	t.Cleanup(c.Close)
	return c, response{Status: http.StatusOK, Header: resp.Header}
}

// mustOpenSSE opens a stream with the key as X-API-Key and checks that it is one.
func (ss *streamServer) mustOpenSSE(t testing.TB, query, key string) *sseConn {
	t.Helper()
	c, r := ss.openSSE(t, query, hdr("X-API-Key", key))
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/v1/events?%s: %d %s", query, r.Status, r.Body)
	}
	if m := c.next(); m.Retry == "" {
		t.Fatalf("the stream does not begin with a retry hint: %+v", m)
	}
	return c
}

func (c *sseConn) read() {
	defer close(c.done)
	defer close(c.msgs)
	br := bufio.NewReader(c.Resp.Body)
	var m sseMsg
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.err = err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		m.Lines = append(m.Lines, line)
		if line == "" {
			select {
			case c.msgs <- m:
			case <-c.ctx.Done():
				return
			}
			m = sseMsg{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			m.Comments = append(m.Comments, strings.TrimSpace(line[1:]))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			m.ID = value
		case "event":
			m.Event = value
		case "data":
			if m.Data != "" {
				m.Data += "\n"
			}
			m.Data += value
		case "retry":
			m.Retry = value
		}
	}
}

// next waits for the next message.
func (c *sseConn) next() sseMsg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("the event stream ended: %v", c.err)
		}
		return m
	case <-time.After(streamWait):
		c.t.Fatalf("no message on the event stream within %v", streamWait)
	}
	return sseMsg{}
}

// nextEvent waits for the next event, skipping heartbeats, and checks that its id and
// event lines agree with its data.
func (c *sseConn) nextEvent() wireEvent {
	c.t.Helper()
	for {
		m := c.next()
		if m.Data == "" && len(m.Comments) > 0 {
			continue
		}
		var ev wireEvent
		if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
			c.t.Fatalf("data of an SSE event is not JSON: %v: %+v", err, m)
		}
		if m.Event != ev.Type {
			c.t.Fatalf("event: %q, data says type %q", m.Event, ev.Type)
		}
		if ev.Type != realtime.TypeStreamGap && (m.ID == "" || m.ID != jsonUint(ev.ID)) {
			c.t.Fatalf("id: %q, data says id %d: %+v", m.ID, ev.ID, m)
		}
		return ev
	}
}

// wantQuiet checks that no event arrives for a short while.
func (c *sseConn) wantQuiet() {
	c.t.Helper()
	timeout := time.After(100 * time.Millisecond)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("the event stream ended: %v", c.err)
			}
			if m.Data == "" && len(m.Comments) > 0 {
				continue
			}
			c.t.Fatalf("unexpected message on the event stream: %+v", m)
		case <-timeout:
			return
		}
	}
}

// waitEnd waits for the server to end the stream.
func (c *sseConn) waitEnd() {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				if !errors.Is(c.err, io.EOF) {
					c.t.Errorf("the stream ended with %v, want the end of the body", c.err)
				}
				return
			}
		case <-time.After(streamWait):
			c.t.Fatalf("the event stream still open %v later", streamWait)
		}
	}
}

// Close hangs up and waits for the reader to stop.
func (c *sseConn) Close() {
	c.cancel()
	_ = c.Resp.Body.Close()
	<-c.done
}

func jsonUint(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// wsFrame is a frame of the events socket, server to client.
type wsFrame struct {
	Type   string     `json:"type"`
	ID     string     `json:"id"`
	Action string     `json:"action"`
	Topics []string   `json:"topics"`
	Event  *wireEvent `json:"event"`
	Error  *wireError `json:"error"`
	Time   int64      `json:"time"`
	Raw    string     `json:"-"`
	// At is when the frame was read off the socket.
	At time.Time `json:"-"`
}

// wsPeer is a real WebSocket client of the events socket.
type wsPeer struct {
	t       testing.TB
	Conn    *websocket.Conn
	frames  chan wsFrame
	done    chan struct{}
	err     error // why reading stopped, once done is closed
	reading bool
	ctx     context.Context
	cancel  context.CancelFunc
}

// dialWS opens the events socket with the header and query; it answers the handshake's
// response when the dial fails.
func (ss *streamServer) dialWS(t testing.TB, query string, h http.Header, client *http.Client) (*wsPeer, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, streamWait)
	defer dcancel()
	conn, resp, err := websocket.Dial(dctx, ss.wsURL(query), &websocket.DialOptions{HTTPHeader: h, HTTPClient: client})
	if err != nil {
		cancel()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, resp, err
	}
	p := &wsPeer{t: t, Conn: conn, frames: make(chan wsFrame, 1024), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	t.Cleanup(p.Close)
	return p, resp, nil
}

// mustDialWS opens the events socket with the key as X-API-Key and starts reading it.
func (ss *streamServer) mustDialWS(t testing.TB, key string) *wsPeer {
	t.Helper()
	p, _, err := ss.dialWS(t, "", hdr("X-API-Key", key), nil)
	if err != nil {
		t.Fatalf("dial the events socket: %v", err)
	}
	p.startReading()
	return p
}

// startReading reads frames into a channel until the socket ends.
func (p *wsPeer) startReading() {
	p.reading = true
	go func() {
		defer close(p.done)
		defer close(p.frames)
		for {
			typ, data, err := p.Conn.Read(p.ctx)
			if err != nil {
				p.err = err
				return
			}
			at := time.Now()
			var f wsFrame
			if typ != websocket.MessageText || json.Unmarshal(data, &f) != nil {
				f = wsFrame{Type: "<not a JSON text frame>"}
			}
			f.Raw, f.At = string(data), at
			select {
			case p.frames <- f:
			case <-p.ctx.Done():
				return
			}
		}
	}()
}

// send writes v as a JSON text frame.
func (p *wsPeer) send(v any) {
	p.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(websocket.MessageText, b)
}

func (p *wsPeer) sendRaw(typ websocket.MessageType, b []byte) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, streamWait)
	defer cancel()
	if err := p.Conn.Write(ctx, typ, b); err != nil {
		p.t.Fatalf("write to the events socket: %v", err)
	}
}

// next waits for the next frame.
func (p *wsPeer) next() wsFrame {
	p.t.Helper()
	select {
	case f, ok := <-p.frames:
		if !ok {
			p.t.Fatalf("the events socket ended: %v", p.err)
		}
		return f
	case <-time.After(streamWait):
		p.t.Fatalf("no frame on the events socket within %v", streamWait)
	}
	return wsFrame{}
}

// nextOf waits for the next frame and checks its type.
func (p *wsPeer) nextOf(typ string) wsFrame {
	p.t.Helper()
	f := p.next()
	if f.Type != typ {
		p.t.Fatalf("frame %s, want a %s frame", f.Raw, typ)
	}
	return f
}

// nextEvent waits for the next event frame.
func (p *wsPeer) nextEvent() wireEvent {
	p.t.Helper()
	f := p.nextOf("event")
	if f.Event == nil {
		p.t.Fatalf("event frame without an event: %s", f.Raw)
	}
	return *f.Event
}

// subscribe subscribes and waits for the ack.
func (p *wsPeer) subscribe(id string, topics ...string) {
	p.t.Helper()
	p.send(map[string]any{"type": "subscribe", "id": id, "topics": topics})
	f := p.nextOf("ack")
	if f.ID != id || f.Action != "subscribe" || strings.Join(f.Topics, ",") != strings.Join(topics, ",") {
		p.t.Fatalf("ack %s, want the subscription %s to %v", f.Raw, id, topics)
	}
}

// wantError waits for an error frame of that code, naming field when field is not empty.
func (p *wsPeer) wantError(id, code, field string) wsFrame {
	p.t.Helper()
	f := p.nextOf("error")
	if f.ID != id || f.Error == nil || f.Error.Code != code || f.Error.Message == "" || f.Error.Details == nil {
		p.t.Fatalf("error frame %s, want id %q code %s with a message and details", f.Raw, id, code)
	}
	if field != "" && !f.Error.names(field) {
		p.t.Fatalf("error frame %s does not name field %q", f.Raw, field)
	}
	return f
}

// ping checks the socket still answers.
func (p *wsPeer) ping(id string) {
	p.t.Helper()
	before := time.Now().Add(-time.Second).UnixMilli()
	p.send(map[string]any{"type": "ping", "id": id})
	if f := p.nextOf("pong"); f.ID != id || f.Time < before {
		p.t.Fatalf("pong %s, want id %q and the server's time", f.Raw, id)
	}
}

// wantQuiet checks that no frame arrives for a short while.
func (p *wsPeer) wantQuiet() {
	p.t.Helper()
	select {
	case f, ok := <-p.frames:
		if ok {
			p.t.Fatalf("unexpected frame: %s", f.Raw)
		}
		p.t.Fatalf("the events socket ended: %v", p.err)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitClosed waits for the socket to end and returns its close status.
func (p *wsPeer) waitClosed() websocket.StatusCode {
	p.t.Helper()
	for {
		select {
		case _, ok := <-p.frames:
			if !ok {
				return websocket.CloseStatus(p.err)
			}
		case <-time.After(streamWait):
			p.t.Fatalf("the events socket still open %v later", streamWait)
		}
	}
}

// Close hangs up and waits for the reader, if one was started, to stop.
func (p *wsPeer) Close() {
	p.Conn.CloseNow()
	p.cancel()
	if p.reading {
		<-p.done
	}
}

// smallReadBuffer is an HTTP client whose connections have a small receive buffer, so that a
// client that stops reading fills it quickly.
func smallReadBuffer() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}}
}

// createAgent makes an agent with key and returns its id.
func (ss *streamServer) createAgent(t testing.TB, key, name string) string {
	t.Helper()
	return ss.testServer.with(t).createID("/api/v1/agents", key, map[string]any{"name": name, "instructions": "Answer briefly.", "first_message": "Hello!"})
}

// renameAgent PATCHes an agent's name.
func (ss *streamServer) renameAgent(t testing.TB, key, id, name string) {
	t.Helper()
	r := ss.testServer.with(t).do(http.MethodPatch, "/api/v1/agents/"+id, key, map[string]any{"name": name})
	wantStatus(t, r, http.StatusOK, "PATCH /api/v1/agents/"+id)
}
