package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/api"
)

// uiJudgeDir is testdata/sdk with the ai package installed (make sdk).
func uiJudgeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	// The pinned release's chunk schemas refuse unknown fields; later 6.0.x releases strip
	// them, and would pass what strict clients refuse: the installed one must be the pinned.
	var pinned, installed struct {
		Version      string            `json:"version"`
		Dependencies map[string]string `json:"dependencies"`
	}
	for _, f := range []struct {
		path string
		into any
	}{{filepath.Join(dir, "package.json"), &pinned}, {filepath.Join(dir, "node_modules", "ai", "package.json"), &installed}} {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatalf("the ai package is not installed in %s/node_modules (%v): run `make sdk`", dir, err)
		}
		if err := json.Unmarshal(raw, f.into); err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
	}
	if want := pinned.Dependencies["ai"]; installed.Version != want {
		t.Fatalf("ai %s is installed in %s/node_modules, the pinned release is %s: rm -rf it and run `make sdk`", installed.Version, dir, want)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v): the AI SDK judge needs Node.js 20 or later", err)
	}
	return dir
}

// uiJudged is what testdata/sdk/alumia.mjs printed.
type uiJudged struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	Valid   bool              `json:"valid"`
	Chunks  []string          `json:"chunks"`
	Errors  []string          `json:"errors"`
	Done    bool              `json:"done"`
	Message *uiMessageOut     `json:"message"`
}

// uiMessageOut is a UIMessage as the AI SDK built it.
type uiMessageOut struct {
	ID       string          `json:"id"`
	Role     string          `json:"role"`
	Metadata json.RawMessage `json:"metadata"`
	Parts    []uiPartOut     `json:"parts"`
}

type uiPartOut struct {
	Type       string          `json:"type"`
	Text       string          `json:"text"`
	State      string          `json:"state"`
	ToolCallID string          `json:"toolCallId"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	ErrorText  string          `json:"errorText"`
}

// judgeUI runs the AI SDK judge on one request; it fails the test when the judge does (a
// chunk the SDK refuses among them), unless wantFail.
func judgeUI(t *testing.T, url string, headers map[string]string, body string, env ...string) (uiJudged, error) {
	t.Helper()
	dir := uiJudgeDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hdr, _ := json.Marshal(headers)
	cmd := exec.CommandContext(ctx, "node", "alumia.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"SWITCHBOARD_URL=" + url, "SWITCHBOARD_HEADERS=" + string(hdr), "SWITCHBOARD_BODY=" + body}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var out uiJudged
	if err := cmd.Run(); err != nil {
		return out, &judgeError{err: err, stderr: stderr.String(), stdout: stdout.String()}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("the judge printed no JSON object: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return out, nil
}

type judgeError struct {
	err            error
	stderr, stdout string
}

func (e *judgeError) Error() string {
	return "node alumia.mjs: " + e.err.Error() + "\nstderr:\n" + e.stderr + "\nstdout:\n" + e.stdout
}

// TestUIStreamJudgedByAISDK writes the chunks of each kind with uiStream and has the ai
// package read them: every chunk passes its strict schema and the UIMessage holds what was
// written, text, a tool call with its input and output, a failed tool, and an error.
func TestUIStreamJudgedByAISDK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := api.NewUIStream(w)
		u.Open()
		u.Start("msg_1", map[string]any{"sessionId": "ses_1"})
		u.StartStep()
		u.ToolInputStart("call_1", "get_weather")
		u.ToolInputDelta("call_1", `{"city":`)
		u.ToolInputDelta("call_1", `"Paris"}`)
		u.ToolInputAvailable("call_1", "get_weather", `{"city":"Paris"}`)
		u.ToolOutputAvailable("call_1", `{"temp_c":18}`)
		u.ToolInputStart("call_2", "lookup")
		u.ToolInputAvailable("call_2", "lookup", "")
		u.ToolOutputError("call_2", "lookup failed: 500")
		u.FinishStep()
		u.StartStep()
		u.TextStart("txt_1")
		u.TextDelta("txt_1", "18C ")
		u.TextDelta("txt_1", `and "sunny" <b>`)
		u.TextEnd("txt_1")
		u.FinishStep()
		if r.URL.Query().Get("fail") != "" {
			u.Error("Upstream provider error: Overloaded")
			u.Finish("error", nil)
		} else {
			u.Finish(api.UIFinishReason(""), map[string]any{"usage": api.NewUIUsage(llmUsage(7, 5))})
		}
		u.Done()
		if u.Err() != nil {
			t.Errorf("stream write: %v", u.Err())
		}
	}))
	defer srv.Close()

	out, err := judgeUI(t, srv.URL, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if out.Headers["x-vercel-ai-ui-message-stream"] != "v1" || !strings.HasPrefix(out.Headers["content-type"], "text/event-stream") {
		t.Errorf("headers = %v", out.Headers)
	}
	if !out.Done || len(out.Errors) != 0 {
		t.Fatalf("done=%v errors=%v", out.Done, out.Errors)
	}
	m := out.Message
	if m == nil || m.ID != "msg_1" || m.Role != "assistant" {
		t.Fatalf("message = %+v", m)
	}
	var meta struct {
		SessionID string      `json:"sessionId"`
		Usage     api.UIUsage `json:"usage"`
	}
	if err := json.Unmarshal(m.Metadata, &meta); err != nil || meta.SessionID != "ses_1" || meta.Usage.TotalTokens != 12 {
		t.Errorf("metadata = %s (%v)", m.Metadata, err)
	}
	var types []string
	for _, p := range m.Parts {
		types = append(types, p.Type)
	}
	if got := strings.Join(types, ","); got != "step-start,tool-get_weather,tool-lookup,step-start,text" {
		t.Fatalf("parts = %s", got)
	}
	w := m.Parts[1]
	if w.State != "output-available" || w.ToolCallID != "call_1" || string(w.Input) != `{"city":"Paris"}` || string(w.Output) != `{"temp_c":18}` {
		t.Errorf("tool part = %+v", w)
	}
	if l := m.Parts[2]; l.State != "output-error" || l.ErrorText != "lookup failed: 500" || string(l.Input) != `{}` {
		t.Errorf("failed tool part = %+v", l)
	}
	if txt := m.Parts[4]; txt.Text != `18C and "sunny" <b>` || txt.State != "done" {
		t.Errorf("text part = %+v", txt)
	}

	out, err = judgeUI(t, srv.URL+"?fail=1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 1 || out.Errors[0] != "Upstream provider error: Overloaded" || !out.Done {
		t.Errorf("errors = %v, done = %v", out.Errors, out.Done)
	}
	if got := out.Chunks[len(out.Chunks)-2:]; got[0] != "error" || got[1] != "finish" {
		t.Errorf("last chunks = %v", got)
	}
}

// TestUIStreamJudgeIsStrict proves the judge refuses what a strict client refuses: a chunk
// with a field its schema does not define.
func TestUIStreamJudgeIsStrict(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := api.NewUIStream(w)
		u.Start("msg_1", nil)
		u.RawChunk(map[string]any{"type": "finish", "finishReason": "stop", "usage": map[string]int{"inputTokens": 1}})
		u.Done()
	}))
	defer srv.Close()
	_, err := judgeUI(t, srv.URL, nil, "")
	if err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("the judge took a chunk with an unknown field: %v", err)
	}
}

func llmUsage(in, out int) llm.Usage { return llm.Usage{InputTokens: in, OutputTokens: out} }
