package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestClusterTenantLimit: a tenant's limit of concurrent calls, which an operator sets on the
// tenant, holds across two nodes on one PostgreSQL, whatever carries the calls: with one call
// on each node, a third is refused on either (SIP 486, a WebRTC offer 429 naming the
// limit); once one ends, a call is taken again. A tenant's own admin cannot raise it.
func TestClusterTenantLimit(t *testing.T) {
	t.Parallel()
	a, b, keys, _ := twoNodes(t, []string{"--name", "operator"}, []string{"--name", "beta", "--tenant", "beta"})
	key, keyBeta := keys[0], keys[1]

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
	if err := onA.Bye(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The place comes back as the call's teardown ends: the next call may come a moment later.
	waitTaken(t, caller, "sip:echo@"+b.sipAddr())
}

// waitTaken places calls to target until one is answered, the place of a call that just
// ended being given back as its teardown finishes.
func waitTaken(t *testing.T, caller *sipCaller, target string) {
	t.Helper()
	for i := 0; ; i++ {
		res, dlg := caller.invite(target)
		if res.StatusCode == sip.StatusOK {
			_ = dlg.Bye(t.Context())
			return
		}
		if res.StatusCode != sip.StatusBusyHere || i == 50 {
			t.Fatalf("a call once one ended: %d %s", res.StatusCode, res.Reason)
		}
	}
}
