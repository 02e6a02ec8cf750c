package api_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// TestCallHistoryFilters: the call history the studio pages through: calls found by agent,
// status, direction and time range (from/to), by a part of their from or to number, ignoring
// case and taking % and _ as themselves, paged newest first in a stable order; a malformed
// filter is a 422 naming its parameter; another tenant's calls never appear.
func TestCallHistoryFilters(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		ctx := context.Background()
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		tenantA, tenantB := ts.tenantID(keyA), ts.tenantID(keyB)
		agent := ts.createID("/api/v1/agents", keyA, obj{"name": "desk"})

		// Six calls an hour apart, the last newest; two share a start, so that paging must
		// order them by ID too.
		base := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		type spec struct {
			dir, status, from, to string
			agent                 bool
			hour                  int
		}
		specs := []spec{
			{store.CallInbound, store.CallCompleted, "+14155550142", "+14155550100", true, 0},
			{store.CallInbound, store.CallNoAnswer, "+442071838750", "+14155550100", true, 1},
			{store.CallOutbound, store.CallCompleted, "", "sip:Alice_Desk@pbx.example.com", false, 2},
			{store.CallWeb, store.CallCompleted, "browser", "agent", true, 3},
			{store.CallInbound, store.CallFailed, "+14155550199", "+14155550100", false, 4},
			{store.CallInbound, store.CallCompleted, "+14155550142", "+14155550101", true, 4},
		}
		ids := make([]string, len(specs))
		for i, sp := range specs {
			ids[i] = ts.storeCall(tenantA, func(c *store.Call) {
				c.Direction, c.Status, c.From, c.To = sp.dir, sp.status, sp.from, sp.to
				if sp.agent {
					c.AgentID, c.Destination = ptr(agent), ""
				}
			})
			at := base.Add(time.Duration(sp.hour) * time.Hour)
			if _, err := ts.Store.DB().NewUpdate().Table("calls").Set("created_at = ?", at).Set("started_at = ?", at).
				Where("id = ?", ids[i]).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		theirs := ts.storeCall(tenantB, func(c *store.Call) { c.From = "+14155550142" })

		// Newest first; the two of the same start by ID, descending.
		newest := []string{ids[3], ids[2], ids[1], ids[0]}
		last := []string{ids[4], ids[5]}
		slices.Sort(last)
		slices.Reverse(last)
		newest = append(last, newest...)

		found := func(query string) []string {
			t.Helper()
			p := ts.list("/api/v1/calls?limit=100&"+query, keyA)
			got := []string{}
			for _, it := range p.Items {
				got = append(got, it["id"].(string))
			}
			if *p.Total != len(got) {
				t.Fatalf("?%s: total %d, %d items", query, *p.Total, len(got))
			}
			return got
		}
		rfc := func(h int) string {
			return url.QueryEscape(base.Add(time.Duration(h) * time.Hour).Format(time.RFC3339))
		}
		for _, tt := range []struct {
			query string
			want  []string
		}{
			{"", newest},
			{"q=0142", []string{ids[5], ids[0]}},
			{"q=%2B1415555014", []string{ids[5], ids[0]}},  // "+1415555014", a prefix of both
			{"q=alice_desk", []string{ids[2]}},             // case ignored
			{"q=0101", []string{ids[5]}},                   // the to number
			{"q=%25", []string{}},                          // "%" is itself, not a wildcard
			{"q=_", []string{ids[2]}},                      // "_" is itself
			{"q=4420&direction=inbound", []string{ids[1]}}, // filters combine
			{"q=0142&status=completed&agent_id=" + agent, []string{ids[5], ids[0]}},
			{"from=" + rfc(1) + "&to=" + rfc(4), []string{ids[3], ids[2], ids[1]}},
			{"from=" + rfc(4), last},
			{"to=" + rfc(1), []string{ids[0]}},
			{"direction=web", []string{ids[3]}},
			{"status=no-answer", []string{ids[1]}},
			{"agent_id=" + agent + "&direction=inbound", []string{ids[5], ids[1], ids[0]}},
		} {
			if got := found(tt.query); !slices.Equal(got, tt.want) {
				t.Fatalf("?%s: %v, want %v", tt.query, got, tt.want)
			}
		}
		if got := found("q=0142"); slices.Contains(got, theirs) {
			t.Fatal("another tenant's call was found by number")
		}

		// Pages of two walk the whole list once, in order.
		var walked []string
		for off := 0; off < len(newest); off += 2 {
			p := ts.list("/api/v1/calls?limit=2&offset="+strconv.Itoa(off), keyA)
			if *p.Total != len(newest) {
				t.Fatalf("offset %d: total %d", off, *p.Total)
			}
			for _, it := range p.Items {
				walked = append(walked, it["id"].(string))
			}
		}
		if !slices.Equal(walked, newest) {
			t.Fatalf("paged %v, want %v", walked, newest)
		}

		for _, tt := range []struct{ query, field string }{
			{"from=yesterday", "from"},
			{"to=2026-11-30", "to"},
			{"from=" + rfc(3) + "&to=" + rfc(1), "to"},
			{"from=" + rfc(1) + "&since=" + rfc(1), "from"},
			{"q=" + strings.Repeat("5", store.MaxCallSearchLen+1), "q"},
			{"status=answered", "status"},
			{"direction=sideways", "direction"},
			{"agent_id=desk", "agent_id"},
			{"limit=101", "limit"},
		} {
			wantError(t, ts.do(http.MethodGet, "/api/v1/calls?"+tt.query, keyA, nil), http.StatusUnprocessableEntity, "validation_error", tt.field)
		}
	})
}

// TestCallEventsAPI: a past call's events are read back over HTTP, paged, oldest first,
// after the hub has long forgotten them; another tenant's call, or none, is a 404.
func TestCallEventsAPI(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, ts *testServer) {
		keyA, keyB := ts.tenantAdmin("acme"), ts.tenantAdmin("globex")
		tenantA := ts.tenantID(keyA)
		id := ts.storeCall(tenantA, func(c *store.Call) { c.Status, c.EndedReason = store.CallCompleted, store.EndedAgentHangup })
		types := []string{"call.created", "call.answered", "call.transcript", "call.metrics", "call.agent_speech", "agent.error", "call.ended"}
		for i, typ := range types {
			store.RecordCallEvent(ts.Store, tenantA, id, typ, map[string]any{"n": i})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ts.Store.FlushCallEvents(ctx); err != nil {
			t.Fatal(err)
		}

		p := ts.list("/api/v1/calls/"+id+"/events?limit=5", keyA)
		if *p.Total != len(types) || len(p.Items) != 5 {
			t.Fatalf("first page: %d of %d", len(p.Items), *p.Total)
		}
		rest := ts.list("/api/v1/calls/"+id+"/events?limit=5&offset=5", keyA)
		all := append(p.Items, rest.Items...)
		for i, ev := range all {
			data, _ := ev["data"].(map[string]any)
			if ev["type"] != types[i] || ev["call_id"] != id || data["n"] != float64(i) || ev["time"] == nil {
				t.Fatalf("event %d: %v, want %s", i, ev, types[i])
			}
			if _, leaked := ev["tenant_id"]; leaked {
				t.Fatalf("event %d shows its tenant: %v", i, ev)
			}
		}
		for _, path := range []string{"/api/v1/calls/" + id + "/events", "/api/v1/calls/call_01jdq3aaaaaaaaaaaaaaaaaaaa/events"} {
			wantJSONError(t, ts.do(http.MethodGet, path, keyB, nil), http.StatusNotFound, "not_found")
		}
		wantError(t, ts.do(http.MethodGet, "/api/v1/calls/"+id+"/events?limit=0", keyA, nil), http.StatusUnprocessableEntity, "validation_error", "limit")
	})
}
