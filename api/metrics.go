package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-go/switchboard/metrics"
)

// metricsRoutes serve the node's Prometheus exposition. It is not a tenant's: it needs no
// key, and is open to a scraper on this host, to one that presents the operator's metrics
// token, and to addresses of the operator's allow-list (see metricsAccess).
func (s *Server) metricsRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/metrics", Tag: "Health", Summary: "Prometheus metrics of this node (open on loopback; elsewhere the metrics token as a bearer, or an address of SWITCHBOARD_METRICS_ALLOW)",
			Raw: true, ContentType: "text/plain; version=0.0.4", Status: http.StatusOK, Handle: s.serveMetrics},
	}
}

// errMetricsToken is a scraper off this host without the right token, when there is one.
var errMetricsToken = &Error{Status: http.StatusUnauthorized, Code: codeAuthentication,
	Message: "Metrics need the node's metrics token as Authorization: Bearer (SWITCHBOARD_METRICS_TOKEN)"}

// errMetricsClosed is a scraper off this host when the operator opened /metrics to none.
var errMetricsClosed = &Error{Status: http.StatusForbidden, Code: codeAuthorization,
	Message: "Metrics are served on loopback only; the operator opens them with SWITCHBOARD_METRICS_TOKEN or SWITCHBOARD_METRICS_ALLOW"}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *Principal) error {
	if err := s.metricsAccess(r); err != nil {
		if errors.Is(err, errMetricsToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
		}
		return err
	}
	s.metricsHandler.ServeHTTP(w, r)
	return nil
}

// metricsAccess decides who reads the node's metrics: a request straight from this host (not
// through a proxy, nor from a page in a local browser: fromLoopback), one with the metrics
// token, and one from an allowed network. A wrong token is refused even from an allowed
// network, so that a misconfigured scraper is noticed rather than let through by luck.
func (s *Server) metricsAccess(r *http.Request) error {
	token := s.cfg.MetricsToken
	if auth := r.Header.Get("Authorization"); auth != "" && token != "" {
		got, ok := strings.CutPrefix(auth, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1 {
			return nil
		}
		return errMetricsToken
	}
	if fromLoopback(r) {
		return nil
	}
	if addr, err := netip.ParseAddr(clientIP(r)); err == nil {
		addr = addr.Unmap()
		for _, p := range s.cfg.MetricsAllow {
			if p.Contains(addr) {
				return nil
			}
		}
	}
	if token != "" {
		return errMetricsToken
	}
	return errMetricsClosed
}

// registerMetrics puts the node's database pool and event hub on its metrics registry. A
// collector already there (a second API server on one registry, in tests) is kept.
func (s *Server) registerMetrics() {
	var already prometheus.AlreadyRegisteredError
	if s.store != nil {
		if err := s.metrics.Database(s.store.DB().DB, string(s.store.Dialect())); err != nil && !errors.As(err, &already) {
			s.log.Warn("database pool metrics", "err", err)
		}
	}
	if hub := s.cfg.Hub; hub != nil {
		err := s.metrics.Hub(func() metrics.HubStats {
			st := hub.Stats()
			return metrics.HubStats{Subscribers: st.Subscribers, Topics: st.Topics, Published: st.Published, Dropped: st.Dropped}
		})
		if err != nil && !errors.As(err, &already) {
			s.log.Warn("event hub metrics", "err", err)
		}
	}
}

// observe counts a request answered, by the pattern of the route it matched (the router
// sets r.Pattern), never its path: /api/v1/agents/{id} is one series whatever the ids.
func (s *Server) observe(r *http.Request, status int, d time.Duration) {
	route := r.Pattern
	if route == "/" {
		// The router's catch-all: a path of no route, answered 404.
		route = metrics.Unmatched
	}
	s.metrics.HTTP().Done(route, r.Method, status, d)
}
