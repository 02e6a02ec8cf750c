package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Bounds of an analytics range: enough buckets for a month by hour or a year by day.
const (
	maxHourRange = 31 * 24 * time.Hour
	maxDayRange  = 366 * 24 * time.Hour
)

var analyticsQuery = []param{
	{Name: "from", Description: "Start of the range, inclusive: RFC 3339 or YYYY-MM-DD (UTC); default: 7 days (by day) or 24 hours (by hour) before to"},
	{Name: "to", Description: "End of the range, exclusive: RFC 3339 or YYYY-MM-DD (UTC); default: now"},
	{Name: "bucket", Description: "hour or day (UTC; default day); at most 31 days by hour, 366 by day"},
	{Name: "agent_id", Description: "Only the calls of this agent"},
}

var errorLogQuery = append([]param{analyticsQuery[0], analyticsQuery[1], analyticsQuery[3]}, pageQuery...)

// analyticsRoutes are Agent Studio's analytics (its "metrics, stats and error logs"): the
// figures of the tenant's calls, computed by the database, and its error log. metrics and
// stats are Agent Studio's names for the figures of /api/v1/analytics/calls.
func (s *Server) analyticsRoutes() []route {
	const tag = "Analytics"
	figures := func(path, summary string) route {
		return route{Method: http.MethodGet, Path: path, Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: summary, Query: analyticsQuery, Response: store.CallAnalytics{}, Handle: s.callAnalytics}
	}
	return []route{
		figures("/api/v1/analytics/calls", "Figures of the tenant's calls by hour or day, by agent and in all: volume, answer rate, "+
			"durations, end reasons, turn latency, interruptions, tool calls and failures, tokens and cost"),
		figures("/api/v1/analytics/metrics", "The figures of /api/v1/analytics/calls (Agent Studio's metrics)"),
		figures("/api/v1/analytics/stats", "The figures of /api/v1/analytics/calls (Agent Studio's stats)"),
		{Method: http.MethodGet, Path: "/api/v1/analytics/errors", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "The tenant's error log, newest first: failed calls, provider and tool-webhook failures on calls and in sessions, " +
				"gateway requests their provider failed", Query: errorLogQuery, Response: List[store.ErrorLogEntry]{}, Handle: s.errorLog},
	}
}

func (s *Server) callAnalytics(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q, err := s.analyticsRange(r, p, true)
	if err != nil {
		return err
	}
	out, err := store.AnalyzeCalls(r.Context(), s.store, p.TenantID, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) errorLog(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q, err := s.analyticsRange(r, p, false)
	if err != nil {
		return err
	}
	page, err := pageParams(r)
	if err != nil {
		return asBadQuery(err)
	}
	items, total, err := store.ErrorLog(r.Context(), s.store, p.TenantID, store.ErrorLogQuery{From: q.From, To: q.To, AgentID: q.AgentID}, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.ErrorLogEntry]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

// analyticsRange reads the range, bucket and agent of an analytics request; a malformed
// one is a 400 naming the parameter, and an agent the tenant does not have a 404.
func (s *Server) analyticsRange(r *http.Request, p *Principal, bucketed bool) (store.CallAnalyticsQuery, error) {
	v := r.URL.Query()
	q := store.CallAnalyticsQuery{Bucket: store.BucketDay, AgentID: v.Get("agent_id")}
	if bucketed {
		if b := v.Get("bucket"); b != "" {
			q.Bucket = b
		}
		if q.Bucket != store.BucketHour && q.Bucket != store.BucketDay {
			return q, errBadQuery("bucket", "must be hour or day")
		}
	}
	limit, back := maxDayRange, 7*24*time.Hour
	if q.Bucket == store.BucketHour {
		limit, back = maxHourRange, 24*time.Hour
	}
	var err error
	q.To = time.Now().UTC()
	if t := v.Get("to"); t != "" {
		if q.To, err = parseInstant(t); err != nil {
			return q, errBadQuery("to", "must be an RFC 3339 time such as 2026-12-07T00:00:00Z or a date YYYY-MM-DD")
		}
	}
	q.From = q.To.Add(-back)
	if f := v.Get("from"); f != "" {
		if q.From, err = parseInstant(f); err != nil {
			return q, errBadQuery("from", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z or a date YYYY-MM-DD")
		}
	}
	switch {
	case !q.To.After(q.From):
		return q, errBadQuery("to", "must be after from")
	case q.To.Sub(q.From) > limit:
		return q, errBadQuery("from", "the range may span at most %d days by %s", int(limit/(24*time.Hour)), q.Bucket)
	}
	if q.AgentID != "" {
		if _, err := store.Get[store.Agent](r.Context(), s.store, p.TenantID, q.AgentID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return q, errNotFound("Agent")
			}
			return q, err
		}
	}
	return q, nil
}

// parseInstant reads an RFC 3339 time or a date (midnight UTC).
func parseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, s)
}

// errBadQuery is a malformed query parameter: 400, naming it.
func errBadQuery(field, format string, args ...any) *Error {
	e := errValidation(field, format, args...)
	e.Status = http.StatusBadRequest
	return e
}

// asBadQuery makes a query parameter's validation error a 400, as the rest of the
// analytics' are.
func asBadQuery(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == codeValidation {
		cp := *e
		cp.Status = http.StatusBadRequest
		return &cp
	}
	return err
}
