package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// newSessionStreamServer is a stream server (hub, SSE, the events socket with session.send)
// whose agents answer through a stand-in model.
func newSessionStreamServer(t *testing.T) (*streamServer, *llmtest.Server) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	var st atomic.Pointer[store.Store]
	check := func(ctx context.Context, tenantID, kind, id string) error {
		return api.TopicChecker(st.Load())(ctx, tenantID, kind, id)
	}
	hub := realtime.NewHub(realtime.Options{})
	streams := realtime.NewServer(hub, check, realtime.Limits{}, nil)
	ts := newTestServerOpts(t, store.Options{DataDir: t.TempDir(), Secret: testSecret},
		api.Config{DefaultRateLimit: 1_000_000, Hub: hub, Streams: streams, Models: reg, Webhooks: agent.NewWebhooks(true)})
	st.Store(ts.Store)
	ts.API.HandleSessionCommands(streams)
	ss := &streamServer{testServer: ts, Hub: hub, Streams: streams, client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		streams.Shutdown()
		ss.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts.API.Sessions().Shutdown(ctx)
	})
	return ss, up
}

// sessionFrame is a session.event frame.
type sessionFrame struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	SessionID string         `json:"session_id"`
	Event     map[string]any `json:"event"`
}

func TestSessionSendOverWebSocketAndHubEvents(t *testing.T) {
	ss, up := newSessionStreamServer(t)
	ag := ss.do(http.MethodPost, "/api/v1/agents", ss.Key, map[string]any{"name": "Ala", "model": "up/m"})
	if ag.Status != http.StatusCreated {
		t.Fatalf("agent: %d %s", ag.Status, ag.Body)
	}
	agentID := ag.JSON(t)["id"].(string)

	// A dashboard watches the agent's topic over SSE before the session exists.
	watch := ss.mustOpenSSE(t, "topics=agent:"+agentID, ss.Key)
	res := ss.do(http.MethodPost, "/api/v1/sessions", ss.Key, map[string]any{"agent_id": agentID})
	if res.Status != http.StatusCreated {
		t.Fatalf("session: %d %s", res.Status, res.Body)
	}
	id := res.JSON(t)["id"].(string)
	if ev := watch.nextEvent(); ev.Type != "session.created" || ev.Topic != "agent:"+agentID || !strings.Contains(string(ev.Data), id) {
		t.Fatalf("first event %+v", ev)
	}

	p := ss.mustDialWS(t, ss.Key)
	p.subscribe("s1", "session:"+id)
	up.Enqueue(llmtest.Reply{Chunks: []string{"Hi ", "there"}})
	p.send(map[string]any{"type": "session.send", "id": "7", "session_id": id, "content": "hello"})
	// The hub's event of the stored user message may come before the ack: the message is
	// stored before the command answers.
	var hubTypes []string
	ack := p.next()
	for ack.Type == "event" {
		hubTypes = append(hubTypes, ack.Event.Type)
		ack = p.next()
	}
	var result struct {
		Result struct {
			SessionID   string         `json:"session_id"`
			MessageID   string         `json:"message_id"`
			UserMessage map[string]any `json:"user_message"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(ack.Raw), &result); err != nil || ack.ID != "7" || ack.Action != "session.send" ||
		result.Result.SessionID != id || !strings.HasPrefix(result.Result.MessageID, "msg_") || result.Result.UserMessage["content"] != "hello" {
		t.Fatalf("ack %s", ack.Raw)
	}
	// The answer streams on the socket, and the hub carries the stored messages.
	var text strings.Builder
	finished := false
	deadline := time.After(streamWait)
	for !finished || len(hubTypes) < 2 {
		select {
		case <-deadline:
			t.Fatalf("answer not streamed: text %q, hub events %v", text.String(), hubTypes)
		default:
		}
		f := p.next()
		switch f.Type {
		case "session.event":
			var sf sessionFrame
			if err := json.Unmarshal([]byte(f.Raw), &sf); err != nil || sf.ID != "7" || sf.SessionID != id {
				t.Fatalf("frame %s", f.Raw)
			}
			switch sf.Event["type"] {
			case "text-delta":
				text.WriteString(sf.Event["delta"].(string))
			case "finish":
				finished = true
				if sf.Event["message"].(map[string]any)["id"] != result.Result.MessageID {
					t.Fatalf("finish %s", f.Raw)
				}
			}
		case "event":
			if f.Event.Topic != "session:"+id {
				t.Fatalf("hub event on %s", f.Event.Topic)
			}
			hubTypes = append(hubTypes, f.Event.Type)
		default:
			t.Fatalf("frame %s", f.Raw)
		}
	}
	if text.String() != "Hi there" || strings.Join(hubTypes, ",") != "session.message,session.message" {
		t.Fatalf("text %q hub events %v", text.String(), hubTypes)
	}
	for _, want := range []string{"session.message", "session.message"} {
		if ev := watch.nextEvent(); ev.Type != want {
			t.Fatalf("agent topic event %+v, want %s", ev, want)
		}
	}

	// Refusals are error frames naming the field, as over HTTP.
	p.send(map[string]any{"type": "session.send", "id": "8", "session_id": id})
	p.wantError("8", "validation_error", "content")
	p.send(map[string]any{"type": "session.send", "id": "9", "content": "x"})
	p.wantError("9", "validation_error", "session_id")
	p.send(map[string]any{"type": "session.send", "id": "10", "session_id": "ses_01jdq3zzzzzzzzzzzzzzzzzzzz", "content": "x"})
	p.wantError("10", "not_found", "")

	// A message sent while one is being answered is refused; a cancel over HTTP stops it.
	up.Enqueue(llmtest.Reply{Chunks: []string{"slow ", "answer"}, Fault: llmtest.FaultStall, FaultAfter: 2})
	p.send(map[string]any{"type": "session.send", "id": "11", "session_id": id, "content": "stall"})
	for f := p.next(); f.Type != "session.event" || !strings.Contains(f.Raw, `"text-delta"`); f = p.next() {
	}
	p.send(map[string]any{"type": "session.send", "id": "12", "session_id": id, "content": "again"})
	for f := p.next(); ; f = p.next() {
		if f.Type == "error" {
			if f.ID != "12" || f.Error.Code != "conflict" {
				t.Fatalf("error frame %s", f.Raw)
			}
			break
		}
	}
	if r := ss.do(http.MethodPost, "/api/v1/sessions/"+id+"/cancel", ss.Key, nil); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	for f := p.next(); ; f = p.next() {
		if f.Type == "session.event" && strings.Contains(f.Raw, `"type":"finish"`) {
			if !strings.Contains(f.Raw, `"finish_reason":"canceled"`) {
				t.Fatalf("finish %s", f.Raw)
			}
			break
		}
	}
	// A key that may only read cannot send.
	reader := ss.newKey(store.DefaultTenantSlug, "reader", 0, store.ScopeRead)
	rp := ss.mustDialWS(t, reader)
	rp.send(map[string]any{"type": "session.send", "id": "13", "session_id": id, "content": "x"})
	rp.wantError("13", "authorization_error", "")

	// Closing publishes session.closed.
	if r := ss.do(http.MethodPatch, "/api/v1/sessions/"+id, ss.Key, map[string]any{"status": "closed"}); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	for {
		// The canceled turn's session.message events may come first.
		if ev := p.nextEvent(); ev.Type == "session.closed" {
			break
		} else if ev.Type != "session.message" {
			t.Fatalf("event %+v", ev)
		}
	}
	for {
		if ev := watch.nextEvent(); ev.Type == "session.closed" {
			break
		} else if ev.Type != "session.message" {
			t.Fatalf("agent topic event %+v", ev)
		}
	}
}
