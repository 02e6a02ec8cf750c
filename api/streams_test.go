package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// The stream tests run one at a time (no t.Parallel): each checks, when it ends, that it left
// no goroutine behind.

// publishN publishes {"n":n} events of the default tenant on topic.
func (ss *streamServer) publishN(t *testing.T, tenantID, topic string, from, to int, pad string) {
	t.Helper()
	for n := from; n < to; n++ {
		data := map[string]any{"n": n}
		if pad != "" {
			data["pad"] = pad
		}
		if err := ss.Hub.Publish(tenantID, topic, realtime.TypeCallTranscript, data); err != nil {
			t.Fatal(err)
		}
	}
}

// eventN reads the n of an event published by publishN.
func eventN(t *testing.T, ev wireEvent) int {
	t.Helper()
	var d struct{ N *int }
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.N == nil {
		t.Fatalf("event %d %s: data %s is not {\"n\":…}", ev.ID, ev.Type, ev.Data)
	}
	return *d.N
}

// wantNs reads events from next and checks they are from..to-1 in order, with increasing IDs;
// it returns their IDs.
func wantNs(t *testing.T, what string, next func() wireEvent, from, to int) []uint64 {
	t.Helper()
	var ids []uint64
	for n := from; n < to; n++ {
		ev := next()
		if got := eventN(t, ev); got != n {
			t.Fatalf("%s: event n=%d (%s), want n=%d", what, got, ev.Type, n)
		}
		if len(ids) > 0 && ev.ID <= ids[len(ids)-1] {
			t.Fatalf("%s: ID %d after %d", what, ev.ID, ids[len(ids)-1])
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestStreamsSSE: a real HTTP client reads the event stream: the headers proxies need, a
// retry hint, every event with id and event lines and its JSON, in order, only of the topics
// asked for, and heartbeat comments.
func TestStreamsSSE(t *testing.T) {
	ss := newStreamServer(t, streamOptions{Limits: realtime.Limits{Heartbeat: 100 * time.Millisecond}})
	tenant := ss.Default.ID
	c := ss.mustOpenSSE(t, "topics="+url.QueryEscape("session:c1"), ss.Key)
	h := c.Resp.Header
	if ct := h.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := h.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	if xa := h.Get("X-Accel-Buffering"); xa != "no" {
		t.Errorf("X-Accel-Buffering %q, want no", xa)
	}

	before := time.Now().Add(-time.Second)
	ss.publishN(t, tenant, "session:c1", 0, 10, "")
	ss.publishN(t, tenant, "session:c2", 100, 101, "")         // another topic
	ss.publishN(t, "someone-else", "session:c1", 200, 201, "") // another tenant's topic of that name
	ss.publishN(t, tenant, "session:c1", 10, 20, "")
	var last uint64
	for n := range 20 {
		ev := c.nextEvent()
		if eventN(t, ev) != n || ev.ID <= last || ev.Type != realtime.TypeCallTranscript || ev.Topic != "session:c1" || ev.TenantID != tenant || ev.Time.Before(before) {
			t.Fatalf("event #%d: %+v", n, ev)
		}
		last = ev.ID
	}
	// Nothing else but heartbeats, which come as comments.
	c.wantQuiet()
	for {
		if m := c.next(); len(m.Comments) > 0 && m.Data == "" && m.ID == "" {
			break
		}
	}

	// Without topics, the stream is the tenant's: every topic.
	all := ss.mustOpenSSE(t, "", ss.Key)
	ss.publishN(t, tenant, "session:s", 0, 1, "")
	ss.publishN(t, tenant, "session:c9", 1, 2, "")
	wantNs(t, "tenant stream", all.nextEvent, 0, 2)
	all.wantQuiet()
}

// TestStreamsSSEResume: a client that reconnects with Last-Event-ID (or ?since=) gets exactly
// the events after it, then the live ones.
func TestStreamsSSEResume(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	tenant := ss.Default.ID
	c := ss.mustOpenSSE(t, "topics=session:r", ss.Key)
	ss.publishN(t, tenant, "session:r", 0, 3, "")
	ids := wantNs(t, "first connection", c.nextEvent, 0, 3)
	c.Close()

	// Published while the client was away.
	ss.publishN(t, tenant, "session:r", 3, 6, "")
	ss.publishN(t, tenant, "session:other", 50, 51, "")

	c, r := ss.openSSE(t, "topics=session:r", hdr("X-API-Key", ss.Key, "Last-Event-ID", jsonUint(ids[2])))
	if r.Status != http.StatusOK {
		t.Fatalf("resume: %d %s", r.Status, r.Body)
	}
	c.next() // retry hint
	wantNs(t, "resumed with Last-Event-ID", c.nextEvent, 3, 6)
	c.wantQuiet()
	ss.publishN(t, tenant, "session:r", 6, 7, "")
	wantNs(t, "live after the replay", c.nextEvent, 6, 7)
	c.wantQuiet()

	// ?since= does the same for clients that cannot set headers.
	s := ss.mustOpenSSE(t, "topics=session:r&since="+jsonUint(ids[0]), ss.Key)
	wantNs(t, "resumed with since", s.nextEvent, 1, 7)
	s.wantQuiet()

	// A WebSocket subscription resumes the same way.
	p := ss.mustDialWS(t, ss.Key)
	p.send(map[string]any{"type": "subscribe", "id": "r", "topics": []string{"session:r"}, "since": ids[1]})
	if f := p.nextOf("ack"); f.ID != "r" {
		t.Fatalf("ack %s", f.Raw)
	}
	wantNs(t, "WebSocket resumed with since", p.nextEvent, 2, 7)
	p.wantQuiet()

	_, r = ss.openSSE(t, "topics=session:r", hdr("X-API-Key", ss.Key, "Last-Event-ID", "yesterday"))
	wantError(t, r, http.StatusUnprocessableEntity, "validation_error", "Last-Event-ID")
}

// TestStreamsAuth: streams take the credential from the headers or, for browsers, from a
// token query parameter; without one they are refused as any route is.
func TestStreamsAuth(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	tenant := ss.Default.ID
	reader := ss.newKey(ss.Default.Slug, "dashboard", 0, store.ScopeRead)

	c, r := ss.openSSE(t, "topics=session:a&token="+url.QueryEscape(reader), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("SSE with ?token=: %d %s", r.Status, r.Body)
	}
	c.next()
	b, r := ss.openSSE(t, "topics=session:a", bearer(reader))
	if r.Status != http.StatusOK {
		t.Fatalf("SSE with a bearer token: %d %s", r.Status, r.Body)
	}
	b.next()
	p, _, err := ss.dialWS(t, "token="+url.QueryEscape(reader), nil, nil)
	if err != nil {
		t.Fatalf("WebSocket with ?token=: %v", err)
	}
	p.startReading()
	p.subscribe("1", "session:a")
	ss.publishN(t, tenant, "session:a", 0, 1, "")
	wantNs(t, "SSE ?token=", c.nextEvent, 0, 1)
	wantNs(t, "SSE bearer", b.nextEvent, 0, 1)
	wantNs(t, "WebSocket ?token=", p.nextEvent, 0, 1)

	for _, q := range []string{"topics=session:a", "topics=session:a&token=", "topics=session:a&token=as_test_not-a-key-at-all-000000000"} {
		_, r := ss.openSSE(t, q, nil)
		wantError(t, r, http.StatusUnauthorized, "authentication_error", "")
		_, resp, err := ss.dialWS(t, strings.TrimPrefix(q, "topics=session:a&"), nil, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("WebSocket with %q: %v, status %d; want 401", q, err, status)
		}
	}
	// The token parameter is for the stream routes only.
	r = ss.do(http.MethodGet, "/api/v1/agents?token="+url.QueryEscape(ss.Key), "", nil)
	wantError(t, r, http.StatusUnauthorized, "authentication_error", "")
}

// TestStreamsTopics: unknown topics are refused naming the field; another tenant's agent is
// not found; and each tenant hears only its own agents.
func TestStreamsTopics(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	other := ss.newKey("other", "other", 0, store.ScopeAdmin)
	mine := ss.createAgent(t, ss.Key, "Mine")
	theirs := ss.createAgent(t, other, "Theirs")

	for _, tt := range []struct {
		topics string
		status int
		code   string
		field  string
	}{
		{"bogus", http.StatusUnprocessableEntity, "validation_error", "topics[0]"},
		{"tenant,room:1", http.StatusUnprocessableEntity, "validation_error", "topics[1]"},
		{"session:", http.StatusUnprocessableEntity, "validation_error", "topics[0]"},
		{"agent:" + theirs, http.StatusNotFound, "not_found", "topics[0]"},
		{"session:x,agent:nobody", http.StatusNotFound, "not_found", "topics[1]"},
	} {
		_, r := ss.openSSE(t, "topics="+url.QueryEscape(tt.topics), hdr("X-API-Key", ss.Key))
		wantError(t, r, tt.status, tt.code, tt.field)
	}
	ss.waitOpen(t, 0)

	p := ss.mustDialWS(t, ss.Key)
	p.send(map[string]any{"type": "subscribe", "id": "a", "topics": []string{"bogus"}})
	p.wantError("a", "validation_error", "topics[0]")
	p.send(map[string]any{"type": "subscribe", "id": "b", "topics": []string{"agent:" + theirs}})
	p.wantError("b", "not_found", "topics[0]")
	p.subscribe("c", "agent:"+mine)

	mineSSE := ss.mustOpenSSE(t, "topics=tenant", ss.Key)
	theirSSE := ss.mustOpenSSE(t, "topics=tenant,agent:"+theirs, other)
	ss.renameAgent(t, ss.Key, mine, "Mine 2")
	for _, ev := range []wireEvent{p.nextEvent(), mineSSE.nextEvent()} {
		if id, action, name := ev.agentChange(t); id != mine || action != "updated" || name != "Mine 2" || ev.TenantID != ss.Default.ID {
			t.Fatalf("event %+v", ev)
		}
	}
	theirSSE.wantQuiet()
	ss.renameAgent(t, other, theirs, "Theirs 2")
	if id, _, name := theirSSE.nextEvent().agentChange(t); id != theirs || name != "Theirs 2" {
		t.Fatalf("the other tenant's event: %s %s", id, name)
	}
	theirSSE.wantQuiet() // once, though it watches the agent and the tenant
	p.wantQuiet()
	mineSSE.wantQuiet()
}

// TestStreamsAgentUpdated: agents created, changed and deleted over REST are announced on
// SSE and on a WebSocket, with the same IDs, in order, each once.
func TestStreamsAgentUpdated(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ss := newStreamServer(t, streamOptions{Dialect: d})
			sse := ss.mustOpenSSE(t, "topics=tenant", ss.Key)
			ws := ss.mustDialWS(t, ss.Key)
			ws.subscribe("t", "tenant")

			id := ss.createAgent(t, ss.Key, "Front desk")
			sseEv, wsEv := sse.nextEvent(), ws.nextEvent()
			for _, ev := range []wireEvent{sseEv, wsEv} {
				gotID, action, name := ev.agentChange(t)
				if ev.Type != realtime.TypeAgentUpdated || ev.Topic != "agent:"+id || ev.TenantID != ss.Default.ID ||
					gotID != id || action != "created" || name != "Front desk" {
					t.Fatalf("after POST: %+v", ev)
				}
			}
			if sseEv.ID != wsEv.ID || sseEv.ID == 0 {
				t.Fatalf("SSE has event %d, WebSocket %d", sseEv.ID, wsEv.ID)
			}

			// Watching the agent as well as the tenant still delivers each event once.
			ws.subscribe("a", "agent:"+id)
			names := []string{"Reception", "Night desk", "Billing"}
			for _, name := range names {
				ss.renameAgent(t, ss.Key, id, name)
			}
			last := sseEv.ID
			for _, name := range names {
				s, w := sse.nextEvent(), ws.nextEvent()
				if s.ID != w.ID || s.ID <= last {
					t.Fatalf("SSE event %d, WebSocket %d, after %d", s.ID, w.ID, last)
				}
				last = s.ID
				for _, ev := range []wireEvent{s, w} {
					if gotID, action, got := ev.agentChange(t); gotID != id || action != "updated" || got != name {
						t.Fatalf("after PATCH %q: %s %s %q", name, gotID, action, got)
					}
				}
			}
			r := ss.do(http.MethodDelete, "/api/v1/agents/"+id, ss.Key, nil)
			wantStatus(t, r, http.StatusNoContent, "DELETE agent")
			for _, ev := range []wireEvent{sse.nextEvent(), ws.nextEvent()} {
				if gotID, action, _ := ev.agentChange(t); gotID != id || action != "deleted" {
					t.Fatalf("after DELETE: %+v", ev)
				}
			}
			sse.wantQuiet()
			ws.wantQuiet()
		})
	}
}

// TestStreamsWSProtocol: the frames of the socket both ways; a malformed frame gets an error
// frame and the socket goes on.
func TestStreamsWSProtocol(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	p := ss.mustDialWS(t, ss.Key)
	p.ping("1")

	for _, bad := range []struct {
		typ   websocket.MessageType
		frame string
		id    string
		field string
	}{
		{websocket.MessageText, "not json", "", "type"},
		{websocket.MessageText, `{"topics":["tenant"]}`, "", "type"},
		{websocket.MessageText, `[1,2,3]`, "", "type"},
		{websocket.MessageText, `{"type":"subscribe","topics":"tenant"}`, "", "type"},
		{websocket.MessageBinary, `{"type":"ping"}`, "", "frame"},
		{websocket.MessageText, `{"type":"frobnicate","id":"x"}`, "x", "type"},
		{websocket.MessageText, `{"type":"subscribe","id":"e"}`, "e", "topics"},
		{websocket.MessageText, `{"type":"subscribe","id":"f","topics":[]}`, "f", "topics"},
	} {
		p.sendRaw(bad.typ, []byte(bad.frame))
		p.wantError(bad.id, "validation_error", bad.field)
	}
	p.ping("2")

	p.subscribe("s", "session:1")
	ss.publishN(t, ss.Default.ID, "session:1", 0, 1, "")
	f := p.nextOf("event")
	if !strings.HasPrefix(f.Raw, `{"type":"event","event":{"id":`) || f.Event.Topic != "session:1" {
		t.Fatalf("event frame %s", f.Raw)
	}
	p.send(map[string]any{"type": "unsubscribe", "id": "u", "topics": []string{"session:1"}})
	if f := p.nextOf("ack"); f.ID != "u" || f.Action != "unsubscribe" {
		t.Fatalf("unsubscribe ack %s", f.Raw)
	}
	ss.publishN(t, ss.Default.ID, "session:1", 1, 2, "")
	p.wantQuiet()
	p.ping("3")
}

// TestStreamsWSLimits: a frame over the size limit closes the socket with 1009; topics over
// the limit are refused with an error frame; streams over the limit of a credential are
// refused with 429 (SSE) or an error frame and close code 4029 (WebSocket).
func TestStreamsWSLimits(t *testing.T) {
	ss := newStreamServer(t, streamOptions{Limits: realtime.Limits{MaxMessageBytes: 1024, MaxSubscriptions: 3, MaxConnsPerKey: 2}})
	slug := ss.Default.Slug

	t.Run("subscriptions", func(t *testing.T) {
		p := ss.mustDialWS(t, ss.newKey(slug, "subs", 0, store.ScopeRead))
		p.subscribe("1", "session:a", "session:b", "session:c")
		p.send(map[string]any{"type": "subscribe", "id": "2", "topics": []string{"session:d"}})
		p.wantError("2", "validation_error", "topics")
		p.send(map[string]any{"type": "subscribe", "id": "3", "topics": []string{"session:d", "session:e", "session:f", "session:g"}})
		p.wantError("3", "validation_error", "topics")
		ss.publishN(t, ss.Default.ID, "session:a", 0, 1, "")
		ss.publishN(t, ss.Default.ID, "session:d", 1, 2, "")
		wantNs(t, "after the refusal", p.nextEvent, 0, 1)
		p.wantQuiet()
		p.send(map[string]any{"type": "unsubscribe", "id": "4", "topics": []string{"session:a"}})
		p.nextOf("ack")
		p.subscribe("5", "session:d")
	})

	t.Run("message size", func(t *testing.T) {
		p := ss.mustDialWS(t, ss.newKey(slug, "size", 0, store.ScopeRead))
		// Just under the limit is fine.
		id := strings.Repeat("x", 1000)
		p.ping(id)
		p.sendRaw(websocket.MessageText, []byte(`{"type":"ping","id":"`+strings.Repeat("x", 2000)+`"}`))
		if code := p.waitClosed(); code != websocket.StatusMessageTooBig {
			t.Fatalf("close status %v after a frame over the limit, want %v", code, websocket.StatusMessageTooBig)
		}
	})

	t.Run("connections per key", func(t *testing.T) {
		ss.waitOpen(t, 0)
		key := ss.newKey(slug, "conns", 0, store.ScopeRead)
		first := ss.mustDialWS(t, key)
		ss.mustOpenSSE(t, "topics=tenant", key)

		_, r := ss.openSSE(t, "topics=tenant", hdr("X-API-Key", key))
		wantError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", "")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
		p, _, err := ss.dialWS(t, "", hdr("X-API-Key", key), nil)
		if err != nil {
			t.Fatalf("a socket over the limit must open to be told why: %v", err)
		}
		p.startReading()
		p.wantError("", "rate_limit_exceeded", "")
		if code := p.waitClosed(); code != realtime.CloseTooManyConnections {
			t.Fatalf("close status %v, want %v", code, realtime.CloseTooManyConnections)
		}
		// Another credential is not held back; and once one stream ends, the key may open one.
		ss.mustDialWS(t, ss.newKey(slug, "conns-2", 0, store.ScopeRead)).ping("other")
		ss.waitOpen(t, 3)
		first.Close()
		ss.waitOpen(t, 2)
		ss.mustDialWS(t, key).ping("again")
	})
}

// TestStreamsShutdown: a node that shuts down ends SSE streams, closes sockets with "going
// away", and refuses new streams; the REST API is not affected.
func TestStreamsShutdown(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	sse := ss.mustOpenSSE(t, "topics=tenant", ss.Key)
	ws := ss.mustDialWS(t, ss.Key)
	ws.subscribe("1", "tenant")
	ss.waitOpen(t, 2)

	ss.Streams.Shutdown()
	sse.waitEnd()
	if code := ws.waitClosed(); code != websocket.StatusGoingAway {
		t.Fatalf("socket closed with %v, want %v", code, websocket.StatusGoingAway)
	}
	ss.waitOpen(t, 0)

	_, r := ss.openSSE(t, "topics=tenant", hdr("X-API-Key", ss.Key))
	wantError(t, r, http.StatusServiceUnavailable, "service_unavailable", "")
	p, _, err := ss.dialWS(t, "", hdr("X-API-Key", ss.Key), nil)
	if err != nil {
		t.Fatalf("dial during shutdown: %v", err)
	}
	p.startReading()
	p.wantError("", "service_unavailable", "")
	if code := p.waitClosed(); code != websocket.StatusGoingAway {
		t.Fatalf("new socket during shutdown closed with %v, want %v", code, websocket.StatusGoingAway)
	}
	wantStatus(t, ss.do(http.MethodGet, "/api/v1/agents", ss.Key, nil), http.StatusOK, "GET /api/v1/agents")
}

// TestStreamsSlowConsumer: a socket client that stops reading is cut off, while an SSE and a
// WebSocket client that keep up get every event, in order, with no gap.
func TestStreamsSlowConsumer(t *testing.T) {
	ss := newStreamServer(t, streamOptions{
		Hub:    realtime.Options{QueueSize: 16, SlowTimeout: 100 * time.Millisecond},
		Limits: realtime.Limits{WriteTimeout: 500 * time.Millisecond},
	})
	tenant := ss.Default.ID
	sse := ss.mustOpenSSE(t, "topics=session:s", ss.Key)
	ws := ss.mustDialWS(t, ss.Key)
	ws.subscribe("1", "session:s")

	slow, _, err := ss.dialWS(t, "", hdr("X-API-Key", ss.Key), smallReadBuffer())
	if err != nil {
		t.Fatal(err)
	}
	slow.send(map[string]any{"type": "subscribe", "id": "slow", "topics": []string{"session:s"}})
	if _, ack, err := slow.Conn.Read(slow.ctx); err != nil || !strings.Contains(string(ack), `"ack"`) {
		t.Fatalf("slow client's ack: %s %v", ack, err)
	}
	// From here on the slow client reads nothing.

	pad := strings.Repeat("x", 16<<10)
	const burst, most = 8, 4000
	deadline := time.Now().Add(60 * time.Second)
	sent := 0
	for ss.Streams.Open() == 3 {
		if sent >= most || time.Now().After(deadline) {
			t.Fatalf("the slow client is still connected after %d events", sent)
		}
		ss.publishN(t, tenant, "session:s", sent, sent+burst, pad)
		wantNs(t, "fast SSE", sse.nextEvent, sent, sent+burst)
		wantNs(t, "fast WebSocket", ws.nextEvent, sent, sent+burst)
		sent += burst
	}
	// The others go on.
	ss.publishN(t, tenant, "session:s", sent, sent+burst, pad)
	wantNs(t, "fast SSE after the cut", sse.nextEvent, sent, sent+burst)
	wantNs(t, "fast WebSocket after the cut", ws.nextEvent, sent, sent+burst)
	sent += burst
	sse.wantQuiet()
	ws.wantQuiet()

	// The slow client finds what the buffers held, then the end of the socket.
	slow.startReading()
	got := 0
	for {
		select {
		case f, ok := <-slow.frames:
			if !ok {
				if got >= sent {
					t.Fatalf("the slow client got all %d events, yet was cut off", got)
				}
				t.Logf("slow client cut off after %d of %d events: %v", got, sent, slow.err)
				return
			}
			if f.Type == "event" {
				got++
			}
		case <-time.After(streamWait):
			t.Fatalf("the slow client's socket still open")
		}
	}
}
