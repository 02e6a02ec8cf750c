package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Gateway is the model gateway's metrics: requests answered, tokens and cost by the provider
// that answered, and each provider's failures (a fallback tried after one counts once for
// each). Its provider label takes the names of the providers the operator and the tenants
// configured ("openai", "anthropic", …), a bounded set; models are not labels, as a tenant
// may name many.
type Gateway struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	cost     *prometheus.CounterVec
	failures *prometheus.CounterVec
}

func newGateway() *Gateway {
	return &Gateway{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "requests_total",
			Help: "Model requests the gateway answered, by the provider that answered (\"none\" when none did) and the HTTP status class."},
			[]string{"provider", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "tokens_total",
			Help: "Tokens of the gateway's model requests, by provider and kind (input, output)."}, []string{"provider", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "cost_usd_total",
			Help: "Cost of the gateway's model requests in US dollars at the configured prices, by provider."}, []string{"provider"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "gateway", Name: "upstream_errors_total",
			Help: "Failures of the providers the gateway asked (an error, a refusal, a timeout), by provider."}, []string{"provider"}),
	}
}

// Answered counts a gateway request that ended with status, answered by provider ("" when
// none answered) with those tokens at that cost.
func (g *Gateway) Answered(provider string, status int, inputTokens, outputTokens int64, costUSD float64) {
	if g == nil {
		return
	}
	if provider == "" {
		provider = "none"
	}
	g.requests.WithLabelValues(provider, statusClass(status)).Inc()
	if inputTokens > 0 {
		g.tokens.WithLabelValues(provider, "input").Add(float64(inputTokens))
	}
	if outputTokens > 0 {
		g.tokens.WithLabelValues(provider, "output").Add(float64(outputTokens))
	}
	if costUSD > 0 {
		g.cost.WithLabelValues(provider).Add(costUSD)
	}
}

// Failed counts a provider that failed a gateway request.
func (g *Gateway) Failed(provider string) {
	if g == nil {
		return
	}
	g.failures.WithLabelValues(provider).Inc()
}

// statusClass is 2xx, 4xx, 5xx (a bounded label).
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}
