package api_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

func ptr(s string) *string { return &s }

// storeCall writes a call of the tenant as the SIP server would (calls are not created over
// REST without telephony): an outbound call to the echo over SIP, queued, changed by edit.
func (ts *testServer) storeCall(tenantID string, edit func(c *store.Call)) string {
	ts.t.Helper()
	c := store.NewOutboundCall()
	c.To, c.Destination, c.Node = "sip:echo@127.0.0.1", "echo", "node-test"
	if edit != nil {
		edit(c)
	}
	if err := store.Create(context.Background(), ts.Store, tenantID, c); err != nil {
		ts.t.Fatal(err)
	}
	return c.ID
}

// tenantID is the tenant of a key.
func (ts *testServer) tenantID(key string) string {
	ts.t.Helper()
	return ts.get("/api/v1/auth/me", key)["tenant_id"].(string)
}

// TestCallsList: the tenant's calls, newest first, paged and filtered, with malformed filters
// refused by name; another tenant's calls are neither listed nor found.
func TestCallsList(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		reader := ts.newKey("acme", "reader", 0, store.ScopeRead)
		tenantA, tenantB := ts.tenantID(keyA), ts.tenantID(keyB)
		agent := ts.createID("/api/v1/agents", keyA, obj{"name": "desk"})

		var ids []string
		for i := range 5 {
			ids = append(ids, ts.storeCall(tenantA, func(c *store.Call) {
				switch i {
				case 0, 3:
					c.Direction, c.Status, c.EndedReason = store.CallInbound, store.CallCompleted, store.EndedCallerHangup
				case 1:
					c.Status = store.CallInProgress
				}
				if i >= 2 {
					c.AgentID, c.Destination = ptr(agent), ""
				}
			}))
			time.Sleep(2 * time.Millisecond)
		}
		theirs := ts.storeCall(tenantB, nil)
		slices.Reverse(ids) // newest first

		if got := ts.allIDs("/api/v1/calls", reader); !slices.Equal(got, ids) {
			t.Fatalf("calls %v, want %v", got, ids)
		}
		if got := ts.allIDs("/api/v1/calls", keyB); !slices.Equal(got, []string{theirs}) {
			t.Fatalf("B's calls %v", got)
		}
		p := ts.list("/api/v1/calls?limit=2&offset=1", keyA)
		if *p.Total != 5 || len(p.Items) != 2 || p.Items[0]["id"] != ids[1] || p.Items[1]["id"] != ids[2] {
			t.Fatalf("page: %+v", p)
		}
		c := p.Items[0] // ids[1] is the fourth call: inbound, completed, of the agent
		for k, want := range map[string]any{
			"direction": "inbound", "status": "completed", "ended_reason": "caller-hangup", "agent_id": agent,
			"to": "sip:echo@127.0.0.1", "from": "", "node": "node-test", "trunk_id": nil, "destination": "",
			"timeout_seconds": 30.0, "answered_at": nil, "duration_seconds": 0.0, "tenant_id": tenantA,
		} {
			if c[k] != want {
				t.Fatalf("%s = %v, want %v: %v", k, c[k], want, c)
			}
		}
		if q, _ := c["quality"].(map[string]any); q == nil || q["packets_lost"] != 0.0 || q["jitter_ms"] != 0.0 {
			t.Fatalf("quality %v", c["quality"])
		}

		filtered := func(query string) []string {
			t.Helper()
			p := ts.list("/api/v1/calls?limit=100&"+query, keyA)
			var got []string
			for _, it := range p.Items {
				got = append(got, it["id"].(string))
			}
			if *p.Total != len(got) {
				t.Fatalf("?%s: total %d, %d items", query, *p.Total, len(got))
			}
			return got
		}
		for _, tt := range []struct {
			query string
			want  []string
		}{
			{"status=completed", []string{ids[1], ids[4]}},
			{"status=in-progress", []string{ids[3]}},
			{"status=busy", nil},
			{"direction=inbound", []string{ids[1], ids[4]}},
			{"direction=outbound", []string{ids[0], ids[2], ids[3]}},
			{"agent_id=" + agent, []string{ids[0], ids[1], ids[2]}},
			{"agent_id=" + agent + "&status=queued", []string{ids[0], ids[2]}},
			{"direction=web", nil},
		} {
			if got := filtered(tt.query); !slices.Equal(got, tt.want) {
				t.Fatalf("?%s: %v, want %v", tt.query, got, tt.want)
			}
		}
		call := func(id string) map[string]any { return ts.get("/api/v1/calls/"+id, keyA) }
		since, until := call(ids[3])["created_at"].(string), call(ids[1])["created_at"].(string)
		if got := filtered("since=" + url.QueryEscape(since) + "&until=" + url.QueryEscape(until)); !slices.Equal(got, []string{ids[2], ids[3]}) {
			t.Fatalf("since %s until %s: %v", since, until, got)
		}
		at, _ := time.Parse(time.RFC3339Nano, since)
		if got := filtered("since=" + url.QueryEscape(at.In(time.FixedZone("PST", -8*3600)).Format(time.RFC3339Nano))); !slices.Equal(got, ids[:4]) {
			t.Fatalf("since in another zone: %v", got)
		}
		if got := filtered("until=" + url.QueryEscape(since)); !slices.Equal(got, ids[4:]) {
			t.Fatalf("until: %v", got)
		}

		for _, tt := range []struct{ query, field string }{
			{"status=done", "status"},
			{"direction=sideways", "direction"},
			{"agent_id=desk", "agent_id"},
			{"since=yesterday", "since"},
			{"until=2026-11-23", "until"},
			{"since=2026-11-23T10:00:00Z&until=2026-11-23T09:00:00Z", "until"},
			{"limit=0", "limit"},
			{"offset=-1", "offset"},
		} {
			wantError(t, ts.do(http.MethodGet, "/api/v1/calls?"+tt.query, keyA, nil), http.StatusUnprocessableEntity, "validation_error", tt.field)
		}

		// One call: the tenant's own; another tenant's, or no call, is not found.
		if got := ts.get("/api/v1/calls/"+ids[0], reader); got["id"] != ids[0] || got["agent_id"] != agent {
			t.Fatalf("get: %v", got)
		}
		for _, id := range []string{theirs, "call_01jdq3aaaaaaaaaaaaaaaaaaaa", "missing"} {
			r := ts.do(http.MethodGet, "/api/v1/calls/"+id, keyA, nil)
			wantJSONError(t, r, http.StatusNotFound, "not_found")
			if !strings.Contains(string(r.Body), "Call not found") {
				t.Fatalf("404 does not name the call: %s", r.Body)
			}
		}
		wantError(t, ts.do(http.MethodGet, "/api/v1/calls", "", nil), http.StatusUnauthorized, "authentication_error", "")
	})
}

// TestCallsPlace: a call to place is checked field by field (422 naming the field) before
// anything else; a valid one on a node without telephony is a 503 that says so, and nothing
// is stored.
func TestCallsPlace(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		key := ts.tenantAdmin("acme")
		reader := ts.newKey("acme", "reader", 0, store.ScopeRead)
		agent := ts.createID("/api/v1/agents", key, obj{"name": "desk"})
		trunk := ts.createID("/api/v1/trunks", key, obj{"name": "carrier", "direction": "outbound", "outbound": obj{"address": "sip.carrier.example"}})

		for _, tt := range []struct {
			body  any
			field string
		}{
			{obj{}, "to"},
			{obj{"to": "", "agent_id": agent, "trunk_id": trunk}, "to"},
			{obj{"to": "+0155", "agent_id": agent, "trunk_id": trunk}, "to"},
			{obj{"to": "two words", "agent_id": agent, "trunk_id": trunk}, "to"},
			{obj{"to": "sip:@", "agent_id": agent}, "to"},
			{obj{"to": 14155550100, "agent_id": agent, "trunk_id": trunk}, "to"},
			{obj{"to": "+14155550100", "trunk_id": trunk}, "agent_id"},
			{obj{"to": "+14155550100", "agent_id": agent}, "trunk_id"},
			{obj{"to": "alice", "destination": "echo"}, "trunk_id"},
			{obj{"to": "+14155550100", "agent_id": agent, "destination": "echo", "trunk_id": trunk}, "destination"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "voicemail"}, "destination"},
			{obj{"to": "sip:bob@pbx.example.com", "agent_id": "desk"}, "agent_id"},
			{obj{"to": "+14155550100", "agent_id": agent, "trunk_id": "carrier"}, "trunk_id"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "from": "not a caller"}, "from"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "timeout_seconds": 0}, "timeout_seconds"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "timeout_seconds": 121}, "timeout_seconds"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "timeout_seconds": 1.5}, "timeout_seconds"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "metadata": "x"}, "metadata"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "direction": "inbound"}, "direction"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "status": "completed"}, "status"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "id": "call_x"}, "id"},
			{obj{"To": "sip:bob@pbx.example.com", "destination": "echo"}, "To"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": "yes"}, "amd"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{}}, "amd.mode"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "guess"}}, "amd.mode"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": 1}}, "amd.mode"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect", "timeout_seconds": 1}}, "amd.timeout_seconds"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect", "timeout_seconds": 61}}, "amd.timeout_seconds"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect", "message": "hi"}}, "amd.message"},
			{obj{"to": "sip:bob@pbx.example.com", "agent_id": agent, "amd": obj{"mode": "detect_then_message"}}, "amd.message"},
			{obj{"to": "sip:bob@pbx.example.com", "agent_id": agent, "amd": obj{"mode": "detect_then_message", "message": "  "}}, "amd.message"},
			{obj{"to": "sip:bob@pbx.example.com", "agent_id": agent, "amd": obj{"mode": "detect_then_message", "message": strings.Repeat("a", 2001)}}, "amd.message"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect_then_message", "message": "hi"}}, "amd.mode"},
			{obj{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect", "result": "human"}}, "result"},
			{"", "body"},
			{"[]", "body"},
		} {
			r := ts.do(http.MethodPost, "/api/v1/calls", key, tt.body)
			wantError(t, r, http.StatusUnprocessableEntity, "validation_error", tt.field)
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/calls", reader, obj{"to": "sip:bob@pbx.example.com", "destination": "echo"}),
			http.StatusForbidden, "authorization_error", "")

		for _, body := range []obj{
			{"to": "sip:bob@pbx.example.com", "destination": "echo"},
			{"to": "+14155550100", "from": "+14155550199", "agent_id": agent, "trunk_id": trunk, "timeout_seconds": 120, "metadata": obj{"crm": "42"}},
			{"to": "alice", "destination": "tone", "trunk_id": trunk},
			{"to": "sip:bob@pbx.example.com", "destination": "echo", "amd": obj{"mode": "detect"}},
			{"to": "sip:bob@pbx.example.com", "agent_id": agent, "amd": obj{"mode": "detect_then_message", "message": "Call us back.", "timeout_seconds": 60}},
		} {
			r := ts.do(http.MethodPost, "/api/v1/calls", key, body)
			wantJSONError(t, r, http.StatusServiceUnavailable, "service_unavailable")
			if !strings.Contains(string(r.Body), "Telephony is not enabled on this node") {
				t.Fatalf("503 does not say why: %s", r.Body)
			}
		}
		if n := ts.total("/api/v1/calls", key); n != 0 {
			t.Fatalf("%d calls stored by refused requests", n)
		}
	})
}

// TestCallsSteer: hangup and transfer find the tenant's call (404 otherwise), check the body,
// refuse a call that has ended (409) and, without telephony on the node, answer 503.
func TestCallsSteer(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		reader := ts.newKey("acme", "reader", 0, store.ScopeRead)
		tenantA, tenantB := ts.tenantID(keyA), ts.tenantID(keyB)
		live := ts.storeCall(tenantA, func(c *store.Call) { c.Status = store.CallInProgress })
		ended := ts.storeCall(tenantA, func(c *store.Call) { c.Status, c.EndedReason = store.CallCompleted, store.EndedCallerHangup })
		theirs := ts.storeCall(tenantB, func(c *store.Call) { c.Status = store.CallRinging })
		transfer := obj{"to": "+14155550123"}

		for _, id := range []string{theirs, "call_01jdq3aaaaaaaaaaaaaaaaaaaa", "nope"} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/calls/"+id+"/hangup", keyA, nil), http.StatusNotFound, "not_found", "")
			wantError(t, ts.do(http.MethodPost, "/api/v1/calls/"+id+"/transfer", keyA, transfer), http.StatusNotFound, "not_found", "")
			wantError(t, ts.do(http.MethodPost, "/api/v1/calls/"+id+"/transfer", keyA, obj{"bogus": 1}), http.StatusNotFound, "not_found", "")
		}
		for _, path := range []string{"/hangup", "/transfer"} {
			r := ts.do(http.MethodPost, "/api/v1/calls/"+ended+path, keyA, transfer)
			wantError(t, r, http.StatusConflict, "conflict", "status")
			if !strings.Contains(string(r.Body), "The call has ended (status completed)") {
				t.Fatalf("409 does not say why: %s", r.Body)
			}
			r = ts.do(http.MethodPost, "/api/v1/calls/"+live+path, keyA, transfer)
			wantJSONError(t, r, http.StatusServiceUnavailable, "service_unavailable")
			if !strings.Contains(string(r.Body), "Telephony is not enabled on this node") {
				t.Fatalf("503 does not say why: %s", r.Body)
			}
			wantError(t, ts.do(http.MethodPost, "/api/v1/calls/"+live+path, reader, transfer), http.StatusForbidden, "authorization_error", "")
		}
		for _, tt := range []struct {
			body  any
			field string
		}{
			{nil, "body"},
			{obj{}, "to"},
			{obj{"to": "alice"}, "to"},
			{obj{"to": "+1"}, "to"},
			{obj{"to": "sip:"}, "to"},
			{obj{"to": "sip:desk@pbx.example.com", "mode": "blind"}, "mode"},
		} {
			wantError(t, ts.do(http.MethodPost, "/api/v1/calls/"+live+"/transfer", keyA, tt.body), http.StatusUnprocessableEntity, "validation_error", tt.field)
		}
		// A good target passes the checks (and meets the missing telephony).
		wantStatus(t, ts.do(http.MethodPost, "/api/v1/calls/"+live+"/transfer", keyA, obj{"to": "sips:desk@pbx.example.com:5061"}), http.StatusServiceUnavailable, "transfer to a SIP URI")
		if c := ts.get("/api/v1/calls/"+live, keyA); c["status"] != "in-progress" {
			t.Fatalf("the live call changed: %v", c)
		}
	})
}

// TestCallTopics: a tenant may watch the events of its own calls, and of no other: another
// tenant's call, or no call, is not found.
func TestCallTopics(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ss := newStreamServer(t, streamOptions{Dialect: d})
			other := ss.newKey("other", "other", 0, store.ScopeAdmin)
			mine := ss.storeCall(ss.Default.ID, func(c *store.Call) { c.Status = store.CallInProgress })
			theirs := ss.storeCall(ss.tenantID(other), nil)

			for i, topics := range []string{"call:" + theirs, "call:call_01jdq3aaaaaaaaaaaaaaaaaaaa", "tenant,call:nope"} {
				_, r := ss.openSSE(t, "topics="+url.QueryEscape(topics), hdr("X-API-Key", ss.Key))
				field := "topics[0]"
				if i == 2 {
					field = "topics[1]"
				}
				wantError(t, r, http.StatusNotFound, "not_found", field)
			}
			c := ss.mustOpenSSE(t, "topics="+url.QueryEscape("call:"+mine), ss.Key)
			ss.publishN(t, ss.Default.ID, "call:"+theirs, 0, 1, "")
			ss.publishN(t, ss.Default.ID, "call:"+mine, 1, 2, "")
			if ev := c.nextEvent(); ev.Topic != "call:"+mine || eventN(t, ev) != 1 {
				t.Fatalf("event %+v", ev)
			}

			p := ss.mustDialWS(t, other)
			p.send(map[string]any{"type": "subscribe", "id": "a", "topics": []string{"call:" + mine}})
			p.wantError("a", "not_found", "topics[0]")
			p.subscribe("b", "call:"+theirs)
			c.Close()
			p.Close()
		})
	}
}

// TestCallTranscript: a call's transcript is served to its tenant once written; a call
// without one, and another tenant's call, are 404.
func TestCallTranscript(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		tenantA := ts.tenantID(keyA)
		id := ts.storeCall(tenantA, func(c *store.Call) {
			c.Status, c.EndedReason = store.CallCompleted, store.EndedAgentHangup
		})
		if r := ts.do("GET", "/api/v1/calls/"+id+"/transcript", keyA, nil); r.Status != http.StatusNotFound ||
			!strings.Contains(string(r.Body), "no transcript") {
			t.Fatalf("transcript before one was written: %d %s", r.Status, r.Body)
		}
		turns := []map[string]any{
			{"role": "assistant", "text": "Hello! How can I help?", "interrupted": false},
			{"role": "user", "text": "", "dtmf": "1"},
		}
		if err := store.SaveTranscript(context.Background(), ts.Store, tenantA, id, turns); err != nil {
			t.Fatal(err)
		}
		r := ts.do("GET", "/api/v1/calls/"+id+"/transcript", keyA, nil)
		body := r.JSON(t)
		got, _ := body["turns"].([]any)
		if r.Status != http.StatusOK || body["call_id"] != id || len(got) != 2 || got[1].(map[string]any)["dtmf"] != "1" {
			t.Fatalf("transcript: %d %s", r.Status, r.Body)
		}
		if r := ts.do("GET", "/api/v1/calls/"+id+"/transcript", keyB, nil); r.Status != http.StatusNotFound {
			t.Fatalf("another tenant's transcript: %d %s", r.Status, r.Body)
		}
	})
}
