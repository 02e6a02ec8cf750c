package api_test

import (
	"net/http"
	"testing"
)

// TestCrossTenantReferences: a call, a phone number or an agent that points at another
// tenant's agent, trunk or workflow is refused with 422 naming the field, exactly as one
// pointing at nothing: never a 409 or a store error, and never dialled.
func TestCrossTenantReferences(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		key := ts.tenantAdmin("acme")
		other := ts.tenantAdmin("globex")
		agent := ts.createID("/api/v1/agents", key, obj{"name": "desk"})
		theirAgent := ts.createID("/api/v1/agents", other, obj{"name": "theirs"})
		theirTrunk := ts.createID("/api/v1/trunks", other, obj{"name": "theirs", "direction": "outbound", "outbound": obj{"address": "sip.globex.example"}})
		gone := ts.createID("/api/v1/agents", key, obj{"name": "gone"})
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/agents/"+gone, key, nil), http.StatusNoContent, "delete an agent")

		for _, tt := range []struct {
			path  string
			body  obj
			field string
		}{
			{"/api/v1/calls", obj{"to": "sip:bob@pbx.example.com", "agent_id": theirAgent}, "agent_id"},
			{"/api/v1/calls", obj{"to": "sip:bob@pbx.example.com", "agent_id": gone}, "agent_id"},
			{"/api/v1/calls", obj{"to": "+14155550100", "agent_id": agent, "trunk_id": theirTrunk}, "trunk_id"},
			{"/api/v1/calls", obj{"to": "+14155550100", "destination": "echo", "trunk_id": theirTrunk}, "trunk_id"},
			{"/api/v1/phone-numbers", obj{"number": "+14155550111", "agent_id": theirAgent}, "agent_id"},
			{"/api/v1/phone-numbers", obj{"number": "+14155550112", "agent_id": agent, "trunk_id": theirTrunk}, "trunk_id"},
		} {
			r := ts.do(http.MethodPost, tt.path, key, tt.body)
			wantError(t, r, http.StatusUnprocessableEntity, "validation_error", tt.field)
		}
		if n := ts.total("/api/v1/calls", key); n != 0 {
			t.Fatalf("%d calls stored by refused requests", n)
		}
	})
}
