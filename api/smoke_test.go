package api_test

import (
	"net/http"
	"testing"
)

func TestAgentCreateListGet(t *testing.T) {
	eachDialect(t, func(t *testing.T, ts *testServer) {
		r := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, map[string]any{"name": "Front desk", "first_message": "Hello!"})
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id := r.JSON(t)["id"].(string)
		r = ts.do(http.MethodGet, "/api/v1/agents/"+id, ts.Key, nil)
		if r.Status != http.StatusOK || r.JSON(t)["first_message"] != "Hello!" {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, `{"name":"x","voice":{"speed":9}}`), 422, "validation_error", "voice.speed")
	})
}
