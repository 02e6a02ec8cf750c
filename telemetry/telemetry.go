// Package telemetry owns a node's OpenTelemetry tracing: the exporter (OTLP over HTTP, set
// by the standard OTEL_* variables), the sampler, W3C trace context in and out of HTTP
// requests, the span helper every package starts its spans with, and the log handler that
// puts a span's trace id on log lines. With no endpoint set, tracing is off: a nil *Tracing,
// spans that are never made and headers that are never touched, so that a node that does
// not trace pays for none of it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Scope names the spans Switchboard makes (the instrumentation scope of OTLP).
const Scope = "github.com/switchboard-go/switchboard"

// Config is what the operator tells of tracing, from the standard OTEL_* variables (README's
// "Tracing" section). Variables of the SDK's own that are not here (OTEL_BSP_*, certificates,
// OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_RESOURCE_ATTRIBUTES) are read by the SDK itself.
type Config struct {
	// Endpoint is the collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT): traces go to its
	// /v1/traces. TracesEndpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is the full URL of
	// traces and wins. Both empty: tracing is off.
	Endpoint, TracesEndpoint string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS or
	// OTEL_EXPORTER_OTLP_TRACES_HEADERS): "key=value,key2=value2", values URL-encoded.
	Headers string
	// ServiceName is the service.name of every span (OTEL_SERVICE_NAME).
	ServiceName string
	// Sampler and SamplerArg choose which traces are kept (OTEL_TRACES_SAMPLER,
	// OTEL_TRACES_SAMPLER_ARG); empty is parentbased_always_on.
	Sampler, SamplerArg string
	// Version is the build's, as service.version.
	Version string
	// BatchTimeout is the longest a span waits to be exported (zero: OTEL_BSP_SCHEDULE_DELAY,
	// else the SDK's 5 s).
	BatchTimeout time.Duration
}

// Enabled says the configuration turns tracing on.
func (c Config) Enabled() bool { return c.Endpoint != "" || c.TracesEndpoint != "" }

// tracesURL is where the exporter posts: the traces endpoint as given, or the base
// endpoint's /v1/traces (the OTLP exporter specification's rule).
func (c Config) tracesURL() string {
	if c.TracesEndpoint != "" {
		return c.TracesEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/") + "/v1/traces"
}

// Tracing is a node's tracer provider and exporter. A nil *Tracing is tracing off: every
// method is safe to call on it and does nothing.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// New starts tracing as cfg says, or returns nil (off) when cfg names no endpoint. The
// exporter connects lazily: a collector that is down costs dropped spans, never a node
// that does not start.
func New(ctx context.Context, cfg Config) (*Tracing, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := CheckEndpoint(cfg.tracesURL()); err != nil {
		return nil, err
	}
	headers, err := ParseHeaders(cfg.Headers)
	if err != nil {
		return nil, err
	}
	sampler, err := NewSampler(cfg.Sampler, cfg.SamplerArg)
	if err != nil {
		return nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.tracesURL())}
	if len(headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "switchboard"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	// The operator's OTEL_RESOURCE_ATTRIBUTES first, the service's name over them.
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	var batch []sdktrace.BatchSpanProcessorOption
	if cfg.BatchTimeout > 0 {
		batch = append(batch, sdktrace.WithBatchTimeout(cfg.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, batch...), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	return &Tracing{tp: tp, tracer: tp.Tracer(Scope)}, nil
}

// Enabled says spans are made and exported.
func (t *Tracing) Enabled() bool { return t != nil }

// Tracer makes the node's root spans (a request, a call); nil when tracing is off. Spans
// below them are made with Start, from the parent in the context.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// ForceFlush exports the spans that ended and waits for the collector, or ctx.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown exports what is left and stops; spans that end later are dropped. It waits at
// most five seconds for a collector that does not answer.
func (t *Tracing) Shutdown() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.tp.Shutdown(ctx)
}

// noSpan is what Start gives when nothing is traced: it records nothing, and ending it ends
// nothing.
var noSpan = trace.SpanFromContext(context.Background())

// Start starts a span named name below the span in ctx, with the same tracer provider. When
// ctx holds no span that records (tracing off, or a trace not sampled) it makes nothing: ctx
// comes back as it was, with a span that does nothing, at no cost. Callers set attributes
// after, when span.IsRecording(), so that an untraced call builds none.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noSpan
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

// Fail marks span failed with err (nil: nothing).
func Fail(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// propagator is W3C trace context: traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Inject puts the trace context of ctx's span into h (traceparent, tracestate), so that the
// provider or webhook a request goes to sees the trace it belongs to. Without a span it
// leaves h alone.
func Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract is ctx with the remote span of h's traceparent (and tracestate) as the parent of
// what is started in it; ctx itself when h has none or an invalid one.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("Traceparent") == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// CheckEndpoint refuses an endpoint that is not an absolute http or https URL.
func CheckEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL of an OTLP/HTTP collector")
	}
	return nil
}

// ParseHeaders reads OTEL_EXPORTER_OTLP_HEADERS: comma-separated key=value pairs, values
// URL-encoded (the OpenTelemetry specification's format).
func ParseHeaders(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(pair))
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not URL-encoded: %w", k, err)
		}
		out[k] = dec
	}
	return out, nil
}

// Samplers are the values of OTEL_TRACES_SAMPLER Switchboard takes.
var Samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// NewSampler is the sampler OTEL_TRACES_SAMPLER (name) and OTEL_TRACES_SAMPLER_ARG (arg, a
// ratio from 0 to 1 for the ratio samplers, 1 when empty) name; an empty name is
// parentbased_always_on: a trace a client sampled is followed, others are all kept.
func NewSampler(name, arg string) (sdktrace.Sampler, error) {
	name = strings.ToLower(name)
	ratio := 1.0
	if arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("the sampler's argument %q is not a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("%q is not a sampler Switchboard knows (%s)", name, strings.Join(Samplers, ", "))
}
