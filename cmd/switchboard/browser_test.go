package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests drive the web pages in a real browser: Debian's Chromium, headless, with a
// fake microphone, through playwright-core (testdata/browser; `make test` installs both).

// browserRun is a script of testdata/browser running under node: the steps it reports
// (JSON lines on stdout) arrive on steps; its stderr is kept for the log.
type browserRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	steps  chan map[string]any
	stderr *logBuffer
	done   chan struct{}
	err    error
}

// browserTools returns node and the folder of the browser scripts, failing the test with
// what to install when something is missing.
func browserTools(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if node, err = exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v): the browser tests need Node.js 20 or later", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core is not installed in %s (%v): run `make browser`", dir, err)
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("Chromium is not installed (%v): run `make deps` (Debian package chromium)", err)
	}
	return node, dir
}

// artifactDir is where a test's screenshots go: $TEST_ARTIFACTS/<test> when set, so that
// they outlive the run, or a temporary folder of the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startBrowser(t *testing.T, script string, args ...string) *browserRun {
	t.Helper()
	node, dir := browserTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	r := &browserRun{t: t, cmd: cmd, steps: make(chan map[string]any, 64), stderr: &logBuffer{ready: make(chan struct{})}, done: make(chan struct{})}
	cmd.Stderr = r.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.steps)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var step map[string]any
			if err := json.Unmarshal(sc.Bytes(), &step); err != nil {
				_, _ = r.stderr.Write([]byte("stdout: " + sc.Text() + "\n"))
				continue
			}
			if step["step"] == "screenshot" {
				t.Logf("screenshot: %v", step["file"])
			}
			r.steps <- step
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		wg.Wait()
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, r.stderr)
		}
	})
	return r
}

// next waits for the script to report step, and returns what it reported; the screenshots
// it reports on the way are logged.
func (r *browserRun) next(step string, d time.Duration) map[string]any {
	r.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case s, ok := <-r.steps:
			if !ok {
				<-r.done
				r.t.Fatalf("the browser script ended (%v) before %q:\n%s", r.err, step, r.stderr)
			}
			if s["step"] == step {
				return s
			}
		case <-deadline:
			r.t.Fatalf("the browser script did not report %q within %v:\n%s", step, d, r.stderr)
		}
	}
}

// wait waits for the script to end, and fails the test unless it ended well.
func (r *browserRun) wait(d time.Duration) {
	r.t.Helper()
	for {
		select {
		case _, ok := <-r.steps:
			if ok {
				continue
			}
			<-r.done
			if r.err != nil {
				r.t.Fatalf("the browser script failed: %v\n%s", r.err, r.stderr)
			}
			return
		case <-time.After(d):
			r.t.Fatalf("the browser script still runs %v later:\n%s", d, r.stderr)
		}
	}
}

// demoNode starts a node with the demo agent and returns it with an API key.
func demoNode(t *testing.T) (*node, string) {
	t.Helper()
	env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "SWITCHBOARD_DEMO=true", "SWITCHBOARD_RATE_LIMIT=10000"}
	key := createKey(t, env, "--name", "browser")
	n := startServe(t, env)
	n.waitLogged("demo agent created: call sip:demo@ this node", 10*time.Second)
	return n, key
}

// checkEndedReport checks what the dashboard showed of an ended call against the API.
func checkEndedReport(t *testing.T, n *node, key, id string, shown map[string]any) {
	t.Helper()
	c := n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	report, _ := c["report"].(map[string]any)
	if c["agent_id"] == nil || report == nil || report["ended_reason"] == nil {
		t.Fatalf("call %s: %v, want the demo agent's with a report", id, c)
	}
	if shown["status"] != c["status"] {
		t.Errorf("the dashboard shows the call %v, the API %v", shown["status"], c["status"])
	}
	fields, _ := shown["report"].(map[string]any)
	for _, f := range []string{"ended_reason", "duration_seconds", "turns", "latency_p50_ms", "latency_p90_ms", "usage", "interruptions"} {
		if fields[f] == nil || fields[f] == "" {
			t.Errorf("the dashboard's report lacks %s: %v", f, fields)
		}
	}
	if fields["ended_reason"] != report["ended_reason"] || fields["turns"] != fmt.Sprint(report["turns"]) {
		t.Errorf("the dashboard's report %v is not the call's %v", fields, report)
	}
	transcript := strings.ToLower(fmt.Sprint(shown["transcript"]))
	if !strings.Contains(transcript, "thank you for calling switchboard") {
		t.Errorf("the dashboard's stored transcript lacks the greeting: %s", transcript)
	}
}

// TestDashboardFollowsSIPCall: the dashboard, in Chromium, signed in with an email and
// password (so its streams run on a JWT), lists a call to the demo line live as it comes in
// over SIP, follows its transcript to the greeting, and once the caller hangs up shows the
// call ended with its report and stored transcript.
func TestDashboardFollowsSIPCall(t *testing.T) {
	// Not parallel: Chromium's load would shift the timing of the package's other calls,
	// which listen for speech and press keys at moments; the parallel tests wait for it.
	n, key := demoNode(t)
	const email, password = "ops@switchboard.test", "a browser's password"
	if status, u := n.call("POST", "/api/v1/users", key, `{"email":"`+email+`","password":"`+password+`"}`); status != 201 {
		t.Fatalf("create user: %d %v", status, u)
	}
	b := startBrowser(t, "dashboard.mjs", "http://"+n.addr, artifactDir(t), email, password)
	b.next("ready", 60*time.Second)

	p := dialPhone(t, "sip:demo@"+n.sipAddr())
	p.waitSpeech(25, 15*time.Second, "greeting")
	live := b.next("greeting", 30*time.Second)
	id, _ := live["call_id"].(string)
	if !strings.HasPrefix(id, "call_") || live["status"] != "in-progress" {
		t.Fatalf("the dashboard listed %v", live)
	}
	p.hangup()
	p.close()

	ended := b.next("ended", 30*time.Second)
	if ended["call_id"] != id {
		t.Fatalf("the dashboard ended %v, want %s", ended["call_id"], id)
	}
	checkEndedReport(t, n, key, id, ended)
	b.wait(30 * time.Second)
}

// TestVoiceClientCallsDemoAgent: in Chromium with a fake microphone, the voice client at /
// signs in with a key, calls the demo agent over WebRTC, hears its greeting and shows its
// text from the data channel; the dashboard in a second page lists the call live; the voice
// client hangs up, and the dashboard shows the call ended with its report.
func TestVoiceClientCallsDemoAgent(t *testing.T) {
	// Not parallel, like TestDashboardFollowsSIPCall.
	n, key := demoNode(t)
	wav, err := filepath.Abs(filepath.Join("..", "..", "testdata", "browser", "caller.wav"))
	if err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, "call.mjs", "http://"+n.addr, key, artifactDir(t), wav)
	calling := b.next("calling", 60*time.Second)
	id, _ := calling["call_id"].(string)
	heard := b.next("greeting", 45*time.Second)
	t.Logf("greeting heard at a peak level of %.3f (RMS)", heard["peak_level"])
	if live := b.next("live", 60*time.Second); live["call_id"] != id {
		t.Fatalf("the dashboard followed %v, want %s", live["call_id"], id)
	}
	b.next("hung-up", 30*time.Second)
	ended := b.next("ended", 30*time.Second)
	c := n.waitCall(key, id, "ended", func(c map[string]any) bool { return c["ended_at"] != nil })
	if c["direction"] != "web" || c["ended_reason"] != "caller-hangup" {
		t.Errorf("call %s: direction %v, ended %v, want a web call the caller hung up", id, c["direction"], c["ended_reason"])
	}
	// The fake microphone's audio reached the node.
	if q, _ := c["quality"].(map[string]any); q == nil || q["packets_received"].(float64) < 50 {
		t.Errorf("call %s: quality %v, want the browser's audio received", id, c["quality"])
	}
	checkEndedReport(t, n, key, id, ended)
	b.wait(30 * time.Second)
}
