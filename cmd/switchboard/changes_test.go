package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// changes tells waiters that something changed (a log line written, a BYE or a post
// received, an event streamed), so that a test looks again when there is something new to
// see instead of every few milliseconds.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed returns a channel closed at the next notify.
func (s *changes) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *changes) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// until waits at most d for ok to hold, looking again at each change, and reports whether
// it held. The channel is taken before each look, so no change falls between the two.
func (s *changes) until(d time.Duration, ok func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := s.changed()
		if ok() {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return ok()
		}
	}
}

// hubEvent is one event of the tenant's stream.
type hubEvent struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// eventStream is the tenant's events on a node, as Server-Sent Events deliver them.
type eventStream struct {
	sig changes
	mu  sync.Mutex
	evs []hubEvent
}

// streamEvents subscribes to the tenant topic of node n by Server-Sent Events; what comes is
// kept, and signalled, until the test ends.
func streamEvents(t *testing.T, n *node, key string) *eventStream {
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
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /api/v1/events: %d", resp.StatusCode)
	}
	s := &eventStream{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
				var ev hubEvent
				if json.Unmarshal([]byte(data), &ev) == nil && ev.Type != "" {
					s.mu.Lock()
					s.evs = append(s.evs, ev)
					s.mu.Unlock()
					s.sig.notify()
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
		client.CloseIdleConnections()
	})
	return s
}

// find returns the first event so far of type typ whose data match holds.
func (s *eventStream) find(typ string, match func(data map[string]any) bool) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.evs {
		if ev.Type != typ {
			continue
		}
		var data map[string]any
		if json.Unmarshal(ev.Data, &data) == nil && (match == nil || match(data)) {
			return data, true
		}
	}
	return nil, false
}

// wait waits at most d for an event of type typ whose data match holds, and returns its data.
func (s *eventStream) wait(t *testing.T, d time.Duration, typ string, match func(data map[string]any) bool) map[string]any {
	t.Helper()
	var data map[string]any
	if !s.sig.until(d, func() bool {
		var ok bool
		data, ok = s.find(typ, match)
		return ok
	}) {
		t.Fatalf("no %s event within %v", typ, d)
	}
	return data
}
