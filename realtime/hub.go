package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune the hub; zero values take the defaults.
type Options struct {
	// QueueSize is how many events wait for one subscriber before it misses some (128).
	QueueSize int
	// ReplayCount and ReplayAge bound the replay buffer of each topic (512 events, 5 min).
	ReplayCount int
	ReplayAge   time.Duration
	// SlowTimeout is how long a subscriber may keep missing events before it is cut off (10 s).
	SlowTimeout time.Duration
	Log         *slog.Logger
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 128
	}
	if o.ReplayCount <= 0 {
		o.ReplayCount = 512
	}
	if o.ReplayAge <= 0 {
		o.ReplayAge = 5 * time.Minute
	}
	if o.SlowTimeout <= 0 {
		o.SlowTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Relay carries events between the nodes of a cluster and gives them their IDs. Without one
// the hub is in-process and numbers events itself.
type Relay interface {
	// Publish hands an event to the relay; it must not block.
	Publish(ev *Event)
}

// Hub fans events out to subscribers by tenant and topic. Publishing never blocks: each
// subscriber has a bounded queue, and one that falls behind misses events (and is told so
// with a stream.gap), then, if it stays behind, is cut off.
type Hub struct {
	opts  Options
	relay Relay

	// mu orders everything the hub does: numbering and dispatching events, and
	// subscribing (which must see a topic's replay buffer and its later events without a
	// hole or a repeat).
	mu     sync.Mutex
	topics map[topicKey]*topicState
	lastID uint64
	// sweptUpTo is the newest event ID of the topics Sweep forgot.
	sweptUpTo uint64

	published atomic.Uint64
	dropped   atomic.Uint64
	// subscribers counts subscribers made and not yet ended, for the node's metrics.
	subscribers atomic.Int64

	// observers are told of every dispatched event of their type (see Observe).
	observers map[string][]func(*Event)
}

type topicKey struct{ tenant, topic string }

type topicState struct {
	subs map[*Subscriber]struct{}
	// ring is the replay buffer, oldest first.
	ring []*Event
	// evicted is the ID of the newest event pushed out of the ring.
	evicted uint64
	last    time.Time
}

// NewHub returns an in-process hub; SetRelay joins it to other nodes.
func NewHub(opts Options) *Hub {
	opts.defaults()
	return &Hub{opts: opts, topics: map[topicKey]*topicState{}}
}

// SetRelay makes the hub publish through r, which calls Dispatch with numbered events (this
// node's and the others'). Call it before the first Publish.
func (h *Hub) SetRelay(r Relay) { h.relay = r }

// Clustered reports whether the hub's events reach other nodes (it has a relay).
func (h *Hub) Clustered() bool { return h != nil && h.relay != nil }

// Observe calls fn, on a goroutine of its own, with every event of type typ the hub
// dispatches: this node's and, through the relay, every other node's. It is how a node acts
// on what another node decided (a credential revoked there ends the streams held here).
func (h *Hub) Observe(typ string, fn func(*Event)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.observers == nil {
		h.observers = map[string][]func(*Event){}
	}
	h.observers[typ] = append(h.observers[typ], fn)
}

// ErrBadData is event data that cannot be encoded as JSON.
var ErrBadData = errors.New("realtime: event data is not JSON")

// Publish sends an event of type typ on a topic of a tenant. It never blocks; data is
// anything that encodes as JSON. Calls and media loops publish this way.
func (h *Hub) Publish(tenantID, topic, typ string, data any) error {
	_, err := h.publish(tenantID, topic, typ, data, false)
	return err
}

// PublishCommitted is Publish for a change a client just made through the API: it returns
// once the event has its place in the cluster's order (at once in-process; after the
// relay's commit with PostgreSQL, or when ctx ends), so that a client that goes on to make
// another change, on any node, sees its events in the order it made them.
func (h *Hub) PublishCommitted(ctx context.Context, tenantID, topic, typ string, data any) error {
	ev, err := h.publish(tenantID, topic, typ, data, true)
	if err != nil || ev.committed == nil {
		return err
	}
	select {
	case <-ev.committed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hub) publish(tenantID, topic, typ string, data any, wait bool) (*Event, error) {
	if _, _, err := ParseTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: %q", err, topic)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadData, err)
	}
	ev := &Event{Type: typ, TenantID: tenantID, Topic: topic, Time: time.Now().UTC(), Data: raw}
	h.published.Add(1)
	if h.relay != nil {
		if wait {
			ev.committed = make(chan struct{})
		}
		h.relay.Publish(ev)
		return ev, nil
	}
	h.mu.Lock()
	// IDs follow the clock in microseconds, so that they keep increasing across restarts
	// of an in-process hub, and a resume point from before a restart stays meaningful.
	id := uint64(ev.Time.UnixMicro())
	if id <= h.lastID {
		id = h.lastID + 1
	}
	ev.ID = id
	h.dispatchLocked(ev)
	h.mu.Unlock()
	return ev, nil
}

// Dispatch delivers an event that already has its ID (from a relay). Events must come in
// increasing ID order; one at or below the last seen is a repeat and is dropped.
func (h *Hub) Dispatch(ev *Event) {
	h.mu.Lock()
	if ev.ID > h.lastID {
		h.dispatchLocked(ev)
	}
	h.mu.Unlock()
}

// LastID is the ID of the newest event dispatched.
func (h *Hub) LastID() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastID
}

// GapAll tells every subscriber that events may have been missed (the relay lost its
// connection and could not recover them).
func (h *Hub) GapAll(reason string) {
	h.mu.Lock()
	seen := map[*Subscriber]bool{}
	for _, ts := range h.topics {
		for s := range ts.subs {
			if !seen[s] {
				seen[s] = true
				s.pendingGap.Store(reason)
				s.wake()
			}
		}
	}
	h.mu.Unlock()
}

func (h *Hub) dispatchLocked(ev *Event) {
	h.lastID = ev.ID
	for _, fn := range h.observers[ev.Type] {
		go fn(ev)
	}
	specific := h.topicLocked(topicKey{ev.TenantID, ev.Topic}, true)
	specific.push(ev, h.opts.ReplayCount)
	for s := range specific.subs {
		h.offer(s, ev)
	}
	if ev.Topic == TenantTopic || copyForAgent(ev) {
		return
	}
	all := h.topicLocked(topicKey{ev.TenantID, TenantTopic}, true)
	all.push(ev, h.opts.ReplayCount)
	for s := range all.subs {
		if _, both := specific.subs[s]; !both {
			h.offer(s, ev)
		}
	}
}

// copyForAgent reports whether ev is a copy, for an agent's followers, of an event about
// another thing (a session's event on its agent's topic). The original, on that thing's own
// topic, is what the tenant's topic carries, so the tenant's followers see it once.
func copyForAgent(ev *Event) bool {
	kind, _, _ := strings.Cut(ev.Topic, ":")
	family, _, _ := strings.Cut(ev.Type, ".")
	return kind == "agent" && family != "agent"
}

func (h *Hub) topicLocked(k topicKey, create bool) *topicState {
	ts := h.topics[k]
	if ts == nil && create {
		ts = &topicState{subs: map[*Subscriber]struct{}{}}
		h.topics[k] = ts
	}
	return ts
}

func (ts *topicState) push(ev *Event, max int) {
	if len(ts.ring) >= max {
		ts.evicted = ts.ring[0].ID
		copy(ts.ring, ts.ring[1:])
		ts.ring = ts.ring[:len(ts.ring)-1]
	}
	ts.ring = append(ts.ring, ev)
	ts.last = ev.Time
}

// offer queues ev for s without blocking; a full queue counts a miss.
func (h *Hub) offer(s *Subscriber, ev *Event) {
	select {
	case s.ch <- ev:
		return
	default:
	}
	h.dropped.Add(1)
	s.missed.Add(1)
	now := time.Now().UnixNano()
	since := s.behindSince.Load()
	switch {
	case since == 0:
		s.behindSince.Store(now)
	case time.Duration(now-since) > h.opts.SlowTimeout:
		s.fail(ErrSlowConsumer)
	}
}

// Stats are counters of the hub's work.
type Stats struct {
	Published, Dropped uint64
	Topics             int
	// Subscribers are those made and not yet ended (closed or cut off).
	Subscribers int
}

// Stats reports what the hub has done.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.topics)
	h.mu.Unlock()
	return Stats{Published: h.published.Load(), Dropped: h.dropped.Load(), Topics: n, Subscribers: int(h.subscribers.Load())}
}

// Sweep forgets topics that have no subscribers and nothing left to replay.
func (h *Hub) Sweep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, ts := range h.topics {
		if len(ts.subs) == 0 && now.Sub(ts.last) > h.opts.ReplayAge {
			// What the topic held is gone: a resume from before it must hear so.
			if n := len(ts.ring); n > 0 && ts.ring[n-1].ID > h.sweptUpTo {
				h.sweptUpTo = ts.ring[n-1].ID
			}
			delete(h.topics, k)
		}
	}
}

// RunSweeper sweeps the hub every interval until ctx ends: a node's topics come and go with
// its calls and sessions, and the hub forgets those nobody watches.
func (h *Hub) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			h.Sweep(now)
		case <-ctx.Done():
			return
		}
	}
}

// ErrSlowConsumer ends a subscriber that stayed behind.
var ErrSlowConsumer = errors.New("realtime: subscriber too slow; disconnected")

// ErrClosed is a subscriber that was closed.
var ErrClosed = errors.New("realtime: subscription closed")

// Item is one thing a subscriber's connection sends: an event, a gap notice, a control
// message of the protocol (an ack, a pong, an error), or a heartbeat.
type Item struct {
	Event     *Event
	Gap       *Gap
	Control   any
	Heartbeat bool
}

// Subscriber receives the events of the topics it subscribed to, of one tenant. One
// goroutine (the connection's writer) calls Next; any goroutine may call Add, Remove, Send
// and Close.
type Subscriber struct {
	hub      *Hub
	tenantID string
	ch       chan *Event
	// missed counts events dropped since the last gap was reported.
	missed      atomic.Uint64
	behindSince atomic.Int64
	// pendingGap holds the reason of a gap to report that is not a queue overflow.
	pendingGap atomic.Value
	done       chan struct{}
	closeOnce  sync.Once
	err        error
	// ended is set once err is: an ended subscriber delivers nothing more, not even what
	// was queued (a revoked credential gets no event after its revocation).
	ended atomic.Bool

	// Heartbeats and the context's end reach Next as wake-ups.
	heartbeat      *time.Timer
	heartbeatEvery time.Duration
	beat           atomic.Bool
	ctxStop        func() bool

	// pending are items that go before the queue: replies and replayed events.
	pendingMu sync.Mutex
	pending   []Item

	topics map[string]bool // guarded by hub.mu
}

// Subscribe returns a subscriber of the tenant with no topics yet.
func (h *Hub) Subscribe(tenantID string) *Subscriber {
	h.subscribers.Add(1)
	return &Subscriber{
		hub: h, tenantID: tenantID, ch: make(chan *Event, h.opts.QueueSize),
		done: make(chan struct{}), topics: map[string]bool{},
	}
}

// Topics returns the topics subscribed to.
func (s *Subscriber) Topics() []string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	out := make([]string, 0, len(s.topics))
	for t := range s.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Add subscribes to topics. The reply (when not nil) is sent first; then, with since > 0,
// the events after since still in the topics' replay buffers, oldest first (preceded by a
// replay_expired gap when the buffers no longer reach back to since); then what is published
// from now on. Nothing falls between the replay and the live events, and nothing is repeated.
func (s *Subscriber) Add(topics []string, since uint64, reply any) error {
	for _, t := range topics {
		if _, _, err := ParseTopic(t); err != nil {
			return fmt.Errorf("%w: %q", err, t)
		}
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-s.done:
		return s.err
	default:
	}
	var (
		replay []*Event
		gap    *Gap
		seen   = map[uint64]bool{}
		cutoff = time.Now().Add(-h.opts.ReplayAge)
	)
	for _, t := range topics {
		if s.topics[t] {
			continue
		}
		_, existed := h.topics[topicKey{s.tenantID, t}]
		ts := h.topicLocked(topicKey{s.tenantID, t}, true)
		ts.subs[s] = struct{}{}
		s.topics[t] = true
		if since == 0 {
			continue
		}
		// A topic swept since the resume point may have had events after it.
		if (ts.evicted > since || !existed && since < h.sweptUpTo) && gap == nil {
			gap = &Gap{Reason: "replay_expired", Since: since}
		}
		for _, ev := range ts.ring {
			if ev.ID <= since || seen[ev.ID] {
				continue
			}
			if !ev.Time.After(cutoff) {
				// Too old to replay, yet after since: the subscriber must hear it missed it.
				if gap == nil {
					gap = &Gap{Reason: "replay_expired", Since: since}
				}
				continue
			}
			seen[ev.ID] = true
			replay = append(replay, ev)
		}
	}
	sort.Slice(replay, func(i, j int) bool { return replay[i].ID < replay[j].ID })
	s.pendingMu.Lock()
	if reply != nil {
		s.pending = append(s.pending, Item{Control: reply})
	}
	if gap != nil {
		s.pending = append(s.pending, Item{Gap: gap})
	}
	for _, ev := range replay {
		s.pending = append(s.pending, Item{Event: ev})
	}
	s.pendingMu.Unlock()
	s.wake()
	return nil
}

// Remove unsubscribes from topics.
func (s *Subscriber) Remove(topics []string) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range topics {
		if !s.topics[t] {
			continue
		}
		delete(s.topics, t)
		if ts := h.topics[topicKey{s.tenantID, t}]; ts != nil {
			delete(ts.subs, s)
		}
	}
}

// Send queues a control message (an ack, a pong, an error) for the connection's writer.
func (s *Subscriber) Send(msg any) {
	s.pendingMu.Lock()
	s.pending = append(s.pending, Item{Control: msg})
	s.pendingMu.Unlock()
	s.wake()
}

// SetHeartbeat makes Next return a heartbeat item after every d without other items.
func (s *Subscriber) SetHeartbeat(d time.Duration) {
	s.heartbeatEvery = d
	s.heartbeat = time.AfterFunc(d, func() {
		s.beat.Store(true)
		s.wake()
	})
}

// Next waits for what the connection should send next: queued replies and replayed events
// first, then live events, and a gap notice once the events queued before the gap are out.
// It ends with the subscriber's error when it is closed (ErrSlowConsumer when it stayed
// behind), or ctx's when ctx ends. One goroutine calls it, always with the same ctx (the
// connection's): only the first call's ctx is watched.
//
// It waits on the event queue alone (a wake-up is a nil event on it), because a plain
// receive costs far less than a select over several channels, and this is paid for every
// event delivered.
func (s *Subscriber) Next(ctx context.Context) (Item, error) {
	if s.ctxStop == nil {
		s.ctxStop = context.AfterFunc(ctx, s.wake)
	}
	for {
		if s.ended.Load() {
			return Item{}, s.err
		}
		if it, ok := s.TryNext(); ok {
			return it, nil
		}
		// TryNext may have taken the wake-up of an end that came after the look above.
		if s.ended.Load() {
			return Item{}, s.err
		}
		if err := ctx.Err(); err != nil {
			return Item{}, err
		}
		if s.beat.Swap(false) {
			s.heartbeat.Reset(s.heartbeatEvery)
			return Item{Heartbeat: true}, nil
		}
		if ev := <-s.ch; ev != nil {
			return Item{Event: ev}, nil
		}
	}
}

// TryNext returns what is ready to send now, without waiting, so that a writer can gather
// several items into one write before it flushes.
func (s *Subscriber) TryNext() (Item, bool) {
	for {
		if s.ended.Load() {
			return Item{}, false
		}
		s.pendingMu.Lock()
		if len(s.pending) > 0 {
			it := s.pending[0]
			s.pending[0] = Item{}
			s.pending = s.pending[1:]
			if len(s.pending) == 0 {
				s.pending = nil
			}
			s.pendingMu.Unlock()
			return it, true
		}
		s.pendingMu.Unlock()
		if testHookQueueLook != nil {
			testHookQueueLook(s)
		}
		select {
		case ev := <-s.ch:
			if ev == nil {
				// A wake-up: what it announces (a reply, an end) may have come after the
				// looks above, so look at everything again.
				continue
			}
			return Item{Event: ev}, true
		default:
		}
		break
	}
	if n := s.missed.Swap(0); n > 0 {
		s.behindSince.Store(0)
		return Item{Gap: &Gap{Missed: n, Reason: "slow_consumer"}}, true
	}
	if r, _ := s.pendingGap.Swap("").(string); r != "" {
		return Item{Gap: &Gap{Reason: r}}, true
	}
	return Item{}, false
}

// testHookQueueLook, set by tests alone, runs in TryNext between its look at the replies and
// its look at the queue: where a wake-up that races the look is taken.
var testHookQueueLook func(*Subscriber)

// Done is closed when the subscriber ends.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// wake makes Next look again: a nil event on the queue. When the queue is full, Next has
// events to take and will look anyway.
func (s *Subscriber) wake() {
	select {
	case s.ch <- nil:
	default:
	}
}

// fail ends the subscriber with err. It may run with hub.mu held, so it only marks and
// signals; the connection's owner calls Close to leave the topics.
func (s *Subscriber) fail(err error) {
	s.closeOnce.Do(func() {
		s.hub.subscribers.Add(-1)
		s.err = err
		s.ended.Store(true)
		close(s.done)
		s.wake()
	})
}

// Close leaves every topic and ends the subscriber; it is idempotent.
func (s *Subscriber) Close() {
	s.fail(ErrClosed)
	if s.heartbeat != nil {
		s.heartbeat.Stop()
	}
	if s.ctxStop != nil {
		s.ctxStop()
	}
	h := s.hub
	h.mu.Lock()
	for t := range s.topics {
		if ts := h.topics[topicKey{s.tenantID, t}]; ts != nil {
			delete(ts.subs, s)
		}
	}
	s.topics = map[string]bool{}
	h.mu.Unlock()
}
