package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
)

// TestMain fails the package if a test leaves a goroutine behind: a stream that is never
// released, a stand-in request that never ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dialect is one of the two upstream protocols, for tests that run against both.
type dialect struct {
	name  string
	kind  llm.Kind
	start func(testing.TB) *llmtest.Server
}

var dialects = []dialect{
	{"openai", llm.KindOpenAI, llmtest.NewOpenAI},
	{"anthropic", llm.KindAnthropic, llmtest.NewAnthropic},
}

// forEachDialect runs f against a fresh stand-in of each dialect and a provider of it.
func forEachDialect(t *testing.T, f func(t *testing.T, d dialect, srv *llmtest.Server, p llm.Provider)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			srv, p := d.setup(t, nil)
			f(t, d, srv, p)
		})
	}
}

// setup starts a stand-in that requires a key and a provider that has it; edit changes the
// provider's configuration.
func (d dialect) setup(t *testing.T, edit func(*llm.ProviderConfig), opts ...llm.Option) (*llmtest.Server, llm.Provider) {
	t.Helper()
	srv := d.start(t)
	srv.RequireKey("key-" + d.name)
	cfg := llm.ProviderConfig{Name: "standin-" + d.name, Kind: d.kind, BaseURL: srv.URL, APIKey: "key-" + d.name}
	if edit != nil {
		edit(&cfg)
	}
	p, err := llm.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, p
}

// testCtx is the deadline of one test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

// assertJSON compares JSON by value, not by bytes.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", indent(got), indent([]byte(want)))
	}
}

func indent(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "      ", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// drain reads a stream to its end, returning its deltas and the error that ended it
// (nil for io.EOF).
func drain(t *testing.T, s llm.Stream) ([]llm.Delta, error) {
	t.Helper()
	defer s.Close()
	var ds []llm.Delta
	for {
		d, err := s.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ds, nil
			}
			return ds, err
		}
		ds = append(ds, d)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
