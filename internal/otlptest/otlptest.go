// Package otlptest is an OTLP/HTTP trace receiver for tests: a real HTTP server on a port of
// the kernel's choosing that decodes what an exporter posts with the official OTLP types
// (ExportTraceServiceRequest), so that a test sees a node's spans as a collector does.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one span received, with its resource's service name. Its methods are safe on the
// zero Span (none found).
type Span struct {
	Service string
	*tracepb.Span
}

// TraceID is the span's trace id in hex, as a traceparent spells it.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// SpanID is the span's id in hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.GetSpanId()) }

// ParentID is the id of the span's parent in hex ("" for a root).
func (s Span) ParentID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Attr is the value of the span's attribute key as text ("" when it has none).
func (s Span) Attr(key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.Key == key {
			return valueText(kv.Value)
		}
	}
	return ""
}

func valueText(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return ""
}

// Receiver collects the spans exported to it.
type Receiver struct {
	// URL is the collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT); traces are posted to
	// URL+"/v1/traces".
	URL string

	mu      sync.Mutex
	spans   []Span
	headers []http.Header
	bad     []string
	arrived chan struct{} // closed and replaced at each export
}

// Start starts a receiver that stops when the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{arrived: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.fail(fmt.Sprintf("%s %s: not OTLP traces", req.Method, req.URL.Path))
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			r.fail("gzip: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		r.fail("body: " + err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail("Content-Type " + ct)
		http.Error(w, "want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		r.fail("protobuf: " + err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range msg.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = valueText(kv.Value)
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				got = append(got, Span{Service: service, Span: s})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.headers = append(r.headers, req.Header.Clone())
	close(r.arrived)
	r.arrived = make(chan struct{})
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) fail(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = append(r.bad, why)
}

// Spans are the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Headers are the headers of the exports received so far.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// Wait waits up to d for the spans received to satisfy found, and returns them; it fails
// the test, listing what came, when they do not, or when an export could not be read.
func (r *Receiver) Wait(t testing.TB, d time.Duration, what string, found func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, bad, arrived := append([]Span(nil), r.spans...), append([]string(nil), r.bad...), r.arrived
		r.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("OTLP receiver: exports it could not read: %s", strings.Join(bad, "; "))
		}
		if found(spans) {
			return spans
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("OTLP receiver: no %s within %v; received:\n%s", what, d, Describe(spans))
		}
	}
}

// Describe lists spans one a line: name, ids and attributes, for a failing test's message.
func Describe(spans []Span) string {
	var b bytes.Buffer
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s trace=%s span=%s parent=%s", s.Name, s.TraceID(), s.SpanID(), s.ParentID())
		for _, kv := range s.GetAttributes() {
			fmt.Fprintf(&b, " %s=%s", kv.Key, valueText(kv.Value))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
