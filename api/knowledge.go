package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/agent/llm"
	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// Knowledge on the canonical surface: /api/v1/knowledge-bases (CRUD through the generic
// resource), their documents (multipart upload, list, get, delete) and search. AmaStudio's
// four routes (knowledge_amastudio.go) are the same operations in its dialect.

var knowledgeBaseResource = resource[store.KnowledgeBase, *store.KnowledgeBase]{
	singular: "knowledge base", plural: "knowledge-bases", tag: "Knowledge", new: store.NewKnowledgeBase,
	check: checkEmbeddingModel,
}

// checkEmbeddingModel refuses a base whose embedding model's provider this node cannot reach
// or that cannot serve embeddings, so that its documents do not all fail later.
func checkEmbeddingModel(ctx context.Context, s *Server, tenantID string, b, _ *store.KnowledgeBase) error {
	if b.EmbeddingModel == "" || b.EmbeddingModel == "none" {
		return nil
	}
	provider, _, ok := strings.Cut(b.EmbeddingModel, "/")
	if !ok {
		return nil // Validate names the field
	}
	reg, err := s.registryFor(ctx, tenantID)
	if err != nil {
		return err
	}
	cfg, ok := reg.Config(provider)
	switch {
	case !ok:
		return errValidation("embedding_model", "names provider %q, which is not configured (environment, SWITCHBOARD_PROVIDERS_FILE or /api/v1/providers)", provider)
	case cfg.Kind != llm.KindOpenAI:
		return errValidation("embedding_model", "names provider %q, which is not OpenAI-compatible: embeddings are read from /v1/embeddings", provider)
	}
	return nil
}

// newKnowledge builds the node's knowledge service over the API's store, hub and providers.
func (s *Server) newKnowledge() *knowledge.Service {
	return knowledge.New(knowledge.Config{Store: s.store, Log: s.log, Node: s.cfg.Node,
		Embedder: &knowledge.EmbeddingsClient{Resolve: s.providers.EmbeddingEndpoint}, Events: knowledgePublisher{s},
		MaxUpload: s.cfg.KnowledgeMaxUpload})
}

// Knowledge is the node's knowledge service: agents search it; the node starts its recovery
// (Start) and closes it at shutdown.
func (s *Server) Knowledge() *knowledge.Service { return s.knowledge }

type knowledgePublisher struct{ s *Server }

func (kp knowledgePublisher) Publish(ctx context.Context, tenantID, topic, typ string, data any) {
	kp.s.publish(ctx, tenantID, topic, typ, data)
}

// SearchRequest is a search of a knowledge base.
type SearchRequest struct {
	Query string `json:"query"`
	// Limit is the most chunks to answer, 1 to 50 (default 5).
	Limit int `json:"limit,omitempty"`
}

// SearchResults are a search's chunks, best first.
type SearchResults struct {
	Items  []knowledge.Hit `json:"items"`
	Query  string          `json:"query"`
	TookMS float64         `json:"took_ms"`
}

// uploadForm documents the multipart body of an upload.
type uploadForm struct {
	File []byte `json:"file"`
}

func (s *Server) knowledgeRoutes() []route {
	const tag = "Knowledge"
	base := "/api/v1/knowledge-bases/{id}"
	return append(knowledgeBaseResource.routes(s),
		route{Method: http.MethodPost, Path: base + "/documents", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusAccepted,
			Summary: "Upload a document (multipart/form-data, field file): answered at once, processing; knowledge.document.ready or .failed follows on knowledge:{id}. The same file again answers 200 with the document it already is. 413 past the upload limit, 415 for a type that cannot be read, 422 for a file without its type's signature",
			Request: uploadForm{}, RequestType: "multipart/form-data", Response: store.KnowledgeDocument{}, Handle: s.uploadDocument},
		route{Method: http.MethodGet, Path: base + "/documents", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "List a knowledge base's documents, newest first", Query: pageQuery, Response: List[store.KnowledgeDocument]{}, Handle: s.listDocuments},
		route{Method: http.MethodGet, Path: base + "/documents/{document_id}", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Get a document: its status (processing, ready, failed with the reason) and chunk count", Response: store.KnowledgeDocument{}, Handle: s.getDocument},
		route{Method: http.MethodDelete, Path: base + "/documents/{document_id}", Tag: tag, Scope: store.ScopeWrite, Status: http.StatusNoContent,
			Summary: "Delete a document; its chunks leave the index at once", Handle: s.deleteDocument},
		route{Method: http.MethodPost, Path: base + "/search", Tag: tag, Scope: store.ScopeRead, Status: http.StatusOK,
			Summary: "Search a knowledge base ({query, limit}): its chunks ranked by words (BM25), fused with meaning when the base has an embedding model",
			Request: SearchRequest{}, Response: SearchResults{}, Handle: s.searchKnowledge},
	)
}

// knowledgeBase reads a base of the principal's tenant: another tenant's is a 404.
func (s *Server) knowledgeBase(ctx context.Context, p *Principal, id string) (*store.KnowledgeBase, error) {
	b, err := store.Get[store.KnowledgeBase](ctx, s.store, p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Knowledge base")
	}
	return b, err
}

// knowledgeError maps the knowledge service's errors to answers.
func knowledgeError(err error, max int64) error {
	switch {
	case errors.Is(err, knowledge.ErrTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
			Message: "The file is larger than the upload limit of " + strconv.FormatInt(max, 10) + " bytes"}
	case errors.Is(err, knowledge.ErrUnsupportedType):
		return &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupported,
			Message: "file: " + err.Error() + "; upload plain text, Markdown, HTML, PDF, DOCX, CSV or JSON",
			Details: []store.FieldError{{Field: "file", Message: err.Error()}}}
	case errors.Is(err, knowledge.ErrCorrupt):
		return errValidation("file", "cannot be read: %v", err)
	case errors.Is(err, knowledge.ErrEmptyFile):
		return errValidation("file", "is empty")
	case errors.Is(err, knowledge.ErrEmptyQuery):
		return errValidation("query", "is required: the words to search for")
	case errors.Is(err, knowledge.ErrQueryTooLong):
		return errValidation("query", "is too long: %v", err)
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("Knowledge base")
	}
	return err
}

// uploadBody reads the file part of a multipart upload, bounded by the upload limit.
// The file is counted against the node's budget of request bodies (hold) before it is read,
// whole when the request says its length, as it arrives otherwise: concurrent uploads past
// the budget are 503 with Retry-After, at once, rather than memory the node does not have.
func (s *Server) uploadBody(w http.ResponseWriter, r *http.Request, hold *bodyHold) (name, mediaType string, data []byte, err error) {
	max := s.knowledge.MaxUpload()
	mt, _, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" {
		return "", "", nil, &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupported,
			Message: "Content-Type must be multipart/form-data with the document in the field file"}
	}
	// The form's other fields and boundaries get 64 KiB beside the file.
	limit := max + 64<<10
	tooLarge := &Error{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
		Message: "The file is larger than the upload limit of " + strconv.FormatInt(max, 10) + " bytes"}
	var body io.Reader = r.Body
	switch n := r.ContentLength; {
	case n > limit:
		return "", "", nil, tooLarge
	case n >= 0:
		if err := hold.grow(n); err != nil {
			return "", "", nil, errBodyBudget(w)
		}
	default:
		body = &heldReader{r: r.Body, h: hold}
	}
	r.Body = http.MaxBytesReader(w, io.NopCloser(body), limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return "", "", nil, errValidation("body", "is not a multipart form: %v", err)
	}
	for {
		part, err := mr.NextPart()
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errBudgetFull):
			return "", "", nil, errBodyBudget(w)
		case errors.As(err, &mbe):
			return "", "", nil, tooLarge
		case errors.Is(err, io.EOF):
			return "", "", nil, errValidation("file", "is required: the document, as the form field file")
		case err != nil:
			return "", "", nil, errValidation("body", "is not a multipart form: %v", err)
		}
		if part.FormName() != "file" {
			_, _ = io.Copy(io.Discard, io.LimitReader(part, 64<<10))
			continue
		}
		// One buffer of the file's size at most, when the request says it, rather than
		// the copies a growing buffer leaves behind.
		buf := bytes.NewBuffer(nil)
		if n := r.ContentLength; n > 0 {
			buf.Grow(int(min(n, max+1)) + bytes.MinRead)
		}
		_, err = buf.ReadFrom(io.LimitReader(part, max+1))
		data := buf.Bytes()
		if errors.Is(err, errBudgetFull) {
			return "", "", nil, errBodyBudget(w)
		}
		if errors.As(err, &mbe) || int64(len(data)) > max {
			return "", "", nil, tooLarge
		}
		if err != nil {
			return "", "", nil, errValidation("file", "could not be read: %v", err)
		}
		return part.FileName(), part.Header.Get("Content-Type"), data, nil
	}
}

// upload stores an uploaded document in a base of the principal's tenant.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, p *Principal) (*store.KnowledgeDocument, bool, error) {
	if _, err := s.knowledgeBase(r.Context(), p, r.PathValue("id")); err != nil {
		return nil, false, err
	}
	hold := s.newHold()
	defer hold.release()
	name, mt, data, err := s.uploadBody(w, r, hold)
	if err != nil {
		return nil, false, err
	}
	if mt == "application/octet-stream" {
		mt = "" // says nothing: the name and the content decide
	}
	doc, existing, err := s.knowledge.Upload(r.Context(), p.TenantID, r.PathValue("id"), name, mt, data)
	if err != nil {
		return nil, false, knowledgeError(err, s.knowledge.MaxUpload())
	}
	return doc, existing, nil
}

func (s *Server) uploadDocument(w http.ResponseWriter, r *http.Request, p *Principal) error {
	doc, existing, err := s.upload(w, r, p)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if existing {
		status = http.StatusOK
	}
	writeJSON(w, status, doc)
	return nil
}

func (s *Server) listDocuments(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	if _, err := s.knowledgeBase(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	items, total, err := store.ListKnowledgeDocuments(r.Context(), s.store, p.TenantID, r.PathValue("id"), page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, List[store.KnowledgeDocument]{Items: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if _, err := s.knowledgeBase(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	doc, err := store.GetKnowledgeDocument(r.Context(), s.store, p.TenantID, r.PathValue("id"), r.PathValue("document_id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Document")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if _, err := s.knowledgeBase(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	err := s.knowledge.Delete(r.Context(), p.TenantID, r.PathValue("id"), r.PathValue("document_id"))
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Document")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// search runs a search request on a base of the principal's tenant.
func (s *Server) search(w http.ResponseWriter, r *http.Request, p *Principal) (*SearchResults, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	if _, err := s.knowledgeBase(r.Context(), p, r.PathValue("id")); err != nil {
		return nil, err
	}
	var req SearchRequest
	if err := decodeInto(body, &req, false); err != nil {
		return nil, err
	}
	if req.Limit < 0 || req.Limit > knowledge.MaxSearchLimit {
		return nil, errValidation("limit", "must be between 1 and %d", knowledge.MaxSearchLimit)
	}
	start := time.Now()
	hits, err := s.knowledge.Search(r.Context(), p.TenantID, []string{r.PathValue("id")}, req.Query, req.Limit)
	if err != nil {
		return nil, knowledgeError(err, 0)
	}
	return &SearchResults{Items: hits, Query: strings.TrimSpace(req.Query), TookMS: float64(time.Since(start).Microseconds()) / 1000}, nil
}

func (s *Server) searchKnowledge(w http.ResponseWriter, r *http.Request, p *Principal) error {
	res, err := s.search(w, r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
