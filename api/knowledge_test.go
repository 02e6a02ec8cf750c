package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/agent/llm/llmtest"
	"github.com/switchboard-go/switchboard/api"
	"github.com/switchboard-go/switchboard/store"
)

// Knowledge over real HTTP: bases, uploads of real files, search through the canonical
// surface and AmaStudio's, their errors, and tenant isolation, on both databases.

// knowledgeServer is a test server whose knowledge workers stop with the test.
func knowledgeServer(t *testing.T, d store.Dialect, cfg api.Config) *testServer {
	t.Helper()
	cfg.DefaultRateLimit = 1_000_000
	ts := newTestServerConfig(t, d, cfg)
	t.Cleanup(ts.API.Knowledge().Close)
	return ts
}

// eachKnowledgeServer runs f against a knowledge server on each database.
func eachKnowledgeServer(t *testing.T, cfg api.Config, f func(t *testing.T, ts *testServer)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, knowledgeServer(t, d, cfg))
		})
	}
}

// multipartFile is a multipart/form-data body with one file in field, and its Content-Type.
func multipartFile(t testing.TB, field, name, mediaType string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name))
	if mediaType != "" {
		h.Set("Content-Type", mediaType)
	}
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// uploadFile uploads a file to path with the credential header and returns the answer.
func (ts *testServer) uploadFile(path string, h http.Header, name, mediaType string, data []byte) response {
	ts.t.Helper()
	body, ct := multipartFile(ts.t, "file", name, mediaType, data)
	h = h.Clone()
	h.Set("Content-Type", ct)
	return ts.request(http.MethodPost, path, body, h)
}

// waitDocument polls a document until it is no longer processing (it is a state the test
// waits for, with a deadline) and returns it.
func (ts *testServer) waitDocument(key, baseID, docID string) map[string]any {
	ts.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ts.do(http.MethodGet, "/api/v1/knowledge-bases/"+baseID+"/documents/"+docID, key, nil)
		wantStatus(ts.t, r, http.StatusOK, "GET document")
		doc := r.JSON(ts.t)
		if doc["status"] != "processing" {
			return doc
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("document %s still processing", docID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// knowledgeFiles are real files of the four kinds, each about one thing, and a query whose
// answer each holds.
func knowledgeFiles(t testing.TB) []struct {
	name, mediaType string
	data            []byte
	query           string
} {
	return []struct {
		name, mediaType string
		data            []byte
		query           string
	}{
		{"parking.md", "text/markdown", []byte("# Parking\n\nVisitors park in the blue zone behind the railway station; the barrier opens with the code on the booking."), "where do visitors park"},
		{"menu.html", "text/html", []byte(`<html><head><style>.x{color:red}</style><script>var secret="gazpacho";</script></head><body><h1>Canteen</h1><p>The canteen serves vegetarian lasagne every Thursday lunchtime.</p></body></html>`), "vegetarian lasagne thursday"},
		{"security.pdf", "application/pdf", makePDF(t, "Security", "Alarm", "The alarm panel is beside the loading dock and the code changes every month."), "alarm panel loading dock"},
		{"leave.docx", "", makeDOCX(t, "Leave", "Staff take twenty five days of annual leave and may carry five over."), "annual leave days"},
	}
}

func makePDF(t testing.TB, title, heading, text string) []byte {
	t.Helper()
	f := fpdf.New("P", "mm", "A4", "")
	f.SetTitle(title, true)
	f.AddPage()
	f.SetFont("Helvetica", "B", 20)
	f.MultiCell(0, 10, heading, "", "L", false)
	f.SetFont("Helvetica", "", 11)
	f.MultiCell(0, 5.5, text, "", "L", false)
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeDOCX(t testing.TB, heading, text string) []byte {
	t.Helper()
	const ns = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range []struct{ name, body string }{
		{"[Content_Types].xml", `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"word/styles.xml", `<?xml version="1.0"?><w:styles ` + ns + `><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style></w:styles>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8"?><w:document ` + ns + `><w:body>` +
			`<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>` + heading + `</w:t></w:r></w:p>` +
			`<w:p><w:r><w:t>` + text + `</w:t></w:r></w:p></w:body></w:document>`},
	} {
		w, err := zw.Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(p.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// count is the rows of a table.
func (ts *testServer) count(table string) int {
	ts.t.Helper()
	var n int
	if err := ts.Store.DB().NewSelect().Table(table).ColumnExpr("count(*)").Scan(context.Background(), &n); err != nil {
		ts.t.Fatal(err)
	}
	return n
}

// TestKnowledgeUploadAndSearch: a PDF, an HTML page, a DOCX and a Markdown file uploaded to a
// base through the canonical surface become ready and are found by what they say, the HTML
// without its script; AmaStudio's routes create, list, upload and search the same way; the
// same file again is the same document; a deleted document is not found any more.
func TestKnowledgeUploadAndSearch(t *testing.T) {
	eachKnowledgeServer(t, api.Config{}, func(t *testing.T, ts *testServer) {
		key := hdr("X-API-Key", ts.Key)
		base := ts.create("/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "Office", "description": "How the office works"})
		baseID := base["id"].(string)
		if !strings.HasPrefix(baseID, "kb_") || base["chunk_size"] != float64(1000) || base["embedding_model"] != "" {
			t.Fatalf("created %v", base)
		}
		docs := map[string]string{}
		for _, f := range knowledgeFiles(t) {
			r := ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", key, f.name, f.mediaType, f.data)
			wantStatus(t, r, http.StatusAccepted, "upload "+f.name)
			doc := r.JSON(t)
			if doc["status"] != "processing" || doc["file_name"] != f.name || doc["size_bytes"] != float64(len(f.data)) {
				t.Fatalf("upload %s: %s", f.name, r.Body)
			}
			docs[f.name] = doc["id"].(string)
		}
		for _, f := range knowledgeFiles(t) {
			doc := ts.waitDocument(ts.Key, baseID, docs[f.name])
			if doc["status"] != "ready" || doc["chunk_count"].(float64) < 1 {
				t.Fatalf("%s: %v", f.name, doc)
			}
			r := ts.do(http.MethodPost, "/api/v1/knowledge-bases/"+baseID+"/search", ts.Key, map[string]any{"query": f.query, "limit": 3})
			wantStatus(t, r, http.StatusOK, "search")
			var res struct {
				Items []struct {
					DocumentID   string  `json:"document_id"`
					DocumentName string  `json:"document_name"`
					Text         string  `json:"text"`
					Score        float64 `json:"score"`
					BaseID       string  `json:"knowledge_base_id"`
				} `json:"items"`
			}
			if err := json.Unmarshal(r.Body, &res); err != nil {
				t.Fatalf("search answer: %v", err)
			}
			if len(res.Items) == 0 || res.Items[0].DocumentName != f.name || res.Items[0].DocumentID != docs[f.name] ||
				res.Items[0].Score <= 0 || res.Items[0].BaseID != baseID || res.Items[0].Text == "" {
				t.Fatalf("search %q: %s", f.query, r.Body)
			}
		}
		// The page's script is not text of the document.
		r := ts.do(http.MethodPost, "/api/v1/knowledge-bases/"+baseID+"/search", ts.Key, map[string]any{"query": "gazpacho"})
		if wantStatus(t, r, http.StatusOK, "search"); strings.Contains(string(r.Body), "gazpacho\\\"") || len(r.JSON(t)["items"].([]any)) != 0 {
			t.Fatalf("script text indexed: %s", r.Body)
		}

		// The same file again is the document it already is.
		f := knowledgeFiles(t)[0]
		r = ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", key, "again.md", f.mediaType, f.data)
		if wantStatus(t, r, http.StatusOK, "upload again"); r.JSON(t)["id"] != docs[f.name] {
			t.Fatalf("upload again: %s", r.Body)
		}
		r = ts.do(http.MethodGet, "/api/v1/knowledge-bases/"+baseID+"/documents", ts.Key, nil)
		if wantStatus(t, r, http.StatusOK, "list"); r.JSON(t)["total"] != float64(4) {
			t.Fatalf("list: %s", r.Body)
		}

		// Deleted: out of search at once.
		wantStatus(t, ts.do(http.MethodDelete, "/api/v1/knowledge-bases/"+baseID+"/documents/"+docs[f.name], ts.Key, nil), http.StatusNoContent, "delete")
		r = ts.do(http.MethodPost, "/api/v1/knowledge-bases/"+baseID+"/search", ts.Key, map[string]any{"query": f.query})
		if wantStatus(t, r, http.StatusOK, "search"); strings.Contains(string(r.Body), docs[f.name]) {
			t.Fatalf("deleted document still found: %s", r.Body)
		}
		wantStatus(t, ts.do(http.MethodGet, "/api/v1/knowledge-bases/"+baseID+"/documents/"+docs[f.name], ts.Key, nil), http.StatusNotFound, "deleted document")

		// AmaStudio: the same operations in its dialect.
		ama, _ := amaKey(t, ts, ts.Key, nil)
		ah := hdr("X-API-Key", ama)
		r = ts.request(http.MethodPost, "/v1/knowledge", map[string]any{"name": "My Knowledge Base", "description": "Project documentation"}, ah)
		wantStatus(t, r, http.StatusCreated, "POST /v1/knowledge")
		amaBase := r.JSON(t)["id"].(string)
		r = ts.request(http.MethodGet, "/v1/knowledge", nil, ah)
		if wantStatus(t, r, http.StatusOK, "GET /v1/knowledge"); r.JSON(t)["total"] != float64(2) || !strings.Contains(string(r.Body), amaBase) {
			t.Fatalf("GET /v1/knowledge: %s", r.Body)
		}
		pdf := knowledgeFiles(t)[2]
		r = ts.uploadFile("/v1/knowledge/"+amaBase+"/documents", ah, "document.pdf", "application/pdf", pdf.data)
		wantStatus(t, r, http.StatusAccepted, "AmaStudio upload")
		ts.waitDocument(ts.Key, amaBase, r.JSON(t)["id"].(string))
		r = ts.request(http.MethodPost, "/v1/knowledge/"+amaBase+"/search", map[string]any{"query": "search terms alarm", "limit": 10}, ah)
		wantStatus(t, r, http.StatusOK, "AmaStudio search")
		var ares struct {
			Results []struct {
				DocumentName string  `json:"document_name"`
				Text         string  `json:"text"`
				Score        float64 `json:"score"`
			} `json:"results"`
		}
		if err := json.Unmarshal(r.Body, &ares); err != nil {
			t.Fatalf("AmaStudio search: %v: %s", err, r.Body)
		}
		if len(ares.Results) != 1 || ares.Results[0].DocumentName != "document.pdf" || !strings.Contains(ares.Results[0].Text, "alarm panel") {
			t.Fatalf("AmaStudio search: %s", r.Body)
		}
		gwAmaError(t, ts.request(http.MethodPost, "/v1/knowledge/"+amaBase+"/search", map[string]any{"query": " "}, ah), http.StatusBadRequest)
		gwAmaError(t, ts.request(http.MethodPost, "/v1/knowledge", map[string]any{"description": "no name"}, ah), http.StatusBadRequest)
	})
}

// TestKnowledgeUploadErrors: a file past the upload limit (413), of a type that cannot be read
// (415), without its type's signature (422), a body that is not a form (415) or a form without
// the file (422) are refused with nothing written; a PDF that breaks inside fails as a
// document with its reason and nothing of it indexed.
func TestKnowledgeUploadErrors(t *testing.T) {
	eachKnowledgeServer(t, api.Config{KnowledgeMaxUpload: 64 << 10}, func(t *testing.T, ts *testServer) {
		key := hdr("X-API-Key", ts.Key)
		baseID := ts.create("/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "Errors"})["id"].(string)
		path := "/api/v1/knowledge-bases/" + baseID + "/documents"
		wantError(t, ts.uploadFile(path, key, "big.txt", "text/plain", bytes.Repeat([]byte("words "), 20<<10)), http.StatusRequestEntityTooLarge, "payload_too_large", "")
		png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
		wantError(t, ts.uploadFile(path, key, "logo.png", "image/png", png), http.StatusUnsupportedMediaType, "unsupported_media_type", "file")
		wantError(t, ts.uploadFile(path, key, "fake.pdf", "application/pdf", append([]byte{0, 1, 2, 3}, make([]byte, 64)...)), http.StatusUnprocessableEntity, "validation_error", "file")
		wantError(t, ts.uploadFile(path, key, "empty.txt", "text/plain", nil), http.StatusUnprocessableEntity, "validation_error", "file")
		wantError(t, ts.request(http.MethodPost, path, `{"file":"x"}`, key), http.StatusUnsupportedMediaType, "unsupported_media_type", "")
		body, ct := multipartFile(t, "attachment", "notes.txt", "text/plain", []byte("hello"))
		wantError(t, ts.request(http.MethodPost, path, body, hdr("X-API-Key", ts.Key, "Content-Type", ct)), http.StatusUnprocessableEntity, "validation_error", "file")
		// AmaStudio's shape for the same.
		ama, _ := amaKey(t, ts, ts.Key, nil)
		gwAmaError(t, ts.uploadFile("/v1/knowledge/"+baseID+"/documents", hdr("X-API-Key", ama), "logo.png", "image/png", png), http.StatusUnsupportedMediaType)
		gwAmaError(t, ts.uploadFile("/v1/knowledge/"+baseID+"/documents", hdr("X-API-Key", ama), "big.txt", "", bytes.Repeat([]byte("words "), 20<<10)), http.StatusRequestEntityTooLarge)
		if n := ts.count("knowledge_documents") + ts.count("knowledge_document_contents"); n != 0 {
			t.Fatalf("refused uploads left %d rows", n)
		}

		// A PDF whose body is broken: accepted (it has the signature), then failed.
		broken := []byte("%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\nthis is not a PDF body at all\n%%EOF\n")
		r := ts.uploadFile(path, key, "broken.pdf", "application/pdf", broken)
		wantStatus(t, r, http.StatusAccepted, "broken PDF")
		doc := ts.waitDocument(ts.Key, baseID, r.JSON(t)["id"].(string))
		if doc["status"] != "failed" || doc["reason"] == "" || doc["chunk_count"] != float64(0) {
			t.Fatalf("broken PDF: %v", doc)
		}
		if n := ts.count("knowledge_chunks") + ts.count("knowledge_document_contents"); n != 0 {
			t.Fatalf("a failed document left %d rows of chunks or bytes", n)
		}
		// Uploaded again (fixed), the failed document is replaced.
		fixed := makePDF(t, "Fixed", "Fixed", "The fixed file reads well.")
		wantStatus(t, ts.uploadFile(path, key, "broken.pdf", "application/pdf", fixed), http.StatusAccepted, "fixed PDF")
	})
}

// TestKnowledgeTenantIsolation: another tenant's base is a 404 on every route of both
// surfaces; agents may name only their tenant's bases, and a base an agent uses cannot be
// deleted from under it.
func TestKnowledgeTenantIsolation(t *testing.T) {
	eachKnowledgeServer(t, api.Config{}, func(t *testing.T, ts *testServer) {
		baseID := ts.create("/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "Mine"})["id"].(string)
		r := ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", hdr("X-API-Key", ts.Key), "a.txt", "text/plain", []byte("The secret word is marmalade."))
		wantStatus(t, r, http.StatusAccepted, "upload")
		docID := r.JSON(t)["id"].(string)
		ts.waitDocument(ts.Key, baseID, docID)

		other := ts.newKey("other", "other", 1_000_000, store.ScopeAdmin)
		oh := hdr("X-API-Key", other)
		b := "/api/v1/knowledge-bases/" + baseID
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, b, nil},
			{http.MethodPatch, b, map[string]any{"name": "Theirs"}},
			{http.MethodDelete, b, nil},
			{http.MethodGet, b + "/documents", nil},
			{http.MethodGet, b + "/documents/" + docID, nil},
			{http.MethodDelete, b + "/documents/" + docID, nil},
			{http.MethodPost, b + "/search", map[string]any{"query": "secret word"}},
		} {
			wantError(t, ts.request(c.method, c.path, c.body, oh), http.StatusNotFound, "not_found", "")
		}
		wantError(t, ts.uploadFile(b+"/documents", oh, "b.txt", "text/plain", []byte("x")), http.StatusNotFound, "not_found", "")
		if r := ts.do(http.MethodGet, "/api/v1/knowledge-bases", other, nil); strings.Contains(string(r.Body), baseID) {
			t.Fatalf("another tenant lists the base: %s", r.Body)
		}
		ama, _ := amaKey(t, ts, other, nil)
		ah := hdr("X-API-Key", ama)
		gwAmaError(t, ts.request(http.MethodPost, "/v1/knowledge/"+baseID+"/search", map[string]any{"query": "secret"}, ah), http.StatusNotFound)
		gwAmaError(t, ts.uploadFile("/v1/knowledge/"+baseID+"/documents", ah, "b.txt", "text/plain", []byte("x")), http.StatusNotFound)
		if r := ts.request(http.MethodGet, "/v1/knowledge", nil, ah); strings.Contains(string(r.Body), baseID) {
			t.Fatalf("another tenant lists the base: %s", r.Body)
		}

		// Agents name their own tenant's bases only.
		agent := func(ids ...string) map[string]any {
			return map[string]any{"name": "Helper", "workflow_id": nil, "knowledge_base_ids": ids}
		}
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", other, agent(baseID)), http.StatusUnprocessableEntity, "validation_error", "knowledge_base_ids[0]")
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, agent(baseID, "kb_01jzzzzzzzzzzzzzzzzzzzzzzz")), http.StatusUnprocessableEntity, "validation_error", "knowledge_base_ids[1]")
		wantError(t, ts.do(http.MethodPost, "/api/v1/agents", ts.Key, agent("faq")), http.StatusUnprocessableEntity, "validation_error", "knowledge_base_ids[0]")
		ag := ts.create("/api/v1/agents", ts.Key, agent(baseID))
		wantError(t, ts.do(http.MethodDelete, b, ts.Key, nil), http.StatusConflict, "conflict", "id")
		wantStatus(t, ts.do(http.MethodPatch, "/api/v1/agents/"+ag["id"].(string), ts.Key, map[string]any{"knowledge_base_ids": []string{}}), http.StatusOK, "agent without knowledge")
		wantStatus(t, ts.do(http.MethodDelete, b, ts.Key, nil), http.StatusNoContent, "delete base")
		if n := ts.count("knowledge_chunks") + ts.count("knowledge_documents"); n != 0 {
			t.Fatalf("a deleted base left %d rows", n)
		}
	})
}

// TestKnowledgeHybridSearchAPI: a base that names an embedding model of a configured
// provider stores vectors and searches by words and meaning; a model of no provider is
// refused when the base is saved.
func TestKnowledgeHybridSearchAPI(t *testing.T) {
	up := llmtest.NewOpenAI(t)
	reg, err := llm.NewRegistry([]llm.ProviderConfig{{Name: "standin", Kind: llm.KindOpenAI, BaseURL: up.URL, APIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	eachKnowledgeServer(t, api.Config{Models: reg}, func(t *testing.T, ts *testServer) {
		wantError(t, ts.do(http.MethodPost, "/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "X", "embedding_model": "nowhere/embed"}),
			http.StatusUnprocessableEntity, "validation_error", "embedding_model")
		baseID := ts.create("/api/v1/knowledge-bases", ts.Key, map[string]any{"name": "Hybrid", "embedding_model": "standin/text-embedding-3-small"})["id"].(string)
		for name, text := range map[string]string{
			"returns.md":  "# Returns\n\nReturned items are refunded to the original card within five working days.",
			"shipping.md": "# Shipping\n\nParcels ship from the warehouse every weekday afternoon.",
		} {
			r := ts.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", hdr("X-API-Key", ts.Key), name, "text/markdown", []byte(text))
			wantStatus(t, r, http.StatusAccepted, "upload")
			if doc := ts.waitDocument(ts.Key, baseID, r.JSON(t)["id"].(string)); doc["status"] != "ready" {
				t.Fatalf("%s: %v", name, doc)
			}
		}
		var vectors int
		if err := ts.Store.DB().NewSelect().Table("knowledge_chunks").ColumnExpr("count(*)").Where("vector IS NOT NULL").Scan(context.Background(), &vectors); err != nil {
			t.Fatal(err)
		}
		if vectors == 0 {
			t.Fatal("no vectors stored")
		}
		r := ts.do(http.MethodPost, "/api/v1/knowledge-bases/"+baseID+"/search", ts.Key, map[string]any{"query": "when is my refund paid", "limit": 1})
		wantStatus(t, r, http.StatusOK, "search")
		if items := r.JSON(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["document_name"] != "returns.md" {
			t.Fatalf("hybrid search: %s", r.Body)
		}
		// Changing the model under existing vectors is refused.
		wantError(t, ts.do(http.MethodPatch, "/api/v1/knowledge-bases/"+baseID, ts.Key, map[string]any{"embedding_model": ""}),
			http.StatusUnprocessableEntity, "validation_error", "embedding_model")
	})
}

// TestKnowledgeEvents: a dashboard following a base's topic over SSE sees its documents
// become ready or fail; another tenant cannot follow the topic.
func TestKnowledgeEvents(t *testing.T) {
	ss := newStreamServer(t, streamOptions{})
	t.Cleanup(ss.API.Knowledge().Close)
	baseID := ss.create("/api/v1/knowledge-bases", ss.Key, map[string]any{"name": "Watched"})["id"].(string)
	other := ss.newKey("other", "other", 1_000_000, store.ScopeAdmin)
	if _, r := ss.openSSE(t, "topics=knowledge:"+baseID, hdr("X-API-Key", other)); r.Status != http.StatusNotFound {
		t.Fatalf("another tenant follows the base: %d %s", r.Status, r.Body)
	}
	c := ss.mustOpenSSE(t, "topics=knowledge:"+baseID, ss.Key)
	r := ss.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", hdr("X-API-Key", ss.Key), "ok.md", "text/markdown", []byte("# Hello\n\nThe lobby opens at eight."))
	wantStatus(t, r, http.StatusAccepted, "upload")
	okID := r.JSON(t)["id"].(string)
	ev := c.nextEvent()
	var d struct {
		DocumentID string `json:"document_id"`
		BaseID     string `json:"knowledge_base_id"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		ChunkCount int    `json:"chunk_count"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("ready event: %v: %s", err, ev.Data)
	}
	if ev.Type != "knowledge.document.ready" || ev.Topic != "knowledge:"+baseID || d.DocumentID != okID || d.BaseID != baseID || d.ChunkCount < 1 {
		t.Fatalf("ready event: %+v %s", ev, ev.Data)
	}
	r = ss.uploadFile("/api/v1/knowledge-bases/"+baseID+"/documents", hdr("X-API-Key", ss.Key), "bad.pdf", "application/pdf", []byte("%PDF-1.7\nnot a PDF at all\n"))
	wantStatus(t, r, http.StatusAccepted, "upload")
	ev = c.nextEvent()
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("failed event: %v: %s", err, ev.Data)
	}
	if ev.Type != "knowledge.document.failed" || d.Status != "failed" || d.Reason == "" {
		t.Fatalf("failed event: %+v %s", ev, ev.Data)
	}
}

// storeDocument writes a document of a tenant's base straight into the store (processing, not
// queued): for tests that need one to exist.
func (ts *testServer) storeDocument(tenantID, baseID string) string {
	ts.t.Helper()
	doc := &store.KnowledgeDocument{BaseID: baseID, FileName: "a.txt", MediaType: "text/plain", Checksum: strings.Repeat("0", 64)}
	if _, err := store.CreateKnowledgeDocument(context.Background(), ts.Store, tenantID, doc, []byte("a"), "test", time.Hour); err != nil {
		ts.t.Fatal(err)
	}
	return doc.ID
}
