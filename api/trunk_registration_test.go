package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// TestTrunkRegistrationStatus: a trunk that registers shows its registration, pending until
// a node takes it up, then as the registering node stored it, in get, list and update; a
// trunk that does not register shows none; another tenant's trunk stays a 404; a trunk
// that cannot register is refused naming the field. Nodes sharing the database register a
// trunk once: a second node cannot take the lease while the first renews it, takes it once
// it lapses, and a released one at once.
func TestTrunkRegistrationStatus(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		ctx := context.Background()
		key := ts.tenantAdmin("acme")
		other := ts.tenantAdmin("globex")
		body := obj{"name": "provider", "direction": "both",
			"outbound": obj{"address": "sip.provider.example", "username": "acct", "password": "pw", "register": true, "register_expires": 600}}
		created := ts.create("/api/v1/trunks", key, body)
		id := created["id"].(string)
		reg, _ := created["registration"].(map[string]any)
		if reg == nil || reg["status"] != "pending" {
			t.Fatalf("created trunk's registration %v, want pending", created["registration"])
		}
		plain := ts.create("/api/v1/trunks", key, obj{"name": "plain", "direction": "outbound", "outbound": obj{"address": "pbx.example"}})
		if _, ok := plain["registration"]; ok {
			t.Errorf("a trunk that does not register shows a registration: %v", plain["registration"])
		}

		tr, err := store.Get[store.Trunk](ctx, ts.Store, ts.tenantID(key), id)
		if err != nil {
			t.Fatal(err)
		}
		regging, err := store.RegisteringTrunks(ctx, ts.Store)
		if err != nil || len(regging) != 1 || regging[0].ID != id {
			t.Fatalf("registering trunks %v (%v), want the one trunk that registers", regging, err)
		}
		held, err := store.ClaimTrunkRegistration(ctx, ts.Store, tr, "node-a", time.Hour)
		if err != nil || !held {
			t.Fatalf("node-a claims a free trunk: %v, %v", held, err)
		}
		if held, _ := store.ClaimTrunkRegistration(ctx, ts.Store, tr, "node-b", time.Hour); held {
			t.Fatal("node-b took a trunk node-a holds")
		}
		exp := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
		if err := store.SetTrunkRegistration(ctx, ts.Store, id, "node-a", store.RegistrationRegistered, "", &exp); err != nil {
			t.Fatal(err)
		}
		// node-b is not the holder: what it says is not stored.
		if err := store.SetTrunkRegistration(ctx, ts.Store, id, "node-b", store.RegistrationFailed, "not mine", nil); err != nil {
			t.Fatal(err)
		}
		got := ts.get("/api/v1/trunks/"+id, key)["registration"].(map[string]any)
		if got["status"] != "registered" || got["node"] != "node-a" || got["expires_at"] == nil {
			t.Errorf("registration %v, want registered by node-a with its expiry", got)
		}
		for _, it := range ts.list("/api/v1/trunks", key).Items {
			if it["id"] == id && it["registration"].(map[string]any)["status"] != "registered" {
				t.Errorf("listed registration %v, want registered", it["registration"])
			}
		}
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/trunks/"+id, other, nil), http.StatusNotFound, "another tenant's trunk")

		// A registration sent by a client is not taken: what is shown is the node's.
		r := ts.do(http.MethodPatch, "/api/v1/trunks/"+id, key, obj{"registration": obj{"status": "failed"}, "name": "provider 2"})
		wantStatus(t, r, http.StatusOK, "update")
		if got := ts.get("/api/v1/trunks/"+id, key)["registration"].(map[string]any); got["status"] != "registered" {
			t.Errorf("registration after a client's PATCH %v, want the node's", got)
		}

		// A lapsed lease goes to the next node; a released one at once.
		if held, _ := store.ClaimTrunkRegistration(ctx, ts.Store, tr, "node-a", -time.Second); !held {
			t.Fatal("node-a could not renew its lease")
		}
		if held, _ := store.ClaimTrunkRegistration(ctx, ts.Store, tr, "node-b", time.Hour); !held {
			t.Fatal("node-b could not take a lapsed lease")
		}
		if err := store.ReleaseTrunkRegistration(ctx, ts.Store, id, "node-b", "node-b stopped"); err != nil {
			t.Fatal(err)
		}
		if got := ts.get("/api/v1/trunks/"+id, key)["registration"].(map[string]any); got["status"] != "pending" || got["reason"] != "node-b stopped" {
			t.Errorf("released registration %v, want pending with the reason", got)
		}
		if held, _ := store.ClaimTrunkRegistration(ctx, ts.Store, tr, "node-a", time.Hour); !held {
			t.Fatal("node-a could not take a released lease")
		}
		// Deleting the trunk deletes its registration.
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/trunks/"+id, key, nil), http.StatusNoContent, "delete")
		if regs, err := store.TrunkRegistrations(ctx, ts.Store, tr.TenantID, []string{id}); err != nil || len(regs) != 0 {
			t.Errorf("registration of a deleted trunk: %v, %v", regs, err)
		}

		for _, tt := range []struct {
			outbound obj
			field    string
		}{
			{obj{"address": "sip.provider.example", "username": "acct", "register": true}, "outbound.register"},
			{obj{"address": "sip.provider.example", "username": "acct", "password": "pw", "register": true, "registrar": "a b"}, "outbound.registrar"},
			{obj{"address": "sip.provider.example", "username": "acct", "password": "pw", "register": true, "register_expires": 5}, "outbound.register_expires"},
		} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/trunks", key, obj{"name": "bad", "direction": "outbound", "outbound": tt.outbound}),
				http.StatusUnprocessableEntity, "validation_error", tt.field)
		}
	})
}
