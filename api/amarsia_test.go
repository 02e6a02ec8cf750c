package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/agent"
	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/agent/speech"
	"github.com/switchboard-go/switchboard/agent/speech/speechtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/internal/pgtest"
	"github.com/switchboard-go/switchboard/media"
	"github.com/switchboard-go/switchboard/store"
)

// amarsiaRig is a real Switchboard with the model and speech-to-text stand-ins, and a file
// server on loopback that the runner fetches parts from (the operator's
// --allow-private-files on, unless the rig is made strict).
type amarsiaRig struct {
	*testServer
	up      *llmtest.Server
	ant     *llmtest.Server
	stt     *speechtest.Server
	files   *httptest.Server
	fetched atomic.Int64 // requests the file server received
	agentID string
	served  map[string]struct {
		ct   string
		data []byte
	}
}

func newAmarsiaRig(t testing.TB, d store.Dialect, allowPrivate bool) *amarsiaRig {
	t.Helper()
	r := &amarsiaRig{up: llmtest.NewOpenAI(t), ant: llmtest.NewAnthropic(t), stt: speechtest.NewOpenAI(t), served: map[string]struct {
		ct   string
		data []byte
	}{}}
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: r.up.URL, APIKey: "k", TextOnly: []string{"text-only"}},
		{Name: "ant", Kind: llm.KindAnthropic, BaseURL: r.ant.URL, APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	voices := speech.NewRegistry([]llm.ProviderConfig{{Name: "openai", Kind: llm.KindOpenAI, BaseURL: r.stt.URL, APIKey: "k"}}, speech.RegistryOptions{})
	opts := store.Options{DataDir: t.TempDir(), Secret: testSecret}
	if d == store.Postgres {
		opts.URL = pgtest.URL(t)
	}
	r.testServer = newTestServerOpts(t, opts, api.Config{Models: reg, Speech: voices, AllowPrivateFiles: allowPrivate,
		Webhooks: agent.NewWebhooks(true), DefaultRateLimit: 1_000_000})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.API.Sessions().Shutdown(ctx)
	})
	r.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.fetched.Add(1)
		f, ok := r.served[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", f.ct)
		_, _ = w.Write(f.data)
	}))
	t.Cleanup(r.files.Close)
	r.agentID = r.createID("/api/v1/agents", r.Key, map[string]any{"name": "Runner", "instructions": "Be brief.", "model": "up/m"})
	return r
}

// serve makes the file server answer path with data; it returns the file's URL.
func (r *amarsiaRig) serve(path, ct string, data []byte) string {
	r.served[path] = struct {
		ct   string
		data []byte
	}{ct, data}
	return r.files.URL + path
}

// run posts a run with x-api-key, as Amarsia's document does.
func (r *amarsiaRig) run(t *testing.T, id, key string, content ...map[string]any) response {
	t.Helper()
	return r.with(t).request(http.MethodPost, "/v1/runner/"+id, map[string]any{"content": content}, hdr("x-api-key", key))
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func file(kind, mime, uri string) map[string]any {
	return map[string]any{"type": kind, "mime_type": mime, "file_uri": uri}
}

// userContent is the content of the last user message the model was sent, as JSON text.
func userContent(t *testing.T, up *llmtest.Server) string {
	t.Helper()
	var sent struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := up.Last().Decode(&sent); err != nil {
		t.Fatal(err)
	}
	for i := len(sent.Messages) - 1; i >= 0; i-- {
		if sent.Messages[i].Role == "user" {
			return string(sent.Messages[i].Content)
		}
	}
	t.Fatalf("no user message in %s", up.Last().Body)
	return ""
}

// systemPrompt is the system message the model was last sent.
func systemPrompt(t *testing.T, up *llmtest.Server) string {
	t.Helper()
	var sent struct {
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
	}
	if err := up.Last().Decode(&sent); err != nil {
		t.Fatal(err)
	}
	for _, m := range sent.Messages {
		if m.Role == "system" {
			b, _ := json.Marshal(m.Content)
			return string(b)
		}
	}
	return ""
}

// TestAmarsiaDeployments: a deployment is the agent as it was published. Editing the agent
// later changes no deployment: the runner answers a deployment with its snapshot and an
// agent's ID with the agent as it is now. Deployments are listed newest first, another
// tenant's are 404 everywhere, and a deleted one runs no more.
func TestAmarsiaDeployments(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			r := newAmarsiaRig(t, d, true)
			ts := r.with(t)
			base := "/api/v1/agents/" + r.agentID + "/deployments"

			res := ts.request(http.MethodPost, base, map[string]any{"label": "first"}, hdr("X-API-Key", r.Key))
			wantStatus(t, res, http.StatusCreated, "deploy")
			v1 := res.JSON(t)
			dep1, _ := v1["id"].(string)
			snap, _ := v1["agent"].(map[string]any)
			if !strings.HasPrefix(dep1, "dep_") || v1["version"] != float64(1) || v1["agent_id"] != r.agentID || v1["label"] != "first" ||
				snap["instructions"] != "Be brief." || snap["model"] != "up/m" {
				t.Fatalf("deployment %s", res.Body)
			}
			// The agent changes; the deployment does not.
			wantStatus(t, r.do(http.MethodPatch, "/api/v1/agents/"+r.agentID, r.Key, map[string]any{"instructions": "Answer in French."}), http.StatusOK, "edit agent")
			// An empty body deploys too.
			dep2 := r.createID(base, r.Key, "")
			if got := r.get("/api/v1/deployments/"+dep1, r.Key); got["agent"].(map[string]any)["instructions"] != "Be brief." {
				t.Fatalf("deployment changed with its agent: %v", got)
			}
			list := r.get(base, r.Key)
			items, _ := list["items"].([]any)
			if list["total"] != float64(2) || len(items) != 2 || items[0].(map[string]any)["id"] != dep2 || items[0].(map[string]any)["version"] != float64(2) {
				t.Fatalf("list %v", list)
			}

			r.up.Enqueue(llmtest.Reply{Text: "Hello."})
			wantStatus(t, r.run(t, dep1, r.Key, text("Hi")), http.StatusOK, "run v1")
			if sys := systemPrompt(t, r.up); !strings.Contains(sys, "Be brief.") || strings.Contains(sys, "French") {
				t.Errorf("the deployment ran with %s", sys)
			}
			r.up.Enqueue(llmtest.Reply{Text: "Bonjour."})
			wantStatus(t, r.run(t, r.agentID, r.Key, text("Hi")), http.StatusOK, "run agent")
			if sys := systemPrompt(t, r.up); !strings.Contains(sys, "French") {
				t.Errorf("the agent ran with %s", sys)
			}

			// Another tenant sees none of it.
			other := r.newKey("other", "other", 0, store.ScopeRead, store.ScopeWrite)
			wantError(t, r.do(http.MethodGet, base, other, nil), 404, "not_found", "")
			wantError(t, r.do(http.MethodGet, "/api/v1/deployments/"+dep1, other, nil), 404, "not_found", "")
			wantError(t, r.do(http.MethodPost, base, other, ""), 404, "not_found", "")
			wantError(t, r.do(http.MethodDelete, "/api/v1/deployments/"+dep1, other, nil), 404, "not_found", "")
			wantError(t, r.run(t, dep1, other, text("Hi")), 404, "not_found", "deployment_id")
			wantError(t, r.run(t, r.agentID, other, text("Hi")), 404, "not_found", "deployment_id")

			wantError(t, r.do(http.MethodPost, base, r.Key, map[string]any{"label": strings.Repeat("x", 201)}), 422, "validation_error", "label")
			wantError(t, r.do(http.MethodPost, base, r.Key, map[string]any{"colour": "red"}), 422, "validation_error", "colour")
			if got := r.get(base, r.Key)["total"]; got != float64(2) {
				t.Fatalf("refused deployments were written: %v", got)
			}

			wantStatus(t, r.do(http.MethodDelete, "/api/v1/deployments/"+dep1, r.Key, nil), http.StatusNoContent, "delete")
			wantError(t, r.do(http.MethodGet, "/api/v1/deployments/"+dep1, r.Key, nil), 404, "not_found", "")
			wantError(t, r.run(t, dep1, r.Key, text("Hi")), 404, "not_found", "deployment_id")
			// Runs are sessions: both runs are listed, closed, with what ran them.
			sessions := r.get("/api/v1/sessions?agent_id="+r.agentID, r.Key)
			if sessions["total"] != float64(2) {
				t.Fatalf("sessions %v", sessions)
			}
			for _, it := range sessions["items"].([]any) {
				s := it.(map[string]any)
				if s["status"] != "closed" || s["message_count"] != float64(2) || s["metadata"].(map[string]any)["surface"] != "amarsia" {
					t.Errorf("run session %v", s)
				}
			}
			// Deleting the agent deletes its deployments; its runs' sessions stay.
			wantStatus(t, r.do(http.MethodDelete, "/api/v1/agents/"+r.agentID, r.Key, nil), http.StatusNoContent, "delete agent")
			wantError(t, r.do(http.MethodGet, "/api/v1/deployments/"+dep2, r.Key, nil), 404, "not_found", "")
			wantError(t, r.run(t, dep2, r.Key, text("Hi")), 404, "not_found", "deployment_id")
			if got := r.get("/api/v1/deployments", r.Key)["total"]; got != float64(0) {
				t.Fatalf("deployments of a deleted agent: %v", got)
			}
			if got := r.get("/api/v1/sessions", r.Key)["total"]; got != float64(2) {
				t.Fatalf("sessions after the agent was deleted: %v", got)
			}
		})
	}
}

// TestAmarsiaRunnerParts: each kind of part reaches the model in the form it takes. Text as
// text; a PNG served on loopback as image input; a WAV espeak-ng spoke, transcribed by the
// agent's speech-to-text; a PDF made here, as its text. The standard answer is the
// document's shape, and the run is a session message like any other.
func TestAmarsiaRunnerParts(t *testing.T) {
	t.Parallel()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			r := newAmarsiaRig(t, d, true)
			dep := r.createID("/api/v1/agents/"+r.agentID+"/deployments", r.Key, map[string]any{})

			r.up.Enqueue(llmtest.Reply{Text: "Your AI-generated response here...", Model: "deepseek-chat", Usage: llm.Usage{InputTokens: 456, OutputTokens: 123}})
			res := r.run(t, dep, r.Key, text("Your input message here."))
			wantStatus(t, res, http.StatusOK, "text run")
			var ans map[string]any
			if err := json.Unmarshal(res.Body, &ans); err != nil {
				t.Fatal(err)
			}
			if ans["content"] != "Your AI-generated response here..." || ans["model"] != "up/m" ||
				ans["input_tokens"] != float64(456) || ans["output_tokens"] != float64(123) {
				t.Fatalf("answer %s", res.Body)
			}
			sid, _ := ans["session_id"].(string)
			msgs := r.get("/api/v1/sessions/"+sid+"/messages", r.Key)["items"].([]any)
			if len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "Your input message here." {
				t.Fatalf("the run's session holds %v", msgs)
			}

			// An image: fetched by the node, sent inline as image input.
			img := image.NewRGBA(image.Rect(0, 0, 8, 8))
			img.Set(1, 1, color.RGBA{R: 255, A: 255})
			var pngBuf bytes.Buffer
			if err := png.Encode(&pngBuf, img); err != nil {
				t.Fatal(err)
			}
			r.up.Enqueue(llmtest.Reply{Text: "A red dot."})
			res = r.run(t, dep, r.Key, text("What is this?"), file("image", "image/png", r.serve("/dot.png", "image/png", pngBuf.Bytes())))
			wantStatus(t, res, http.StatusOK, "image run")
			if c := userContent(t, r.up); !strings.Contains(c, `"image_url"`) || !strings.Contains(c, "data:image/png;base64,") || !strings.Contains(c, "What is this?") {
				t.Errorf("the model was sent %s", c)
			}

			// The same image to a model of the Anthropic dialect: an image block, base64.
			claude := r.createID("/api/v1/agents", r.Key, map[string]any{"name": "Claude", "model": "ant/claude-test"})
			r.ant.Enqueue(llmtest.Reply{Text: "A red dot."})
			wantStatus(t, r.run(t, claude, r.Key, text("What is this?"), file("image", "image/png", r.files.URL+"/dot.png")), http.StatusOK, "anthropic image run")
			if body := string(r.ant.Last().Body); !strings.Contains(body, `"type":"image"`) || !strings.Contains(body, `"media_type":"image/png"`) || !strings.Contains(body, `"type":"base64"`) {
				t.Errorf("Anthropic was sent %s", body)
			}

			// Audio: espeak-ng speaks, the agent's speech-to-text transcribes.
			es, err := speech.NewEspeak(speech.EspeakOptions{SampleRate: 16000})
			if err != nil {
				t.Fatal(err)
			}
			spoken, err := es.Synthesize(context.Background(), "Please book a table for two.", "", 1)
			if err != nil {
				t.Fatal(err)
			}
			var pcm []int16
			buf := make([]int16, 1600)
			for {
				n, err := spoken.Read(buf)
				pcm = append(pcm, buf[:n]...)
				if errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			wav, err := media.EncodeWAV(pcm, spoken.SampleRate())
			if err != nil {
				t.Fatal(err)
			}
			r.stt.Enqueue("please book a table for two")
			r.up.Enqueue(llmtest.Reply{Text: "Booked."})
			res = r.run(t, dep, r.Key, file("audio", "audio/wav", r.serve("/ask.wav", "audio/wav", wav)))
			wantStatus(t, res, http.StatusOK, "audio run")
			trs := r.stt.Transcriptions()
			if len(trs) != 1 || trs[0].Seconds() < 0.5 {
				t.Fatalf("transcriptions %+v", trs)
			}
			if c := userContent(t, r.up); !strings.Contains(c, "please book a table for two") {
				t.Errorf("the model was sent %s", c)
			}

			// A PDF: its text.
			pdf := fpdf.New("P", "mm", "A4", "")
			pdf.AddPage()
			pdf.SetFont("Helvetica", "", 12)
			pdf.MultiCell(0, 6, "The warranty lasts thirty-six months from delivery.", "", "L", false)
			var pdfBuf bytes.Buffer
			if err := pdf.Output(&pdfBuf); err != nil {
				t.Fatal(err)
			}
			r.up.Enqueue(llmtest.Reply{Text: "Three years."})
			res = r.run(t, dep, r.Key, text("How long is the warranty?"), file("url", "application/pdf", r.serve("/terms.pdf", "application/pdf", pdfBuf.Bytes())))
			wantStatus(t, res, http.StatusOK, "pdf run")
			if c := userContent(t, r.up); !strings.Contains(c, "thirty-six months") {
				t.Errorf("the model was sent %s", c)
			}

			// What the model cannot take is refused, naming the part, and nothing is stored.
			before := r.get("/api/v1/sessions", r.Key)["total"]
			asked := len(r.up.Requests())
			refused := []struct {
				content []map[string]any
				field   string
			}{
				{[]map[string]any{text("Look"), file("video", "video/mp4", r.serve("/v.mp4", "video/mp4", []byte("x")))}, "content[1]"},
				{[]map[string]any{{"type": "gif", "file_uri": r.files.URL + "/x"}}, "content[0].type"},
				{[]map[string]any{{"type": "image", "mime_type": "image/png"}}, "content[0].file_uri"},
				{[]map[string]any{text("   ")}, "content[0].text"},
				{[]map[string]any{}, "content"},
				{[]map[string]any{file("image", "image/png", r.files.URL+"/missing.png")}, "content[0].file_uri"},
				{[]map[string]any{file("image", "image/tiff", r.files.URL+"/dot.png")}, "content[0].mime_type"},
				// PDF bytes sent as an image.
				{[]map[string]any{file("image", "image/png", r.files.URL+"/terms.pdf")}, "content[0].file_uri"},
				{[]map[string]any{file("audio", "audio/mp3", r.serve("/a.mp3", "audio/mpeg", []byte("ID3 not really")))}, "content[0].file_uri"},
				{[]map[string]any{file("url", "application/pdf", r.serve("/broken.pdf", "application/pdf", []byte("%PDF-1.4 broken")))}, "content[0].file_uri"},
				{[]map[string]any{{"type": "text", "text": "hi", "colour": "red"}}, "content[0].colour"},
			}
			for _, c := range refused {
				wantError(t, r.run(t, dep, r.Key, c.content...), 422, "validation_error", c.field)
			}
			if got := r.get("/api/v1/sessions", r.Key)["total"]; got != before || len(r.up.Requests()) != asked {
				t.Fatalf("refused runs left sessions (%v, was %v) or reached the model", got, before)
			}
			// A model the operator says takes text alone is sent no image.
			blind := r.createID("/api/v1/agents", r.Key, map[string]any{"name": "Blind", "model": "up/text-only"})
			fetched := r.fetched.Load()
			wantError(t, r.run(t, blind, r.Key, text("What is this?"), file("image", "image/png", r.files.URL+"/dot.png")), 422, "validation_error", "content[1]")
			if got := r.get("/api/v1/sessions", r.Key)["total"]; got != before || len(r.up.Requests()) != asked || r.fetched.Load() != fetched {
				t.Fatalf("a refused image reached the model or the file server")
			}
			wantError(t, r.run(t, "dep_01jdq3zzzzzzzzzzzzzzzzzzzz", r.Key, text("hi")), 404, "not_found", "deployment_id")
			wantError(t, r.run(t, dep, "", text("hi")), 401, "authentication_error", "")
		})
	}
}

// TestAmarsiaRunnerPrivateFiles: without the operator's --allow-private-files, a file_uri on
// loopback, a private network or the metadata address is refused with a 422 naming it, and
// the file server is never asked.
func TestAmarsiaRunnerPrivateFiles(t *testing.T) {
	t.Parallel()
	r := newAmarsiaRig(t, store.SQLite, false)
	local := r.serve("/dot.png", "image/png", []byte("\x89PNG\r\n\x1a\n"))
	for _, uri := range []string{local, strings.Replace(local, "127.0.0.1", "localhost", 1), "http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.7/a.png", "http://[::1]:9/a.png", "http://2130706433/a.png"} {
		res := r.run(t, r.agentID, r.Key, text("What is this?"), file("image", "image/png", uri))
		wantError(t, res, 422, "validation_error", "content[1].file_uri")
		if !strings.Contains(string(res.Body), "private") {
			t.Errorf("%s: %s", uri, res.Body)
		}
	}
	if n := r.fetched.Load(); n != 0 {
		t.Fatalf("the file server was asked %d times", n)
	}
	if got := r.get("/api/v1/sessions", r.Key)["total"]; got != float64(0) {
		t.Fatalf("refused runs left %v sessions", got)
	}
}

// TestAmarsiaStreamNode reads /stream with Node's fetch as Amarsia's document does: the
// answer arrives as plain text in several chunks, as the model makes it, and the chunks
// joined are the answer. An answer that fails before its first word is an error status.
func TestAmarsiaStreamNode(t *testing.T) {
	t.Parallel()
	r := newAmarsiaRig(t, store.SQLite, true)
	dep := r.createID("/api/v1/agents/"+r.agentID+"/deployments", r.Key, map[string]any{})
	const answer = "Streams arrive word by word,\nspacing kept."
	r.up.Enqueue(llmtest.Reply{Text: answer, Delay: 50 * time.Millisecond})
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	// The script needs no package: Node's own fetch, as in the document.
	out := runSDK(t, dir, "amarsia.mjs", "SWITCHBOARD_URL="+r.URL, "SWITCHBOARD_KEY="+r.Key, "DEPLOYMENT_ID="+dep, "PROMPT=Say it")
	var got struct {
		Status      int      `json:"status"`
		ContentType string   `json:"content_type"`
		Chunks      []string `json:"chunks"`
	}
	raw, _ := json.Marshal(out)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || !strings.HasPrefix(got.ContentType, "text/plain") || strings.Join(got.Chunks, "") != answer || len(got.Chunks) < 2 {
		t.Fatalf("node read %+v", got)
	}
	if c := userContent(t, r.up); !strings.Contains(c, "Say it") {
		t.Errorf("the model was sent %s", c)
	}

	// The model fails before it says anything: a 502 in the error shape, the run stored as
	// failed.
	r.up.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "boom"})
	res := r.with(t).request(http.MethodPost, "/v1/runner/"+dep+"/stream", map[string]any{"content": []any{text("hi")}}, hdr("x-api-key", r.Key))
	wantError(t, res, 502, "upstream_error", "")
}

// TestAmarsiaStreamClientLeaves: a client that stops reading after the first words does not
// stop the run: the answer is made whole, stored, and the run's session closed with it; and
// nothing of the run is left running. (Not parallel: the goroutine check needs the package
// to itself.)
func TestAmarsiaStreamClientLeaves(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	r := newAmarsiaRig(t, store.SQLite, true)
	const answer = "one two three four five six seven eight"
	r.up.Enqueue(llmtest.Reply{Text: answer, Delay: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reqCtx, leave := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, r.URL+"/v1/runner/"+r.agentID+"/stream",
		strings.NewReader(`{"content":[{"type":"text","text":"Count"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", r.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if n == 0 || !strings.HasPrefix(answer, string(buf[:n])) {
		t.Fatalf("first chunk %q (%v)", buf[:n], err)
	}
	// The run's session is stored with its turn, in one write once the answer is made
	// (seven words, 100 ms apart, from now): there is none yet.
	if got := r.get("/api/v1/sessions", r.Key)["total"]; got != float64(0) {
		t.Fatalf("%v sessions while the run is answered: the session was written before its turn", got)
	}
	leave()
	resp.Body.Close()

	for {
		list := r.get("/api/v1/sessions", r.Key)
		if items, _ := list["items"].([]any); len(items) == 1 && items[0].(map[string]any)["status"] == "closed" {
			sid := items[0].(map[string]any)["id"].(string)
			msgs := r.get("/api/v1/sessions/"+sid+"/messages", r.Key)["items"].([]any)
			if a := msgs[1].(map[string]any); a["content"] != answer || a["status"] != "completed" {
				t.Fatalf("the run was stored as %v", a)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the run's session was never closed")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
