package main

// These tests run the real switchboard binary, built once by TestMain, the way an operator
// does: commands and environment in, stdout, stderr and exit codes out, HTTP on loopback,
// signals, and a PostgreSQL that goes away under a running server.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/internal/pgtest"
)

const (
	// The build stamps these, as make build does, so that the tests see the stamp arrive.
	testVersion = "0.0.0-e2e"
	testCommit  = "e2ecommit"
	// testSecret is SWITCHBOARD_SECRET where several processes share a database.
	testSecret = "switchboard-e2e-secret-0123456789"

	// Deadlines of the processes the tests start.
	commandTimeout = 60 * time.Second
	serveTimeout   = 3 * time.Minute
)

// binary is the switchboard executable under test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard e2e:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "switchboard")
	if err := build(binary); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard e2e: build:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	// Agents transcribe through openai by default: here that is a stand-in that hears
	// nothing in what callers say, so no test reaches the real service or depends on how
	// fast a lookup of it fails. Tests that converse start their own.
	quiet := speechtest.Start()
	quiet.Respond(func(speechtest.TranscriptionRequest) speechtest.Transcript { return speechtest.Transcript{} })
	quietSpeech = quiet.URL
	code := pgtest.Run(m)
	quiet.Close()
	_ = os.RemoveAll(dir)
	if leaked := leakedGoroutines(5 * time.Second); code == 0 && len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "switchboard e2e: %d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
		code = 1
	}
	os.Exit(code)
}

// build compiles the package into path, with the race detector when the tests have it, so
// that a race in the server fails the test that provoked it.
func build(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"build", "-o", path, "-ldflags", "-X main.version=" + testVersion + " -X main.commit=" + testCommit}
	if raceEnabled() {
		args = append(args, "-race")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // the toolchain running this test, when go is not on PATH
	}
	cmd := exec.CommandContext(ctx, goTool, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// leakedGoroutines waits up to d for the goroutines the tests started (process waiters, HTTP
// connections, database pools) to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) []string {
	suspects := []string{"switchboard-go/switchboard/", "os/exec.", "net/http.", "database/sql.", "jackc/pgx", "internal/poll."}
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		// The first stack is this goroutine's.
		for _, g := range strings.Split(string(buf), "\n\n")[1:] {
			for _, s := range suspects {
				if strings.Contains(g, s) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietSpeech is the base URL of TestMain's stand-in for the openai provider.
var quietSpeech string

// environ is the environment of a switchboard process: this one's without the variables
// switchboard reads, then vars (a later assignment of a name wins).
func environ(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SWITCHBOARD_") || strings.HasPrefix(name, "OPENAI_") || strings.HasPrefix(name, "ANTHROPIC_") || strings.HasPrefix(name, "OTEL_") ||
			name == "DATABASE_URL" || name == "LOG_LEVEL" || name == "LOG_FORMAT" {
			continue
		}
		env = append(env, kv)
	}
	// A race-enabled binary otherwise sleeps a second on its way out.
	env = append(env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	// Agents talk through openai/… models by default, and a node refuses an agent whose
	// provider has no key; no test here reaches the real service.
	env = append(env, "OPENAI_API_KEY=sk-switchboard-test-not-a-key", "OPENAI_BASE_URL="+quietSpeech)
	// The demo agent would be one more agent in every list; the demo's own test asks for it.
	env = append(env, "SWITCHBOARD_DEMO=false")
	return append(env, vars...)
}

// result is what a finished command left behind.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("switchboard %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs switchboard with args and the environment env to its end, within commandTimeout.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = environ(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("switchboard %s: still running after %v\n%s", strings.Join(args, " "), commandTimeout, r)
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("switchboard %s: %v", strings.Join(args, " "), err)
	}
	checkClean(t, "switchboard "+strings.Join(args, " "), r.stderr)
	return r
}

// checkClean fails the test when a process's output shows a data race or a panic.
func checkClean(t *testing.T, what, stderr string) {
	t.Helper()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "goroutine "} {
		if strings.Contains(stderr, bad) {
			t.Errorf("%s: %q in its output:\n%s", what, bad, stderr)
			return
		}
	}
}

var reKey = regexp.MustCompile(`^(as_live_|as_test_|alm_live_|alm_test_)[A-Za-z0-9_-]{20,}$`)

// createKey runs keys create and returns the key, checking that it is all stdout holds.
func createKey(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := run(t, env, append([]string{"keys", "create"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keys create failed:\n%s", r)
	}
	key, ok := strings.CutSuffix(r.stdout, "\n")
	if !ok || strings.Contains(key, "\n") || !reKey.MatchString(key) {
		t.Fatalf("keys create: stdout is not one line holding a key alone: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "created key") {
		t.Errorf("keys create: stderr does not say what was made: %q", r.stderr)
	}
	return key
}

// logBuffer collects a server's output and notices the line that says where it listens.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addr  string
	ready chan struct{}
	// written signals each write, for a test that waits for a line (until).
	written changes
}

var reServing = regexp.MustCompile(`switchboard serving.*?(127\.0\.0\.1:\d+)`)

func (l *logBuffer) Write(p []byte) (int, error) {
	defer l.written.notify()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.addr == "" {
		if m := reServing.FindSubmatch(l.buf.Bytes()); m != nil {
			l.addr = string(m[1])
			close(l.ready)
		}
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// until waits at most d for the output to satisfy ok, looking again at each write, and
// reports whether it did.
func (l *logBuffer) until(d time.Duration, ok func(out string) bool) bool {
	return l.written.until(d, func() bool { return ok(l.String()) })
}

// logged reports whether the server logged a line with this message, in either format.
func (l *logBuffer) logged(msg string) bool { return hasLogLine(l.String(), msg) }

// hasLogLine reports whether out has a line with this message, in either format.
func hasLogLine(out, msg string) bool {
	return strings.Contains(out, `"msg":"`+msg+`"`) || strings.Contains(out, "msg="+msg+" ") ||
		strings.Contains(out, "msg="+msg+"\n") || strings.Contains(out, `msg="`+msg+`"`)
}

// eitherLogged waits at most d for a or b to log msg, looking again at each write to either,
// and reports whether one did.
func eitherLogged(d time.Duration, msg string, a, b *logBuffer) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ca, cb := a.written.changed(), b.written.changed()
		if a.logged(msg) || b.logged(msg) {
			return true
		}
		select {
		case <-ca:
		case <-cb:
		case <-deadline.C:
			return a.logged(msg) || b.logged(msg)
		}
	}
}

// node is a running switchboard serve.
type node struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *logBuffer
	addr   string // host:port of the HTTP API
	client *http.Client
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// startServe starts switchboard serve on a port of the kernel's choosing and waits until it
// says where it listens. The process is killed, if it is still running, when the test ends.
func startServe(t *testing.T, env []string, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve"}, args...)...)
	cmd.Env = environ(append([]string{"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0"}, env...)...)
	// The client's deadline is generous: a race-built node on a busy machine takes seconds
	// over what is quick elsewhere (a login checks three bcrypt hashes).
	n := &node{t: t, cmd: cmd, log: &logBuffer{ready: make(chan struct{})}, exited: make(chan struct{}),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start switchboard serve: %v", err)
	}
	go func() { n.err = cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.client.CloseIdleConnections()
		cancel()
		<-n.exited
		checkClean(t, "switchboard serve", n.log.String())
		if t.Failed() {
			t.Logf("switchboard serve output:\n%s", n.log)
		}
	})
	select {
	case <-n.log.ready:
		n.addr = n.log.addr
	case <-n.exited:
		t.Fatalf("switchboard serve exited before serving: %v\n%s", n.err, n.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("switchboard serve did not start serving within 30s:\n%s", n.log)
	}
	return n
}

// signal sends sig to the server.
func (n *node) signal(sig os.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits up to d for the server to end and returns its exit code (-1 when a signal
// ended it).
func (n *node) waitExit(d time.Duration) int {
	n.t.Helper()
	select {
	case <-n.exited:
	case <-time.After(d):
		n.t.Fatalf("switchboard serve still running %v later:\n%s", d, n.log)
	}
	var exitErr *exec.ExitError
	switch {
	case n.err == nil:
		return 0
	case errors.As(n.err, &exitErr):
		return exitErr.ExitCode()
	}
	n.t.Fatalf("switchboard serve: %v", n.err)
	return 0
}

// waitLogged waits up to d for the server to log msg, looking again at each write.
func (n *node) waitLogged(msg string, d time.Duration) {
	n.t.Helper()
	if !n.log.until(d, func(out string) bool { return hasLogLine(out, msg) }) {
		n.t.Fatalf("switchboard serve did not log %q within %v:\n%s", msg, d, n.log)
	}
}

// call sends a request with a JSON body (when body is not empty) and the key (when not empty)
// and returns the status and the decoded JSON answer.
func (n *node) call(method, path, key, body string) (int, map[string]any) {
	n.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(n.t.Context(), method, "http://"+n.addr+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		n.t.Fatalf("%s %s: %d with a body that is not a JSON object: %v: %q", method, path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, out
}

// agentJSON is the agent of the example, named name.
func agentJSON(name string) string {
	return `{"name":"` + name + `","instructions":"You answer the phone for a dental clinic.","first_message":"Hello!",` +
		`"language":"en","model":"openai/gpt-4o-mini","temperature":0.7,"voice":{"provider":"espeak","voice":"en-us","speed":1.0},` +
		`"transcriber":{"provider":"openai","model":"whisper-1"},"tool_ids":[],"knowledge_base_ids":[],"workflow_id":null,` +
		`"limits":{"max_duration_s":1800,"idle_timeout_s":30},"turn":{"endpointing_ms":600,"interruptions":true,"min_interruption_ms":250},"metadata":{}}`
}

// itemIDs returns the ids of a list answer, checking its shape.
func itemIDs(t *testing.T, list map[string]any) []string {
	t.Helper()
	items, ok := list["items"].([]any)
	if !ok {
		t.Fatalf("list answer without items: %v", list)
	}
	for _, f := range []string{"total", "limit", "offset"} {
		if _, ok := list[f].(float64); !ok {
			t.Errorf("list answer without a numeric %s: %v", f, list)
		}
	}
	var ids []string
	for _, it := range items {
		obj, _ := it.(map[string]any)
		id, _ := obj["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// errorCode returns error.code of an error answer, checking the canonical shape.
func errorCode(t *testing.T, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("not the canonical error shape: %v", body)
	}
	code, _ := e["code"].(string)
	if msg, _ := e["message"].(string); code == "" || msg == "" {
		t.Errorf("error without a code or a message: %v", body)
	}
	if _, ok := e["details"].([]any); !ok {
		t.Errorf("error without a details list: %v", body)
	}
	return code
}

// dialects gives each test that can run on both databases its DATABASE_URL.
var dialects = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", func(t *testing.T) string { return pgtest.URL(t) }},
}

// TestWalkthrough is the README's walk: make a key from the command line, serve, create an
// agent with the key, list it; a key of another tenant cannot see it.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + d.url(t)}
			key := createKey(t, env, "--name", "ci")
			if !strings.HasPrefix(key, "as_live_") {
				t.Errorf("keys create --name ci made %q, not an as_live_ key", key)
			}
			n := startServe(t, env)

			status, health := n.call("GET", "/health", "", "")
			if status != http.StatusOK || health["status"] != "healthy" || health["database_connected"] != true ||
				health["database"] != d.name || health["version"] != testVersion {
				t.Errorf("GET /health: %d %v", status, health)
			}
			if checks, _ := health["checks"].([]any); len(checks) != 2 || checks[0].(map[string]any)["name"] != "sip-udp" || checks[1].(map[string]any)["healthy"] != true {
				t.Errorf("GET /health does not report the SIP listeners: %v", health["checks"])
			}
			if status, body := n.call("GET", "/api/v1/agents", "", ""); status != http.StatusUnauthorized || errorCode(t, body) != "authentication_error" {
				t.Errorf("GET /api/v1/agents without a key: %d %v", status, body)
			}

			status, agent := n.call("POST", "/api/v1/agents", key, agentJSON("Front desk"))
			id, _ := agent["id"].(string)
			if status != http.StatusCreated || id == "" || agent["name"] != "Front desk" {
				t.Fatalf("POST /api/v1/agents: %d %v", status, agent)
			}
			status, list := n.call("GET", "/api/v1/agents", key, "")
			if ids := itemIDs(t, list); status != http.StatusOK || len(ids) != 1 || ids[0] != id || list["total"] != 1.0 {
				t.Errorf("GET /api/v1/agents: %d %v, want the one agent %s", status, list, id)
			}

			// A key of a tenant that does not exist yet, made while the server runs.
			other := createKey(t, env, "--tenant", "other", "--env", "test", "--name", "other-ci")
			if !strings.HasPrefix(other, "as_test_") {
				t.Errorf("keys create --env test made %q, not an as_test_ key", other)
			}
			if status, body := n.call("GET", "/api/v1/agents/"+id, other, ""); status != http.StatusNotFound || errorCode(t, body) != "not_found" {
				t.Errorf("GET the default tenant's agent with another tenant's key: %d %v, want 404 not_found", status, body)
			}
			if status, list := n.call("GET", "/api/v1/agents", other, ""); status != http.StatusOK || len(itemIDs(t, list)) != 0 || list["total"] != 0.0 {
				t.Errorf("GET /api/v1/agents with another tenant's key: %d %v, want an empty list", status, list)
			}
			if status, body := n.call("GET", "/api/v1/agents/"+id, key, ""); status != http.StatusOK || body["id"] != id {
				t.Errorf("GET /api/v1/agents/%s with its tenant's key: %d %v", id, status, body)
			}
			// An Alumia key of the default tenant reaches the same agents.
			alm := createKey(t, env, "--kind", "alumia", "--name", "alumia-ci")
			if !strings.HasPrefix(alm, "alm_live_") {
				t.Errorf("keys create --kind alumia made %q, not an alm_live_ key", alm)
			}
			if status, list := n.call("GET", "/api/v1/agents", alm, ""); status != http.StatusOK || len(itemIDs(t, list)) != 1 {
				t.Errorf("GET /api/v1/agents with an alm_live_ key: %d %v", status, list)
			}
		})
	}
}

// migrationNames are the migrations of the store, as switchboard migrate names them.
func migrationNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "store", "migrations", "*.up.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found in store/migrations: %v", err)
	}
	var names []string
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".up.sql"), ".tx")
		names = append(names, name)
	}
	// The migrations written in Go (store/migrate.go) have no file.
	names = append(names, "20261207000301_call_rollups_backfill")
	slices.Sort(names)
	return names
}

// TestMigrate walks migrate up, status, down, status and up again.
func TestMigrate(t *testing.T) {
	t.Parallel()
	names := migrationNames(t)
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + d.url(t)}
			migrate := func(action string) string {
				t.Helper()
				r := run(t, env, "migrate", action)
				if r.code != 0 {
					t.Fatalf("migrate %s failed:\n%s", action, r)
				}
				return r.stdout
			}
			// status checks that every migration is listed once, in the state want.
			status := func(want string) {
				t.Helper()
				out := migrate("status")
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != len(names) {
					t.Fatalf("migrate status listed %d lines, want %d migrations:\n%s", len(lines), len(names), out)
				}
				for i, name := range names {
					f := strings.Fields(lines[i])
					if len(f) < 2 || f[0] != name || f[1] != want {
						t.Errorf("migrate status line %q, want %s %s", lines[i], name, want)
					}
				}
			}

			status("pending")
			out := migrate("up")
			for _, name := range names {
				if !strings.Contains(out, "applied "+name+"\n") {
					t.Errorf("migrate up did not report %s:\n%s", name, out)
				}
			}
			status("applied")
			if out := migrate("up"); !strings.Contains(out, "nothing to apply") {
				t.Errorf("second migrate up: %q, want nothing to apply", out)
			}
			out = migrate("down")
			for _, name := range names {
				if !strings.Contains(out, "undid "+name+"\n") {
					t.Errorf("migrate down did not report %s:\n%s", name, out)
				}
			}
			status("pending")
			if out := migrate("down"); !strings.Contains(out, "nothing to undo") {
				t.Errorf("second migrate down: %q, want nothing to undo", out)
			}
			migrate("up")
			status("applied")

			// The database migrate made is one serve and keys create can use.
			createKey(t, env, "--name", "after-migrate")
		})
	}
}

// openInFlight opens a connection and sends the headers of a POST /api/v1/agents that
// expects 100 Continue, and waits for the 100: the handler is then running and waiting for
// the body, a request in flight for as long as the test likes.
func openInFlight(t *testing.T, n *node, key string) (net.Conn, *bufio.Reader) {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := agentJSON("In flight")
	fmt.Fprintf(conn, "POST /api/v1/agents HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", n.addr, key, len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("in-flight request: want 100 Continue, got %q, %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("in-flight request: after 100 Continue: %q, %v", blank, err)
	}
	return conn, br
}

// openIdle opens a keep-alive connection, makes one request on it and leaves it idle.
func openIdle(t *testing.T, n *node) (net.Conn, *bufio.Reader) {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: %s\r\n\r\n", n.addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /version on a keep-alive connection: %d, close %v", resp.StatusCode, resp.Close)
	}
	return conn, br
}

// waitRefused waits until the server no longer accepts connections.
func waitRefused(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var d net.Dialer
		conn, err := d.DialContext(t.Context(), "tcp", n.addr)
		if err != nil {
			return
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the server still accepts connections 5s after the signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGracefulShutdown: the first SIGTERM or SIGINT stops new connections, closes idle ones,
// lets the request in flight finish, and exits 0 having logged "stopped".
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		for _, format := range []string{"text", "json"} {
			t.Run(sig.String()+"/"+format, func(t *testing.T) {
				t.Parallel()
				env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "LOG_FORMAT=" + format}
				key := createKey(t, env, "--name", "ci")
				n := startServe(t, env)
				idle, idleR := openIdle(t, n)
				defer idle.Close()
				conn, br := openInFlight(t, n, key)

				n.signal(sig)
				n.waitLogged("shutting down: no new requests, finishing those in flight", 5*time.Second)
				waitRefused(t, n)
				// The idle connection is closed, not kept until the in-flight request ends.
				if _, err := idleR.ReadByte(); err == nil {
					t.Errorf("an idle keep-alive connection is still open during shutdown")
				}
				select {
				case <-n.exited:
					t.Fatalf("the server exited with a request in flight: %v\n%s", n.err, n.log)
				case <-time.After(300 * time.Millisecond):
				}

				if _, err := io.WriteString(conn, agentJSON("In flight")); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("the in-flight request got no answer: %v", err)
				}
				raw, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated || !bytes.Contains(raw, []byte(`"id":"`)) {
					t.Errorf("the in-flight request: %d %s, want 201 with an id", resp.StatusCode, raw)
				}
				if code := n.waitExit(5 * time.Second); code != 0 {
					t.Errorf("exit code %d after %v, want 0:\n%s", code, sig, n.log)
				}
				if !n.log.logged("stopped") {
					t.Errorf("the server did not log stopped:\n%s", n.log)
				}
			})
		}
	}
}

// TestSecondSignalForces: a second signal ends the process at once, without waiting for the
// request in flight.
func TestSecondSignalForces(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()}
	key := createKey(t, env, "--name", "ci")
	n := startServe(t, env)
	_, br := openInFlight(t, n, key)
	n.signal(syscall.SIGTERM)
	n.waitLogged("shutting down: no new requests, finishing those in flight", 5*time.Second)
	n.signal(syscall.SIGTERM)
	if code := n.waitExit(5 * time.Second); code == 0 {
		t.Errorf("exit code 0 after a forced stop")
	}
	if n.log.logged("stopped") {
		t.Errorf("a forced stop logged stopped, as if the request in flight had finished")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the in-flight connection is still open after the process ended")
	}
}

// downURL is a PostgreSQL where nothing listens.
const downURL = "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"

// TestDatabaseDownAtStart: commands that need the database fail at once, with a message that
// names it, and keys create prints no key.
func TestDatabaseDownAtStart(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve"}, {"keys", "create", "--name", "ci"}, {"migrate", "status"}, {"migrate", "up"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + downURL,
				"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0"}
			start := time.Now()
			r := run(t, env, args...)
			if r.code == 0 {
				t.Fatalf("exit 0 with the database down:\n%s", r)
			}
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %v to give up", took)
			}
			if !strings.Contains(r.stderr, "database") || !strings.Contains(r.stderr, "postgres") {
				t.Errorf("stderr does not say the database is the trouble:\n%s", r)
			}
			if strings.Contains(r.stderr, "switchboard serving") {
				t.Errorf("the server started serving without a database:\n%s", r)
			}
			if r.stdout != "" {
				t.Errorf("stdout is not empty: %q", r.stdout)
			}
		})
	}
}

// TestDatabaseOutage: a PostgreSQL that stops under a running server makes the requests that
// need it 503 service_unavailable and /health 503; when it returns, they succeed again.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + cluster.URL, "SWITCHBOARD_SECRET=" + testSecret,
		// The test polls; the rate limiter is not what it tests.
		"SWITCHBOARD_RATE_LIMIT=100000"}
	key := createKey(t, env, "--name", "ci")
	n := startServe(t, env)

	status, agent := n.call("POST", "/api/v1/agents", key, agentJSON("Front desk"))
	if status != http.StatusCreated {
		t.Fatalf("POST /api/v1/agents: %d %v", status, agent)
	}
	if status, list := n.call("GET", "/api/v1/agents", key, ""); status != http.StatusOK || len(itemIDs(t, list)) != 1 {
		t.Fatalf("GET /api/v1/agents: %d %v", status, list)
	}

	cluster.Stop()
	// The first request after the database went away, on a pool of dead connections, as
	// much as the ones after it.
	for i := range 3 {
		if status, body := n.call("GET", "/api/v1/agents", key, ""); status != http.StatusServiceUnavailable || errorCode(t, body) != "service_unavailable" {
			t.Errorf("GET /api/v1/agents #%d with the database down: %d %v, want 503 service_unavailable", i+1, status, body)
		}
	}
	if status, body := n.call("POST", "/api/v1/agents", key, agentJSON("Back office")); status != http.StatusServiceUnavailable || errorCode(t, body) != "service_unavailable" {
		t.Errorf("POST /api/v1/agents with the database down: %d %v, want 503 service_unavailable", status, body)
	}
	if status, health := n.call("GET", "/health", "", ""); status != http.StatusServiceUnavailable || health["database_connected"] != false || health["status"] != "unhealthy" {
		t.Errorf("GET /health with the database down: %d %v, want 503 with database_connected false", status, health)
	}
	// Routes that need no database still answer.
	if status, body := n.call("GET", "/version", "", ""); status != http.StatusOK || body["version"] != testVersion {
		t.Errorf("GET /version with the database down: %d %v", status, body)
	}

	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, list := n.call("GET", "/api/v1/agents", key, "")
		if status == http.StatusOK {
			if ids := itemIDs(t, list); len(ids) != 1 || ids[0] != agent["id"] {
				t.Errorf("GET /api/v1/agents after the database returned: %v, want the agent made before", list)
			}
			break
		}
		if status != http.StatusServiceUnavailable {
			t.Errorf("GET /api/v1/agents while the database returns: %d %v", status, list)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/v1/agents still %d %v 10s after the database returned", status, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, health := n.call("GET", "/health", "", ""); status != http.StatusOK || health["database_connected"] != true {
		t.Errorf("GET /health after the database returned: %d %v", status, health)
	}
	if status, body := n.call("POST", "/api/v1/agents", key, agentJSON("Back office")); status != http.StatusCreated {
		t.Errorf("POST /api/v1/agents after the database returned: %d %v", status, body)
	}
	if !strings.Contains(n.log.String(), "database unavailable") {
		t.Errorf("the server did not log the outage")
	}

	n.signal(syscall.SIGTERM)
	if code := n.waitExit(10 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestCommandLine covers the commands and their mistakes.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // wanted in stdout ("" : stdout empty)
		stderr string // wanted in stderr
	}{
		{"help", []string{"help"}, 0, "Usage:", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"serve -h", []string{"serve", "-h"}, 0, "", "SWITCHBOARD_HTTP_ADDR"},
		{"keys -h", []string{"keys", "create", "-h"}, 0, "", "-tenant string"},
		{"unknown flag", []string{"serve", "--no-such-flag"}, 2, "", "no-such-flag"},
		{"keys without create", []string{"keys"}, 2, "", "keys: which command? (create, list, revoke)"},
		{"keys without name", []string{"keys", "create"}, 2, "", "--name is required"},
		{"keys with a bad env", []string{"keys", "create", "--name", "ci", "--env", "prod"}, 2, "", "--env must be live or test"},
		{"keys with a bad kind", []string{"keys", "create", "--name", "ci", "--kind", "vercel"}, 2, "", "--kind must be agent_studio or alumia"},
		{"migrate unknown action", []string{"migrate", "sideways"}, 2, "", `unknown action "sideways"`},
		{"short secret", []string{"keys", "create", "--name", "ci", "--secret", "short"}, 2, "", "SWITCHBOARD_SECRET (--secret): the value given (not shown) must be at least 16 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()}, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.code, r)
			}
			if (tt.stdout == "" && r.stdout != "") || !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q, want %q in it", r.stderr, tt.stderr)
			}
		})
	}
	t.Run("version exactly", func(t *testing.T) {
		t.Parallel()
		if r := run(t, nil, "version"); r.stdout != "switchboard "+testVersion+" (commit "+testCommit+")\n" || r.stderr != "" {
			t.Errorf("version:\n%s", r)
		}
	})
}

// TestBadLogConfig: a LOG_LEVEL or LOG_FORMAT switchboard does not know stops it with the
// variable named, before it opens anything.
func TestBadLogConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"LOG_LEVEL", []string{"LOG_LEVEL=loud"}, nil, `LOG_LEVEL (--log-level): "loud" must be debug, info, warn or error`},
		{"LOG_FORMAT", []string{"LOG_FORMAT=xml"}, nil, `LOG_FORMAT (--log-format): "xml" must be one of text, json`},
		{"--log-level", nil, []string{"--log-level", "verbose"}, `LOG_LEVEL (--log-level): "verbose"`},
		{"--log-format", nil, []string{"--log-format", "yaml"}, `LOG_FORMAT (--log-format): "yaml"`},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"serve"}, {"keys", "create", "--name", "ci"}} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				env := append([]string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(),
					"SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0"}, tt.env...)
				r := run(t, env, append(append([]string{}, cmd...), tt.args...)...)
				if r.code != 2 {
					t.Fatalf("exit %d, want 2:\n%s", r.code, r)
				}
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("stderr does not say %q:\n%s", tt.want, r)
				}
				if r.stdout != "" || strings.Contains(r.stderr, "switchboard serving") {
					t.Errorf("it went on regardless:\n%s", r)
				}
			})
		}
	}
}

// TestUploadLimitPastBodyBudget: knowledge uploads are held within the node's body budget,
// so an upload limit the budget cannot hold stops the node with both settings named, rather
// than answering the largest uploads 503 for ever.
func TestUploadLimitPastBodyBudget(t *testing.T) {
	t.Parallel()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_HTTP_ADDR=127.0.0.1:0", "SWITCHBOARD_SIP_ADDR=127.0.0.1:0",
		"SWITCHBOARD_KNOWLEDGE_MAX_UPLOAD_MIB=32", "SWITCHBOARD_GATEWAY_BODY_BUDGET_MIB=32"}
	r := run(t, env, "serve")
	if r.code != 2 || !strings.Contains(r.stderr, "--knowledge-max-upload-mib 32 does not fit in --gateway-body-budget-mib 32") {
		t.Fatalf("want a refusal naming both settings:\n%s", r)
	}
	if strings.Contains(r.stderr, "switchboard serving") {
		t.Errorf("it went on regardless:\n%s", r)
	}
}
