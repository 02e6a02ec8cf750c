package main

import (
	"context"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// TestKilledNodeRestartedUnderAnotherName kills a node in the middle of a call and starts it
// again under another name, as a container comes back with a new host name: the old name's
// heartbeat goes silent, and the new node fails both legs of the call, node-lost. A node
// stopped gracefully leaves no heartbeat behind.
func TestKilledNodeRestartedUnderAnotherName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := []string{"SWITCHBOARD_DATA_DIR=" + dir, "SWITCHBOARD_RATE_LIMIT=10000",
		"SWITCHBOARD_NODE_HEARTBEAT=100ms", "SWITCHBOARD_NODE_TIMEOUT=1s"}
	key := createKey(t, env, "--name", "calls")
	n := startServe(t, append(env, "SWITCHBOARD_NODE=host-1"))
	status, call := n.call("POST", "/api/v1/calls", key, `{"to":"sip:echo@`+n.sipAddr()+`","destination":"tone"}`)
	id, _ := call["id"].(string)
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/calls: %d %v", status, call)
	}
	n.waitCall(key, id, "in progress", func(c map[string]any) bool { return c["status"] == "in-progress" })
	_, list := n.call("GET", "/api/v1/calls?direction=inbound", key, "")
	legs := append(itemIDs(t, list), id)
	if len(legs) != 2 {
		t.Fatalf("calls %v, want the outbound call and its echo leg", legs)
	}
	n.signal(syscall.SIGKILL)
	n.waitExit(10 * time.Second)

	n = startServe(t, append(env, "SWITCHBOARD_NODE=host-2"))
	for _, leg := range legs {
		call = n.waitCall(key, leg, "failed", func(c map[string]any) bool { return c["status"] == "failed" })
		if call["ended_reason"] != "node-lost" || call["ended_at"] == nil || call["node"] != "host-1" {
			t.Errorf("call of the killed node: %v, want failed with reason node-lost", call)
		}
	}
	n.waitLogged("node lost: its heartbeat stopped; its live calls are failed (node-lost)", 5*time.Second)

	n.signal(syscall.SIGTERM)
	if code := n.waitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(dir, "switchboard.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if nodes, err := store.ListNodes(ctx, st); err != nil || len(nodes) != 0 {
		t.Errorf("heartbeats after a graceful stop: %v, %v; want none", nodes, err)
	}
}
