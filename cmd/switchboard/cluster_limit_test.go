package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jackc/pgx/v5"
)

// TestClusterTenantLimit: a tenant's limit of concurrent calls, which an operator sets on the
// tenant, holds across two nodes on one PostgreSQL, whatever carries the calls: with one call
// on each node, a third is refused on either (SIP 486, a WebRTC offer 429 naming the
// limit); once one ends, a call is taken again. A tenant's own admin cannot raise it.
func TestClusterTenantLimit(t *testing.T) {
	t.Parallel()
	a, b, keys, dbURL := twoNodes(t, []string{"--name", "operator"}, []string{"--name", "beta", "--tenant", "beta"})
	key, keyBeta := keys[0], keys[1]
	freed := slotsFreed(t, dbURL)

	_, page := a.call("GET", "/api/v1/tenants", key, "")
	items, _ := page["items"].([]any)
	ids := map[string]string{}
	for _, it := range items {
		ten, _ := it.(map[string]any)
		ids[fmt.Sprint(ten["slug"])] = fmt.Sprint(ten["id"])
	}
	if status, body := a.call("PATCH", "/api/v1/tenants/"+ids["beta"], keyBeta, `{"max_calls":100}`); status != http.StatusForbidden {
		t.Errorf("a tenant's admin raising its own limit: %d %v, want 403", status, body)
	}
	if status, body := a.call("PATCH", "/api/v1/tenants/"+ids["default"], key, `{"max_calls":-1}`); status != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(body), "max_calls") {
		t.Errorf("a negative limit: %d %v, want 422 naming max_calls", status, body)
	}
	if status, body := a.call("PATCH", "/api/v1/tenants/"+ids["default"], key, `{"max_calls":2}`); status != http.StatusOK || body["max_calls"] != float64(2) {
		t.Fatalf("setting the default tenant's limit: %d %v", status, body)
	}

	caller := newSIPCaller(t)
	onA := caller.answered("sip:echo@" + a.sipAddr())
	caller.answered("sip:echo@" + b.sipAddr())
	if res, _ := caller.invite("sip:echo@" + a.sipAddr()); res.StatusCode != sip.StatusBusyHere {
		t.Errorf("a third call, on node A: %d, want 486", res.StatusCode)
	}
	if status, hdr, body := offerEcho(t, b, key); status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "limit of 2 concurrent calls") {
		t.Errorf("a third call, a browser's on node B: %d %s", status, body)
	}
	for len(freed) > 0 {
		<-freed // a place given back before the BYE (none is expected) is not this call's
	}
	if err := onA.Bye(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The place comes back as the call's teardown ends, a moment after the BYE: the next
	// call is placed once the store has it back.
	select {
	case <-freed:
	case <-time.After(clusterWait):
		t.Fatalf("the ended call's place was not given back within %v", clusterWait)
	}
	res, dlg := caller.invite("sip:echo@" + b.sipAddr())
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("a call once one ended: %d %s", res.StatusCode, res.Reason)
	}
	_ = dlg.Bye(t.Context())
}

// slotsFreed has a token for each place of a call given back (a row of call_slots deleted),
// from a trigger the test adds to its own database (the nodes have migrated it).
func slotsFreed(t *testing.T, dbURL string) <-chan struct{} {
	t.Helper()
	freed := make(chan struct{}, 64)
	pgNotifications(t, dbURL, []string{
		`CREATE FUNCTION test_slot_freed() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN PERFORM pg_notify('test_slot_freed', OLD.id); RETURN OLD; END $$`,
		`CREATE TRIGGER test_slot_freed AFTER DELETE ON call_slots FOR EACH ROW EXECUTE FUNCTION test_slot_freed()`,
	}, "test_slot_freed", func() {
		select {
		case freed <- struct{}{}:
		default:
		}
	})
	return freed
}

// pgNotifications runs the statements (the test's own triggers) on a connection of its own,
// listens on channel, and calls notified for each notification until the test ends.
func pgNotifications(t *testing.T, dbURL string, setup []string, channel string, notified func()) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append(setup, "LISTEN "+channel) {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			_ = conn.Close(context.Background())
			t.Fatalf("listening on %s: %v", channel, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			notified()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = conn.Close(context.Background())
	})
}
