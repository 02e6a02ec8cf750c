package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/internal/otlptest"
	"github.com/switchboard-go/switchboard/telemetry"
)

// TestExport: spans started below a root reach a real OTLP/HTTP receiver, decoded with the
// official types, under the service's name, with the operator's export headers; Inject
// writes the child's traceparent, and a log line with the span's context carries its ids.
func TestExport(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	tr, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: rcv.URL + "/", ServiceName: "switchboard-test",
		Headers: "x-tenant=acme,authorization=Bearer%20secret", Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Shutdown)

	ctx, root := tr.Tracer().Start(context.Background(), "call")
	cctx, child := telemetry.Start(ctx, "turn")
	if !child.IsRecording() {
		t.Fatal("a span below a recording root does not record")
	}
	h := http.Header{}
	telemetry.Inject(cctx, h)
	var logs bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewTextHandler(&logs, nil))).With("call_id", "call_1")
	log.InfoContext(cctx, "turn began")
	child.End()
	root.End()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	spans := rcv.Wait(t, 10*time.Second, "call and turn spans", func(s []otlptest.Span) bool { return len(s) >= 2 })
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	call, turn := byName["call"], byName["turn"]
	if call.Span == nil || turn.Span == nil || turn.ParentID() != call.SpanID() || turn.TraceID() != call.TraceID() {
		t.Fatalf("want turn below call:\n%s", otlptest.Describe(spans))
	}
	if call.Service != "switchboard-test" {
		t.Errorf("service.name %q", call.Service)
	}
	want := "00-" + turn.TraceID() + "-" + turn.SpanID() + "-01"
	if got := h.Get("Traceparent"); got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	hs := rcv.Headers()
	if hs[0].Get("X-Tenant") != "acme" || hs[0].Get("Authorization") != "Bearer secret" {
		t.Errorf("export headers %v", hs[0])
	}
	if line := logs.String(); !strings.Contains(line, "trace_id="+turn.TraceID()) || !strings.Contains(line, "span_id="+turn.SpanID()) {
		t.Errorf("log line lacks the turn's ids: %s", line)
	}
}

// TestOff: without an endpoint tracing is off, and what the code on the call path does
// with it (start spans, inject, log) changes nothing and allocates nothing.
func TestOff(t *testing.T) {
	tr, err := telemetry.New(context.Background(), telemetry.Config{ServiceName: "x", Sampler: "always_on"})
	if err != nil || tr != nil || tr.Enabled() || tr.Tracer() != nil {
		t.Fatalf("New without an endpoint: %v, %v; want nil (off)", tr, err)
	}
	tr.Shutdown()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := http.Header{}
	allocs := testing.AllocsPerRun(100, func() {
		c2, span := telemetry.Start(ctx, "turn")
		if span.IsRecording() || c2 != ctx {
			t.Fatal("an untraced context gave a recording span")
		}
		telemetry.Fail(span, context.Canceled)
		span.End()
		telemetry.Inject(ctx, h)
	})
	if allocs != 0 || len(h) != 0 {
		t.Errorf("off: %v allocations a span, headers %v; want none", allocs, h)
	}
	var logs bytes.Buffer
	slog.New(telemetry.LogHandler(slog.NewTextHandler(&logs, nil))).InfoContext(ctx, "no trace")
	if strings.Contains(logs.String(), "trace_id") {
		t.Errorf("a line without a span has a trace id: %s", logs.String())
	}
}

// TestExtract: a client's traceparent is the parent of what the node starts; a malformed one
// is ignored, not an error.
func TestExtract(t *testing.T) {
	t.Parallel()
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h))
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() {
		t.Errorf("extracted %v", sc)
	}
	h.Set("Traceparent", "00-zz-00f067aa0ba902b7-01")
	if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h)); sc.IsValid() {
		t.Errorf("a malformed traceparent gave %v", sc)
	}
}

// TestConfigRefused: a setting that cannot work is refused, naming what is wrong.
func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  telemetry.Config
		want string
	}{
		{telemetry.Config{Endpoint: "collector:4318"}, "http:// or https://"},
		{telemetry.Config{TracesEndpoint: "ftp://collector/v1/traces"}, "http:// or https://"},
		{telemetry.Config{Endpoint: "http://c:4318", Headers: "novalue"}, "not key=value"},
		{telemetry.Config{Endpoint: "http://c:4318", Headers: "k=%zz"}, "URL-encoded"},
		{telemetry.Config{Endpoint: "http://c:4318", Sampler: "sometimes"}, "not a sampler"},
		{telemetry.Config{Endpoint: "http://c:4318", Sampler: "traceidratio", SamplerArg: "1.5"}, "ratio from 0 to 1"},
	} {
		tr, err := telemetry.New(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			tr.Shutdown()
			t.Errorf("%+v: %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}
}
