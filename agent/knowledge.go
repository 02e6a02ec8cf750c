package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/switchboard-go/switchboard/knowledge"
	"github.com/switchboard-go/switchboard/store"
	"github.com/switchboard-go/switchboard/telemetry"
)

// ToolKnowledgeSearch is the built-in tool an agent in knowledge mode "tool" searches its
// knowledge bases with.
const ToolKnowledgeSearch = "knowledge_search"

// Defaults of knowledge use.
const (
	// DefaultKnowledgeTimeout bounds one search: a caller waits on it, and an answer without
	// the documents is better than silence.
	DefaultKnowledgeTimeout = 2 * time.Second
	// DefaultKnowledgeNotFound is said by a workflow knowledge node that found nothing and
	// says nothing of its own.
	DefaultKnowledgeNotFound = "Sorry, I couldn't find anything about that."
	// maxQuery bounds what is searched for, in bytes: a turn is a question, and a pasted page
	// in a session must not make every search fail (the service refuses long queries).
	maxQuery = 1000
	// maxSpokenChunk bounds what a workflow knowledge node reads out of a chunk: a caller
	// does not sit through a page.
	maxSpokenChunk = 600
)

// EventKnowledge is the event published on a conversation's topic for each search of its
// agent's knowledge (a Retrieval).
const EventKnowledge = "agent.knowledge"

// Sources of a Retrieval.
const (
	RetrievalAuto     = "auto"     // put in the model's context before it was asked
	RetrievalTool     = "tool"     // the model called knowledge_search
	RetrievalWorkflow = "workflow" // a workflow knowledge node
)

// KnowledgeSearcher finds the chunks of a tenant's knowledge bases that answer a query, best
// first. knowledge.Service is the one Switchboard runs.
type KnowledgeSearcher interface {
	Search(ctx context.Context, tenantID string, baseIDs []string, query string, limit int) ([]knowledge.Hit, error)
}

// Retrieval is one search of an agent's knowledge, as a transcript keeps it: what was asked,
// what came back (which chunk of which document, and how well it matched), and how long the
// caller waited for it.
type Retrieval struct {
	Source string           `json:"source"`
	Query  string           `json:"query"`
	Hits   []RetrievedChunk `json:"hits"`
	Error  string           `json:"error,omitempty"`
	// Node is the workflow node that searched.
	Node       string        `json:"node,omitempty"`
	DurationMS float64       `json:"duration_ms"`
	Duration   time.Duration `json:"-"`
}

// RetrievedChunk is a hit of a Retrieval, without its text (the document holds it).
type RetrievedChunk struct {
	BaseID       string   `json:"knowledge_base_id"`
	DocumentID   string   `json:"document_id"`
	DocumentName string   `json:"document_name"`
	ChunkID      string   `json:"chunk_id"`
	HeadingPath  []string `json:"heading_path,omitempty"`
	Score        float64  `json:"score"`
}

// KnowledgeObserver is implemented by a Conversation that keeps what its brain retrieved: a
// call's transcript and the latency of the turn it was retrieved for, a session's answer.
// Every Conversation of Switchboard implements it; the brain also publishes each Retrieval
// as EventKnowledge.
type KnowledgeObserver interface {
	Retrieved(r Retrieval)
}

// knowledgeUse is how a brain searches an agent's knowledge.
type knowledgeUse struct {
	searcher KnowledgeSearcher
	tenantID string
	bases    []string
	settings store.KnowledgeSettings
	timeout  time.Duration
}

// newKnowledgeUse returns nil without a searcher. bases are searched when a search names
// none (a workflow node names its own).
func newKnowledgeUse(s KnowledgeSearcher, tenantID string, bases []string, settings store.KnowledgeSettings, timeout time.Duration) *knowledgeUse {
	if s == nil {
		return nil
	}
	settings = settings.WithDefaults()
	if timeout <= 0 {
		timeout = DefaultKnowledgeTimeout
	}
	return &knowledgeUse{searcher: s, tenantID: tenantID, bases: bases, settings: settings, timeout: timeout}
}

// search runs one search and reports it to c (EventKnowledge, and its KnowledgeObserver).
// A failed search is reported and returned; the caller decides what the caller hears.
func (k *knowledgeUse) search(ctx context.Context, c Conversation, source, node, query string, bases []string) ([]knowledge.Hit, error) {
	if len(bases) == 0 {
		bases = k.bases
	}
	if len(query) > maxQuery {
		query = strings.TrimSuffix(cutAtWord(query, maxQuery), "…")
	}
	sctx, span := telemetry.Start(ctx, "retrieval")
	defer span.End()
	sctx, cancel := context.WithTimeout(sctx, k.timeout)
	defer cancel()
	start := time.Now()
	hits, err := k.searcher.Search(sctx, k.tenantID, bases, query, k.settings.Limit)
	took := time.Since(start)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the knowledge search took longer than %s", k.timeout)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("retrieval.source", source), attribute.Int("retrieval.bases", len(bases)), attribute.Int("retrieval.hits", len(hits)))
		telemetry.Fail(span, err)
	}
	rec := Retrieval{Source: source, Query: query, Node: node, Hits: []RetrievedChunk{}, Duration: took,
		DurationMS: float64(took) / float64(time.Millisecond)}
	if err != nil {
		rec.Error = err.Error()
		hits = nil
	}
	for _, h := range hits {
		rec.Hits = append(rec.Hits, RetrievedChunk{BaseID: h.BaseID, DocumentID: h.DocumentID, DocumentName: h.DocumentName,
			ChunkID: h.ChunkID, HeadingPath: h.HeadingPath, Score: h.Score})
	}
	if obs, ok := c.(KnowledgeObserver); ok {
		obs.Retrieved(rec)
	}
	c.Event(EventKnowledge, rec)
	return hits, err
}

// citation names where a chunk comes from: its document and the headings above it.
func citation(h knowledge.Hit) string {
	parts := append([]string{h.DocumentName}, h.HeadingPath...)
	s := strings.Join(parts, " › ")
	if h.Page > 0 {
		s += fmt.Sprintf(" (page %d)", h.Page)
	}
	return s
}

// knowledgeBlock is the chunks as a model reads them, numbered and cited, within maxChars:
// chunks that do not fit are left out, except the best, which is cut to fit.
func knowledgeBlock(hits []knowledge.Hit, maxChars int) string {
	var b strings.Builder
	for i, h := range hits {
		head := fmt.Sprintf("[%d] %s\n", i+1, citation(h))
		text := strings.TrimSpace(h.Text)
		room := maxChars - b.Len() - len(head) - 2
		if len(text) > room {
			if i > 0 || room < 80 {
				break
			}
			text = cutAtWord(text, room)
		}
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(head)
		b.WriteString(text)
	}
	return b.String()
}

// cutAtWord shortens s to at most n bytes, at a word boundary where there is one, marking
// the cut.
func cutAtWord(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n-1, 0)
	for n > 0 && !isCharStart(s[n]) {
		n--
	}
	cut := s[:n]
	if i := strings.LastIndexAny(cut, " \n\t"); i > len(cut)/2 {
		cut = cut[:i]
	}
	return strings.TrimSpace(cut) + "…"
}

func isCharStart(b byte) bool { return b&0xC0 != 0x80 }

// contextPrompt is the system prompt's part that gives the model the chunks for the caller's
// turn (auto mode).
func contextPrompt(hits []knowledge.Hit, maxChars int) string {
	block := knowledgeBlock(hits, maxChars)
	if block == "" {
		return ""
	}
	return "Knowledge from the agent's documents that may answer the caller's last words. Answer from it when it does, " +
		"and say which document you used; when it does not, do not make an answer up.\n\n" + block
}

// toolResult is what knowledge_search answers the model.
func toolResult(hits []knowledge.Hit, maxChars int) string {
	if len(hits) == 0 {
		return "Nothing in the knowledge bases matches this query."
	}
	return knowledgeBlock(hits, maxChars)
}

// knowledgeTool is the definition of knowledge_search offered to the model.
func knowledgeTool() (name, description string, params json.RawMessage) {
	return ToolKnowledgeSearch,
		"Search the agent's knowledge bases (its documents) for what answers the caller. Returns the best passages with the document each comes from.",
		json.RawMessage(`{"type":"object","properties":{"query":{"type":"string","description":"What to look for, in the caller's words or as keywords."}},"required":["query"]}`)
}

// spokenChunk is a chunk as a workflow node reads it out: its text without Markdown's marks,
// within maxSpokenChunk, cut at a sentence where one ends.
func spokenChunk(text string) string {
	text = strings.Join(strings.Fields(strings.NewReplacer("#", "", "*", "", "`", "", "|", " ").Replace(text)), " ")
	if len(text) <= maxSpokenChunk {
		return text
	}
	cut := text[:maxSpokenChunk]
	for !isCharStart(text[len(cut)]) {
		cut = cut[:len(cut)-1]
	}
	if i := strings.LastIndexAny(cut, ".!?"); i > maxSpokenChunk/3 {
		return cut[:i+1]
	}
	return cutAtWord(text, maxSpokenChunk)
}
