package main

import (
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/pgtest"
)

// TestClusterCallControl: two nodes on one PostgreSQL, each call carried by node B and
// steered through node A, as a load balancer in front of the API would have it: A's hang-up
// ends B's SIP call (the caller gets its BYE, the record says api-hangup); a browser's DELETE
// reaching A ends its call on B as the caller's hang-up; and what B refuses (a browser's call
// is not transferred) comes back through A word for word.
func TestClusterCallControl(t *testing.T) {
	t.Parallel()
	a, b, keys, dbURL := twoNodes(t, []string{"--name", "cluster"})
	key := keys[0]
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	records := watchRecords(t, db, dbURL)

	held := newSIPCaller(t).answered("sip:echo@" + b.sipAddr())
	id := waitRecord(t, records, held.InviteRequest.CallID().Value(), "in progress on node B",
		func(r callRecord) bool { return r.node == "node-b" && r.status == "in-progress" }).id
	status, rec := a.call("POST", "/api/v1/calls/"+id+"/hangup", key, "")
	if status != http.StatusOK || rec["status"] != "completed" || rec["ended_reason"] != "api-hangup" || rec["node"] != "node-b" {
		t.Fatalf("hang-up through node A of node B's call: %d %v", status, rec)
	}
	select {
	case <-held.Context().Done():
	case <-time.After(clusterWait):
		t.Fatal("the caller got no BYE from node B")
	}

	web := dialBrowser(t, b, key, `{"destination":"echo"}`)
	web.connect()
	if status, _, body := a.raw("DELETE", "/api/v1/webrtc/sessions/"+web.id, key, "", nil); status != http.StatusNoContent {
		t.Fatalf("a browser's DELETE through node A: %d %s", status, body)
	}
	if c := a.waitCall(key, web.id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil }); c["ended_reason"] != "caller-hangup" {
		t.Errorf("the browser's call ended %v, want caller-hangup", c["ended_reason"])
	}
	if status, _, _ := a.raw("DELETE", "/api/v1/webrtc/sessions/"+web.id, key, "", nil); status != http.StatusNotFound {
		t.Errorf("a second DELETE of the ended call: %d, want 404", status)
	}

	other := dialBrowser(t, b, key, `{"destination":"echo"}`)
	other.connect()
	status, body := a.call("POST", "/api/v1/calls/"+other.id+"/transfer", key, `{"to":"+14155550100"}`)
	if status != http.StatusConflict {
		t.Errorf("transfer through node A of a browser's call on B: %d %v, want 409", status, body)
	}
	// B itself answers the same.
	onB, bodyB := b.call("POST", "/api/v1/calls/"+other.id+"/transfer", key, `{"to":"+14155550100"}`)
	if onB != status || errorMessage(body) == "" || errorMessage(body) != errorMessage(bodyB) {
		t.Errorf("through A: %d %v; on B: %d %v; want the same answer", status, body, onB, bodyB)
	}
}

// twoNodes starts node-a and node-b on one PostgreSQL, one after the other (so that one of
// them migrates the database), after making a key with each of keyArgs (createKey's
// arguments) in it; it returns the nodes, the keys and the database's URL.
func twoNodes(t *testing.T, keyArgs ...[]string) (a, b *node, keys []string, dbURL string) {
	t.Helper()
	dbURL = pgtest.URL(t)
	env := func(name string) []string {
		return []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + dbURL, "SWITCHBOARD_SECRET=" + testSecret,
			"SWITCHBOARD_RATE_LIMIT=100000", "SWITCHBOARD_NODE=" + name}
	}
	envA, envB := env("node-a"), env("node-b")
	for _, args := range keyArgs {
		keys = append(keys, createKey(t, envA, args...))
	}
	return startServe(t, envA), startServe(t, envB), keys, dbURL
}

// errorMessage is the message of a canonical error body.
func errorMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}
