package main

import (
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/sip"
)

// sipChecks reports the SIP listeners to /health: a node whose SIP stopped answering is
// not healthy, whatever its HTTP and database say.
func sipChecks(s *sip.Server) func() []api.HealthCheck {
	return func() []api.HealthCheck {
		ls := s.Listeners()
		out := make([]api.HealthCheck, 0, len(ls))
		for _, l := range ls {
			detail := l.Addr
			if l.Reason != "" {
				detail += ": " + l.Reason
			}
			out = append(out, api.HealthCheck{Name: "sip-" + l.Transport, Healthy: l.Serving, Detail: detail})
		}
		return out
	}
}
