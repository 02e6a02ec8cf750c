// Package metrics owns a node's Prometheus registry: what the node measures of itself (the
// Go runtime, the process, the database pool, the event hub, HTTP requests) and the
// exposition served at /metrics. Other packages register their own collectors on the same
// Registry, so that one scrape sees the whole node. Every label it defines takes a bounded
// set of values: route patterns, methods and status codes, never ids or raw paths.
package metrics

import (
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric Switchboard defines (switchboard_http_requests_total).
const Namespace = "switchboard"

// Registry is one node's metrics. Its zero value is not usable; make one with New.
type Registry struct {
	reg   *prometheus.Registry
	http  *HTTP
	calls *Calls
	turns *Turns
	gw    *Gateway
}

// New returns a registry with the Go runtime and process collectors, the HTTP request
// metrics, the call metrics and the agents' turn latency registered.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := newHTTP()
	reg.MustRegister(h.requests, h.duration, h.inFlight)
	c := newCalls()
	reg.MustRegister(c.active, c.ended, c.setup, c.duration, c.packets, c.jitter)
	t := newTurns()
	reg.MustRegister(t.voiceToVoice, t.stages)
	g := newGateway()
	reg.MustRegister(g.requests, g.tokens, g.cost, g.failures)
	return &Registry{reg: reg, http: h, calls: c, turns: t, gw: g}
}

// Gateway is the model gateway's metrics; nil on a nil Registry.
func (r *Registry) Gateway() *Gateway {
	if r == nil {
		return nil
	}
	return r.gw
}

// Turns is the latency of agents' answers on calls, for the agents' runtime to count.
func (r *Registry) Turns() *Turns { return r.turns }

// Calls is the call metrics, for the node's registry of live calls to count them.
func (r *Registry) Calls() *Calls { return r.calls }

// Register adds a collector; one whose metrics are registered already is refused.
func (r *Registry) Register(c prometheus.Collector) error {
	return r.reg.Register(c)
}

// Gatherer is what the registry holds, for the exposition (and tests that read it directly).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the exposition in the format the scraper asks for (text or protobuf),
// compressed when it accepts it. A collector that fails is reported in the answer and the
// rest are served.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// HTTP is the HTTP request metrics.
func (r *Registry) HTTP() *HTTP { return r.http }

// Database registers the statistics of a connection pool (open, in use, idle connections,
// waits and their time, connections closed by each limit); name tells the pools apart and
// is the dialect ("sqlite", "postgres"), never a connection string.
func (r *Registry) Database(db *sql.DB, name string) error {
	if db == nil {
		return errors.New("metrics: no database")
	}
	return r.reg.Register(collectors.NewDBStatsCollector(db, name))
}

// HubStats is what the event hub tells of its work.
type HubStats struct {
	// Subscribers are the subscriptions open now (event streams, sockets, internal readers).
	Subscribers int
	// Topics are the topics the hub keeps (with subscribers or events to replay).
	Topics int
	// Published and Dropped count events since the start: those published on this node,
	// and those a subscriber too far behind missed.
	Published, Dropped uint64
}

// Hub registers the event hub's figures, read from stats at each scrape.
func (r *Registry) Hub(stats func() HubStats) error {
	c := &hubCollector{stats: stats,
		subscribers: prometheus.NewDesc(Namespace+"_hub_subscribers", "Subscriptions to the event hub open now.", nil, nil),
		topics:      prometheus.NewDesc(Namespace+"_hub_topics", "Topics the event hub keeps now.", nil, nil),
		published:   prometheus.NewDesc(Namespace+"_hub_events_published_total", "Events published on this node.", nil, nil),
		dropped:     prometheus.NewDesc(Namespace+"_hub_events_dropped_total", "Events a subscriber missed because it was too far behind.", nil, nil),
	}
	return r.reg.Register(c)
}

// hubCollector reads the hub once per scrape, so that its four figures are of one moment.
type hubCollector struct {
	stats                                   func() HubStats
	subscribers, topics, published, dropped *prometheus.Desc
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.subscribers
	ch <- c.topics
	ch <- c.published
	ch <- c.dropped
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(s.Subscribers))
	ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(s.Topics))
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped))
}

// HTTP counts requests and their latency by route pattern, method and status.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// Unmatched is the route label of a request that matched no route (a 404 of the router), so
// that scanners probing random paths add one series, not one per path.
const Unmatched = "unmatched"

func newHTTP() *HTTP {
	labels := []string{"route", "method", "code"}
	return &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code."}, labels),
		// From 5 ms to 10 s: API reads take milliseconds, model calls through the gateway
		// seconds. Streams and sockets are counted when they end, so their time is their life.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by route pattern, method and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being answered now, streams and sockets included."}),
	}
}

// Start counts a request in flight; Done, with its route pattern (the router's, or
// Unmatched), ends it.
func (h *HTTP) Start() { h.inFlight.Inc() }

// Done records a request that Start counted: route is its pattern, never its path.
func (h *HTTP) Done(route, method string, code int, d time.Duration) {
	h.inFlight.Dec()
	if route == "" {
		route = Unmatched
	}
	labels := []string{route, Method(method), Code(code)}
	h.requests.WithLabelValues(labels...).Inc()
	h.duration.WithLabelValues(labels...).Observe(d.Seconds())
}

// Method bounds a request's method to the standard ones; any other is "other", so that a
// client inventing methods cannot add series.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// codes are the label values of the status codes, made once.
var codes = func() [600]string {
	var c [600]string
	for i := 100; i < 600; i++ {
		c[i] = strconv.Itoa(i)
	}
	return c
}()

// Code is a status code's label; a handler that never wrote one answered 200, as net/http
// does for it, and a code outside 100-599 (which net/http refuses) is "other".
func Code(code int) string {
	if code == 0 {
		return "200"
	}
	if code < 100 || code >= len(codes) {
		return "other"
	}
	return codes[code]
}
