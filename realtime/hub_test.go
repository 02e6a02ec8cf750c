package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/realtime"
)

// The hub's tests run one after the other: each ends by checking that it left no goroutine
// behind, which a test running beside it would confuse.

// hubDeadline bounds every wait of these tests.
const hubDeadline = 10 * time.Second

// hubContexts holds each test's context: a subscriber's Next is bound to the context of its
// first call, so a test gives all its calls the same one, which ends at hubDeadline.
var hubContexts sync.Map

func hubCtx(t *testing.T) context.Context {
	t.Helper()
	if ctx, ok := hubContexts.Load(t); ok {
		return ctx.(context.Context)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hubDeadline)
	hubContexts.Store(t, ctx)
	t.Cleanup(func() { cancel(); hubContexts.Delete(t) })
	return ctx
}

// next waits up to hubDeadline for the subscriber's next item.
func next(t *testing.T, sub *realtime.Subscriber) realtime.Item {
	t.Helper()
	it, err := sub.Next(hubCtx(t))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return it
}

// nextEvent waits for the next item and checks it is an event.
func nextEvent(t *testing.T, sub *realtime.Subscriber) *realtime.Event {
	t.Helper()
	it := next(t, sub)
	if it.Event == nil {
		t.Fatalf("Next: %s, want an event", describe(it))
	}
	return it.Event
}

// wantNothing checks that the subscriber has nothing to deliver, a while later.
func wantNothing(t *testing.T, sub *realtime.Subscriber) {
	t.Helper()
	time.Sleep(30 * time.Millisecond)
	if it, ok := sub.TryNext(); ok {
		t.Fatalf("TryNext: %s; want nothing", describe(it))
	}
}

func describe(it realtime.Item) string {
	switch {
	case it.Event != nil:
		return fmt.Sprintf("event %d %s %s/%s %s", it.Event.ID, it.Event.Type, it.Event.TenantID, it.Event.Topic, it.Event.Data)
	case it.Gap != nil:
		return fmt.Sprintf("gap %+v", *it.Gap)
	case it.Control != nil:
		return fmt.Sprintf("control %v", it.Control)
	case it.Heartbeat:
		return "heartbeat"
	}
	return "nothing"
}

// readUntilGap reads events until a gap and returns their n (see publish) and the gap.
func readUntilGap(t *testing.T, sub *realtime.Subscriber) ([]int, *realtime.Gap) {
	t.Helper()
	var got []int
	for {
		it := next(t, sub)
		if it.Gap != nil {
			return got, it.Gap
		}
		if it.Event == nil {
			t.Fatalf("Next: %s, want an event or a gap", describe(it))
		}
		got = append(got, seq(t, it.Event))
	}
}

// subscribe makes a subscriber of tenant on topics, resuming after since.
func subscribe(t *testing.T, h *realtime.Hub, tenant string, since uint64, topics ...string) *realtime.Subscriber {
	t.Helper()
	sub := h.Subscribe(tenant)
	if err := sub.Add(topics, since, nil); err != nil {
		t.Fatalf("Add(%v, %d): %v", topics, since, err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// publish publishes {"n":n} and fails the test on an error.
func publish(t *testing.T, h *realtime.Hub, tenant, topic string, n int) {
	t.Helper()
	if err := h.Publish(tenant, topic, realtime.TypeCallTranscript, map[string]int{"n": n}); err != nil {
		t.Fatalf("Publish(%s, %s): %v", tenant, topic, err)
	}
}

// seq reads the n of an event published by publish.
func seq(t *testing.T, ev *realtime.Event) int {
	t.Helper()
	n, ok := seqOf(ev)
	if !ok {
		t.Fatalf("event data %s: want {\"n\":…}", ev.Data)
	}
	return n
}

// seqOf is seq for goroutines other than the test's.
func seqOf(ev *realtime.Event) (int, bool) {
	var d struct{ N *int }
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.N == nil {
		return 0, false
	}
	return *d.N, true
}

// readIDs reads n events and returns their IDs.
func readIDs(t *testing.T, sub *realtime.Subscriber, n int) []uint64 {
	t.Helper()
	ids := make([]uint64, 0, n)
	for range n {
		ids = append(ids, nextEvent(t, sub).ID)
	}
	return ids
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHubPublishSubscribeInOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	sub := subscribe(t, h, "t1", 0, "call:a")
	before := time.Now().Add(-time.Second)
	const n = 100
	for i := range n {
		publish(t, h, "t1", "call:a", i)
	}
	var last uint64
	for i := range n {
		ev := nextEvent(t, sub)
		if got := seq(t, ev); got != i {
			t.Fatalf("event #%d carries n=%d: out of order", i, got)
		}
		if ev.ID <= last {
			t.Fatalf("event #%d has ID %d after %d", i, ev.ID, last)
		}
		last = ev.ID
		if ev.Type != realtime.TypeCallTranscript || ev.TenantID != "t1" || ev.Topic != "call:a" || ev.Time.Before(before) || ev.Time.Location() != time.UTC {
			t.Fatalf("event #%d: %+v", i, ev)
		}
	}
	wantNothing(t, sub)
	if h.LastID() != last {
		t.Errorf("LastID %d, want the last event's %d", h.LastID(), last)
	}
	if st := h.Stats(); st.Published != n || st.Dropped != 0 {
		t.Errorf("Stats %+v, want %d published and none dropped", st, n)
	}

	// Unsubscribed, it hears nothing more; closed, it ends.
	sub.Remove([]string{"call:a"})
	if got := sub.Topics(); len(got) != 0 {
		t.Errorf("Topics after Remove: %v", got)
	}
	publish(t, h, "t1", "call:a", n)
	wantNothing(t, sub)
	sub.Close()
	sub.Close() // idempotent
	if _, err := sub.Next(hubCtx(t)); !errors.Is(err, realtime.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if err := sub.Add([]string{"call:a"}, 0, nil); !errors.Is(err, realtime.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
}

// TestHubIDsIncreasePerTopic: publishers on several goroutines; every topic's subscriber, and
// the tenant topic's, sees strictly increasing IDs and every event.
func TestHubIDsIncreasePerTopic(t *testing.T) {
	defer goleak.VerifyNone(t)
	const publishers, each, topics = 8, 300, 4
	// Queues with room for every event: this test is not about slow subscribers.
	h := realtime.NewHub(realtime.Options{QueueSize: 2 * publishers * each})
	subs := map[string]*realtime.Subscriber{}
	for i := range topics {
		topic := fmt.Sprintf("call:%d", i)
		subs[topic] = subscribe(t, h, "t1", 0, topic)
	}
	all := subscribe(t, h, "t1", 0, realtime.TenantTopic)

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := h.Publish("t1", fmt.Sprintf("call:%d", (p+i)%topics), realtime.TypeCallTranscript, map[string]int{"n": p*each + i}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	waitGroup(t, &wg)

	total := 0
	for topic, sub := range subs {
		count := publishers * each / topics
		ids := readIDs(t, sub, count)
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("%s: ID %d after %d", topic, ids[i], ids[i-1])
			}
		}
		wantNothing(t, sub)
		total += count
	}
	ids := readIDs(t, all, total)
	seen := map[uint64]bool{}
	for i, id := range ids {
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("tenant: ID %d after %d", id, ids[i-1])
		}
		seen[id] = true
	}
	if len(seen) != publishers*each {
		t.Errorf("tenant topic: %d distinct events, want %d", len(seen), publishers*each)
	}
	wantNothing(t, all)
}

// waitGroup waits for wg within the deadline.
func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hubDeadline):
		t.Fatalf("goroutines still running after %v", hubDeadline)
	}
}

// TestHubTenantTopic: the tenant topic carries every event of the tenant; a subscriber of the
// tenant and of call:a gets each event of call:a once.
func TestHubTenantTopic(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	tenant := subscribe(t, h, "t1", 0, realtime.TenantTopic)
	both := subscribe(t, h, "t1", 0, realtime.TenantTopic, "call:a")
	call := subscribe(t, h, "t1", 0, "call:a")
	if got := both.Topics(); strings.Join(got, ",") != "call:a,tenant" {
		t.Errorf("Topics: %v", got)
	}

	topics := []string{"call:a", "session:s", "agent:g", realtime.TenantTopic, "call:a", "call:b"}
	for i, topic := range topics {
		typ := realtime.TypeCallTranscript
		if topic == "agent:g" {
			typ = realtime.TypeAgentUpdated
		}
		if err := h.Publish("t1", topic, typ, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []*realtime.Subscriber{tenant, both} {
		for i, topic := range topics {
			ev := nextEvent(t, sub)
			if seq(t, ev) != i || ev.Topic != topic {
				t.Fatalf("event %d on %s, want %d on %s", seq(t, ev), ev.Topic, i, topic)
			}
		}
		wantNothing(t, sub)
	}
	for _, i := range []int{0, 4} {
		if ev := nextEvent(t, call); seq(t, ev) != i {
			t.Fatalf("call:a subscriber got %d, want %d", seq(t, ev), i)
		}
	}
	wantNothing(t, call)
}

// TestHubTenantTopicSkipsAgentCopies: a session's event published on its own topic and, for
// the agent's followers, on the agent's topic reaches the tenant's topic once; the agent's
// own events still reach it.
func TestHubTenantTopicSkipsAgentCopies(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	tenant := subscribe(t, h, "t1", 0, realtime.TenantTopic)
	agent := subscribe(t, h, "t1", 0, "agent:g")
	for i, p := range []struct{ topic, typ string }{
		{"session:s", realtime.TypeSessionMessage},
		{"agent:g", realtime.TypeSessionMessage},
		{"agent:g", realtime.TypeAgentUpdated},
	} {
		if err := h.Publish("t1", p.topic, p.typ, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{0, 2} {
		if ev := nextEvent(t, tenant); seq(t, ev) != want {
			t.Fatalf("tenant subscriber got %d (%s on %s), want %d", seq(t, ev), ev.Type, ev.Topic, want)
		}
	}
	wantNothing(t, tenant)
	for _, want := range []int{1, 2} {
		if ev := nextEvent(t, agent); seq(t, ev) != want {
			t.Fatalf("agent subscriber got %d, want %d", seq(t, ev), want)
		}
	}
	wantNothing(t, agent)
}

// TestHubTenantIsolation: topics are the tenant's own; the same topic name in another tenant
// is another topic, live and in replay.
func TestHubTenantIsolation(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	a := subscribe(t, h, "tenant-a", 0, realtime.TenantTopic, "call:x")
	b := subscribe(t, h, "tenant-b", 0, realtime.TenantTopic, "call:x")
	publish(t, h, "tenant-a", "call:x", 1)
	publish(t, h, "tenant-a", realtime.TenantTopic, 2)
	if ev := nextEvent(t, a); seq(t, ev) != 1 || ev.TenantID != "tenant-a" {
		t.Fatalf("tenant-a: %+v", ev)
	}
	if ev := nextEvent(t, a); seq(t, ev) != 2 {
		t.Fatalf("tenant-a: %+v", ev)
	}
	wantNothing(t, b)

	// Resuming from the start replays the tenant's own events only.
	late := subscribe(t, h, "tenant-b", 1, realtime.TenantTopic, "call:x")
	wantNothing(t, late)

	publish(t, h, "tenant-b", "call:x", 3)
	for _, sub := range []*realtime.Subscriber{b, late} {
		if ev := nextEvent(t, sub); seq(t, ev) != 3 || ev.TenantID != "tenant-b" {
			t.Fatalf("tenant-b: %+v", ev)
		}
	}
	wantNothing(t, a)
}

// TestHubReplaySince: a subscriber resuming after an ID gets the later events of the replay
// buffer, oldest first, then the live ones; one event in two topics comes once.
func TestHubReplaySince(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	witness := subscribe(t, h, "t1", 0, realtime.TenantTopic)
	for i := range 10 {
		publish(t, h, "t1", []string{"call:a", "call:b"}[i%2], i)
	}
	ids := readIDs(t, witness, 10)

	// Both topics of the tenant, and the tenant topic that also holds them.
	sub := h.Subscribe("t1")
	t.Cleanup(sub.Close)
	if err := sub.Add([]string{"call:a", realtime.TenantTopic, "call:b"}, ids[3], "ack"); err != nil {
		t.Fatal(err)
	}
	if it := next(t, sub); it.Control != "ack" {
		t.Fatalf("first item %s, want the reply", describe(it))
	}
	if got := readIDs(t, sub, 6); !equalIDs(got, ids[4:]) {
		t.Fatalf("replay after %d: %v, want %v", ids[3], got, ids[4:])
	}
	wantNothing(t, sub)
	publish(t, h, "t1", "call:a", 10)
	if ev := nextEvent(t, sub); seq(t, ev) != 10 {
		t.Fatalf("live event after the replay: %d", seq(t, ev))
	}
	wantNothing(t, sub)

	// One topic replays its own events only.
	only := subscribe(t, h, "t1", ids[0], "call:b")
	if got, want := readIDs(t, only, 5), []uint64{ids[1], ids[3], ids[5], ids[7], ids[9]}; !equalIDs(got, want) {
		t.Fatalf("call:b after %d: %v, want %v", ids[0], got, want)
	}
	wantNothing(t, only)
}

// TestHubReplayConcurrentWithPublish: subscribers that resume while events are being
// published get every event after their resume point once, in order: none falls between the
// replay and the live events.
func TestHubReplayConcurrentWithPublish(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 3000
	h := realtime.NewHub(realtime.Options{QueueSize: 2 * n, ReplayCount: n + 10})
	witness := subscribe(t, h, "t1", 0, realtime.TenantTopic)

	ctx := hubCtx(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := h.Publish("t1", fmt.Sprintf("call:%d", i%3), realtime.TypeCallTranscript, map[string]int{"n": i}); err != nil {
				t.Error(err)
				return
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // let the joiners in between
			}
		}
	})

	type joiner struct {
		since  uint64
		topics []string
		got    []uint64
		err    error
	}
	var joiners []*joiner
	var ids []uint64
	joinAt := map[int][]string{100: {realtime.TenantTopic}, 700: {"call:1", realtime.TenantTopic}, 1500: {"call:0", "call:1", "call:2"}, 2400: {realtime.TenantTopic}}
	var readers sync.WaitGroup
	for len(ids) < n {
		it, err := witness.Next(ctx)
		if err != nil {
			t.Fatalf("witness after %d events: %v", len(ids), err)
		}
		if it.Event == nil {
			t.Fatalf("witness: %s", describe(it))
		}
		ids = append(ids, it.Event.ID)
		topics, ok := joinAt[len(ids)]
		if !ok {
			continue
		}
		j := &joiner{since: ids[len(ids)-50], topics: topics}
		joiners = append(joiners, j)
		sub := subscribe(t, h, "t1", j.since, topics...)
		readers.Go(func() {
			for {
				it, err := sub.Next(ctx)
				if err != nil {
					j.err = err
					return
				}
				if it.Event == nil {
					j.err = fmt.Errorf("not an event: %s", describe(it))
					return
				}
				j.got = append(j.got, it.Event.ID)
				if m, _ := seqOf(it.Event); m == n-1 {
					return
				}
			}
		})
	}
	waitGroup(t, &wg)
	waitGroup(t, &readers)
	for _, j := range joiners {
		if j.err != nil {
			t.Fatalf("joiner since %d on %v: %v", j.since, j.topics, j.err)
		}
		var want []uint64
		for _, id := range ids {
			if id > j.since {
				want = append(want, id)
			}
		}
		if !equalIDs(j.got, want) {
			t.Errorf("joiner since %d on %v: %d events, want %d (the witness's after since, in order, once)", j.since, j.topics, len(j.got), len(want))
		}
	}
}

// TestHubReplayExpired: a resume point older than the replay buffer gets a replay_expired
// gap first, then what the buffer still holds.
func TestHubReplayExpired(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("count", func(t *testing.T) {
		h := realtime.NewHub(realtime.Options{ReplayCount: 5})
		witness := subscribe(t, h, "t1", 0, "call:a")
		for i := range 10 {
			publish(t, h, "t1", "call:a", i)
		}
		ids := readIDs(t, witness, 10)

		sub := subscribe(t, h, "t1", ids[0], "call:a")
		it := next(t, sub)
		if it.Gap == nil || it.Gap.Reason != "replay_expired" || it.Gap.Since != ids[0] {
			t.Fatalf("first item %s, want a replay_expired gap since %d", describe(it), ids[0])
		}
		if got := readIDs(t, sub, 5); !equalIDs(got, ids[5:]) {
			t.Fatalf("after the gap: %v, want %v", got, ids[5:])
		}
		wantNothing(t, sub)

		// The newest event pushed out is the resume point itself: nothing was lost.
		sub = subscribe(t, h, "t1", ids[4], "call:a")
		if got := readIDs(t, sub, 5); !equalIDs(got, ids[5:]) {
			t.Fatalf("resume at the edge of the buffer: %v, want %v", got, ids[5:])
		}
		wantNothing(t, sub)
	})
	t.Run("age", func(t *testing.T) {
		h := realtime.NewHub(realtime.Options{ReplayAge: 100 * time.Millisecond})
		witness := subscribe(t, h, "t1", 0, "call:a")
		for i := range 3 {
			publish(t, h, "t1", "call:a", i)
		}
		time.Sleep(250 * time.Millisecond)
		for i := 3; i < 5; i++ {
			publish(t, h, "t1", "call:a", i)
		}
		ids := readIDs(t, witness, 5)

		// Events 1 and 2 come after the resume point but are too old to replay: the
		// subscriber must be told, not left to believe it has everything.
		sub := subscribe(t, h, "t1", ids[0], "call:a")
		it := next(t, sub)
		if it.Gap == nil || it.Gap.Reason != "replay_expired" || it.Gap.Since != ids[0] {
			t.Fatalf("first item %s, want a replay_expired gap since %d", describe(it), ids[0])
		}
		if got := readIDs(t, sub, 2); !equalIDs(got, ids[3:]) {
			t.Fatalf("after the gap: %v, want %v", got, ids[3:])
		}
		wantNothing(t, sub)

		// Resuming after the last old event loses nothing.
		sub = subscribe(t, h, "t1", ids[2], "call:a")
		if got := readIDs(t, sub, 2); !equalIDs(got, ids[3:]) {
			t.Fatalf("resume after the old events: %v, want %v", got, ids[3:])
		}
		wantNothing(t, sub)
	})
}

// TestHubSlowSubscriberGap: a subscriber that does not read misses what overflows its queue
// and, once it has read what was queued, is told exactly how many it missed.
func TestHubSlowSubscriberGap(t *testing.T) {
	defer goleak.VerifyNone(t)
	const queue, n = 8, 20
	h := realtime.NewHub(realtime.Options{QueueSize: queue, SlowTimeout: time.Hour})
	sub := subscribe(t, h, "t1", 0, "call:a", realtime.TenantTopic)
	for i := range n {
		publish(t, h, "t1", "call:a", i)
	}
	got, gap := readUntilGap(t, sub)
	// What was queued comes first, in order, then the gap counts the rest exactly.
	if len(got) == 0 || len(got) > queue {
		t.Fatalf("%d events before the gap, want between 1 and the queue's %d", len(got), queue)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("queued events %v: not the first ones in order", got)
		}
	}
	if gap.Reason != "slow_consumer" || gap.Missed != uint64(n-len(got)) {
		t.Fatalf("gap %+v after %d events, want slow_consumer missing %d", *gap, len(got), n-len(got))
	}
	if st := h.Stats(); st.Dropped != gap.Missed {
		t.Errorf("Stats.Dropped %d, want %d", st.Dropped, gap.Missed)
	}
	// Caught up, it gets what comes next, with no further gap.
	for i := n; i < n+3; i++ {
		publish(t, h, "t1", "call:a", i)
	}
	for i := n; i < n+3; i++ {
		if ev := nextEvent(t, sub); seq(t, ev) != i {
			t.Fatalf("after the gap: event %d, want %d", seq(t, ev), i)
		}
	}
	wantNothing(t, sub)
	// A second overflow is counted afresh.
	for i := range 2 * queue {
		publish(t, h, "t1", "call:a", i)
	}
	got, gap = readUntilGap(t, sub)
	if gap.Missed != uint64(2*queue-len(got)) {
		t.Fatalf("second overflow: %d events then gap %+v, want %d missed", len(got), *gap, 2*queue-len(got))
	}
	wantNothing(t, sub)
}

// TestHubSlowSubscriberCutOff: a subscriber that keeps overflowing for longer than
// SlowTimeout is cut off with ErrSlowConsumer, while a subscriber that keeps up gets every
// event and the hub goes on.
func TestHubSlowSubscriberCutOff(t *testing.T) {
	defer goleak.VerifyNone(t)
	const queue = 4
	h := realtime.NewHub(realtime.Options{QueueSize: queue, SlowTimeout: 50 * time.Millisecond})
	slow := subscribe(t, h, "t1", 0, realtime.TenantTopic)
	fast := subscribe(t, h, "t1", 0, "call:a")

	ctx, cancel := context.WithTimeout(context.Background(), hubDeadline)
	defer cancel()
	got := make(chan int)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(got)
		for {
			it, err := fast.Next(ctx)
			if err != nil {
				return
			}
			if it.Event == nil {
				t.Errorf("fast subscriber: %s", describe(it))
				return
			}
			m, ok := seqOf(it.Event)
			if !ok {
				t.Errorf("fast subscriber: event data %s", it.Event.Data)
				return
			}
			got <- m
		}
	})
	// Publish in step with the fast subscriber, so that it never falls behind, until the
	// slow one is cut off, and a little beyond.
	sent, after := 0, 0
	for after < 20 {
		publish(t, h, "t1", "call:a", sent)
		select {
		case n := <-got:
			if n != sent {
				t.Fatalf("fast subscriber got %d, want %d", n, sent)
			}
		case <-ctx.Done():
			t.Fatalf("fast subscriber did not get event %d", sent)
		}
		sent++
		select {
		case <-slow.Done():
			after++
		default:
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	waitGroup(t, &wg)

	// The slow subscriber still has what was queued before it was cut off, then it ends.
	var err error
	var items []realtime.Item
	for range queue + 2 {
		var it realtime.Item
		if it, err = slow.Next(hubCtx(t)); err != nil {
			break
		}
		items = append(items, it)
	}
	if !errors.Is(err, realtime.ErrSlowConsumer) {
		t.Fatalf("slow subscriber ended with %v after %d items, want ErrSlowConsumer", err, len(items))
	}
	if err := slow.Add([]string{"call:b"}, 0, nil); !errors.Is(err, realtime.ErrSlowConsumer) {
		t.Errorf("Add on a cut-off subscriber: %v", err)
	}
	if st := h.Stats(); st.Published != uint64(sent) || st.Dropped == 0 {
		t.Errorf("Stats %+v, want %d published and some dropped", st, sent)
	}
}

// TestHubPublishNeverBlocks: a subscriber stuck with a full queue does not hold up the
// publisher.
func TestHubPublishNeverBlocks(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 20000
	h := realtime.NewHub(realtime.Options{QueueSize: 16, SlowTimeout: time.Hour})
	stuck := subscribe(t, h, "t1", 0, realtime.TenantTopic, "call:a")
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := h.Publish("t1", "call:a", realtime.TypeCallAgentSpeech, map[string]int{"n": i}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hubDeadline):
		t.Fatalf("%d publishes to a stuck subscriber did not finish within %v", n, hubDeadline)
	}
	got, gap := readUntilGap(t, stuck)
	if len(got) > 16 || gap.Missed != uint64(n-len(got)) {
		t.Errorf("%d events then gap %+v, want at most 16 then %d missed", len(got), *gap, n-len(got))
	}
	if st := h.Stats(); st.Published != n || st.Dropped != gap.Missed {
		t.Errorf("Stats %+v, want %d published and %d dropped", st, n, gap.Missed)
	}
}

func TestHubBadInput(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	for _, topic := range []string{"", "tenant:", "Tenant", "call", "call:", ":x", "calls:1", "room:1", "call:a b", "call:a:b",
		"call:a,b", "call:a\n", "agent:" + strings.Repeat("x", 65)} {
		if err := h.Publish("t1", topic, "call.created", nil); !errors.Is(err, realtime.ErrBadTopic) {
			t.Errorf("Publish on %q: %v, want ErrBadTopic", topic, err)
		}
		sub := h.Subscribe("t1")
		if err := sub.Add([]string{"call:ok", topic}, 0, nil); !errors.Is(err, realtime.ErrBadTopic) {
			t.Errorf("Add %q: %v, want ErrBadTopic", topic, err)
		}
		if got := sub.Topics(); len(got) != 0 {
			t.Errorf("Add with %q subscribed to %v anyway", topic, got)
		}
		sub.Close()
	}
	for _, topic := range []string{"tenant", "call:1", "session:abc-DEF_1", "agent:" + strings.Repeat("x", 64)} {
		if err := h.Publish("t1", topic, "call.created", nil); err != nil {
			t.Errorf("Publish on %q: %v", topic, err)
		}
	}
	for _, data := range []any{make(chan int), func() {}, math.NaN(), map[string]any{"x": math.Inf(1)}} {
		if err := h.Publish("t1", "call:1", "call.created", data); !errors.Is(err, realtime.ErrBadData) {
			t.Errorf("Publish %T: %v, want ErrBadData", data, err)
		}
	}
	if st := h.Stats(); st.Published != 4 {
		t.Errorf("Stats.Published %d, want the 4 good events only", st.Published)
	}
}

// TestHubSweep: topics nobody watches and with nothing recent to replay are forgotten.
func TestHubSweep(t *testing.T) {
	defer goleak.VerifyNone(t)
	const age = time.Minute
	h := realtime.NewHub(realtime.Options{ReplayAge: age})
	publish(t, h, "t1", "call:a", 0)
	publish(t, h, "t1", "call:b", 1)
	watched := subscribe(t, h, "t1", 0, "call:c")
	if n := h.Stats().Topics; n != 4 { // call:a, call:b, tenant, call:c
		t.Fatalf("%d topics, want 4", n)
	}
	now := time.Now()
	h.Sweep(now)
	if n := h.Stats().Topics; n != 4 {
		t.Fatalf("%d topics after a sweep with everything recent, want 4", n)
	}
	h.Sweep(now.Add(age + time.Second))
	if n := h.Stats().Topics; n != 1 {
		t.Fatalf("%d topics after the replay age, want 1 (the watched one)", n)
	}
	// The watched topic still works.
	publish(t, h, "t1", "call:c", 2)
	if ev := nextEvent(t, watched); seq(t, ev) != 2 {
		t.Fatalf("watched topic after a sweep: %d", seq(t, ev))
	}
	watched.Close()
	h.Sweep(time.Now().Add(age + time.Second))
	if n := h.Stats().Topics; n != 0 {
		t.Fatalf("%d topics once nobody watches and everything is old, want 0", n)
	}
}

// TestHubDispatch: events from a relay keep their IDs; repeats and older IDs are dropped.
func TestHubDispatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := realtime.NewHub(realtime.Options{})
	sub := subscribe(t, h, "t1", 0, realtime.TenantTopic)
	for _, id := range []uint64{10, 11, 11, 9, 12} {
		h.Dispatch(&realtime.Event{ID: id, Type: "call.ended", TenantID: "t1", Topic: "call:a", Time: time.Now(), Data: json.RawMessage(`{}`)})
	}
	if got := readIDs(t, sub, 3); !equalIDs(got, []uint64{10, 11, 12}) {
		t.Fatalf("dispatched %v, want 10 11 12", got)
	}
	wantNothing(t, sub)
	if h.LastID() != 12 {
		t.Errorf("LastID %d", h.LastID())
	}
	h.GapAll("relay_reconnected")
	if it := next(t, sub); it.Gap == nil || it.Gap.Reason != "relay_reconnected" {
		t.Fatalf("after GapAll: %s", describe(it))
	}
	wantNothing(t, sub)
}

// A topic swept after its events aged out still tells a client resuming from before them
// that it may have missed events.
func TestResumeAfterSweepReportsGap(t *testing.T) {
	defer goleak.VerifyNone(t)
	hub := realtime.NewHub(realtime.Options{ReplayAge: time.Millisecond})
	if err := hub.Publish("ten_a", "call:x", "call.created", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	since := hub.LastID() - 1
	hub.Sweep(time.Now().Add(time.Second)) // past the replay age, without waiting for it
	sub := hub.Subscribe("ten_a")
	defer sub.Close()
	if err := sub.Add([]string{"call:x"}, since, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	it, err := sub.Next(ctx)
	if err != nil || it.Gap == nil || it.Gap.Reason != "replay_expired" {
		t.Fatalf("got %+v, %v; want a replay_expired gap", it, err)
	}
}
