package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// endedCall stores an ended call of the tenant, made now: answered for duration seconds
// (0: never answered, failed) with reason and usage.
func endedCall(t *testing.T, ts *testServer, tenantID string, agentID *string, duration float64, reason string, u store.CallUsage) *store.Call {
	t.Helper()
	now := time.Now().UTC()
	c := &store.Call{Direction: store.CallInbound, From: "+15550100", To: "+15550001", AgentID: agentID,
		Status: store.CallCompleted, EndedReason: reason, StartedAt: &now, EndedAt: &now, CallUsage: u}
	if duration > 0 {
		c.AnsweredAt, c.DurationSeconds = &now, duration
	} else {
		c.Status = store.CallFailed
	}
	if err := store.Create(context.Background(), ts.Store, tenantID, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// analyticsOf reads the analytics at path (query q) as key.
func analyticsOf(t *testing.T, ts *testServer, path, key string, q url.Values) store.CallAnalytics {
	t.Helper()
	r := ts.do(http.MethodGet, path+"?"+q.Encode(), key, nil)
	wantStatus(t, r, http.StatusOK, "GET "+path)
	var out store.CallAnalytics
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("%s: %v: %s", path, err, r.Body)
	}
	return out
}

// TestAnalyticsAPI reads a tenant's call figures and error log over HTTP: the figures of
// the calls it made, the same through Agent Studio's metrics and stats, none of another
// tenant's calls or errors, another tenant's agent a 404, and a malformed range, bucket or
// page a 400 naming the parameter.
func TestAnalyticsAPI(t *testing.T) {
	eachDialect(t, func(t *testing.T, ts *testServer) {
		ctx := context.Background()
		keyA, keyB := ts.newKey("acme", "ops", 0, store.ScopeAdmin), ts.newKey("globex", "ops", 0, store.ScopeAdmin)
		tenA, _ := ts.Store.EnsureTenant(ctx, "acme")
		tenB, _ := ts.Store.EnsureTenant(ctx, "globex")
		agentA := ts.createID("/api/v1/agents", keyA, obj{"name": "desk"})
		agentB := ts.createID("/api/v1/agents", keyB, obj{"name": "desk"})

		endedCall(t, ts, tenA.ID, &agentA, 10, store.EndedCallerHangup, store.CallUsage{InputTokens: 100, OutputTokens: 40, ToolCalls: 2, ToolFailures: 1, CostUSD: 0.01})
		endedCall(t, ts, tenA.ID, &agentA, 30, store.EndedAgentHangup, store.CallUsage{InputTokens: 50, OutputTokens: 10, ToolCalls: 1, CostUSD: 0.015})
		failedA := endedCall(t, ts, tenA.ID, &agentA, 0, store.EndedError, store.CallUsage{})
		endedCall(t, ts, tenB.ID, &agentB, 99, store.EndedCallerHangup, store.CallUsage{InputTokens: 9999, CostUSD: 9})
		endedCall(t, ts, tenB.ID, &agentB, 0, store.EndedError, store.CallUsage{})

		q := url.Values{"bucket": {"hour"}, "from": {time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)},
			"to": {time.Now().UTC().Add(time.Hour).Format(time.RFC3339)}}
		for _, path := range []string{"/api/v1/analytics/calls", "/api/v1/analytics/metrics", "/api/v1/analytics/stats"} {
			a := analyticsOf(t, ts, path, keyA, q)
			tot := a.Total
			if tot.Calls != 3 || tot.Answered != 2 || tot.InputTokens != 150 || tot.OutputTokens != 50 || tot.ToolCalls != 3 ||
				tot.ToolFailures != 1 || tot.CostUSD != 0.025 || *tot.DurationP50Seconds != 10 || *tot.DurationP90Seconds != 30 ||
				*tot.AvgDurationSeconds != 20 || tot.EndReasons[store.EndedError] != 1 || a.Bucket != "hour" {
				t.Errorf("%s: %+v", path, a)
			}
			if len(a.Agents) != 1 || a.Agents[0].AgentID == nil || *a.Agents[0].AgentID != agentA || a.Agents[0].Calls != 3 {
				t.Errorf("%s: agents %+v", path, a.Agents)
			}
		}
		q.Set("agent_id", agentA)
		if a := analyticsOf(t, ts, "/api/v1/analytics/calls", keyA, q); a.Total.Calls != 3 || a.AgentID == nil || *a.AgentID != agentA {
			t.Errorf("agent's calls: %+v", a)
		}
		if b := analyticsOf(t, ts, "/api/v1/analytics/calls", keyB, url.Values{"bucket": {"day"}}); b.Total.Calls != 2 || b.Total.InputTokens != 9999 {
			t.Errorf("the other tenant's: %+v", b.Total)
		}
		// Another tenant's agent is not found, as on every route.
		r := ts.do(http.MethodGet, "/api/v1/analytics/calls?agent_id="+agentB, keyA, nil)
		wantError(t, r, http.StatusNotFound, "not_found", "")
		r = ts.do(http.MethodGet, "/api/v1/analytics/errors?agent_id="+agentB, keyA, nil)
		wantError(t, r, http.StatusNotFound, "not_found", "")

		// The error log: the tenant's failed call alone.
		r = ts.do(http.MethodGet, "/api/v1/analytics/errors?limit=10", keyA, nil)
		wantStatus(t, r, http.StatusOK, "GET errors")
		var log struct {
			Items []store.ErrorLogEntry `json:"items"`
			Total int                   `json:"total"`
			Limit int                   `json:"limit"`
		}
		if err := json.Unmarshal(r.Body, &log); err != nil {
			t.Fatal(err)
		}
		if log.Total != 1 || len(log.Items) != 1 || log.Limit != 10 || log.Items[0].CallID == nil || *log.Items[0].CallID != failedA.ID ||
			log.Items[0].AgentID == nil || *log.Items[0].AgentID != agentA || log.Items[0].Kind != store.ErrorCallFailed {
			t.Errorf("error log: %s", r.Body)
		}

		for _, bad := range []struct{ query, field string }{
			{"bucket=week", "bucket"},
			{"from=yesterday", "from"},
			{"to=2026-13-01", "to"},
			{"from=2026-12-02&to=2026-12-01", "to"},
			{"bucket=hour&from=2026-01-01&to=2026-03-01", "from"},
			{"from=2024-01-01&to=2026-01-01", "from"},
		} {
			r := ts.do(http.MethodGet, "/api/v1/analytics/calls?"+bad.query, keyA, nil)
			wantError(t, r, http.StatusBadRequest, "validation_error", bad.field)
		}
		wantError(t, ts.do(http.MethodGet, "/api/v1/analytics/errors?limit=0", keyA, nil), http.StatusBadRequest, "validation_error", "limit")
		wantError(t, ts.do(http.MethodGet, "/api/v1/analytics/errors?from=soon", keyA, nil), http.StatusBadRequest, "validation_error", "from")
		wantError(t, ts.do(http.MethodGet, "/api/v1/analytics/calls", "", nil), http.StatusUnauthorized, "authentication_error", "")
	})
}
