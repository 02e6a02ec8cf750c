package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

const (
	prefixKnowledgeBase     = "kb_"
	prefixKnowledgeDocument = "kdoc_"
)

// Statuses of a knowledge document: processing until a node has indexed it (or given up),
// then ready (searchable) or failed (Reason says why; nothing of it is indexed).
const (
	DocumentProcessing = "processing"
	DocumentReady      = "ready"
	DocumentFailed     = "failed"
)

// Bounds of a base's chunking, in characters.
const (
	DefaultChunkSize    = 1000
	DefaultChunkOverlap = 150
	MinChunkSize        = 100
	MaxChunkSize        = 8000
)

// ErrLeaseLost: the node no longer holds the document it was working on (another node took
// it over, or it was deleted); what it made of it is not written.
var ErrLeaseLost = errors.New("store: knowledge document no longer held by this node")

// KnowledgeBase is a set of documents an agent may search: how they are cut into chunks and
// the embedding model ("provider/model") that gives each chunk a vector, or none.
type KnowledgeBase struct {
	bun.BaseModel `bun:"table:knowledge_bases"`
	Row

	Name         string `bun:"name,notnull" json:"name"`
	Description  string `bun:"description,notnull" json:"description"`
	ChunkSize    int    `bun:"chunk_size,notnull" json:"chunk_size"`
	ChunkOverlap int    `bun:"chunk_overlap,notnull" json:"chunk_overlap"`
	// EmbeddingModel is "provider/model" of an OpenAI-compatible /v1/embeddings provider;
	// empty for lexical search alone.
	EmbeddingModel string `bun:"embedding_model,notnull" json:"embedding_model"`
}

// NewKnowledgeBase returns a base with the default chunking and no embedding model.
func NewKnowledgeBase() *KnowledgeBase {
	return &KnowledgeBase{ChunkSize: DefaultChunkSize, ChunkOverlap: DefaultChunkOverlap}
}

func (*KnowledgeBase) idPrefix() string { return prefixKnowledgeBase }

// Validate checks the base's own fields.
func (b *KnowledgeBase) Validate() error {
	var fe fieldErrors
	fe.requireName("name", b.Name)
	fe.maxText("description", b.Description)
	fe.rangeInt("chunk_size", b.ChunkSize, MinChunkSize, MaxChunkSize)
	if b.ChunkOverlap < 0 || b.ChunkOverlap > b.ChunkSize/3 {
		fe.add("chunk_overlap", "must be between 0 and a third of chunk_size (%d)", b.ChunkSize/3)
	}
	if b.EmbeddingModel == "none" {
		b.EmbeddingModel = ""
	}
	if b.EmbeddingModel != "" && !reModel.MatchString(b.EmbeddingModel) {
		fe.add("embedding_model", "must be \"provider/model\", such as \"openai/text-embedding-3-small\", or empty for lexical search alone")
	}
	return fe.err()
}

// beforeUpdate refuses a new embedding model while the base has documents: their vectors
// were made by the old one and cannot be compared with the new one's.
func (b *KnowledgeBase) beforeUpdate(ctx context.Context, tx bun.IDB) error {
	var stored KnowledgeBase
	err := tx.NewSelect().Model(&stored).Column("embedding_model").Where("id = ?", b.ID).Where("tenant_id = ?", b.TenantID).Scan(ctx)
	if err != nil {
		return err
	}
	if stored.EmbeddingModel == b.EmbeddingModel {
		return nil
	}
	n, err := tx.NewSelect().Model((*KnowledgeDocument)(nil)).Where("base_id = ?", b.ID).Count(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return &ValidationError{Fields: []FieldError{{Field: "embedding_model",
			Message: fmt.Sprintf("cannot change while the base has documents (%d): their vectors come from %q; make a new base", n, stored.EmbeddingModel)}}}
	}
	return nil
}

// checkDelete refuses to delete a base that agents still name.
func (b *KnowledgeBase) checkDelete(ctx context.Context, tx bun.IDB) error {
	var agents []Agent
	if err := tx.NewSelect().Model(&agents).Column("id", "knowledge_base_ids").Where("tenant_id = ?", b.TenantID).Scan(ctx); err != nil {
		return err
	}
	var users []string
	for _, a := range agents {
		if slices.Contains(a.KnowledgeBaseIDs, b.ID) {
			users = append(users, a.ID)
		}
	}
	if len(users) > 0 {
		return &ConflictError{Field: "id", Message: "the knowledge base is used by " + strings.Join(users, ", ")}
	}
	return nil
}

// ValidKnowledgeBaseID reports whether s looks like a knowledge base ID.
func ValidKnowledgeBaseID(s string) bool { return validID(prefixKnowledgeBase, s) }

// KnowledgeDocument is a file uploaded to a base and what became of it.
type KnowledgeDocument struct {
	bun.BaseModel `bun:"table:knowledge_documents"`
	Row

	BaseID    string `bun:"base_id,notnull" json:"knowledge_base_id"`
	FileName  string `bun:"file_name,notnull" json:"file_name"`
	MediaType string `bun:"media_type,notnull" json:"media_type"`
	SizeBytes int64  `bun:"size_bytes,notnull" json:"size_bytes"`
	// Checksum is the hex SHA-256 of the bytes; one checksum is indexed once per base.
	Checksum string `bun:"checksum,notnull" json:"checksum"`
	Status   string `bun:"status,notnull" json:"status"`
	// Reason says why a document failed.
	Reason     string `bun:"reason,notnull" json:"reason,omitempty"`
	ChunkCount int    `bun:"chunk_count,notnull" json:"chunk_count"`
	PageCount  int    `bun:"page_count,notnull" json:"page_count,omitempty"`
	// Node holds a processing document until LeaseUntil; Attempts counts the nodes that took
	// it up.
	Node       string     `bun:"node,notnull" json:"-"`
	LeaseUntil *time.Time `bun:"lease_until" json:"-"`
	Attempts   int        `bun:"attempts,notnull" json:"-"`
}

func (*KnowledgeDocument) idPrefix() string { return prefixKnowledgeDocument }

// Validate checks the document's own fields.
func (d *KnowledgeDocument) Validate() error {
	var fe fieldErrors
	fe.requireName("file_name", d.FileName)
	if d.MediaType == "" {
		fe.add("media_type", "is required")
	}
	if len(d.Checksum) != 64 {
		fe.add("checksum", "must be a hex SHA-256")
	}
	fe.oneOf("status", d.Status, DocumentProcessing, DocumentReady, DocumentFailed)
	return fe.err()
}

// KnowledgeChunk is one indexed piece of a ready document. ID is the row's integer key, which
// the lexical index of SQLite (FTS5) keys its rows by.
type KnowledgeChunk struct {
	bun.BaseModel `bun:"table:knowledge_chunks"`

	ID          int64    `bun:"id,pk,autoincrement" json:"id"`
	DocumentID  string   `bun:"document_id,notnull" json:"document_id"`
	BaseID      string   `bun:"base_id,notnull" json:"knowledge_base_id"`
	TenantID    string   `bun:"tenant_id,notnull" json:"-"`
	Position    int      `bun:"position,notnull" json:"position"`
	HeadingPath []string `bun:"heading_path,type:json,notnull" json:"heading_path"`
	Page        int      `bun:"page,notnull" json:"page"`
	Text        string   `bun:"text,notnull" json:"text"`
	// Vector is the chunk's embedding as little-endian float32s; nil without a model.
	Vector []byte `bun:"vector" json:"-"`
}

type knowledgeContent struct {
	bun.BaseModel `bun:"table:knowledge_document_contents"`

	DocumentID string `bun:"document_id,pk"`
	Data       []byte `bun:"data,notnull"`
}

// CreateKnowledgeDocument stores a new document of a base of the tenant, processing and held
// by node until the lease ends, with its bytes. When the base already has a document of the
// same checksum that is processing or ready, that one is returned (existing true) and nothing
// is written; a failed one is replaced. A base that is not the tenant's is ErrNotFound.
func CreateKnowledgeDocument(ctx context.Context, s *Store, tenantID string, d *KnowledgeDocument, data []byte, node string, lease time.Duration) (existing bool, err error) {
	if !validID(prefixKnowledgeBase, d.BaseID) {
		return false, ErrNotFound
	}
	now := s.now()
	until := now.Add(lease)
	d.ID, d.TenantID, d.CreatedAt, d.UpdatedAt = newID(prefixKnowledgeDocument), tenantID, now, now
	d.Status, d.Reason, d.ChunkCount, d.Node, d.LeaseUntil, d.Attempts = DocumentProcessing, "", 0, node, &until, 1
	d.SizeBytes = int64(len(data))
	if err := d.Validate(); err != nil {
		return false, err
	}
	for try := 0; try < 2; try++ {
		existing = false
		err = s.inTx(ctx, func(tx bun.Tx) error {
			n, err := tx.NewSelect().Model((*KnowledgeBase)(nil)).Where("id = ?", d.BaseID).Where("tenant_id = ?", tenantID).Count(ctx)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrNotFound
			}
			var prev KnowledgeDocument
			err = tx.NewSelect().Model(&prev).Where("base_id = ?", d.BaseID).Where("checksum = ?", d.Checksum).Limit(1).Scan(ctx)
			switch {
			case err == nil && prev.Status != DocumentFailed:
				*d, existing = prev, true
				return nil
			case err == nil:
				if _, err := tx.NewDelete().Model((*KnowledgeDocument)(nil)).Where("id = ?", prev.ID).Exec(ctx); err != nil {
					return err
				}
			case !errors.Is(classify(err), ErrNotFound):
				return err
			}
			if _, err := tx.NewInsert().Model(d).Exec(ctx); err != nil {
				return err
			}
			_, err = tx.NewInsert().Model(&knowledgeContent{DocumentID: d.ID, Data: data}).Exec(ctx)
			return err
		})
		// Two uploads of the same file at once: the one that lost the race answers with
		// the winner's document.
		var ce *ConflictError
		if !errors.As(err, &ce) {
			break
		}
	}
	return existing, err
}

// ListKnowledgeDocuments reads a page of a base's documents, newest first, and how many it
// has.
func ListKnowledgeDocuments(ctx context.Context, s *Store, tenantID, baseID string, page Page) ([]KnowledgeDocument, int, error) {
	items := make([]KnowledgeDocument, 0, page.Limit)
	total, err := s.db.NewSelect().Model(&items).Where("tenant_id = ?", tenantID).Where("base_id = ?", baseID).
		Order("created_at DESC", "id DESC").Limit(int64(page.Limit)).Offset(int64(page.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, classify(err)
	}
	return items, int(total), nil
}

// GetKnowledgeDocument reads one document of a base of the tenant.
func GetKnowledgeDocument(ctx context.Context, s *Store, tenantID, baseID, id string) (*KnowledgeDocument, error) {
	d, err := Get[KnowledgeDocument](ctx, s, tenantID, id)
	if err != nil {
		return nil, err
	}
	if d.BaseID != baseID {
		return nil, ErrNotFound
	}
	return d, nil
}

// DeleteKnowledgeDocument removes a document of a base of the tenant with its chunks and
// bytes, in one transaction: its chunks leave the index as it goes.
func DeleteKnowledgeDocument(ctx context.Context, s *Store, tenantID, baseID, id string) error {
	if !validID(prefixKnowledgeDocument, id) {
		return ErrNotFound
	}
	return s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*KnowledgeDocument)(nil)).Where("id = ?", id).Where("base_id = ?", baseID).
			Where("tenant_id = ?", tenantID).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// The foreign keys cascade too; deleting the chunks by name keeps the lexical index
		// in step whatever a database does with triggers under a cascade.
		if _, err := tx.NewDelete().Model((*KnowledgeChunk)(nil)).Where("document_id = ?", id).Exec(ctx); err != nil {
			return err
		}
		return bumpRevision(ctx, tx, baseID)
	})
}

func bumpRevision(ctx context.Context, tx bun.IDB, baseID string) error {
	_, err := tx.NewUpdate().Model((*KnowledgeBase)(nil)).Set("revision = revision + 1").Where("id = ?", baseID).Exec(ctx)
	return err
}

// KnowledgeDocumentContent reads the bytes of a document still processing.
func KnowledgeDocumentContent(ctx context.Context, s *Store, id string) ([]byte, error) {
	var c knowledgeContent
	if err := s.db.NewSelect().Model(&c).Where("document_id = ?", id).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	return c.Data, nil
}

// ClaimKnowledgeDocuments takes up to limit processing documents for node and holds them for
// lease: those whose lease has run out (their node died or stopped), and, with own, those
// node held before it restarted. Each claim is a compare-and-set on the lease, so two nodes
// never take the same document.
func ClaimKnowledgeDocuments(ctx context.Context, s *Store, node string, lease time.Duration, limit int, own bool) ([]KnowledgeDocument, error) {
	now := s.now()
	var cand []KnowledgeDocument
	q := s.db.NewSelect().Model(&cand).Where("status = ?", DocumentProcessing)
	if own {
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("lease_until < ?", now).WhereOr("lease_until IS NULL").WhereOr("node = ?", node)
		})
	} else {
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("lease_until < ?", now).WhereOr("lease_until IS NULL")
		})
	}
	if err := q.Order("created_at ASC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, classify(err)
	}
	until := now.Add(lease)
	claimed := cand[:0]
	for _, d := range cand {
		u := s.db.NewUpdate().Model((*KnowledgeDocument)(nil)).Set("node = ?", node).Set("lease_until = ?", until).
			Set("attempts = attempts + 1").Set("updated_at = ?", now).
			Where("id = ?", d.ID).Where("status = ?", DocumentProcessing).Where("node = ?", d.Node)
		if d.LeaseUntil == nil {
			u = u.Where("lease_until IS NULL")
		} else {
			u = u.Where("lease_until = ?", *d.LeaseUntil)
		}
		res, err := u.Exec(ctx)
		if err != nil {
			return claimed, classify(err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			d.Node, d.LeaseUntil, d.Attempts = node, &until, d.Attempts+1
			claimed = append(claimed, d)
		}
	}
	return claimed, nil
}

// RenewKnowledgeLease extends node's hold on a processing document; ErrLeaseLost when node
// no longer holds it.
func RenewKnowledgeLease(ctx context.Context, s *Store, id, node string, lease time.Duration) error {
	now := s.now()
	res, err := s.db.NewUpdate().Model((*KnowledgeDocument)(nil)).Set("lease_until = ?", now.Add(lease)).
		Where("id = ?", id).Where("node = ?", node).Where("status = ?", DocumentProcessing).Exec(ctx)
	if err != nil {
		return classify(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// FinishKnowledgeDocument indexes a document's chunks and makes it ready, in one
// transaction: a document is never ready with part of its chunks, nor are chunks searchable
// of a document still processing. Its bytes are removed. ErrLeaseLost when node no longer
// holds it; then nothing is written.
func FinishKnowledgeDocument(ctx context.Context, s *Store, d *KnowledgeDocument, node string, chunks []KnowledgeChunk, pages int) error {
	now := s.now()
	for i := range chunks {
		chunks[i].ID, chunks[i].DocumentID, chunks[i].BaseID, chunks[i].TenantID = 0, d.ID, d.BaseID, d.TenantID
		if chunks[i].HeadingPath == nil {
			chunks[i].HeadingPath = []string{}
		}
	}
	return s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*KnowledgeDocument)(nil)).Set("status = ?", DocumentReady).Set("reason = ''").
			Set("chunk_count = ?", len(chunks)).Set("page_count = ?", pages).Set("lease_until = NULL").Set("updated_at = ?", now).
			Where("id = ?", d.ID).Where("node = ?", node).Where("status = ?", DocumentProcessing).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		if _, err := tx.NewDelete().Model((*KnowledgeChunk)(nil)).Where("document_id = ?", d.ID).Exec(ctx); err != nil {
			return err
		}
		if err := insertChunks(ctx, tx, chunks); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*knowledgeContent)(nil)).Where("document_id = ?", d.ID).Exec(ctx); err != nil {
			return err
		}
		d.Status, d.Reason, d.ChunkCount, d.PageCount, d.LeaseUntil, d.UpdatedAt = DocumentReady, "", len(chunks), pages, nil, now
		return bumpRevision(ctx, tx, d.BaseID)
	})
}

// insertChunks writes chunks in batches small enough for every driver's parameter limit.
func insertChunks(ctx context.Context, tx bun.IDB, chunks []KnowledgeChunk) error {
	const batch = 200
	for i := 0; i < len(chunks); i += batch {
		part := chunks[i:min(i+batch, len(chunks))]
		if _, err := tx.NewInsert().Model(&part).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// FailKnowledgeDocument marks a processing document failed with the reason, indexes none of
// it and removes its bytes. With node empty it fails the document whoever holds it (a
// recovery that gives up); otherwise ErrLeaseLost when node no longer holds it.
func FailKnowledgeDocument(ctx context.Context, s *Store, d *KnowledgeDocument, node, reason string) error {
	now := s.now()
	return s.inTx(ctx, func(tx bun.Tx) error {
		q := tx.NewUpdate().Model((*KnowledgeDocument)(nil)).Set("status = ?", DocumentFailed).Set("reason = ?", reason).
			Set("chunk_count = 0").Set("lease_until = NULL").Set("updated_at = ?", now).
			Where("id = ?", d.ID).Where("status = ?", DocumentProcessing)
		if node != "" {
			q = q.Where("node = ?", node)
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrLeaseLost
		}
		if _, err := tx.NewDelete().Model((*KnowledgeChunk)(nil)).Where("document_id = ?", d.ID).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*knowledgeContent)(nil)).Where("document_id = ?", d.ID).Exec(ctx); err != nil {
			return err
		}
		d.Status, d.Reason, d.ChunkCount, d.LeaseUntil, d.UpdatedAt = DocumentFailed, reason, 0, nil, now
		return nil
	})
}

// SeedKnowledgeChunks writes chunks of a document straight into the index, in one
// transaction, without ingestion: for benchmarks and tools that bring their own chunks.
func SeedKnowledgeChunks(ctx context.Context, s *Store, chunks []KnowledgeChunk) error {
	return s.inTx(ctx, func(tx bun.Tx) error {
		if err := insertChunks(ctx, tx, chunks); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, c := range chunks {
			if !seen[c.BaseID] {
				seen[c.BaseID] = true
				if err := bumpRevision(ctx, tx, c.BaseID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
