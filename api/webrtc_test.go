package api_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// TestWebRTCRoutesWithoutWebRTC: on a node without WebRTC the routes still validate, say
// that WebRTC is off only for a valid offer, and know no session. The routes with a node's
// WebRTC are tested end to end in cmd/switchboard (webrtc_test.go).
func TestWebRTCRoutesWithoutWebRTC(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, store.SQLite)
	wantError(t, ts.do(http.MethodPost, "/api/v1/webrtc/sessions", ts.Key, obj{"agent_id": "agt_x"}), http.StatusUnprocessableEntity, "validation_error", "sdp")
	wantError(t, ts.do(http.MethodPost, "/api/v1/webrtc/sessions", ts.Key, obj{"sdp": "v=0"}), http.StatusUnprocessableEntity, "validation_error", "agent_id")
	wantError(t, ts.do(http.MethodPost, "/api/v1/webrtc/sessions", ts.Key, obj{"sdp": "v=0", "agent_id": "agt_x", "destination": "echo"}), http.StatusUnprocessableEntity, "validation_error", "destination")
	wantError(t, ts.do(http.MethodPost, "/api/v1/webrtc/sessions", ts.Key, obj{"sdp": "v=0", "destination": "echo"}), http.StatusServiceUnavailable, "service_unavailable", "")
	wantError(t, ts.do(http.MethodPost, "/api/v1/webrtc/sessions", "", obj{"sdp": "v=0", "destination": "echo"}), http.StatusUnauthorized, "authentication_error", "")
	wantError(t, ts.do(http.MethodPatch, "/api/v1/webrtc/sessions/call_x", ts.Key, "a=end-of-candidates"), http.StatusNotFound, "not_found", "")
	wantError(t, ts.do(http.MethodDelete, "/api/v1/webrtc/sessions/call_x", ts.Key, nil), http.StatusNotFound, "not_found", "")
	r := ts.do(http.MethodGet, "/api/v1/webrtc/config?token="+ts.Key, "", nil)
	if r.Status != http.StatusOK || r.JSON(t)["ice_servers"] == nil {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
}
