package knowledge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Start takes up the documents this node left processing when it stopped, and then, every
// half lease, those whose node stopped renewing them (it died, or shut down mid-way), until
// ctx ends or the service closes. A document taken up more than MaxAttempts times fails as
// interrupted, so that none stays processing for ever.
func (s *Service) Start(ctx context.Context) {
	s.start.Do(func() {
		s.runWorkers()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.recover(ctx, true)
			t := time.NewTicker(s.cfg.Lease / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.stop:
					return
				case <-t.C:
					s.recover(ctx, false)
				}
			}
		}()
	})
}

// recover claims documents left processing (own: also those this node held before it
// restarted) and queues them, or fails those interrupted too often.
func (s *Service) recover(ctx context.Context, own bool) {
	for {
		docs, err := store.ClaimKnowledgeDocuments(ctx, s.st, s.cfg.Node, s.cfg.Lease, 32, own)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("knowledge: could not claim documents left processing", "err", err)
			}
			return
		}
		for i := range docs {
			d := &docs[i]
			if d.Attempts > s.cfg.MaxAttempts {
				s.fail(ctx, d, fmt.Sprintf("ingestion was interrupted %d times (nodes stopped while reading it)", d.Attempts-1))
				continue
			}
			s.log.Info("knowledge: resuming a document left processing", "document_id", d.ID, "attempt", d.Attempts)
			s.enqueue(d.ID)
		}
		if len(docs) < 32 {
			return
		}
	}
}

func (s *Service) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case id := <-s.queue:
			s.ingest(id)
		}
	}
}

// ingest reads, chunks, embeds and indexes one document this node holds, renewing its lease
// while it works, and publishes what became of it.
func (s *Service) ingest(id string) {
	ctx, cancel := context.WithTimeoutCause(s.ctx, s.cfg.DocumentTimeout, errDocumentTimeout)
	defer cancel()
	var doc store.KnowledgeDocument
	if err := s.st.DB().NewSelect().Model(&doc).Where("id = ?", id).Scan(ctx); err != nil {
		return // deleted meanwhile
	}
	if doc.Status != store.DocumentProcessing || doc.Node != s.cfg.Node {
		return
	}
	log := s.log.With("tenant_id", doc.TenantID, "document_id", doc.ID, "knowledge_base_id", doc.BaseID)
	// The lease is renewed while the document is worked on; losing it (another node took
	// the document, or it was deleted) stops the work.
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(s.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := store.RenewKnowledgeLease(ctx, s.st, doc.ID, s.cfg.Node, s.cfg.Lease); errors.Is(err, store.ErrLeaseLost) {
					cancel()
					return
				}
			}
		}
	}()
	start := time.Now()
	reason, err := s.index1(ctx, &doc)
	cancel()
	<-renewed
	switch {
	case err == nil:
		log.Info("knowledge document ready", "chunks", doc.ChunkCount, "took", time.Since(start))
		s.publish(&doc)
	case errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrNotFound):
		log.Info("knowledge document no longer this node's", "err", err)
	case s.ctx.Err() != nil:
		// The node is stopping: the document stays processing for this node after its
		// restart, or another node once the lease is released.
		release, stop := context.WithTimeout(context.Background(), 2*time.Second)
		_ = store.RenewKnowledgeLease(release, s.st, doc.ID, s.cfg.Node, 0)
		stop()
	case reason != "":
		log.Info("knowledge document failed", "reason", reason)
		s.fail(context.Background(), &doc, reason)
	default:
		// The database failed; the lease runs out and a node tries again.
		log.Warn("knowledge document not indexed; it will be tried again", "err", err)
	}
}

var errDocumentTimeout = errors.New("document time limit")

// index1 does the work of one document. A failure that is the document's (its content, its
// size, its time, its embeddings) is returned with the reason the document fails with.
func (s *Service) index1(ctx context.Context, doc *store.KnowledgeDocument) (reason string, err error) {
	defer func() {
		if errors.Is(context.Cause(ctx), errDocumentTimeout) && s.ctx.Err() == nil {
			reason = fmt.Sprintf("ingestion took longer than the limit of %s", s.cfg.DocumentTimeout)
			if err == nil {
				err = context.DeadlineExceeded
			}
		}
	}()
	data, err := store.KnowledgeDocumentContent(ctx, s.st, doc.ID)
	if err != nil {
		return "", err
	}
	base, err := store.Get[store.KnowledgeBase](ctx, s.st, doc.TenantID, doc.BaseID)
	if err != nil {
		return "", err
	}
	lim := Limits{MaxInputBytes: s.cfg.MaxUpload, Timeout: s.cfg.DocumentTimeout}
	d, err := s.cfg.Extract(ctx, doc.FileName, doc.MediaType, data, lim)
	switch {
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnsupportedType), errors.Is(err, ErrTooLarge):
		return err.Error(), err
	case err != nil:
		return "", err
	}
	chunks := s.cfg.Chunk(d, base.ChunkSize, base.ChunkOverlap)
	if len(chunks) == 0 {
		return "no text found in the file (a scanned document needs text recognition first)", errNoText
	}
	indexed := make([]IndexedChunk, len(chunks))
	for i, c := range chunks {
		indexed[i].Chunk = c
	}
	if base.EmbeddingModel != "" {
		if s.cfg.Embedder == nil {
			return "the base names an embedding model but this server has no embeddings client", ErrEmbedding
		}
		texts := make([]string, len(chunks))
		for i, c := range chunks {
			texts[i] = embeddingText(c)
		}
		vs, err := s.cfg.Embedder.Embed(ctx, doc.TenantID, base.EmbeddingModel, texts)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return err.Error(), err
		}
		for i := range indexed {
			indexed[i].Vector = vs[i]
		}
	}
	if err := s.index.Put(ctx, doc, s.cfg.Node, indexed, d.Pages); err != nil {
		return "", err
	}
	return "", nil
}

var errNoText = errors.New("knowledge: no text")

// embeddingText is what a chunk is embedded as: its headings give it the context a
// paragraph alone lacks.
func embeddingText(c Chunk) string {
	t := c.Text
	for i := len(c.HeadingPath) - 1; i >= 0; i-- {
		t = c.HeadingPath[i] + "\n" + t
	}
	return t
}

// fail marks a document failed and says so on the hub.
func (s *Service) fail(ctx context.Context, doc *store.KnowledgeDocument, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := store.FailKnowledgeDocument(ctx, s.st, doc, s.cfg.Node, reason); err != nil {
		s.log.Warn("knowledge document not marked failed", "document_id", doc.ID, "err", err)
		return
	}
	s.publish(doc)
}

//nolint:contextcheck // a document is processed in the background, after the upload that queued it has ended
func (s *Service) publish(doc *store.KnowledgeDocument) {
	if s.cfg.Events == nil {
		return
	}
	typ := EventDocumentReady
	if doc.Status == store.DocumentFailed {
		typ = EventDocumentFailed
	}
	s.cfg.Events.Publish(context.Background(), doc.TenantID, "knowledge:"+doc.BaseID, typ, DocumentEvent{
		BaseID: doc.BaseID, DocumentID: doc.ID, FileName: doc.FileName, Status: doc.Status, Reason: doc.Reason, ChunkCount: doc.ChunkCount})
}
