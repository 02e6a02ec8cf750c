package api

import (
	"net/http"

	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
)

// AmaStudio's knowledge routes: POST and GET /v1/knowledge, POST /v1/knowledge/{id}/documents
// (multipart, field file) and POST /v1/knowledge/{id}/search, over the same bases as
// /api/v1/knowledge-bases, answering errors in AmaStudio's shape.

// amaKnowledgeRequest is AmaStudio's body to create a base.
type amaKnowledgeRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// amaKnowledgeList is a page of the tenant's bases, newest first.
type amaKnowledgeList struct {
	KnowledgeBases []store.KnowledgeBase `json:"knowledgeBases"`
	Total          int                   `json:"total"`
	Limit          int                   `json:"limit"`
	Offset         int                   `json:"offset"`
}

// amaSearchResults are a search's chunks, best first, as AmaStudio's clients read them.
type amaSearchResults struct {
	Results []knowledge.Hit `json:"results"`
	Query   string          `json:"query"`
	TookMS  float64         `json:"took_ms"`
}

func (s *Server) amaKnowledgeRoutes() []route {
	const tag = "AmaStudio knowledge"
	return []route{
		{Method: http.MethodPost, Path: "/v1/knowledge", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectAmaStudio, Status: http.StatusCreated,
			Summary: "Create a knowledge base ({name, description}; the base of /api/v1/knowledge-bases, with the default chunking and no embedding model)",
			Request: amaKnowledgeRequest{}, Response: store.KnowledgeBase{}, Handle: s.amaCreateKnowledge},
		{Method: http.MethodGet, Path: "/v1/knowledge", Tag: tag, Scope: store.ScopeRead, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "List the tenant's knowledge bases, newest first", Query: pageQuery, Response: amaKnowledgeList{}, Handle: s.amaListKnowledge},
		{Method: http.MethodPost, Path: "/v1/knowledge/{id}/documents", Tag: tag, Scope: store.ScopeWrite, Dialect: dialectAmaStudio, Status: http.StatusAccepted,
			Summary: "Upload a document (multipart/form-data, field file): answered at once, processing; the same file again answers 200 with the document it already is",
			Request: uploadForm{}, RequestType: "multipart/form-data", Response: store.KnowledgeDocument{}, Handle: s.uploadDocument},
		{Method: http.MethodPost, Path: "/v1/knowledge/{id}/search", Tag: tag, Scope: store.ScopeRead, Dialect: dialectAmaStudio, Status: http.StatusOK,
			Summary: "Search a knowledge base ({query, limit}): ranked chunks with their document, text and score",
			Request: SearchRequest{}, Response: amaSearchResults{}, Handle: s.amaSearchKnowledge},
	}
}

func (s *Server) amaCreateKnowledge(w http.ResponseWriter, r *http.Request, p *Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req amaKnowledgeRequest
	if err := decodeInto(body, &req, false); err != nil {
		return err
	}
	b := store.NewKnowledgeBase()
	b.Name, b.Description = req.Name, req.Description
	if err := store.Create(r.Context(), s.store, p.TenantID, b); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (s *Server) amaListKnowledge(w http.ResponseWriter, r *http.Request, p *Principal) error {
	page, err := pageParams(r)
	if err != nil {
		return err
	}
	items, total, err := store.List[store.KnowledgeBase](r.Context(), s.store, p.TenantID, page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, amaKnowledgeList{KnowledgeBases: items, Total: total, Limit: page.Limit, Offset: page.Offset})
	return nil
}

func (s *Server) amaSearchKnowledge(w http.ResponseWriter, r *http.Request, p *Principal) error {
	res, err := s.search(w, r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, amaSearchResults{Results: res.Items, Query: res.Query, TookMS: res.TookMS})
	return nil
}
