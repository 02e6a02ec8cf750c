package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/call"
	"github.com/switchboard-go/switchboard/internal/netguard"
	"github.com/switchboard-go/switchboard/realtime"
	"github.com/switchboard-go/switchboard/store"
)

// Defaults of Options.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 10 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultTimeout     = 10 * time.Second
	DefaultPollEvery   = time.Second
	DefaultConcurrency = 8
)

// Options tune deliveries; zero values take the defaults. An operator sets them with the
// SWITCHBOARD_WEBHOOK_* settings (README's configuration table).
type Options struct {
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (SWITCHBOARD_ALLOW_PRIVATE_WEBHOOKS, as for tools' webhooks).
	AllowPrivate bool
	// MaxAttempts is how many attempts a delivery gets before it is failed.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after each further one
	// up to MaxBackoff; each wait is jittered between half and all of it, so that the
	// retries of many deliveries to one server that was down do not arrive together.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt, answer included.
	Timeout time.Duration
	// PollEvery is how often the queue is looked at for what is due (this node's own
	// events wake it at once).
	PollEvery time.Duration
	// Concurrency bounds the attempts in flight on the node.
	Concurrency int
}

func (o *Options) defaults() {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = o.Backoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollEvery <= 0 {
		o.PollEvery = DefaultPollEvery
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
}

// Config is what the node's call webhooks are built from.
type Config struct {
	Options
	Store *store.Store
	Log   *slog.Logger
	// Node is this node's name (SWITCHBOARD_NODE): it posts the events of the calls it
	// carries, and those of calls it found lost (node-lost); other nodes post their own.
	Node string
	// RecordingsDir holds the calls' recordings ("<call id>.wav"); "": calls are not
	// recorded, and no report has a recording link.
	RecordingsDir string
}

// Observer is where the node's events come from, and where the outcome of each delivery
// attempt goes (EventDelivery): *realtime.Hub.
type Observer interface {
	Observe(typ string, fn func(*realtime.Event))
	Publish(tenantID, topic, typ string, data any) error
}

// EventDelivery is published on the call's topic (call:{id}) each time an attempt of one of
// its deliveries is recorded, with the delivery as GET /api/v1/webhook-deliveries shows it
// (without its payload): a dashboard, or a test, sees a delivery's status as it changes.
const EventDelivery = "webhook.delivery"

// DeliveryEvent is the data of EventDelivery.
type DeliveryEvent struct {
	ID           string `json:"id"`
	CallID       string `json:"call_id"`
	Event        string `json:"event"`
	Status       string `json:"status"`
	Attempts     int    `json:"attempts"`
	ResponseCode int    `json:"response_code"`
	LastError    string `json:"last_error"`
}

// Hooks are the node's call webhooks: they turn call events into deliveries (Observe) and
// send what is due (Run). Safe for concurrent use.
type Hooks struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	// wake nudges Run when this node enqueued something.
	wake chan struct{}
	// events is where the attempts' outcomes are published (Observe); nil: nowhere.
	events atomic.Pointer[Observer]

	mu sync.Mutex
	// calls are the servers of the calls this node carries that are live, by call ID, so
	// that a transcript event needs no query; ended calls leave a tombstone for a while,
	// so that a call.started observed after its call.ended (events are observed
	// concurrently) leaves nothing behind.
	calls map[string]*callServer
}

// callServer is where one call's events go (server nil: nowhere).
type callServer struct {
	server   *store.CallServer
	source   string
	sourceID string
	// answered is when the entry was made; ended when its call ended (zero while live).
	answered, ended time.Time
}

// tombstoneFor is how long an ended call's entry is kept; keepLive how long a live one is
// at most, should its call.ended never be observed (a relay that lost events).
const (
	tombstoneFor = time.Minute
	keepLive     = 24 * time.Hour
)

// New returns the node's call webhooks.
func New(cfg Config) *Hooks {
	cfg.defaults()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tr := netguard.NewTransport(cfg.AllowPrivate)
	tr.ResponseHeaderTimeout = cfg.Timeout
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could lead anywhere: the answer is the 3xx
	}}
	return &Hooks{cfg: cfg, log: cfg.Log, client: client, wake: make(chan struct{}, 1), calls: map[string]*callServer{}}
}

// Observe turns the events of calls that o dispatches into deliveries, and publishes the
// outcome of each attempt through o (EventDelivery).
func (h *Hooks) Observe(o Observer) {
	h.events.Store(&o)
	for _, typ := range []string{call.EventAnswered, call.EventEnded, realtime.TypeCallTranscript, realtime.TypeCallAgentSpeech} {
		o.Observe(typ, h.observe)
	}
}

// observeTimeout bounds the work of one event (reading the call's server, writing its
// delivery, retried while the database is away); the hub runs each observation on a
// goroutine of its own, and none may linger.
const observeTimeout = time.Minute

func (h *Hooks) observe(ev *realtime.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), observeTimeout)
	defer cancel()
	var err error
	switch ev.Type {
	case call.EventAnswered:
		err = h.started(ctx, ev)
	case call.EventEnded:
		err = h.ended(ctx, ev)
	default:
		err = h.turn(ctx, ev)
	}
	if err != nil {
		h.log.Warn("call webhook not enqueued", "event", ev.Type, "topic", ev.Topic, "error", err)
	}
}

// started enqueues call.started for a call this node answered.
func (h *Hooks) started(ctx context.Context, ev *realtime.Event) error {
	var rec store.Call
	if err := json.Unmarshal(ev.Data, &rec); err != nil || rec.ID == "" {
		return nil // not a record
	}
	if rec.Node != h.cfg.Node {
		return nil // the node that carries it posts it
	}
	cs, err := h.resolve(ctx, rec)
	if err != nil {
		return err
	}
	cs.answered = time.Now()
	h.mu.Lock()
	if prev := h.calls[rec.ID]; prev == nil || prev.ended.IsZero() {
		h.calls[rec.ID] = cs
	}
	h.mu.Unlock()
	if !cs.server.Wants(store.CallServerStarted) {
		return nil
	}
	p := Payload{Type: store.CallServerStarted, CreatedAt: ev.Time, TenantID: rec.TenantID, CallID: rec.ID, Call: ev.Data}
	return h.enqueue(ctx, cs, p, rec.ID+"/"+store.CallServerStarted)
}

// ended enqueues call.ended, with the end-of-call report, for a call this node carried or
// found lost.
func (h *Hooks) ended(ctx context.Context, ev *realtime.Event) error {
	var rec store.Call
	if err := json.Unmarshal(ev.Data, &rec); err != nil || rec.ID == "" {
		return nil
	}
	if rec.Node != h.cfg.Node && rec.EndedReason != store.EndedNodeLost {
		return nil
	}
	now := time.Now()
	h.mu.Lock()
	cs := h.calls[rec.ID]
	h.calls[rec.ID] = &callServer{ended: now}
	for id, c := range h.calls {
		if !c.ended.IsZero() && now.Sub(c.ended) > tombstoneFor || c.ended.IsZero() && now.Sub(c.answered) > keepLive {
			delete(h.calls, id)
		}
	}
	h.mu.Unlock()
	if cs == nil || !cs.ended.IsZero() {
		var err error
		if cs, err = h.resolve(ctx, rec); err != nil {
			return err
		}
	}
	if !cs.server.Wants(store.CallServerEnded) {
		return nil
	}
	var transcript json.RawMessage
	if t, err := store.GetTranscript(ctx, h.cfg.Store, rec.TenantID, rec.ID); err == nil {
		transcript = t.Turns
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	p := Payload{Type: store.CallServerEnded, CreatedAt: ev.Time, TenantID: rec.TenantID, CallID: rec.ID, Call: ev.Data,
		Report: endedReport(ev.Data, transcript, h.recordingURL(rec.ID))}
	return h.enqueue(ctx, cs, p, rec.ID+"/"+store.CallServerEnded)
}

// turn enqueues call.transcript for a turn of a live call of this node whose server asked
// for transcripts.
func (h *Hooks) turn(ctx context.Context, ev *realtime.Event) error {
	kind, id, err := realtime.ParseTopic(ev.Topic)
	if err != nil || kind != "call" {
		return nil
	}
	h.mu.Lock()
	cs := h.calls[id]
	h.mu.Unlock()
	if cs == nil || !cs.server.Wants(store.CallServerTranscript) {
		return nil
	}
	p := Payload{Type: store.CallServerTranscript, CreatedAt: ev.Time, TenantID: ev.TenantID, CallID: id, Turn: ev.Data}
	return h.enqueue(ctx, cs, p, id+"/turn/"+ev.Time.Format(time.RFC3339Nano)+"/"+ev.Type)
}

// resolve finds where a call's events go: its agent's server, or else that of the phone
// number it was dialled to (inbound) or from (outbound).
func (h *Hooks) resolve(ctx context.Context, rec store.Call) (*callServer, error) {
	if rec.AgentID != nil {
		ag, err := store.Get[store.Agent](ctx, h.cfg.Store, rec.TenantID, *rec.AgentID)
		switch {
		case err == nil && ag.Server != nil:
			return &callServer{server: ag.Server, source: "agent", sourceID: ag.ID}, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	number := rec.To
	if rec.Direction == store.CallOutbound {
		number = rec.From
	}
	if rec.Direction == store.CallWeb || number == "" {
		return &callServer{}, nil
	}
	pn, err := store.FindPhoneNumber(ctx, h.cfg.Store, rec.TenantID, number)
	switch {
	case err == nil && pn.Server != nil:
		return &callServer{server: pn.Server, source: "phone_number", sourceID: pn.ID}, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return &callServer{}, nil
}

// recordingURL is where the API serves the call's recording, when there is one.
func (h *Hooks) recordingURL(callID string) string {
	if h.cfg.RecordingsDir == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(h.cfg.RecordingsDir, callID+".wav")); err != nil {
		return ""
	}
	return "/api/v1/calls/" + callID + "/recording"
}

// enqueue writes the delivery of p to cs's server; key names the event, so that one event
// is one delivery however many nodes observe it.
func (h *Hooks) enqueue(ctx context.Context, cs *callServer, p Payload, key string) error {
	p.ID = store.NewWebhookDeliveryID()
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	d := &store.WebhookDelivery{Row: store.Row{ID: p.ID, TenantID: p.TenantID}, CallID: p.CallID, Event: p.Type,
		URL: cs.server.URL, Source: cs.source, SourceID: cs.sourceID, Payload: body, SecretEnc: cs.server.SealedSecret(),
		DedupeKey: key + "/" + cs.server.URL}
	// A database that is away for a moment does not lose the event: the write is retried
	// until observeTimeout (the call itself never waits for it).
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := store.EnqueueWebhook(ctx, h.cfg.Store, d)
		if err == nil {
			h.Wake()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Wake has Run look at the queue now (a delivery was enqueued or redelivered).
func (h *Hooks) Wake() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}
