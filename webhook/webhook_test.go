package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/webhook"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = []byte("switchboard-webhook-test-secret-0123")

var dialects = []store.Dialect{store.SQLite, store.Postgres}

// openStore opens a migrated store of dialect d and a tenant. url names the database, so
// that a test can open it again as a restarted node would.
func openStore(t *testing.T, d store.Dialect) (st *store.Store, tenantID string, reopen func() *store.Store) {
	t.Helper()
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	reopen = func() *store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := store.Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st = reopen()
	ten, err := st.EnsureTenant(context.Background(), "hooks")
	if err != nil {
		t.Fatal(err)
	}
	return st, ten.ID, reopen
}

// receiver is a call server: it answers each request with the next of its statuses (the
// last one from then on), and keeps what it received.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []received
	arrived  chan struct{}
}

type received struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses, arrived: make(chan struct{}, 64)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := r.statuses[0]
		if len(r.statuses) > 1 {
			r.statuses = r.statuses[1:]
		}
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte("receiver says " + http.StatusText(status)))
		select {
		case r.arrived <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setStatuses(s ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = s
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// agentWithServer creates an agent whose calls' events go to url; it returns the agent
// and the secret Switchboard generated for it.
func agentWithServer(t *testing.T, st *store.Store, tenantID, url string, events ...string) (*store.Agent, string) {
	t.Helper()
	ag := store.NewAgent()
	ag.Name = "Hooked"
	ag.Server = &store.CallServer{URL: url, Events: events}
	if err := store.Create(context.Background(), st, tenantID, ag); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ag.Server.Secret, store.CallServerSecretPrefix) {
		t.Fatalf("created server's secret %q: want a generated one, shown once", ag.Server.Secret)
	}
	return ag, ag.Server.Secret
}

// callRecord is the record, stored, that a call of the agent has at its answer, as node
// carries it.
func callRecord(t *testing.T, st *store.Store, tenantID, agentID, node string) store.Call {
	t.Helper()
	now := time.Now().UTC()
	rec := store.Call{Direction: store.CallInbound, From: "+15550100", To: "+15550199", AgentID: &agentID,
		Status: store.CallInProgress, Node: node, StartedAt: &now, AnsweredAt: &now}
	if err := store.Create(context.Background(), st, tenantID, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// endOf is rec ended by the caller, with a report as an agent's conversation leaves it and
// a cost figure at the record's top level.
func endOf(rec store.Call) map[string]any {
	b, _ := json.Marshal(rec)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["status"], m["ended_reason"], m["duration_seconds"] = store.CallCompleted, "caller-hangup", 3.5
	m["report"] = map[string]any{"turns": 1, "latency_p50_ms": 640.0}
	m["cost_usd"] = 0.0123
	return m
}

// waitDeliveries waits until the call's deliveries satisfy ok, and returns them. It looks at
// them again each time the hub says an attempt was recorded (webhook.EventDelivery): the
// subscription is made before the first look, so no attempt falls between the two.
func waitDeliveries(t *testing.T, hub *realtime.Hub, st *store.Store, tenantID, callID string, ok func([]store.WebhookDelivery) bool) []store.WebhookDelivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := hub.Subscribe(tenantID)
	defer sub.Close()
	if err := sub.Add([]string{call.Topic(callID)}, 0, nil); err != nil {
		t.Fatal(err)
	}
	for {
		ds, _, err := store.ListWebhookDeliveries(context.Background(), st, tenantID, store.WebhookFilter{CallID: callID}, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if ok(ds) {
			return ds
		}
		for {
			it, err := sub.Next(ctx)
			if err != nil {
				for _, d := range ds {
					t.Logf("delivery %s %s: %s after %d attempts (%d %s)", d.ID, d.Event, d.Status, d.Attempts, d.ResponseCode, d.LastError)
				}
				t.Fatalf("the deliveries did not come to the state wanted in time: %v", err)
			}
			if it.Event != nil && it.Event.Type == webhook.EventDelivery {
				break
			}
		}
	}
}

func byEvent(ds []store.WebhookDelivery) map[string]store.WebhookDelivery {
	m := map[string]store.WebhookDelivery{}
	for _, d := range ds {
		m[d.Event] = d
	}
	return m
}

func allIn(status string, n int) func([]store.WebhookDelivery) bool {
	return func(ds []store.WebhookDelivery) bool {
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != status {
				return false
			}
		}
		return true
	}
}

// verifyAsReadme checks a delivery the way README's recipe tells a receiver to, written
// out here rather than through webhook.Verify: HMAC-SHA256 keyed with the secret over the
// timestamp header, ".", and the raw body, compared with the v1= signature.
func verifyAsReadme(secret string, r received) bool {
	ts := r.header.Get("X-Switchboard-Timestamp")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(r.body)))
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(want), []byte(r.header.Get("X-Switchboard-Signature")))
}

// runHooks runs h's delivery loop until the test ends (or stop is called) and waits for it.
func runHooks(t *testing.T, h *webhook.Hooks) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the delivery loop did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestRetriesThenDelivers: an agent's server fails twice (500), then answers; call.started
// and call.ended, observed on a real hub as a call publishes them, are retried with
// backoff until delivered, each attempt recorded; every delivery is signed so that
// README's recipe verifies it, and a tampered body does not verify. The ended one
// carries the end-of-call report: reason, transcript, latency, the record's cost.
func TestRetriesThenDelivers(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenantID, _ := openStore(t, d)
			before := goleak.IgnoreCurrent()
			recv := newReceiver(t, 500, 500, 200)
			ag, secret := agentWithServer(t, st, tenantID, recv.URL+"/hooks")
			hub := realtime.NewHub(realtime.Options{})
			h := webhook.New(webhook.Config{Store: st, Node: "node-a",
				Options: webhook.Options{AllowPrivate: true, Backoff: 20 * time.Millisecond, PollEvery: 50 * time.Millisecond}})
			h.Observe(hub)
			stop := runHooks(t, h)

			rec := callRecord(t, st, tenantID, ag.ID, "node-a")
			turns := []map[string]any{{"role": "assistant", "text": "Hello, how can I help?"}}
			if err := store.SaveTranscript(context.Background(), st, tenantID, rec.ID, turns); err != nil {
				t.Fatal(err)
			}
			_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventAnswered, rec)
			waitDeliveries(t, hub, st, tenantID, rec.ID, func(ds []store.WebhookDelivery) bool { return len(ds) == 1 })
			_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventEnded, endOf(rec))
			ds := byEvent(waitDeliveries(t, hub, st, tenantID, rec.ID, allIn(store.DeliveryDelivered, 2)))
			stop()

			if got := ds["call.started"].Attempts + ds["call.ended"].Attempts; got != 4 {
				t.Errorf("attempts: started %d, ended %d; want 4 in all (two answered 500)", ds["call.started"].Attempts, ds["call.ended"].Attempts)
			}
			for _, dl := range ds {
				if dl.ResponseCode != 200 || dl.DeliveredAt == nil || dl.NextAttemptAt != nil || dl.URL != recv.URL+"/hooks" || dl.Source != "agent" || dl.SourceID != ag.ID {
					t.Errorf("delivery %+v: want delivered with 200 to the agent's server", dl)
				}
			}
			got := recv.received()
			if len(got) != 4 {
				t.Fatalf("receiver got %d posts, want 4", len(got))
			}
			if got[0].status != 500 || !strings.Contains(got[1].header.Get("X-Switchboard-Event"), "call.") {
				t.Errorf("first answers: %d", got[0].status)
			}
			var ended received
			for _, r := range got {
				if !verifyAsReadme(secret, r) {
					t.Errorf("delivery %s does not verify with README's recipe", r.header.Get("X-Switchboard-Delivery"))
				}
				if err := webhook.Verify(secret, r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), r.body, time.Now(), 0); err != nil {
					t.Errorf("Verify: %v", err)
				}
				tampered := append([]byte(nil), r.body...)
				tampered[len(tampered)/2] ^= 1
				if verifyAsReadme(secret, received{header: r.header, body: tampered}) ||
					webhook.Verify(secret, r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), tampered, time.Now(), 0) == nil {
					t.Error("a tampered body verifies")
				}
				if r.header.Get("X-Switchboard-Event") == "call.ended" && r.status == 200 {
					ended = r
				}
			}
			var p struct {
				ID     string         `json:"id"`
				Type   string         `json:"type"`
				CallID string         `json:"call_id"`
				Call   map[string]any `json:"call"`
				Report map[string]any `json:"report"`
			}
			if err := json.Unmarshal(ended.body, &p); err != nil {
				t.Fatalf("call.ended body: %v", err)
			}
			if p.Type != "call.ended" || p.CallID != rec.ID || p.ID != ds["call.ended"].ID || p.Call["id"] != rec.ID {
				t.Errorf("call.ended: %+v", p)
			}
			tr, _ := p.Report["transcript"].([]any)
			if len(tr) != 1 || !strings.Contains(string(ended.body), "Hello, how can I help?") {
				t.Errorf("report's transcript: %v", p.Report["transcript"])
			}
			if p.Report["ended_reason"] != "caller-hangup" || p.Report["latency_p50_ms"] != 640.0 || p.Report["cost_usd"] != 0.0123 ||
				p.Call["cost_usd"] != 0.0123 || p.Report["duration_seconds"] != 3.5 {
				t.Errorf("report: %v", p.Report)
			}
			if _, ok := p.Report["recording_url"]; !ok {
				t.Error("report without recording_url (null when the call was not recorded)")
			}
			recv.Close()
			goleak.VerifyNone(t, before)
		})
	}
}

// TestSignature pins the scheme: the value is v1= and the hex HMAC-SHA256 over
// "timestamp.body"; an old timestamp, another secret or another body is refused.
func TestSignature(t *testing.T) {
	body := []byte(`{"type":"call.started"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := webhook.Sign("whsec_test", now.Unix(), body)
	m := hmac.New(sha256.New, []byte("whsec_test"))
	m.Write([]byte("1800000000." + string(body)))
	if sig != "v1="+hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("Sign = %s", sig)
	}
	ts := "1800000000"
	for name, tc := range map[string]struct {
		secret, ts, sig string
		body            []byte
		at              time.Time
		want            error
	}{
		"good":                {"whsec_test", ts, sig, body, now, nil},
		"one of several":      {"whsec_test", ts, "v1=00ff, " + sig, body, now.Add(time.Minute), nil},
		"tampered body":       {"whsec_test", ts, sig, []byte(`{"type":"call.ended"}`), now, webhook.ErrBadSignature},
		"other secret":        {"whsec_other", ts, sig, body, now, webhook.ErrBadSignature},
		"no prefix":           {"whsec_test", ts, strings.TrimPrefix(sig, "v1="), body, now, webhook.ErrBadSignature},
		"replayed later":      {"whsec_test", ts, sig, body, now.Add(10 * time.Minute), webhook.ErrBadTimestamp},
		"malformed timestamp": {"whsec_test", "soon", sig, body, now, webhook.ErrBadTimestamp},
	} {
		if err := webhook.Verify(tc.secret, tc.ts, tc.sig, tc.body, tc.at, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
}

// TestRestartPicksUpPending: a delivery whose server was down when its node stopped is
// delivered by the next node to run on the database, the attempts of both counted.
func TestRestartPicksUpPending(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			st, tenantID, reopen := openStore(t, d)
			recv := newReceiver(t, 503)
			ag, _ := agentWithServer(t, st, tenantID, recv.URL)
			hub := realtime.NewHub(realtime.Options{})
			opts := webhook.Options{AllowPrivate: true, Backoff: 50 * time.Millisecond, PollEvery: 50 * time.Millisecond}
			h := webhook.New(webhook.Config{Store: st, Node: "node-a", Options: opts})
			h.Observe(hub)
			stop := runHooks(t, h)
			rec := callRecord(t, st, tenantID, ag.ID, "node-a")
			_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventAnswered, rec)
			waitDeliveries(t, hub, st, tenantID, rec.ID, func(ds []store.WebhookDelivery) bool {
				return len(ds) == 1 && ds[0].Attempts >= 1 && ds[0].ResponseCode == 503
			})
			stop()
			_ = st.Close()

			recv.setStatuses(204)
			st2 := reopen()
			h2 := webhook.New(webhook.Config{Store: st2, Node: "node-a", Options: opts})
			hub2 := realtime.NewHub(realtime.Options{})
			h2.Observe(hub2)
			runHooks(t, h2)
			ds := waitDeliveries(t, hub2, st2, tenantID, rec.ID, allIn(store.DeliveryDelivered, 1))
			if ds[0].ResponseCode != 204 || ds[0].Attempts < 2 || ds[0].LastError != "" {
				t.Errorf("after the restart: %+v", ds[0])
			}
		})
	}
}

// privateName is a host name that passes the create-time check (it is not an address nor
// localhost) and resolves to an address of this machine, as a tenant's DNS may: the
// delivery must be refused where it connects.
func privateName(t *testing.T) string {
	t.Helper()
	host, _ := os.Hostname()
	for _, name := range []string{host, "vm", "runsc"} {
		if name == "" || netguard.CheckURL("http://"+name+"/") != nil {
			continue
		}
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), name)
		if err != nil || len(addrs) == 0 {
			continue
		}
		if ip, err := netip.ParseAddr(addrs[0]); err == nil && !netguard.Public(ip) {
			return name
		}
	}
	t.Skip("no host name of this machine resolves to a private address")
	return ""
}

// TestPrivateAddressRefusedAtDelivery: a server whose name resolves to a private address
// is not posted to when the operator does not allow it: the delivery fails at once,
// saying why, and the receiver hears nothing.
func TestPrivateAddressRefusedAtDelivery(t *testing.T) {
	st, tenantID, _ := openStore(t, store.SQLite)
	recv := newReceiver(t, 200)
	_, port, _ := net.SplitHostPort(recv.Listener.Addr().String())
	ag, _ := agentWithServer(t, st, tenantID, "http://"+privateName(t)+":"+port+"/hook")
	hub := realtime.NewHub(realtime.Options{})
	h := webhook.New(webhook.Config{Store: st, Node: "node-a", Options: webhook.Options{PollEvery: 50 * time.Millisecond}})
	h.Observe(hub)
	runHooks(t, h)
	rec := callRecord(t, st, tenantID, ag.ID, "node-a")
	_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventAnswered, rec)
	ds := waitDeliveries(t, hub, st, tenantID, rec.ID, allIn(store.DeliveryFailed, 1))
	if ds[0].Attempts != 1 || !strings.Contains(ds[0].LastError, "not public") {
		t.Errorf("refused delivery: %+v", ds[0])
	}
	if n := len(recv.received()); n != 0 {
		t.Errorf("the receiver on a private address got %d posts", n)
	}
}

// TestTranscriptAndOtherNodes: a server that asked for transcripts gets each turn of a
// live call; the events of a call another node carries are that node's to post, except
// its end when it was found lost, which the finder posts once.
func TestTranscriptAndOtherNodes(t *testing.T) {
	st, tenantID, _ := openStore(t, store.SQLite)
	recv := newReceiver(t, 200)
	ag, _ := agentWithServer(t, st, tenantID, recv.URL, store.CallServerStarted, store.CallServerTranscript, store.CallServerEnded)
	hub := realtime.NewHub(realtime.Options{})
	opts := webhook.Options{AllowPrivate: true, PollEvery: 50 * time.Millisecond}
	// Two nodes observe one hub, as nodes sharing PostgreSQL observe each other's events.
	for _, node := range []string{"node-a", "node-b"} {
		h := webhook.New(webhook.Config{Store: st, Node: node, Options: opts})
		h.Observe(hub)
		runHooks(t, h)
	}
	rec := callRecord(t, st, tenantID, ag.ID, "node-a")
	_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventAnswered, rec)
	waitDeliveries(t, hub, st, tenantID, rec.ID, func(ds []store.WebhookDelivery) bool { return len(ds) == 1 })
	_ = hub.Publish(tenantID, call.Topic(rec.ID), realtime.TypeCallTranscript, map[string]any{"role": "user", "text": "Where is my order?"})
	_ = hub.Publish(tenantID, call.Topic(rec.ID), realtime.TypeCallAgentSpeech, map[string]any{"role": "assistant", "text": "It has shipped."})
	ds := waitDeliveries(t, hub, st, tenantID, rec.ID, allIn(store.DeliveryDelivered, 3))
	var turns []string
	for _, d := range ds {
		if d.Event == store.CallServerTranscript {
			var p struct {
				Turn struct{ Role, Text string } `json:"turn"`
			}
			_ = json.Unmarshal(d.Payload, &p)
			turns = append(turns, p.Turn.Role+": "+p.Turn.Text)
		}
	}
	if len(turns) != 2 {
		t.Errorf("transcript deliveries: %v", turns)
	}

	lost := endOf(rec)
	lost["ended_reason"], lost["status"] = store.EndedNodeLost, store.CallFailed
	_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventEnded, lost)
	ds = waitDeliveries(t, hub, st, tenantID, rec.ID, allIn(store.DeliveryDelivered, 4))
	if n := len(byEvent(ds)); n != 3 {
		t.Errorf("events delivered: %d kinds, want started, transcript, ended", n)
	}
}

// TestPhoneNumberServer: a call whose agent names no server goes to the server of the
// number it was dialled to; an agent's own server wins over its number's.
func TestPhoneNumberServer(t *testing.T) {
	st, tenantID, _ := openStore(t, store.SQLite)
	numberRecv, agentRecv := newReceiver(t, 200), newReceiver(t, 200)
	plain := store.NewAgent()
	plain.Name = "Plain"
	if err := store.Create(context.Background(), st, tenantID, plain); err != nil {
		t.Fatal(err)
	}
	hooked, _ := agentWithServer(t, st, tenantID, agentRecv.URL)
	pn := store.NewPhoneNumber()
	pn.Number, pn.Server = "+15550199", &store.CallServer{URL: numberRecv.URL, Secret: "a-secret-of-my-own-choosing"}
	if err := store.Create(context.Background(), st, tenantID, pn); err != nil {
		t.Fatal(err)
	}
	if pn.Server.Secret != "" || !pn.Server.SecretSet {
		t.Errorf("a secret the client gave is shown back: %+v", pn.Server)
	}
	hub := realtime.NewHub(realtime.Options{})
	h := webhook.New(webhook.Config{Store: st, Node: "node-a", Options: webhook.Options{AllowPrivate: true, PollEvery: 50 * time.Millisecond}})
	h.Observe(hub)
	runHooks(t, h)

	for _, tc := range []struct {
		agent  *store.Agent
		recv   *receiver
		source string
	}{{plain, numberRecv, "phone_number"}, {hooked, agentRecv, "agent"}} {
		rec := callRecord(t, st, tenantID, tc.agent.ID, "node-a")
		_ = hub.Publish(tenantID, call.Topic(rec.ID), call.EventAnswered, rec)
		ds := waitDeliveries(t, hub, st, tenantID, rec.ID, allIn(store.DeliveryDelivered, 1))
		if ds[0].Source != tc.source || ds[0].URL != tc.recv.URL {
			t.Errorf("call of %s: delivered from %s to %s", tc.agent.Name, ds[0].Source, ds[0].URL)
		}
	}
	got := numberRecv.received()
	if len(got) != 1 || !verifyAsReadme("a-secret-of-my-own-choosing", got[0]) {
		t.Errorf("the number's server got %d posts, or one not signed with its own secret", len(got))
	}
}
