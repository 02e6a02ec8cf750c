package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/webhook"
)

// storeDelivery writes a pending delivery of a call webhook of the tenant's call, as the
// node's hooks do, and returns its ID.
func (ts *testServer) storeDelivery(tenantID, callID string) string {
	ts.t.Helper()
	d := &store.WebhookDelivery{Row: store.Row{TenantID: tenantID}, CallID: callID, Event: store.CallServerStarted,
		URL: "https://hooks.example.com/calls", Source: "agent", Payload: []byte(`{"type":"call.started"}`), DedupeKey: callID + "/fixture"}
	if _, err := store.EnqueueWebhook(context.Background(), ts.Store, d); err != nil {
		ts.t.Fatal(err)
	}
	return d.ID
}

// TestCallServerPrivateURLRefused: unless the operator allows private webhooks, an agent's
// or a phone number's server on a loopback, private or link-local address (or localhost)
// is refused at create and update, 422 naming server.url, and nothing is written.
func TestCallServerPrivateURLRefused(t *testing.T) {
	eachServer(t, func(t *testing.T, ts *testServer) {
		ag := ts.do("POST", "/api/v1/agents", ts.Key, map[string]any{"name": "Public", "server": map[string]any{"url": "https://hooks.example.com/calls"}})
		if ag.Status != http.StatusCreated {
			t.Fatalf("agent with a public server: %d %s", ag.Status, ag.Body)
		}
		id := ag.JSON(t)["id"].(string)
		for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.0.0.7/hook", "http://169.254.169.254/latest"} {
			body := map[string]any{"name": "Inward", "server": map[string]any{"url": u}}
			for _, tc := range []struct{ method, path string }{{"POST", "/api/v1/agents"}, {"PATCH", "/api/v1/agents/" + id}} {
				r := ts.do(tc.method, tc.path, ts.Key, body)
				if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"field":"server.url"`) {
					t.Errorf("%s %s with server %s: %d %s; want 422 naming server.url", tc.method, tc.path, u, r.Status, r.Body)
				}
			}
			r := ts.do("POST", "/api/v1/phone-numbers", ts.Key, map[string]any{"number": "+15550142", "server": map[string]any{"url": u}})
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"field":"server.url"`) {
				t.Errorf("phone number with server %s: %d %s; want 422 naming server.url", u, r.Status, r.Body)
			}
		}
		if n := ts.do("GET", "/api/v1/phone-numbers", ts.Key, nil).JSON(t)["total"]; n != 0.0 {
			t.Errorf("phone numbers after refusals: %v", n)
		}
		if got := ts.do("GET", "/api/v1/agents/"+id, ts.Key, nil).JSON(t)["server"].(map[string]any)["url"]; got != "https://hooks.example.com/calls" {
			t.Errorf("agent's server after refused updates: %v", got)
		}
		for field, server := range map[string]any{
			"server.url":       map[string]any{"url": "ftp://hooks.example.com/"},
			"server.events[1]": map[string]any{"url": "https://hooks.example.com/", "events": []string{"call.ended", "call.exploded"}},
			"server.secret":    map[string]any{"url": "https://hooks.example.com/", "secret": "short"},
		} {
			r := ts.do("POST", "/api/v1/agents", ts.Key, map[string]any{"name": "Bad", "server": server})
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"field":"`+field+`"`) {
				t.Errorf("server %v: %d %s; want 422 naming %s", server, r.Status, r.Body, field)
			}
		}
	})
}

// hookReceiver is a call server that fails its first fails posts with 500, then answers 200.
type hookReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	fails int
	posts []*http.Request
	got   [][]byte
}

func newHookReceiver(t *testing.T, fails int) *hookReceiver {
	r := &hookReceiver{fails: fails}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts, r.got = append(r.posts, req), append(r.got, body)
		if r.fails > 0 {
			r.fails--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts)
}

// TestCallWebhookDeliveriesAPI: a server's secret is shown once, when Switchboard generated
// it, kept when the server is changed without one, and never published on the agent's
// events; a call's deliveries are listed (by call and status, paged) and redelivered
// through the API, tenant-isolated: another tenant's deliveries are not found.
func TestCallWebhookDeliveriesAPI(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			hub := realtime.NewHub(realtime.Options{})
			ts := newTestServerConfig(t, d, api.Config{Hub: hub, Node: "node-a", DefaultRateLimit: 1_000_000,
				CallWebhooks: webhook.Options{AllowPrivate: true, Backoff: 20 * time.Millisecond, PollEvery: 50 * time.Millisecond}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			done := make(chan struct{})
			go func() { ts.API.RunCallWebhooks(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })
			recv := newHookReceiver(t, 2)

			events := hub.Subscribe(ts.Default.ID)
			defer events.Close()
			if err := events.Add([]string{realtime.TenantTopic}, 0, nil); err != nil {
				t.Fatal(err)
			}
			created := ts.do("POST", "/api/v1/agents", ts.Key, map[string]any{"name": "Hooked", "server": map[string]any{"url": recv.URL + "/old"}})
			if created.Status != http.StatusCreated {
				t.Fatalf("POST agent: %d %s", created.Status, created.Body)
			}
			ag := created.JSON(t)
			server := ag["server"].(map[string]any)
			secret, _ := server["secret"].(string)
			if !strings.HasPrefix(secret, "whsec_") || server["secret_set"] != true || len(server["events"].([]any)) != 2 {
				t.Fatalf("created server: %v; want a generated whsec_ secret shown once and the default events", server)
			}
			ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
			item, err := events.Next(ictx)
			icancel()
			if err != nil || item.Event == nil || strings.Contains(string(item.Event.Data), secret) {
				t.Errorf("agent.updated event: %v %v; want one without the secret", item.Event, err)
			}
			id := ag["id"].(string)
			got := ts.do("GET", "/api/v1/agents/"+id, ts.Key, nil).JSON(t)["server"].(map[string]any)
			if _, shown := got["secret"]; shown || got["secret_set"] != true {
				t.Errorf("read server: %v; want the secret set but not shown", got)
			}
			patched := ts.do("PATCH", "/api/v1/agents/"+id, ts.Key, map[string]any{"server": map[string]any{"url": recv.URL + "/hooks", "events": []string{"call.started", "call.ended"}}})
			if ps := patched.JSON(t)["server"].(map[string]any); patched.Status != http.StatusOK || ps["secret"] != nil || ps["secret_set"] != true {
				t.Fatalf("PATCH server: %d %s", patched.Status, patched.Body)
			}

			// A call of the agent on this node: its events, as the call publishes them.
			now := time.Now().UTC()
			rec := store.Call{Direction: store.CallWeb, AgentID: &id, Status: store.CallInProgress, Node: "node-a", StartedAt: &now, AnsweredAt: &now}
			if err := store.Create(context.Background(), ts.Store, ts.Default.ID, &rec); err != nil {
				t.Fatal(err)
			}
			_ = hub.Publish(ts.Default.ID, call.Topic(rec.ID), call.EventAnswered, rec)
			rec.Status, rec.EndedReason, rec.EndedAt = store.CallCompleted, "agent-hangup", &now
			_ = hub.Publish(ts.Default.ID, call.Topic(rec.ID), call.EventEnded, rec)

			path := "/api/v1/webhook-deliveries?call_id=" + rec.ID
			var list map[string]any
			untilAttempt(t, events, func() bool {
				list = ts.do("GET", path+"&status=delivered", ts.Key, nil).JSON(t)
				// The page and its total are two reads: the items are what to wait for.
				items, _ := list["items"].([]any)
				return len(items) == 2 && list["total"] == 2.0
			}, func() string { return fmt.Sprint(ts.do("GET", path, ts.Key, nil).JSON(t)) })
			attempts := 0.0
			for _, it := range list["items"].([]any) {
				dl := it.(map[string]any)
				attempts += dl["attempts"].(float64)
				if dl["url"] != recv.URL+"/hooks" || dl["response_code"] != 200.0 || dl["call_id"] != rec.ID || dl["payload"] == nil {
					t.Errorf("delivery: %v", dl)
				}
				if _, leaked := dl["secret_enc"]; leaked {
					t.Error("a delivery shows its sealed secret")
				}
			}
			if attempts != 4 {
				t.Errorf("attempts %v; want 4 (the receiver failed twice)", attempts)
			}
			recv.mu.Lock()
			for i, req := range recv.posts {
				m := hmac.New(sha256.New, []byte(secret))
				m.Write([]byte(req.Header.Get("X-Switchboard-Timestamp") + "." + string(recv.got[i])))
				if req.Header.Get("X-Switchboard-Signature") != "v1="+hex.EncodeToString(m.Sum(nil)) {
					t.Errorf("post %d is not signed with the secret shown at creation (kept across the PATCH)", i)
				}
			}
			recv.mu.Unlock()
			if page := ts.do("GET", path+"&limit=1&offset=1", ts.Key, nil).JSON(t); page["total"] != 2.0 || len(page["items"].([]any)) != 1 || page["offset"] != 1.0 {
				t.Errorf("second page: %v", page)
			}
			if r := ts.do("GET", path+"&status=lost", ts.Key, nil); r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"field":"status"`) {
				t.Errorf("status=lost: %d %s", r.Status, r.Body)
			}

			// Another tenant sees none of it.
			other := ts.newKey("other-tenant", "other", 0, store.ScopeAdmin)
			delivery := list["items"].([]any)[0].(map[string]any)["id"].(string)
			if l := ts.do("GET", path, other, nil).JSON(t); l["total"] != 0.0 {
				t.Errorf("another tenant lists %v", l)
			}
			for _, r := range []response{ts.do("GET", "/api/v1/webhook-deliveries/"+delivery, other, nil),
				ts.do("POST", "/api/v1/webhook-deliveries/"+delivery+"/redeliver", other, nil)} {
				if r.Status != http.StatusNotFound {
					t.Errorf("another tenant's delivery: %d %s", r.Status, r.Body)
				}
			}
			if r := ts.do("GET", "/api/v1/webhook-deliveries/whd_nope", ts.Key, nil); r.Status != http.StatusNotFound {
				t.Errorf("a made-up delivery: %d", r.Status)
			}

			// Redelivered: posted once more, delivered again.
			before := recv.count()
			r := ts.do("POST", "/api/v1/webhook-deliveries/"+delivery+"/redeliver", ts.Key, nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("redeliver: %d %s", r.Status, r.Body)
			}
			var dl map[string]any
			untilAttempt(t, events, func() bool {
				dl = ts.do("GET", "/api/v1/webhook-deliveries/"+delivery, ts.Key, nil).JSON(t)
				return dl["status"] == "delivered" && dl["attempts"] == 1.0 && recv.count() == before+1
			}, func() string { return fmt.Sprintf("%v, receiver %d posts (was %d)", dl, recv.count(), before) })
		})
	}
}

// untilAttempt waits until done is true, looking again each time events (a subscriber of the
// tenant's topic, made before what is waited for began) carries webhook.EventDelivery: the
// record of an attempt. state says what there was when the wait is given up.
func untilAttempt(t *testing.T, events *realtime.Subscriber, done func() bool, state func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !done() {
		for {
			it, err := events.Next(ctx)
			if err != nil {
				t.Fatalf("no delivery attempt came to what was wanted (%v): %s", err, state())
			}
			if it.Event != nil && it.Event.Type == webhook.EventDelivery {
				break
			}
		}
	}
}
