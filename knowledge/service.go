package knowledge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Defaults of a Service's Config.
const (
	DefaultWorkers         = 2
	DefaultMaxUpload       = 32 << 20
	DefaultDocumentTimeout = 2 * time.Minute
	DefaultLease           = 30 * time.Second
	DefaultMaxAttempts     = 3
	DefaultSearchLimit     = 5
	MaxSearchLimit         = 50
	// maxQueryBytes bounds a search's text: a question, not a document.
	maxQueryBytes = 4096
)

// Errors of the service, beside extraction's (errors.go).
var (
	// ErrEmptyQuery: a search with no text.
	ErrEmptyQuery = errors.New("knowledge: the query is empty")
	// ErrQueryTooLong: a search longer than a question.
	ErrQueryTooLong = fmt.Errorf("knowledge: the query is longer than %d bytes", maxQueryBytes)
	// ErrEmptyFile: an upload of no bytes.
	ErrEmptyFile = errors.New("knowledge: the file is empty")
)

// Event types on the hub: a document became searchable, or failed (its reason says why).
const (
	EventDocumentReady  = "knowledge.document.ready"
	EventDocumentFailed = "knowledge.document.failed"
)

// Publisher carries the service's events to the hub, on the tenant's topics.
type Publisher interface {
	Publish(ctx context.Context, tenantID, topic, typ string, data any)
}

// DocumentEvent is the data of knowledge.document.ready and .failed.
type DocumentEvent struct {
	BaseID     string `json:"knowledge_base_id"`
	DocumentID string `json:"document_id"`
	FileName   string `json:"file_name"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	ChunkCount int    `json:"chunk_count"`
}

// Config is what a Service needs; zero fields take their defaults.
type Config struct {
	Store *store.Store
	// Index keeps and searches chunks; nil is NewIndex(Store, 0).
	Index Index
	// Embedder makes vectors for bases that name an embedding model; nil makes ingestion
	// into such a base fail and its searches lexical.
	Embedder Embedder
	// Events receives knowledge.document.ready and .failed; nil: none are published.
	Events Publisher
	Log    *slog.Logger
	// Node names this node in documents' leases (SWITCHBOARD_NODE).
	Node string
	// Workers is how many documents this node ingests at once (DefaultWorkers).
	Workers int
	// MaxUpload bounds an uploaded file in bytes (DefaultMaxUpload).
	MaxUpload int64
	// DocumentTimeout bounds the ingestion of one document (DefaultDocumentTimeout); past
	// it the document fails.
	DocumentTimeout time.Duration
	// Lease is how long a node holds a document without renewing it (DefaultLease); a
	// node that dies leaves its documents to others after it.
	Lease time.Duration
	// MaxAttempts is how many times a document is taken up before it fails as
	// interrupted (DefaultMaxAttempts).
	MaxAttempts int
	// Extract and Chunk read a file and cut it into chunks; nil are the package's.
	Extract func(ctx context.Context, name, mediaType string, data []byte, lim Limits) (*Document, error)
	Chunk   func(doc *Document, size, overlap int) []Chunk
}

// Service is knowledge on one node: bases and documents, ingestion off the request path, and
// search.
type Service struct {
	cfg   Config
	st    *store.Store
	index Index
	// ownIndex: the service made the index, and closes it.
	ownIndex bool
	log      *slog.Logger

	queue chan string
	stop  chan struct{}
	wg    sync.WaitGroup
	// ctx ends when the service closes; workers' ingestions run under it.
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once
	start   sync.Once
	workers sync.Once
}

// New builds the service; its workers start with the first upload, or with Start, which also
// takes up documents left processing. Close stops them.
func New(cfg Config) *Service {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.DocumentTimeout <= 0 {
		cfg.DocumentTimeout = DefaultDocumentTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Extract == nil {
		cfg.Extract = Extract
	}
	if cfg.Chunk == nil {
		cfg.Chunk = ChunkDocument
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Node == "" {
		cfg.Node = "node"
	}
	ownIndex := cfg.Index == nil
	if ownIndex {
		cfg.Index = NewIndex(cfg.Store, 0)
	}
	s := &Service{cfg: cfg, st: cfg.Store, index: cfg.Index, ownIndex: ownIndex, log: cfg.Log,
		queue: make(chan string, 4096), stop: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// runWorkers starts the workers, once: with the first document to ingest or at Start, so
// that a node (or a test) that never ingests runs none.
//
//nolint:contextcheck // the workers belong to the service, not to the upload that first queued work; Close ends them
func (s *Service) runWorkers() {
	s.workers.Do(func() {
		select {
		case <-s.stop:
			return
		default:
		}
		for range s.cfg.Workers {
			s.wg.Add(1)
			go s.work()
		}
	})
}

// MaxUpload is the largest file an upload may carry.
func (s *Service) MaxUpload() int64 { return s.cfg.MaxUpload }

// Close stops the workers. A document being ingested stays processing, its lease released,
// so that this node after a restart, or another node at once, takes it up again.
func (s *Service) Close() {
	s.once.Do(func() {
		s.workers.Do(func() {}) // none start after this
		close(s.stop)
		s.cancel()
		s.wg.Wait()
		// The index the service made reads word lists in the background.
		if c, ok := s.index.(interface{ Close() }); ok && s.ownIndex {
			c.Close()
		}
	})
}

// Bases are managed through the store's generic queries (store.Create and friends on
// store.KnowledgeBase): the API's resource does that. Documents go through the service.

// Upload stores a file as a new document of a base of the tenant and queues its ingestion;
// the document is processing until a worker has indexed it. A file the base already holds
// (same checksum) answers with that document and existing true, and is not indexed again. A
// type Switchboard cannot read is ErrUnsupportedType, a file without the signature of its
// type ErrCorrupt, one past MaxUpload ErrTooLarge: refused before anything is written.
func (s *Service) Upload(ctx context.Context, tenantID, baseID, name, mediaType string, data []byte) (doc *store.KnowledgeDocument, existing bool, err error) {
	if int64(len(data)) > s.cfg.MaxUpload {
		return nil, false, fmt.Errorf("%w: the file is %d bytes, the limit is %d", ErrTooLarge, len(data), s.cfg.MaxUpload)
	}
	if len(data) == 0 {
		return nil, false, ErrEmptyFile
	}
	kind, _, err := detect(name, mediaType, data)
	if err != nil {
		return nil, false, err
	}
	sum := sha256.Sum256(data)
	doc = &store.KnowledgeDocument{BaseID: baseID, FileName: cleanName(name), MediaType: kind, Checksum: hex.EncodeToString(sum[:])}
	existing, err = store.CreateKnowledgeDocument(ctx, s.st, tenantID, doc, data, s.cfg.Node, s.cfg.Lease)
	if err != nil {
		return nil, false, err
	}
	if !existing {
		s.enqueue(doc.ID)
	}
	return doc, existing, nil
}

// cleanName keeps the last element of an uploaded file's name, bounded, for display.
func cleanName(name string) string {
	name = strings.TrimSpace(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if r := []rune(name); len(r) > 200 {
		name = string(r[:200])
	}
	if name == "" {
		name = "document"
	}
	return name
}

func (s *Service) enqueue(id string) {
	s.runWorkers()
	select {
	case s.queue <- id:
	default:
		// A full queue leaves the document to the recovery scan, once its lease runs out.
		s.log.Warn("knowledge ingestion queue full; the document waits for its lease to run out", "document_id", id)
	}
}

// Delete removes a document of a base of the tenant; its chunks leave the index at once.
func (s *Service) Delete(ctx context.Context, tenantID, baseID, documentID string) error {
	return s.index.Delete(ctx, tenantID, baseID, documentID)
}

// Search finds the chunks of the tenant's bases that best answer query, best first, at most
// limit (DefaultSearchLimit when 0, at most MaxSearchLimit). Bases without an embedding
// model are searched by words; with one, by words and meaning, the two rankings fused by
// reciprocal rank. When the embedding provider fails, the search is by words alone (a voice
// turn is better answered from words than not at all). A base that is not the tenant's is
// store.ErrNotFound.
func (s *Service) Search(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]Hit, error) {
	query = strings.TrimSpace(query)
	switch {
	case query == "":
		return nil, ErrEmptyQuery
	case len(query) > maxQueryBytes:
		return nil, ErrQueryTooLong
	}
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	if len(baseIDs) == 0 {
		return []Hit{}, nil
	}
	if len(baseIDs) > 1 {
		baseIDs = slices.Compact(slices.Sorted(slices.Values(baseIDs)))
	}
	states, err := store.KnowledgeBaseStates(ctx, s.st, tenantID, baseIDs)
	if err != nil {
		return nil, err
	}
	byModel := map[string][]string{}
	var models []string
	for _, id := range baseIDs {
		st, ok := states[id]
		if !ok {
			return nil, fmt.Errorf("%w: knowledge base %s", store.ErrNotFound, id)
		}
		if st.EmbeddingModel != "" && s.cfg.Embedder != nil {
			if byModel[st.EmbeddingModel] == nil {
				models = append(models, st.EmbeddingModel)
			}
			byModel[st.EmbeddingModel] = append(byModel[st.EmbeddingModel], id)
		}
	}
	if len(models) == 0 {
		hits, err := s.index.SearchLexical(ctx, tenantID, baseIDs, query, limit)
		if hits == nil && err == nil {
			hits = []Hit{}
		}
		return hits, err
	}
	// Each list goes deeper than the answer, so that a chunk ranked fairly in both can
	// rise above one ranked first in one only.
	depth := max(4*limit, 20)
	lexical, err := s.index.SearchLexical(ctx, tenantID, baseIDs, query, depth)
	if err != nil {
		return nil, err
	}
	lists := [][]Hit{lexical}
	for _, m := range models {
		vs, err := s.cfg.Embedder.Embed(ctx, tenantID, m, []string{query})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.log.Warn("knowledge search by words alone: the embedding provider failed", "tenant_id", tenantID, "model", m, "err", err)
			continue
		}
		hits, err := s.index.SearchVector(ctx, tenantID, byModel[m], vs[0], depth)
		if err != nil {
			return nil, err
		}
		lists = append(lists, hits)
	}
	if len(lists) == 1 {
		return lexical[:min(limit, len(lexical))], nil
	}
	return fuse(limit, lists...), nil
}
