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

// TestTrunkSRTP: a trunk's srtp is off unless set; it takes off, offer or required, and a
// trunk that places calls with SRTP must place them over TLS (its keys travel in the
// SDP). A refused create writes nothing, a refused change changes nothing.
func TestTrunkSRTP(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		admin := ts.tenantAdmin("acme")
		plain := ts.do(http.MethodPost, "/api/v1/trunks", admin, obj{"name": "pbx", "inbound": obj{"allowed_cidrs": arr{"10.0.0.0/8"}}})
		wantStatus(t, plain, http.StatusCreated, "trunk without srtp")
		if got := plain.JSON(t)["srtp"]; got != "off" {
			t.Fatalf("srtp %v, want off", got)
		}
		for _, body := range []obj{
			{"name": "a", "srtp": "maybe", "inbound": obj{"allowed_cidrs": arr{"10.0.0.0/8"}}},
			{"name": "b", "direction": "outbound", "srtp": "required", "outbound": obj{"address": "carrier.example:5061", "transport": "udp"}},
			{"name": "c", "direction": "both", "srtp": "offer", "inbound": obj{"allowed_cidrs": arr{"10.0.0.0/8"}}, "outbound": obj{"address": "carrier.example"}},
		} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/trunks", admin, body), http.StatusUnprocessableEntity, "validation_error", "srtp")
		}
		if n := ts.total("/api/v1/trunks", admin); n != 1 {
			t.Fatalf("refused creates left %d trunks, want 1", n)
		}
		r := ts.do(http.MethodPost, "/api/v1/trunks", admin, obj{"name": "carrier", "direction": "both", "srtp": "required",
			"inbound": obj{"allowed_cidrs": arr{"10.0.0.0/8"}}, "outbound": obj{"address": "carrier.example:5061", "transport": "tls"}})
		wantStatus(t, r, http.StatusCreated, "trunk requiring srtp over tls")
		item := "/api/v1/trunks/" + r.JSON(t)["id"].(string)
		wantError(t, ts.do(http.MethodPatch, item, admin, obj{"outbound": obj{"address": "carrier.example", "transport": "udp"}}), http.StatusUnprocessableEntity, "validation_error", "srtp")
		if got := ts.do(http.MethodGet, item, admin, nil).JSON(t); got["srtp"] != "required" || got["outbound"].(map[string]any)["transport"] != "tls" {
			t.Fatalf("a refused change changed the trunk: %v", got)
		}
	})
}
