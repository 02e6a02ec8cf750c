package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/realtime"
)

// TestClusterRevocation: two nodes on one PostgreSQL. A key revoked on node A ends, within
// the bound, the key's event stream, events socket and media-stream call on node B (told
// through the event relay) and its media-stream call on node A itself; the key is refused
// on both nodes at once.
func TestClusterRevocation(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.URL(t)
	env := func() []string {
		return []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + dbURL, "SWITCHBOARD_SECRET=" + testSecret,
			"SWITCHBOARD_RATE_LIMIT=100000"}
	}
	envA, envB := env(), env()
	admin := createKey(t, envA, "--name", "operator")
	a := startServe(t, envA)
	b := startServe(t, envB)

	status, created := a.call(http.MethodPost, "/api/v1/keys", admin, `{"name":"cpaas","scopes":["read","write"]}`)
	key, keyID := fmt.Sprint(created["key"]), fmt.Sprint(created["id"])
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/keys: %d %v", status, created)
	}
	sse := watchSSE(t, b, key)
	ws := watchWS(t, b, key)
	callB := dialTwilio(t, b, key, "echo")
	callA := dialTwilio(t, a, key, "echo")
	callB.speak(tone(600, time.Second))
	callB.waitLoud(10, 10*time.Second, "echo on node B")

	// Node B relays what it hears once its listener is up: touch an agent on A until B's
	// streams have heard of it.
	c := &cluster{t: t, key: admin, nodes: [2]*node{a, b}}
	probe := c.create(a, "Probe")
	for i := 0; len(sse.events("")) == 0 || len(ws.events("")) == 0; i++ {
		if i > int(clusterWait/(50*time.Millisecond)) {
			t.Fatalf("node B's streams did not hear of node A's change within %v", clusterWait)
		}
		c.rename(a, probe, fmt.Sprintf("Probe %d", i))
		time.Sleep(50 * time.Millisecond)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodDelete, "http://"+a.addr+"/api/v1/keys/"+keyID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke the key on node A: %d", resp.StatusCode)
	}
	revoked := time.Now()

	// On the node that revoked, the promise is a second; on the other, the relay's delay.
	waitClosed := func(what string, done <-chan struct{}, bound time.Duration) time.Duration {
		t.Helper()
		select {
		case <-done:
		case <-time.After(clusterWait):
			t.Fatalf("%s still open %v after the revocation", what, clusterWait)
		}
		took := time.Since(revoked)
		if took > bound {
			t.Errorf("%s ended %v after the revocation, want within %v", what, took, bound)
		}
		t.Logf("%s ended %v after the revocation", what, took)
		return took
	}
	waitClosed("the media stream on node A", callA.closed, time.Second)
	waitClosed("the event stream on node B", sse.done, 5*time.Second)
	waitClosed("the events socket on node B", ws.done, 5*time.Second)
	waitClosed("the media stream on node B", callB.closed, 5*time.Second)

	for _, tw := range []*twilio{callA, callB} {
		tw.mu.Lock()
		err := tw.closeErr
		tw.mu.Unlock()
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != realtime.CloseRevoked || ce.Reason != realtime.ReasonKeyRevoked {
			t.Errorf("media stream closed with %v, want %d %q", err, realtime.CloseRevoked, realtime.ReasonKeyRevoked)
		}
	}
	var ce websocket.CloseError
	if !errors.As(ws.err, &ce) || ce.Code != realtime.CloseRevoked {
		t.Errorf("events socket closed with %v, want %d", ws.err, realtime.CloseRevoked)
	}
	if odd := strings.Join(sse.oddities(), "\n"); !strings.Contains(odd, "event: error") || !strings.Contains(odd, "credential_revoked") {
		t.Errorf("the event stream did not end with an error event naming the revocation: %s", odd)
	}
	for _, n := range []*node{a, b} {
		if status, _ := n.call(http.MethodGet, "/api/v1/agents", key, ""); status != http.StatusUnauthorized {
			t.Errorf("the revoked key on %s: %d, want 401", n.addr, status)
		}
	}
}
