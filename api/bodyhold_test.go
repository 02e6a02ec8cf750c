package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// Knowledge uploads and the files of Amarsia's runs are held in memory like gateway bodies,
// and share the node's budget of them: past it, a request is 503 with Retry-After, at once,
// instead of the node holding whatever concurrent clients send.

// holdBudget and holdFile: a budget of 4 MiB takes one file of 2.5 MB, not two.
const (
	holdBudget = 4 << 20
	holdFile   = 2_500_000
)

// waitBodiesInUse waits until the server counts more than n bytes of bodies (or, with
// atMost, no more than n).
func waitBodiesInUse(t *testing.T, s *api.Server, n int64, atMost bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := api.GatewayBodiesInUse(s)
		if (!atMost && got > n) || (atMost && got <= n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bodies in use: %d, waited for %s %d", got, map[bool]string{true: "at most", false: "more than"}[atMost], n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// markdown is a Markdown document of about n bytes.
func markdown(n int, word string) []byte {
	var b bytes.Buffer
	b.WriteString("# " + word + "\n\n")
	for b.Len() < n {
		b.WriteString("The " + word + " policy is written here again, line by line.\n")
	}
	return b.Bytes()
}

func TestKnowledgeUploadsShareBodyBudget(t *testing.T) {
	eachKnowledgeServer(t, api.Config{GatewayBodyBudget: holdBudget, KnowledgeMaxUpload: 3 << 20}, func(t *testing.T, ts *testServer) {
		key := hdr("X-API-Key", ts.Key)
		baseID := ts.createID("/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "Office"})
		path := ts.URL + "/api/v1/knowledge-bases/" + baseID + "/documents"

		// The first upload stops halfway: the node holds its file's length.
		first, ct := multipartFile(t, "file", "first.md", "text/markdown", markdown(holdFile, "parking"))
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // a failed test lets the upload go
		req, err := http.NewRequest(http.MethodPost, path, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(first))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-API-Key", ts.Key)
		done := make(chan response, 1)
		go func() {
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- response{Status: -1, Body: []byte(err.Error())}
				return
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			done <- response{Status: res.StatusCode, Header: res.Header, Body: body}
		}()
		if _, err := pw.Write(first[:len(first)/2]); err != nil {
			t.Fatal(err)
		}
		waitBodiesInUse(t, ts.API, int64(len(first))-1, false)

		// A second of the same size, of known length or chunked, does not fit beside it.
		second := markdown(holdFile, "lunch")
		r := ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", key, "second.md", "text/markdown", second)
		wantStatus(t, r, http.StatusServiceUnavailable, "a second upload past the budget")
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("503 without Retry-After: %v", r.Header)
		}
		body, ct2 := multipartFile(t, "file", "second.md", "text/markdown", second)
		creq, err := http.NewRequest(http.MethodPost, path, io.MultiReader(bytes.NewReader(body))) // no length: chunked
		if err != nil {
			t.Fatal(err)
		}
		creq.Header.Set("Content-Type", ct2)
		creq.Header.Set("X-API-Key", ts.Key)
		cres, err := http.DefaultClient.Do(creq)
		if err != nil {
			t.Fatal(err)
		}
		cres.Body.Close()
		if cres.StatusCode != http.StatusServiceUnavailable || cres.Header.Get("Retry-After") == "" {
			t.Fatalf("a chunked upload past the budget: %d %v", cres.StatusCode, cres.Header)
		}

		// The first completes; once stored, what it held is given back and the second fits.
		if _, err := pw.Write(first[len(first)/2:]); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		select {
		case res := <-done:
			wantStatus(t, res, http.StatusAccepted, "the first upload")
		case <-time.After(30 * time.Second):
			t.Fatal("the first upload was not answered")
		}
		waitBodiesInUse(t, ts.API, 0, true)
		r = ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", key, "second.md", "text/markdown", second)
		wantStatus(t, r, http.StatusAccepted, "the second upload once the first is stored")
		waitBodiesInUse(t, ts.API, 0, true)
		// The refused uploads left no document behind.
		list := ts.do(http.MethodGet, "/api/v1/knowledge-bases/"+baseID+"/documents", ts.Key, nil).JSON(t)
		if list["total"] != float64(2) {
			t.Fatalf("documents: %v", list)
		}
	})
}

func TestAmarsiaRunnerFilesShareBodyBudget(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			up := llmtest.NewOpenAI(t)
			reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "up", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
			if err != nil {
				t.Fatal(err)
			}
			ts := newTestServerConfig(t, d, api.Config{Models: reg, AllowPrivateFiles: true, GatewayBodyBudget: holdBudget, DefaultRateLimit: 1_000_000})
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ts.API.Sessions().Shutdown(ctx)
			})
			agentID := ts.createID("/api/v1/agents", ts.Key, map[string]any{"name": "Runner", "instructions": "Be brief.", "model": "up/m"})

			doc := markdown(holdFile, "parking")
			release := make(chan struct{})
			var released sync.Once
			free := func() { released.Do(func() { close(release) }) }
			t.Cleanup(free) // a failed test lets the slow file go
			files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				switch r.URL.Path {
				case "/slow.txt": // half, then the rest once the test says
					w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
					_, _ = w.Write(doc[:len(doc)/2])
					http.NewResponseController(w).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
					_, _ = w.Write(doc[len(doc)/2:])
				case "/chunked.txt": // no length: the node learns it as it reads
					for i := 0; i < len(doc); i += 32 << 10 {
						_, _ = w.Write(doc[i:min(i+32<<10, len(doc))])
						http.NewResponseController(w).Flush()
					}
				default:
					_, _ = io.WriteString(w, "Parking is behind the building.")
				}
			}))
			defer files.Close()
			run := func(uri string) response {
				return ts.with(t).request(http.MethodPost, "/v1/runner/"+agentID, map[string]any{"content": []any{
					text("Summarise."), file("url", "text/plain", files.URL+uri)}}, hdr("x-api-key", ts.Key))
			}

			done := make(chan response, 1)
			go func() { done <- run("/slow.txt") }()
			waitBodiesInUse(t, ts.API, int64(len(doc))-1, false)
			for _, uri := range []string{"/slow.txt", "/chunked.txt"} {
				r := run(uri)
				if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
					t.Fatalf("a run of %s past the budget: %d %s", uri, r.Status, r.Body)
				}
			}
			free()
			select {
			case r := <-done:
				// Its document is longer than a run may give the model: refused by name,
				// after it was fetched.
				if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "content[1].file_uri") {
					t.Fatalf("the first run: %d %s", r.Status, r.Body)
				}
			case <-ctx.Done():
				t.Fatal("the first run was not answered")
			}
			waitBodiesInUse(t, ts.API, 0, true)
			up.Enqueue(llmtest.Reply{Text: "Behind the building."})
			if r := run("/small.txt"); r.Status != http.StatusOK {
				t.Fatalf("a small run once the budget is free: %d %s", r.Status, r.Body)
			}
			waitBodiesInUse(t, ts.API, 0, true)
		})
	}
}
