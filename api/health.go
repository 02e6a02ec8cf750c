package api

import (
	"context"
	"net/http"
	"time"
)

// Probe answers /health/live and /health/ready: whether the node is up, or ready for
// traffic, and, when it is not, which check failed.
type Probe struct {
	// Status is "live", "ready" or "not_ready".
	Status string `json:"status"`
	// Checks are what readiness looked at, each healthy or not with why.
	Checks []HealthCheck `json:"checks,omitempty"`
}

// readyTimeout bounds the database's answer to a readiness probe: a store slower than this
// is as good as away for new traffic, and an orchestrator's probe (1 s by default in
// Kubernetes) must get an answer before its own deadline.
const readyTimeout = 800 * time.Millisecond

// healthRoutes are the probes of orchestrators. They need no key, read nothing of a
// tenant, and are cheap: live touches nothing, ready pings the database once.
func (s *Server) healthRoutes() []route {
	const tag = "Health"
	return []route{
		{Method: http.MethodGet, Path: "/health/live", Tag: tag, Summary: "Liveness: the process serves HTTP (a Kubernetes livenessProbe); always 200 while it runs",
			Response: Probe{}, Status: http.StatusOK, Handle: s.live},
		{Method: http.MethodGet, Path: "/health/ready", Tag: tag, Summary: "Readiness: the database answers within 0.8 s, every SIP listener serves and the node is not draining (a Kubernetes readinessProbe); 503 naming the check that failed",
			Response: Probe{}, Status: http.StatusOK, Handle: s.ready},
	}
}

func (s *Server) live(w http.ResponseWriter, _ *http.Request, _ *Principal) error {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Probe{Status: "live"})
	return nil
}

// ready checks, in order, that the node is not draining, that the database answers, and
// that the node's other parts (its SIP listeners) serve; every check is reported, so that
// one answer says everything that is wrong.
func (s *Server) ready(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	p := Probe{Status: "ready"}
	draining := s.cfg.Draining != nil && s.cfg.Draining()
	drain := HealthCheck{Name: "draining", Healthy: !draining}
	if draining {
		drain.Detail = "the node is stopping: it takes no new calls or requests"
	}
	p.Checks = append(p.Checks, drain)

	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	db := HealthCheck{Name: "database", Healthy: true, Detail: string(s.store.Dialect())}
	if err := s.store.Ping(ctx); err != nil {
		// The probe is public: why the database failed (its address) goes to the log only.
		db.Healthy = false
		db.Detail = "the database did not answer within 0.8 s"
		s.log.Warn("readiness: database", "err", err)
	}
	p.Checks = append(p.Checks, db)
	if s.cfg.Checks != nil {
		p.Checks = append(p.Checks, s.cfg.Checks()...)
	}

	status := http.StatusOK
	for _, c := range p.Checks {
		if !c.Healthy {
			p.Status, status = "not_ready", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, p)
	return nil
}
