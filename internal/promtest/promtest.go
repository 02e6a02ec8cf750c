// Package promtest runs a real Prometheus (Debian's prometheus package, installed by `make
// deps`) for tests: it scrapes the targets a test names and answers PromQL over its HTTP
// query API, so that a test sees its metrics as an operator's Prometheus does.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testnet"
)

// Target is one endpoint to scrape: host:port, with a bearer token when it needs one.
type Target struct {
	Addr  string
	Token string
}

// Prometheus is a running server; it stops when the test ends.
type Prometheus struct {
	// URL is its HTTP address (http://127.0.0.1:port).
	URL string
	t   testing.TB

	mu  sync.Mutex
	out bytes.Buffer
}

// ScrapeInterval is how often the server scrapes: short, so that a test waits little for
// what it did to be seen, and long enough for a busy machine to answer each scrape.
const ScrapeInterval = 500 * time.Millisecond

// Start runs Prometheus scraping the targets (every ScrapeInterval, path /metrics) and
// returns once it answers queries. Its port is one testnet hands out; Prometheus binds it
// itself, so one taken meanwhile by another test binary makes it start again on another.
func Start(t testing.TB, targets ...Target) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (make deps installs Debian's prometheus package): %v", err)
	}
	dir := t.TempDir()
	cfg := configFile(targets)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		p, inUse, err := launch(t, bin, dir)
		if err == nil {
			return p
		}
		if !inUse || attempt == 4 {
			t.Fatal(err)
		}
	}
}

// configFile is a configuration scraping each target as a job of its own ("target0" …).
func configFile(targets []Target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n", ScrapeInterval, ScrapeInterval)
	for i, tg := range targets {
		fmt.Fprintf(&b, "  - job_name: target%d\n    metrics_path: /metrics\n", i)
		if tg.Token != "" {
			fmt.Fprintf(&b, "    authorization:\n      type: Bearer\n      credentials: %q\n", tg.Token)
		}
		fmt.Fprintf(&b, "    static_configs:\n      - targets: [%q]\n", tg.Addr)
	}
	return b.String()
}

// launch starts one Prometheus and waits until it is ready; inUse says its port was taken.
func launch(t testing.TB, bin, dir string) (p *Prometheus, inUse bool, err error) {
	t.Helper()
	port := testnet.Port(t)
	data := filepath.Join(dir, "data-"+strconv.Itoa(port))
	ctx, cancel := context.WithCancel(context.Background())
	p = &Prometheus{URL: "http://127.0.0.1:" + strconv.Itoa(port), t: t}
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+data,
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, false, fmt.Errorf("prometheus: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cancel()
		<-exited
	}
	// Prometheus replays nothing on a fresh directory: it is ready in about a second, far
	// longer on a machine busy with other tests.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			cancel()
			out := p.Output()
			return nil, testnet.AddrInUse(err, out), fmt.Errorf("prometheus exited before it was ready: %v\n%s", err, out)
		case <-time.After(100 * time.Millisecond):
		}
		if p.get(ctx, "/-/ready") == nil {
			t.Cleanup(stop)
			return p, false, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, false, fmt.Errorf("prometheus not ready within 60 s:\n%s", p.Output())
		}
	}
}

// Write keeps what Prometheus logs, for a failure's message.
func (p *Prometheus) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what Prometheus logged.
func (p *Prometheus) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *Prometheus) get(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}

// Sample is one series of an instant vector: its labels and value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates an instant PromQL query through the HTTP API (/api/v1/query).
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", expr, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: a %s, not a vector", expr, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", expr, r.Value[1])
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// ErrNotYet is WaitFor's error when its condition never held.
var ErrNotYet = errors.New("promtest: the query never gave what was waited for")

// WaitFor queries expr until ok accepts its answer, or fails the test after limit with the
// last answer: metrics reach Prometheus a scrape later than what made them.
func (p *Prometheus) WaitFor(limit time.Duration, expr string, ok func([]Sample) bool) []Sample {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var (
		last []Sample
		err  error
	)
	for {
		last, err = p.Query(ctx, expr)
		if err == nil && ok(last) {
			return last
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("%v: %s after %s: %v (error %v)\nprometheus:\n%s", ErrNotYet, expr, limit, last, err, p.Output())
			return nil
		case <-time.After(ScrapeInterval / 2):
		}
	}
}
