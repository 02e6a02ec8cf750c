package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/store"
)

// maxBody is the body limit of the canonical surface (1 MiB).
const maxBody = 1 << 20

// jsonOfSize is a valid agent body of exactly n bytes (padded with whitespace, so that only
// its size can be wrong with it).
func jsonOfSize(n int) string {
	const head, tail = `{"name":"big",`, `"first_message":"Hello!"}`
	return head + strings.Repeat(" ", n-len(head)-len(tail)) + tail
}

// TestBadRequests sends bodies, headers and credentials that must each be refused with their
// own status and code, and checks after every one that nothing was written.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		readOnly := ts.newKey("default", "reader", 0, "read")
		wrongKey := "as_live_" + strings.Repeat("x", 40)
		agent := ts.create("/api/v1/agents", ts.Key, map[string]any{"name": "Front desk", "temperature": 0.5})
		item := "/api/v1/agents/" + agent["id"].(string)

		cases := []struct {
			name   string
			method string
			path   string
			body   any
			h      http.Header
			status int
			code   string
			field  string
		}{
			{"malformed JSON", "POST", "", `{"name":`, nil, 422, "validation_error", "body"},
			{"trailing comma", "POST", "", `{"name":"x",}`, nil, 422, "validation_error", "body"},
			{"not an object", "POST", "", `["name"]`, nil, 422, "validation_error", "body"},
			{"null", "POST", "", `null`, nil, 422, "validation_error", "body"},
			{"empty body", "POST", "", ``, nil, 422, "validation_error", "body"},
			{"two objects", "POST", "", `{"name":"x"}{"name":"y"}`, nil, 422, "validation_error", "body"},
			{"trailing garbage", "POST", "", `{"name":"x"} nonsense`, nil, 422, "validation_error", "body"},
			{"unknown field", "POST", "", `{"name":"x","colour":"red"}`, nil, 422, "validation_error", "colour"},
			{"wrong type: temperature", "POST", "", `{"name":"x","temperature":"hot"}`, nil, 422, "validation_error", "temperature"},
			{"wrong type: name", "POST", "", `{"name":42}`, nil, 422, "validation_error", "name"},
			{"wrong type: nested", "POST", "", `{"name":"x","voice":{"speed":"fast"}}`, nil, 422, "validation_error", "voice.speed"},
			{"wrong type: list", "POST", "", `{"name":"x","tool_ids":"tool_x"}`, nil, 422, "validation_error", "tool_ids"},
			{"wrong type: object", "POST", "", `{"name":"x","voice":"espeak"}`, nil, 422, "validation_error", "voice"},
			{"NUL in a string", "POST", "", `{"name":"a\u0000b"}`, nil, 422, "validation_error", "name"},
			{"NUL in a nested string", "POST", "", `{"name":"x","voice":{"provider":"es\u0000peak"}}`, nil, 422, "validation_error", "voice.provider"},
			{"NUL in an array", "POST", "", `{"name":"x","knowledge_base_ids":["kb","\u0000"]}`, nil, 422, "validation_error", "knowledge_base_ids[1]"},
			{"NUL in a metadata key", "POST", "", `{"name":"x","metadata":{"a\u0000":1}}`, nil, 422, "validation_error", "metadata.a\x00"},
			{"body over 1 MiB", "POST", "", jsonOfSize(maxBody + 1), nil, 413, "payload_too_large", ""},
			{"text/plain", "POST", "", `{"name":"x"}`, hdr("Content-Type", "text/plain"), 415, "unsupported_media_type", ""},
			{"form", "POST", "", `name=x`, hdr("Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", ""},
			{"bad media type", "POST", "", `{"name":"x"}`, hdr("Content-Type", "json;;"), 415, "unsupported_media_type", ""},
			{"no key", "POST", "", `{"name":"x"}`, http.Header{}, 401, "authentication_error", ""},
			{"wrong key", "POST", "", `{"name":"x"}`, hdr("X-API-Key", wrongKey), 401, "authentication_error", ""},
			{"not a key", "POST", "", `{"name":"x"}`, hdr("X-API-Key", "hunter2"), 401, "authentication_error", ""},
			{"wrong bearer", "POST", "", `{"name":"x"}`, bearer(wrongKey), 401, "authentication_error", ""},
			{"forged token", "POST", "", `{"name":"x"}`, bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), 401, "authentication_error", ""},
			{"basic auth", "POST", "", `{"name":"x"}`, hdr("Authorization", "Basic "+ts.Key), 401, "authentication_error", ""},
			{"read-only key", "POST", "", `{"name":"x"}`, hdr("X-API-Key", readOnly), 403, "authorization_error", ""},
			{"read-only key deletes", "DELETE", item, nil, hdr("X-API-Key", readOnly), 403, "authorization_error", ""},
			{"PATCH malformed", "PATCH", item, `{"temperature":`, nil, 422, "validation_error", "body"},
			{"PATCH unknown field", "PATCH", item, `{"temprature":1}`, nil, 422, "validation_error", "temprature"},
			{"PATCH wrong type", "PATCH", item, `{"temperature":"hot"}`, nil, 422, "validation_error", "temperature"},
			{"PATCH over 1 MiB", "PATCH", item, jsonOfSize(maxBody + 1), nil, 413, "payload_too_large", ""},
			{"PATCH text/plain", "PATCH", item, `{"name":"x"}`, hdr("Content-Type", "text/plain"), 415, "unsupported_media_type", ""},
			{"PATCH read-only", "PATCH", item, `{"name":"x"}`, hdr("X-API-Key", readOnly), 403, "authorization_error", ""},
			{"PATCH no key", "PATCH", item, `{"name":"x"}`, http.Header{}, 401, "authentication_error", ""},
		}
		for _, c := range cases {
			path := c.path
			if path == "" {
				path = "/api/v1/agents"
			}
			// The operator's key goes with every request that is not about credentials.
			h := c.h.Clone()
			if h == nil {
				h = http.Header{}
			}
			if h.Get("X-API-Key") == "" && h.Get("Authorization") == "" && c.status != http.StatusUnauthorized {
				h.Set("X-API-Key", ts.Key)
			}
			r := ts.request(c.method, path, c.body, h)
			if r.Status != c.status {
				t.Fatalf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r.Body)
			}
			wantJSONError(t, r, c.status, c.code)
			if c.field != "" {
				wantError(t, r, c.status, c.code, c.field)
			}
			if c.status == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s: 401 without WWW-Authenticate: %v", c.name, r.Header)
			}
			// Nothing was written: one agent, unchanged.
			p := ts.list("/api/v1/agents", ts.Key)
			if *p.Total != 1 {
				t.Fatalf("%s: %d agents after a refused request, want 1", c.name, *p.Total)
			}
			if now := ts.get(item, ts.Key); now["name"] != "Front desk" || now["temperature"] != 0.5 || now["updated_at"] != agent["updated_at"] {
				t.Fatalf("%s: the agent changed: %v", c.name, now)
			}
		}

		// The text \u0000 (an escaped backslash before "u0000") cannot be stored faithfully in a
		// JSON column (see decodeInto): it is refused, never a 500 or a changed value.
		wantError(t, ts.do(http.MethodPatch, item, ts.Key, `{"metadata":{"note":"C:\\u0000"}}`), 422, "validation_error", "metadata.note")
		wantError(t, ts.do(http.MethodPatch, item, ts.Key, `{"metadata":{"note":"C:\\\u00750000"}}`), 422, "validation_error", "metadata.note")
		if now := ts.get(item, ts.Key); now["updated_at"] != agent["updated_at"] {
			t.Fatalf("refused PATCH changed the agent: %v", now)
		}
		// A backslash elsewhere is text like any other.
		r0 := ts.do(http.MethodPatch, item, ts.Key, `{"metadata":{"note":"C:\\temp \\u00e9"}}`)
		wantStatus(t, r0, http.StatusOK, "backslashes")
		if got := ts.get(item, ts.Key)["metadata"].(map[string]any)["note"]; got != `C:\temp \u00e9` {
			t.Fatalf("metadata note %q", got)
		}
		// Sign-in looks the email up: a NUL there is a 422 too, not a failed query.
		wantError(t, ts.do(http.MethodPost, "/api/v1/auth/login", "", `{"email":"a\u0000@example.com","password":"x"}`), 422, "validation_error", "email")

		// An unknown field inside an object is refused too, and named.
		r := ts.do(http.MethodPost, "/api/v1/agents", ts.Key, `{"name":"x","voice":{"provider":"espeak","colour":"red"}}`)
		wantJSONError(t, r, http.StatusUnprocessableEntity, "validation_error")
		if _, fields := errorDetails(t, r); len(fields) != 1 || !strings.HasSuffix(fields[0], "colour") {
			t.Fatalf("nested unknown field named as %v", fields)
		}
		if n := ts.total("/api/v1/agents", ts.Key); n != 1 {
			t.Fatalf("nested unknown field wrote an agent: %d", n)
		}

		// The same bodies just under the limit and with a JSON media type of another form are
		// accepted.
		for _, ct := range []string{"application/json; charset=utf-8", "application/merge-patch+json", ""} {
			h := hdr("X-API-Key", ts.Key)
			if ct != "" {
				h.Set("Content-Type", ct)
			}
			r := ts.request(http.MethodPatch, item, `{"first_message":"Hi"}`, h)
			wantStatus(t, r, http.StatusOK, "PATCH with Content-Type "+ct)
		}
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, jsonOfSize(maxBody-100)), http.StatusCreated, "body just under 1 MiB")
	})
}

// TestRoutingErrors: an unknown route is a 404 and a known path with the wrong method a 405
// with Allow, both in the error shape and before any credential is asked for.
func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v1/nothing"},
			{"GET", "/api/v2/agents"},
			{"GET", "/nothing"},
			{"GET", "/api/v1/agents/agt_x/extra"},
			{"POST", "/api/v1"},
			{"DELETE", "/api/v1/"},
		} {
			for _, key := range []string{"", ts.Key} {
				r := ts.do(c.method, c.path, key, nil)
				wantJSONError(t, r, http.StatusNotFound, "not_found")
				if !strings.Contains(string(r.Body), "No such route") {
					t.Fatalf("%s %s: %s", c.method, c.path, r.Body)
				}
			}
		}
		for _, c := range []struct{ method, path, allow string }{
			{"PUT", "/api/v1/agents", "GET, HEAD, POST"},
			{"DELETE", "/api/v1/agents", "GET, HEAD, POST"},
			{"POST", "/api/v1/agents/agt_01jdq3aaaaaaaaaaaaaaaaaaaa", "DELETE, GET, HEAD, PATCH"},
			{"PUT", "/api/v1/tenants/ten_x", "DELETE, GET, HEAD, PATCH"},
			{"POST", "/health", "GET, HEAD"},
			{"DELETE", "/openapi.json", "GET, HEAD"},
			{"GET", "/api/v1/auth/login", "POST"},
		} {
			for _, key := range []string{"", ts.Key} {
				r := ts.do(c.method, c.path, key, nil)
				wantJSONError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
				if got := r.Header.Get("Allow"); got != c.allow {
					t.Fatalf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
				}
			}
		}
		// HEAD is served wherever GET is.
		r := ts.do(http.MethodHead, "/health", "", nil)
		if r.Status != http.StatusOK || len(r.Body) != 0 {
			t.Fatalf("HEAD /health: %d %q", r.Status, r.Body)
		}
	})
}

// TestConflicts: a taken unique value and a row others need are 409 conflicts, and nothing
// changes.
func TestConflicts(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		other := ts.tenantAdmin("other")
		tool := ts.createID("/api/v1/tools", ts.Key, obj{"name": "lookup", "webhook": obj{"url": "https://example.com/x"}})
		wf := ts.createID("/api/v1/workflows", ts.Key, obj{"name": "menu", "graph": validGraph()})
		agent := ts.createID("/api/v1/agents", ts.Key, obj{"name": "a", "tool_ids": arr{tool}, "workflow_id": wf})
		trunk := ts.createID("/api/v1/trunks", ts.Key, obj{"name": "carrier", "inbound": obj{"allowed_cidrs": arr{"203.0.113.0/24"}}})
		ts.createID("/api/v1/phone-numbers", ts.Key, obj{"number": "+14155550100", "agent_id": agent, "trunk_id": trunk})
		ts.createID("/api/v1/users", ts.Key, obj{"email": "ops@example.com", "password": "correct horse battery"})

		conflict := func(what string, r response, field string) {
			t.Helper()
			if r.Status != http.StatusConflict {
				t.Fatalf("%s: status %d, want 409: %s", what, r.Status, r.Body)
			}
			wantError(t, r, http.StatusConflict, "conflict", field)
		}
		counts := func() map[string]int {
			out := map[string]int{}
			for _, p := range []string{"tools", "workflows", "agents", "trunks", "phone-numbers", "users"} {
				out[p] = ts.total("/api/v1/"+p, ts.Key)
			}
			return out
		}
		before := counts()

		conflict("duplicate number", ts.do(http.MethodPost, "/api/v1/phone-numbers", ts.Key, obj{"number": "+14155550100", "destination": "echo"}), "number")
		conflict("number of another tenant", ts.do(http.MethodPost, "/api/v1/phone-numbers", other, obj{"number": "+14155550100", "destination": "echo"}), "number")
		conflict("duplicate email", ts.do(http.MethodPost, "/api/v1/users", ts.Key, obj{"email": "OPS@example.com", "password": "another password"}), "email")
		conflict("duplicate tool name", ts.do(http.MethodPost, "/api/v1/tools", ts.Key, obj{"name": "lookup", "webhook": obj{"url": "https://example.com/y"}}), "name")
		conflict("tool used by an agent", ts.do(http.MethodDelete, "/api/v1/tools/"+tool, ts.Key, nil), "id")
		conflict("workflow used by an agent", ts.do(http.MethodDelete, "/api/v1/workflows/"+wf, ts.Key, nil), "id")
		conflict("agent answering a number", ts.do(http.MethodDelete, "/api/v1/agents/"+agent, ts.Key, nil), "id")
		conflict("trunk carrying a number", ts.do(http.MethodDelete, "/api/v1/trunks/"+trunk, ts.Key, nil), "id")
		conflict("duplicate tenant slug", ts.do(http.MethodPost, "/api/v1/tenants", ts.Key, obj{"slug": "other"}), "slug")
		conflict("default tenant", ts.do(http.MethodDelete, "/api/v1/tenants/"+ts.Default.ID, ts.Key, nil), "id")

		if after := counts(); len(after) != len(before) || after["tools"] != before["tools"] || after["workflows"] != before["workflows"] ||
			after["agents"] != before["agents"] || after["trunks"] != before["trunks"] || after["phone-numbers"] != before["phone-numbers"] || after["users"] != before["users"] {
			t.Fatalf("conflicts changed rows: %v -> %v", before, after)
		}
		if n := ts.total("/api/v1/phone-numbers", other); n != 0 {
			t.Fatalf("the other tenant has %d numbers", n)
		}
		for _, p := range []string{"tools/" + tool, "workflows/" + wf, "agents/" + agent, "trunks/" + trunk, "tenants/" + ts.Default.ID} {
			ts.get("/api/v1/"+p, ts.Key)
		}
		// Once the agent lets go of the tool, it may be deleted.
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/agents/"+agent, ts.Key, obj{"tool_ids": arr{}}), http.StatusOK, "drop tool")
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/tools/"+tool, ts.Key, nil), http.StatusNoContent, "delete tool")
	})
}

// Field names are matched exactly: a key that differs only in case is an unknown field, not
// a way around validation, and nothing is written.
func TestMiscasedFieldsAreUnknown(t *testing.T) {
	ts := newTestServer(t, store.SQLite)
	wantError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, `{"NAME":"x"}`), 422, "validation_error", "NAME")
	wantError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, `{"name":"x","voice":{"Speed":1}}`), 422, "validation_error", "voice.Speed")
	wantError(t, ts.do(http.MethodPost, "/api/v1/workflows", ts.Key,
		`{"name":"w","graph":{"start":"a","nodes":[{"id":"a","type":"say","Text":"hi"}],"edges":[]}}`), 422, "validation_error", "graph.nodes[0].Text")
	if r := ts.do(http.MethodGet, "/api/v1/agents", ts.Key, nil); r.JSON(t)["total"] != float64(0) {
		t.Fatalf("a refused agent was written: %s", r.Body)
	}
}
