package api_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/sip"
	"github.com/switchboard-go/switchboard/store"
)

// TestCallsRefusedBySIP places and steers calls through a real SIP server on loopback: what
// the SIP server refuses (an inbound-only trunk, a node at its call limit, a call not yet
// answered, a call another node carries) comes back as the canonical error naming the
// request's field, word for word, and leaves nothing behind.
func TestCallsRefusedBySIP(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// The API is built before the SIP server that shares its store.
			calls := &struct{ *sip.Server }{}
			ts := newTestServerConfig(t, d, api.Config{DefaultRateLimit: 1_000_000, Calls: calls})
			srv, err := sip.New(sip.Config{Store: ts.Store, DefaultTenantID: ts.Default.ID, Node: "node-a", MaxCalls: 1})
			if err != nil {
				t.Fatal(err)
			}
			calls.Server = srv
			pc, l, err := sip.Listen(ctx, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Serve(sctx, pc, l); err != nil {
					t.Errorf("serve: %v", err)
				}
			}()
			defer wg.Wait()
			defer stop()
			select {
			case <-srv.Ready():
			case <-ctx.Done():
				t.Fatal("the SIP server did not start")
			}
			far := ringingFarEnd(t)

			key := ts.Key
			wantBody := func(r response, status int, body string) {
				t.Helper()
				if r.Status != status || strings.TrimSpace(string(r.Body)) != body {
					t.Fatalf("answer %d %s, want %d %s", r.Status, r.Body, status, body)
				}
			}
			inbound := ts.createID("/api/v1/trunks", key, obj{"name": "in only", "direction": "inbound", "inbound": obj{"allowed_cidrs": []string{"192.0.2.0/24"}}})
			wantBody(ts.do(http.MethodPost, "/api/v1/calls", key, obj{"to": "+14155550100", "destination": "echo", "trunk_id": inbound}), http.StatusUnprocessableEntity,
				`{"error":{"code":"validation_error","message":"Invalid request: trunk_id the trunk takes inbound calls only; set its direction to outbound or both","details":[{"field":"trunk_id","message":"the trunk takes inbound calls only; set its direction to outbound or both"}]}}`)
			if n := ts.total("/api/v1/calls", key); n != 0 {
				t.Fatalf("%d calls stored by a refused request", n)
			}

			r := ts.do(http.MethodPost, "/api/v1/calls", key, obj{"to": "sip:far@" + far, "destination": "echo", "timeout_seconds": 60})
			wantStatus(t, r, http.StatusCreated, "POST /api/v1/calls")
			ringing := r.JSON(t)["id"].(string)
			waitStatus(t, ts, key, ringing, store.CallRinging)
			// The node takes one call (MaxCalls): a second one is refused while the first rings.
			wantBody(ts.do(http.MethodPost, "/api/v1/calls", key, obj{"to": "sip:far@" + far, "destination": "echo"}), http.StatusConflict,
				`{"error":{"code":"conflict","message":"Conflict: to this node is at its call limit or shutting down","details":[{"field":"to","message":"this node is at its call limit or shutting down"}]}}`)
			wantBody(ts.do(http.MethodPost, "/api/v1/calls/"+ringing+"/transfer", key, obj{"to": "+14155550123"}), http.StatusConflict,
				`{"error":{"code":"conflict","message":"Conflict: id the call is not answered yet; only an answered call can be transferred","details":[{"field":"id","message":"the call is not answered yet; only an answered call can be transferred"}]}}`)
			r = ts.do(http.MethodPost, "/api/v1/calls/"+ringing+"/hangup", key, nil)
			wantStatus(t, r, http.StatusOK, "POST hangup of a ringing call")
			if c := r.JSON(t); c["ended_at"] == nil || c["ended_reason"] != store.EndedAPIHangup {
				t.Fatalf("hung-up call %v, want ended as %s", c, store.EndedAPIHangup)
			}

			// A live call of another node is that node's to steer.
			elsewhere := ts.storeCall(ts.Default.ID, func(c *store.Call) { c.Status, c.Node = store.CallInProgress, "node-b" })
			const carried = `{"error":{"code":"conflict","message":"Conflict: id the call is carried by node \"node-b\", not this one","details":[{"field":"id","message":"the call is carried by node \"node-b\", not this one"}]}}`
			wantBody(ts.do(http.MethodPost, "/api/v1/calls/"+elsewhere+"/hangup", key, nil), http.StatusConflict, carried)
			wantBody(ts.do(http.MethodPost, "/api/v1/calls/"+elsewhere+"/transfer", key, obj{"to": "+14155550123"}), http.StatusConflict, carried)
			if c := ts.get("/api/v1/calls/"+elsewhere, key); c["status"] != store.CallInProgress {
				t.Fatalf("the other node's call changed: %v", c)
			}
			if err := srv.Hangup(ctx, "ten_someone_else", elsewhere); !errors.Is(err, sip.ErrCallNotFound) {
				t.Fatalf("another tenant's call: %v, want sip.ErrCallNotFound", err)
			}
		})
	}
}

// ringingFarEnd is a SIP phone on loopback that rings (180) at every INVITE and never
// answers; it returns its address.
func ringingFarEnd(t *testing.T) string {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("far-end"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv.OnInvite(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		if err := tx.Respond(sipmsg.NewResponseFromRequest(req, 180, "Ringing", nil)); err != nil {
			return
		}
		select { // a CANCEL ends the transaction (the transaction layer answers it 200, then 487)
		case <-tx.Done():
		case <-stop:
		}
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() {
		close(stop)
		_ = ua.Close()
		_ = pc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the far end did not stop")
		}
	})
	return pc.LocalAddr().String()
}

// waitStatus waits until the call has the status.
func waitStatus(t *testing.T, ts *testServer, key, id, status string) {
	t.Helper()
	var c map[string]any
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c = ts.get("/api/v1/calls/"+id, key); c["status"] == status {
			return
		}
	}
	t.Fatalf("call %s: not %s in time: %v", id, status, c)
}
