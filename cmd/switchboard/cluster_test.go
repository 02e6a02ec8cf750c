package main

// Two real switchboard serve processes on one PostgreSQL: what one node publishes reaches the
// subscribers of both, exactly once, in one order, with the same IDs, also after the relay's
// listening connections are cut and come back.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/internal/pgtest"
)

// clusterWait bounds every wait of the cluster test.
const clusterWait = 20 * time.Second

// clusterEvent is an agent.updated event as a subscriber received it.
type clusterEvent struct {
	ID       uint64 `json:"id"`
	Type     string `json:"type"`
	TenantID string `json:"tenant_id"`
	Topic    string `json:"topic"`
	Data     struct {
		AgentID string `json:"agent_id"`
		Action  string `json:"action"`
		Agent   *struct {
			Name string `json:"name"`
		} `json:"agent"`
	} `json:"data"`
}

// what names the change: agent, action and the agent's name after it.
func (e clusterEvent) what() string {
	name := ""
	if e.Data.Agent != nil {
		name = e.Data.Agent.Name
	}
	return e.Data.AgentID + " " + e.Data.Action + " " + name
}

// watcher collects what one subscriber receives.
type watcher struct {
	name string
	mu   sync.Mutex
	evs  []clusterEvent
	odd  []string // errors and frames that should not come
	gaps []string // the reasons of stream.gap events
	done chan struct{}
	err  error // why reading stopped, once done is closed
}

func (w *watcher) add(raw []byte) {
	var ev clusterEvent
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Type != "agent.updated" || ev.ID == 0 || ev.Topic != "agent:"+ev.Data.AgentID {
		w.odd = append(w.odd, string(raw))
		return
	}
	w.evs = append(w.evs, ev)
}

// events returns what was received, without the events of agent skip.
func (w *watcher) events(skip string) []clusterEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []clusterEvent
	for _, ev := range w.evs {
		if ev.Data.AgentID != skip {
			out = append(out, ev)
		}
	}
	return out
}

func (w *watcher) gap(data []byte) {
	var g struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(data, &g)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaps = append(w.gaps, g.Reason)
}

func (w *watcher) gapReasons() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.gaps...)
}

func (w *watcher) oddities() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.odd...)
}

func (w *watcher) ended() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// watchSSE subscribes to the tenant topic of node n by Server-Sent Events.
func watchSSE(t *testing.T, n *node, key string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/api/v1/events?topics=tenant", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /api/v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	w := &watcher{name: "SSE on " + n.addr, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		br := bufio.NewReader(resp.Body)
		var event, id, data string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				w.err = err
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if data != "" {
					if event == "stream.gap" {
						w.gap([]byte(data))
					} else if event != "agent.updated" || id == "" {
						w.mu.Lock()
						w.odd = append(w.odd, "event: "+event+" id: "+id+" data: "+data)
						w.mu.Unlock()
					} else {
						w.add([]byte(data))
					}
				}
				event, id, data = "", "", ""
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-w.done
		client.CloseIdleConnections()
	})
	return w
}

// watchWS subscribes to the tenant topic of node n over the WebSocket, and waits for the ack.
func watchWS(t *testing.T, n *node, key string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{}}
	dctx, dcancel := context.WithTimeout(ctx, clusterWait)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, "ws://"+n.addr+"/api/v1/ws", &websocket.DialOptions{
		HTTPClient: client, HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		cancel()
		t.Fatalf("dial the events socket: %v", err)
	}
	if err := conn.Write(dctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"w","topics":["tenant"]}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := conn.Read(dctx); err != nil || !strings.Contains(string(ack), `"type":"ack"`) {
		t.Fatalf("subscribe: %s %v", ack, err)
	}
	w := &watcher{name: "WebSocket on " + n.addr, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, frame, err := conn.Read(ctx)
			if err != nil {
				w.err = err
				return
			}
			var f struct {
				Type  string `json:"type"`
				Event struct {
					Type string          `json:"type"`
					Data json.RawMessage `json:"data"`
				} `json:"event"`
			}
			switch {
			case json.Unmarshal(frame, &f) != nil || f.Type != "event":
				w.mu.Lock()
				w.odd = append(w.odd, string(frame))
				w.mu.Unlock()
			case f.Event.Type == "stream.gap":
				w.gap(f.Event.Data)
			default:
				var ev struct {
					Event json.RawMessage `json:"event"`
				}
				_ = json.Unmarshal(frame, &ev)
				w.add(ev.Event)
			}
		}
	}()
	t.Cleanup(func() {
		conn.CloseNow()
		cancel()
		<-w.done
		client.CloseIdleConnections()
	})
	return w
}

// waitEvents waits until every watcher holds want events (those of agent skip aside).
func waitEvents(t *testing.T, skip string, want int, ws ...*watcher) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		ready := true
		for _, w := range ws {
			if len(w.events(skip)) < want {
				ready = false
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			for _, w := range ws {
				t.Logf("%s: %d events, want %d; ended: %v %v", w.name, len(w.events(skip)), want, w.ended(), w.err)
			}
			t.Fatalf("events not delivered within %v", clusterWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cluster is the state of the test: two nodes, a key, and what was done.
type cluster struct {
	t     *testing.T
	key   string
	nodes [2]*node
	// done lists the changes made, in the order they were made.
	done []string
}

func (c *cluster) create(n *node, name string) string {
	c.t.Helper()
	status, body := n.call(http.MethodPost, "/api/v1/agents", c.key, agentJSON(name))
	id, _ := body["id"].(string)
	if status != http.StatusCreated || id == "" {
		c.t.Fatalf("POST /api/v1/agents on %s: %d %v", n.addr, status, body)
	}
	c.done = append(c.done, id+" created "+name)
	return id
}

func (c *cluster) rename(n *node, id, name string) {
	c.t.Helper()
	c.patch(n, id, name, `{"name":"`+name+`"}`)
}

// patch PATCHes an agent with patch, which renames it to name.
func (c *cluster) patch(n *node, id, name, patch string) {
	c.t.Helper()
	status, body := n.call(http.MethodPatch, "/api/v1/agents/"+id, c.key, patch)
	if status != http.StatusOK || body["name"] != name {
		c.t.Fatalf("PATCH /api/v1/agents/%s on %s: %d %v", id, n.addr, status, body)
	}
	c.done = append(c.done, id+" updated "+name)
}

// check compares what the watchers received with what was done: the same events, with the
// same IDs, in the same order, in increasing IDs, each change once, and the changes of each
// agent in the order they were made.
func (c *cluster) check(skip string, gaps int, ws ...*watcher) {
	t := c.t
	t.Helper()
	for _, w := range ws {
		got := w.gapReasons()
		if len(got) != gaps {
			t.Fatalf("%s received gaps %q, want %d", w.name, got, gaps)
		}
		for _, r := range got {
			if r != "relay_reconnected" {
				t.Fatalf("%s received a gap for %q, want relay_reconnected", w.name, r)
			}
		}
	}
	first := ws[0].events(skip)
	for _, w := range ws {
		evs := w.events(skip)
		if len(evs) != len(c.done) {
			t.Fatalf("%s received %d events, want %d", w.name, len(evs), len(c.done))
		}
		for i, ev := range evs {
			if ev.ID != first[i].ID || ev.what() != first[i].what() {
				t.Fatalf("event #%d: %s has %d %q, %s has %d %q", i, w.name, ev.ID, ev.what(), ws[0].name, first[i].ID, first[i].what())
			}
			if i > 0 && ev.ID <= evs[i-1].ID {
				t.Fatalf("%s: event ID %d after %d", w.name, ev.ID, evs[i-1].ID)
			}
		}
		if odd := w.oddities(); len(odd) > 0 {
			t.Fatalf("%s received what it should not (an error, another frame): %q", w.name, odd)
		}
	}
	count := map[string]int{}
	for _, d := range c.done {
		count[d]++
	}
	for _, ev := range first {
		count[ev.what()]--
	}
	for what, n := range count {
		if n != 0 {
			t.Fatalf("change %q: received %d times too few (negative: too many)", what, n)
		}
	}
	perAgent := func(list []string) map[string][]string {
		m := map[string][]string{}
		for _, d := range list {
			m[strings.Fields(d)[0]] = append(m[strings.Fields(d)[0]], d)
		}
		return m
	}
	var got []string
	for _, ev := range first {
		got = append(got, ev.what())
	}
	want, have := perAgent(c.done), perAgent(got)
	for agent, changes := range want {
		if strings.Join(changes, "|") != strings.Join(have[agent], "|") {
			t.Fatalf("agent %s: changes received in the order %q, made in the order %q", agent, have[agent], changes)
		}
	}
}

// TestClusterEvents: an SSE subscriber on node B and a WebSocket subscriber on node A see
// every agent change made on either node exactly once, in the same order, with the same IDs;
// when the relay's listening connections are cut, what is published meanwhile is delivered
// once they are back, and nothing twice.
func TestClusterEvents(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	env := func() []string {
		return []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + dbURL, "SWITCHBOARD_SECRET=" + testSecret,
			"SWITCHBOARD_RATE_LIMIT=100000"}
	}
	envA, envB := env(), env()
	key := createKey(t, envA, "--name", "cluster")
	// One after the other, so that one of them migrates the database.
	a := startServe(t, envA)
	b := startServe(t, envB)
	c := &cluster{t: t, key: key, nodes: [2]*node{a, b}}
	gaps := 0

	sse := watchSSE(t, b, key)
	ws := watchWS(t, a, key)

	// A node relays what it hears once its listener is up, a moment after it serves: touch a
	// probe agent from both nodes until both subscribers have heard of it.
	probe := c.create(a, "Probe")
	c.done = nil
	deadline := time.Now().Add(clusterWait)
	for i := 0; ; i++ {
		if len(sse.events("")) > 0 && len(ws.events("")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscribers did not hear of the probe agent within %v", clusterWait)
		}
		n := c.nodes[i%2]
		if status, body := n.call(http.MethodPatch, "/api/v1/agents/"+probe, key, fmt.Sprintf(`{"name":"Probe %d"}`, i)); status != http.StatusOK {
			t.Fatalf("PATCH the probe: %d %v", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Changes alternate between the nodes, each agent changed on one node.
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = c.create(c.nodes[i%2], fmt.Sprintf("Agent %d", i))
	}
	for v := 1; v <= 3; v++ {
		for i, id := range ids {
			c.rename(c.nodes[i%2], id, fmt.Sprintf("Agent %d v%d", i, v))
		}
	}
	// An event too large for a NOTIFY payload travels by reference, read back from the table.
	long := strings.Repeat("Answer the phone politely. ", 400)
	c.patch(b, ids[1], "Agent 1 long", `{"name":"Agent 1 long","instructions":"`+long+`"}`)
	c.rename(a, ids[2], "Agent 2 after long")
	// One agent changed on both nodes in turn, each change heard before the next is made.
	for v := range 4 {
		c.rename(c.nodes[(v+1)%2], ids[0], fmt.Sprintf("Agent 0 turn %d", v))
		waitEvents(t, probe, len(c.done), sse, ws)
	}
	waitEvents(t, probe, len(c.done), sse, ws)
	time.Sleep(300 * time.Millisecond) // anything extra would come now
	c.check(probe, gaps, sse, ws)

	// Cut the relay's listening connections on both nodes, and keep them from coming back
	// while changes are made on both nodes.
	o := newOutage(t, dbURL, c.nodes[:])
	o.cut()
	before := len(c.done)
	// (Each agent is changed on one node here: changes of one topic made on two nodes in
	// quick succession are relayed in the order the nodes commit them, which need not be
	// the order in which they were made.)
	y := c.create(a, "Outage A")
	z := c.create(b, "Outage B")
	c.rename(a, y, "Outage A v1")
	c.rename(b, z, "Outage B v1")
	c.rename(b, ids[1], "Agent 1 outage")
	c.rename(a, ids[2], "Agent 2 outage")
	// The nodes hear their own events through the relay too: nothing arrives while it is cut.
	time.Sleep(300 * time.Millisecond)
	for _, w := range []*watcher{sse, ws} {
		if n := len(w.events(probe)); n != before {
			t.Fatalf("%s received %d events while the relay could not listen, want %d", w.name, n, before)
		}
	}
	o.restore()
	// Everything is caught up, and no gap is reported: nothing was lost.
	waitEvents(t, probe, len(c.done), sse, ws)
	// And it goes on live.
	c.rename(b, y, "Outage A v2")
	c.rename(a, ids[3], "Agent 3 after")
	waitEvents(t, probe, len(c.done), sse, ws)
	time.Sleep(300 * time.Millisecond)
	c.check(probe, gaps, sse, ws)

	// Events pruned from the table while the relay was away cannot be caught up: the
	// subscribers are told, and get what is left.
	for _, prune := range []string{"some", "all"} {
		o.cut()
		last := ws.events(probe)[len(c.done)-1].ID
		before := len(c.done)
		for v := range 3 {
			c.rename(a, ids[v], fmt.Sprintf("Agent %d pruned %s", v, prune))
		}
		o.waitStored(last, 3)
		if prune == "some" {
			// The oldest rows go first, the first change of the outage with them.
			o.exec("DELETE FROM realtime_events WHERE seq <= (SELECT min(seq) FROM realtime_events WHERE seq > $1)", int64(last))
			c.done = append(c.done[:before], c.done[before+1:]...)
		} else {
			o.exec("DELETE FROM realtime_events")
			c.done = c.done[:before]
		}
		gaps++
		o.restore()
		// The listeners catch up before anything new is published.
		o.waitListening()
		c.rename(b, ids[3], "Agent 3 after pruning "+prune)
		waitEvents(t, probe, len(c.done), sse, ws)
		for _, w := range []*watcher{sse, ws} {
			deadline := time.Now().Add(clusterWait)
			for len(w.gapReasons()) < gaps {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no gap after events were pruned (%s) while the relay was away", w.name, prune)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		time.Sleep(300 * time.Millisecond)
		c.check(probe, gaps, sse, ws)
	}

	// A node that stops ends its streams: the socket on A closes with "going away" while B's
	// stream goes on; then B's stream ends.
	a.signal(syscall.SIGTERM)
	select {
	case <-ws.done:
		if code := websocket.CloseStatus(ws.err); code != websocket.StatusGoingAway {
			t.Errorf("socket on the stopping node closed with %v (%v), want %v", code, ws.err, websocket.StatusGoingAway)
		}
	case <-time.After(clusterWait):
		t.Fatalf("the socket on the stopping node is still open")
	}
	if code := a.waitExit(clusterWait); code != 0 {
		t.Errorf("node A exit code %d", code)
	}
	c.rename(b, ids[2], "Agent 2 alone")
	waitEvents(t, probe, len(c.done), sse)
	b.signal(syscall.SIGTERM)
	select {
	case <-sse.done:
	case <-time.After(clusterWait):
		t.Fatalf("the event stream on the stopping node is still open")
	}
	if code := b.waitExit(clusterWait); code != 0 {
		t.Errorf("node B exit code %d", code)
	}
}

// outage cuts the relay's listening connections of the nodes and keeps them from coming
// back: connections to the nodes' database are forbidden (from a connection to the server's
// maintenance database) until restore. The test keeps a connection of its own to the nodes'
// database, opened before.
type outage struct {
	t      *testing.T
	ctx    context.Context
	name   string
	nodes  []*node
	admin  *sql.Conn // to the maintenance database
	direct *sql.Conn // to the nodes' database
	// directPID is the backend of direct, which the listeners are told apart from.
	directPID int
	cutNow    bool
}

// listenerQuery picks the relay's listening connections in pg_stat_activity (the test's own
// connection aside): those whose last statement was LISTEN or a read of the relayed events
// (the writer's last is its commit, or a DELETE when it prunes; the store's connections never
// read that table).
const listenerQuery = `(query LIKE 'LISTEN %' OR query LIKE 'SELECT%FROM realtime_events%')`

// relayLost is what a node logs when its relay's listener loses its connection.
const relayLost = "realtime relay listener lost its database; reconnecting"

func newOutage(t *testing.T, dbURL string, nodes []*node) *outage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*clusterWait)
	t.Cleanup(cancel)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{t: t, ctx: ctx, name: strings.TrimPrefix(u.Path, "/"), nodes: nodes}
	conn := func(u string) *sql.Conn {
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	o.direct = conn(dbURL)
	if err := o.direct.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&o.directPID); err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	o.admin = conn(u.String())
	// Registered last, so it runs first: the nodes must get their database back.
	t.Cleanup(o.restore)
	return o
}

// cut forbids new connections, terminates the listeners and waits until both nodes noticed.
func (o *outage) cut() {
	t := o.t
	t.Helper()
	lost := make([]int, len(o.nodes))
	for i, n := range o.nodes {
		lost[i] = strings.Count(n.log.String(), relayLost)
	}
	if _, err := o.admin.ExecContext(o.ctx, `ALTER DATABASE "`+o.name+`" ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	o.cutNow = true
	rows, err := o.admin.QueryContext(o.ctx, `SELECT pg_terminate_backend(pid), query FROM pg_stat_activity
		WHERE datname = $1 AND pid <> $2 AND `+listenerQuery, o.name, o.directPID)
	if err != nil {
		t.Fatal(err)
	}
	var killed []string
	for rows.Next() {
		var ok bool
		var q string
		if err := rows.Scan(&ok, &q); err != nil {
			t.Fatal(err)
		}
		if ok {
			killed = append(killed, q)
		}
	}
	rows.Close()
	if len(killed) != len(o.nodes) {
		t.Fatalf("terminated %d listening connections, want one per node: %q", len(killed), killed)
	}
	deadline := time.Now().Add(clusterWait)
	for i, n := range o.nodes {
		for strings.Count(n.log.String(), relayLost) == lost[i] {
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not notice its listener was cut:\n%s", n.addr, n.log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// restore allows connections again.
func (o *outage) restore() {
	if !o.cutNow {
		return
	}
	o.cutNow = false
	if _, err := o.admin.ExecContext(context.WithoutCancel(o.ctx), `ALTER DATABASE "`+o.name+`" ALLOW_CONNECTIONS true`); err != nil {
		o.t.Errorf("allow connections again: %v", err)
	}
}

// waitListening waits until every node's listener is connected again and idle.
func (o *outage) waitListening() {
	o.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		var n int
		if err := o.admin.QueryRowContext(o.ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2 AND state = 'idle' AND `+listenerQuery, o.name, o.directPID).Scan(&n); err != nil {
			o.t.Fatal(err)
		}
		if n == len(o.nodes) {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%d listeners connected, want %d", n, len(o.nodes))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStored waits until the relay holds n events after seq.
func (o *outage) waitStored(after uint64, n int) {
	o.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		var got int
		if err := o.direct.QueryRowContext(o.ctx, "SELECT count(*) FROM realtime_events WHERE seq > $1", int64(after)).Scan(&got); err != nil {
			o.t.Fatal(err)
		}
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			o.t.Fatalf("%d relayed events stored after %d, want %d", got, after, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (o *outage) exec(q string, args ...any) {
	o.t.Helper()
	if _, err := o.direct.ExecContext(o.ctx, q, args...); err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
}
