package realtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestNextKeepsRacingWakeUps: a reply, an end or a gap that comes while the writer looks for
// what is ready, after it looked at the replies and before it looks at the queue, is never
// lost: Next returns it at once, rather than waiting for an event or a heartbeat that may
// be long in coming (a stream stuck so outlived the node's shutdown).
func TestNextKeepsRacingWakeUps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		race  func(h *Hub, s *Subscriber)
		check func(it Item, err error) bool
	}{
		{"reply", func(_ *Hub, s *Subscriber) { s.Send("reply") },
			func(it Item, err error) bool { return err == nil && it.Control == "reply" }},
		{"end", func(_ *Hub, s *Subscriber) { s.fail(ErrShuttingDown) },
			func(_ Item, err error) bool { return errors.Is(err, ErrShuttingDown) }},
		{"gap", func(h *Hub, _ *Subscriber) { h.GapAll("relay_lost") },
			func(it Item, err error) bool { return err == nil && it.Gap != nil && it.Gap.Reason == "relay_lost" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(Options{})
			s := h.Subscribe("ten_w")
			if err := s.Add([]string{TenantTopic}, 0, nil); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			raced := false
			testHookQueueLook = func(x *Subscriber) {
				if x == s && !raced {
					raced = true
					tc.race(h, s)
				}
			}
			defer func() { testHookQueueLook = nil }()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			it, err := s.Next(ctx)
			if !raced {
				t.Fatal("the race was not run")
			}
			// Only the context's end, which wakes Next too, got it out.
			if ctx.Err() != nil {
				t.Fatalf("Next waited on although the %s came while it looked (then: %+v, %v)", tc.name, it, err)
			}
			if !tc.check(it, err) {
				t.Fatalf("Next: %+v, %v", it, err)
			}
		})
	}
}
