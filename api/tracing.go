package api

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/metrics"
	"github.com/switchboard-go/switchboard/telemetry"
)

// traceRequests gives every request a span (when the node traces), named by the method and
// the pattern of the route it matched, never its path: a client's traceparent makes it part
// of the client's trace, and the handler's own spans (a gateway request, its upstream) are
// below it. With tracing off, next is served as it is.
func (s *Server) traceRequests(next http.Handler) http.Handler {
	tr := s.cfg.Tracing.Tracer()
	if tr == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := telemetry.Extract(r.Context(), r.Header)
		ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		status := http.StatusInternalServerError // unless the handler returns: recoverer answers a panic
		defer func() {
			route := r.Pattern // set by the router on this request
			if route == "/" || route == "" {
				route = metrics.Unmatched
			} else {
				span.SetName(r.Method + " " + route)
			}
			span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, strconv.Itoa(status))
			}
		}()
		next.ServeHTTP(sw, r)
		status = sw.status
		if status == 0 {
			status = http.StatusOK
		}
	})
}

// traceGateway starts the span of a gateway request below the request's, named by its
// surface; what it asked and what it cost go on it as the answer ends (endGateway).
func traceGateway(ctx context.Context, c *call) (context.Context, trace.Span) {
	ctx, span := telemetry.Start(ctx, "gateway "+c.surface, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("gen_ai.request.model", c.asked), attribute.Bool("gateway.stream", c.stream))
	}
	return ctx, span
}

// endGateway puts what a gateway request used on its span.
func endGateway(span trace.Span, c *call, usage llm.Usage, status int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("gen_ai.provider.name", c.route.ProviderName), attribute.String("gen_ai.response.model", c.route.Upstream),
		attribute.Int("gen_ai.usage.input_tokens", usage.InputTokens), attribute.Int("gen_ai.usage.output_tokens", usage.OutputTokens),
		attribute.Int("http.response.status_code", status))
	if status >= 400 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
}
