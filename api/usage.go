package api

import (
	"net/http"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// UsageReport answers GET /api/v1/usage.
type UsageReport struct {
	From  string             `json:"from"`
	To    string             `json:"to"`
	Items []store.UsageTotal `json:"items"`
	Total store.UsageTotal   `json:"total"`
}

func (s *Server) usageRoutes() []route {
	return []route{{Method: http.MethodGet, Path: "/api/v1/usage", Tag: "Usage", Scope: store.ScopeRead, Status: http.StatusOK,
		Summary:  "Model usage of the tenant (gateway requests, agents' calls, sessions' answers) by source, key, model and day (from and to are YYYY-MM-DD, UTC; default: the last 30 days)",
		Response: UsageReport{}, Handle: s.usage,
		Query: []param{{Name: "from", Description: "First day, YYYY-MM-DD"}, {Name: "to", Description: "Last day, YYYY-MM-DD"}}}}
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, p *Principal) error {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, -29), today
	for _, q := range []struct {
		name string
		into *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := r.URL.Query().Get(q.name); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return errValidation(q.name, "must be a date YYYY-MM-DD")
			}
			*q.into = t
		}
	}
	if to.Before(from) {
		return errValidation("to", "must not be before from")
	}
	items, err := s.store.UsageByKeyModelDay(r.Context(), p.TenantID, from, to.AddDate(0, 0, 1))
	if err != nil {
		return err
	}
	rep := UsageReport{From: from.Format("2006-01-02"), To: to.Format("2006-01-02"), Items: items}
	for _, it := range items {
		rep.Total.Requests += it.Requests
		rep.Total.InputTokens += it.InputTokens
		rep.Total.OutputTokens += it.OutputTokens
		rep.Total.CostUSD += it.CostUSD
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
