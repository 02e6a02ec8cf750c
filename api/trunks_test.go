package api_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// TestTrunksNeedAdmin: a trunk decides who may call a tenant's numbers, so creating,
// changing and deleting one takes a key with the admin scope (a write-only key is 403 and
// changes nothing), while read keys still read them; another tenant's admin finds none of
// them (404) and changes nothing.
func TestTrunksNeedAdmin(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		admin := ts.tenantAdmin("acme")
		writer := ts.newKey("acme", "writer", 0, store.ScopeWrite)
		readWrite := ts.newKey("acme", "app", 0, store.ScopeRead, store.ScopeWrite)
		reader := ts.newKey("acme", "reader", 0, store.ScopeRead)
		body := obj{"name": "carrier", "inbound": obj{"allowed_cidrs": arr{"127.0.0.0/8"}}}

		for _, key := range []string{writer, readWrite, reader} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/trunks", key, body), http.StatusForbidden, "authorization_error", "")
		}
		if n := ts.total("/api/v1/trunks", admin); n != 0 {
			t.Fatalf("refused creates wrote %d trunks", n)
		}
		id := ts.createID("/api/v1/trunks", admin, body)
		item := "/api/v1/trunks/" + id
		before := string(ts.do(http.MethodGet, item, admin, nil).Body)
		for _, key := range []string{writer, readWrite} {
			wantError(t, ts.do(http.MethodPatch, item, key, obj{"inbound": obj{"allowed_cidrs": arr{"0.0.0.0/0"}}}), http.StatusForbidden, "authorization_error", "")
			wantError(t, ts.do(http.MethodDelete, item, key, nil), http.StatusForbidden, "authorization_error", "")
		}
		wantStatus(t, ts.do(http.MethodGet, item, reader, nil), http.StatusOK, "read key reads a trunk")
		if ids := ts.allIDs("/api/v1/trunks", reader); !slices.Equal(ids, []string{id}) {
			t.Fatalf("read key lists %v, want [%s]", ids, id)
		}

		// Another tenant's admin: 404 for every verb, and nothing of acme's in its list.
		other := ts.tenantAdmin("globex")
		wantError(t, ts.do(http.MethodGet, item, other, nil), http.StatusNotFound, "not_found", "")
		wantError(t, ts.do(http.MethodPatch, item, other, obj{"inbound": obj{"allowed_cidrs": arr{"0.0.0.0/0"}}}), http.StatusNotFound, "not_found", "")
		wantError(t, ts.do(http.MethodDelete, item, other, nil), http.StatusNotFound, "not_found", "")
		if ids := ts.allIDs("/api/v1/trunks", other); len(ids) != 0 {
			t.Fatalf("globex lists acme's trunks: %v", ids)
		}
		if after := string(ts.do(http.MethodGet, item, admin, nil).Body); after != before {
			t.Fatalf("refused requests changed the trunk:\n%s\n%s", before, after)
		}
		wantStatus(t, ts.do(http.MethodPatch, item, admin, obj{"name": "carrier 2"}), http.StatusOK, "admin PATCH")
		wantStatus(t, ts.do(http.MethodDelete, item, admin, nil), http.StatusNoContent, "admin DELETE")
	})
}

// TestPhoneNumberTakenOnNode: a number belongs to one tenant on the whole node, however it is
// spelt, since the number alone decides which tenant an inbound call reaches.
func TestPhoneNumberTakenOnNode(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		a, b := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		ts.createID("/api/v1/phone-numbers", a, obj{"number": "+14155550100", "destination": "echo"})
		ts.createID("/api/v1/phone-numbers", a, obj{"number": "Support", "destination": "echo"})
		for _, n := range []string{"+14155550100", "14155550100", "support"} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/phone-numbers", b, obj{"number": n, "destination": "tone"}), http.StatusConflict, "conflict", "number")
		}
		if n := ts.total("/api/v1/phone-numbers", b); n != 0 {
			t.Fatalf("refused numbers were written: %d", n)
		}
	})
}
