package store

import (
	"context"
	"slices"
	"strings"
	"unicode"

	"github.com/uptrace/bun"
)

// KnowledgeMatch is a chunk found by a search, with the name of its document and its score
// (higher is better, comparable only within one search).
type KnowledgeMatch struct {
	ChunkID      int64    `bun:"id"`
	DocumentID   string   `bun:"document_id"`
	BaseID       string   `bun:"base_id"`
	DocumentName string   `bun:"file_name"`
	Position     int      `bun:"position"`
	HeadingPath  []string `bun:"heading_path,type:json"`
	Page         int      `bun:"page"`
	Text         string   `bun:"text"`
	Score        float64  `bun:"score"`
}

// maxQueryTerms bounds the terms of a lexical search: a pasted paragraph searches by its
// first words rather than costing a scan per word.
const maxQueryTerms = 32

// stopWords are words too common to say what a chunk is about. PostgreSQL's english
// configuration drops them itself; dropping them before FTS5 keeps a question ("what are
// the opening hours") from matching most of the index, which costs a search time for no
// better answer. The halves of a contraction ("can't" is "can" and "t" to both databases'
// tokenizers) are on the list too: "t" is in most chunks of spoken help text and says
// nothing of the question.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be but by can could did do does for from had has have how i if in
		into is it its me my no not of on or our so than that the their them then there these they this to
		us was we were what when where which who whom why will with would you your
		s t d ll m re ve don doesn didn isn aren wasn weren couldn shouldn wouldn hasn haven hadn`) {
		stopWords[w] = true
	}
}

// QueryTerms splits a search into the words it is made of: letters and digits, lower-cased,
// without stop words or repeats. A query of none matches nothing.
func QueryTerms(query string) []string {
	var terms []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(query), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if stopWords[w] || seen[w] || len(w) > 64 {
			continue
		}
		seen[w] = true
		terms = append(terms, w)
		if len(terms) == maxQueryTerms {
			break
		}
	}
	return terms
}

// SearchKnowledge finds the chunks of the tenant's bases that best match query, best first:
// BM25 over FTS5 in SQLite; in PostgreSQL ts_rank over the GIN-indexed tsvector, normalised
// by the chunk's length (ts_rank_cd's cover density cost a third more a row and ranked this
// project's test corpora no better).
//
// Every word of the query that the bases have counts (a word no chunk has changes no
// chunk's score: spoken filler such as "possible" or "happens" drops out). A search ranks
// the chunks with the most of those words: first those with all of them, then, only when no
// chunk has them all, those with all but one, and so on down to those with any (coordination
// level matching). The index answers each level by intersecting the words' lists, so only
// chunks that answer as much of the question as the base can are ranked, however common one
// of its words is; ranking every chunk that has a common word is what made a search slow.
// Within a level every chunk has the same number of the words, and BM25 (ts_rank) orders
// them. A search may answer with fewer than limit chunks: those with the most words.
func SearchKnowledge(ctx context.Context, s *Store, tenantID string, baseIDs []string, query string, limit int) ([]KnowledgeMatch, error) {
	terms := QueryTerms(query)
	if len(terms) == 0 || len(baseIDs) == 0 || limit <= 0 {
		return nil, nil
	}
	// The tenant is checked once on its bases, so that the search checks a chunk's base
	// alone, in the base index, without reading the chunk's row.
	baseIDs, err := tenantBases(ctx, s, tenantID, baseIDs)
	if err != nil || len(baseIDs) == 0 {
		return nil, err
	}
	terms, err = presentTerms(ctx, s, tenantID, baseIDs, terms)
	if err != nil || len(terms) == 0 {
		return nil, err
	}
	for k := len(terms); k >= 1; k-- {
		clauses := combinations(terms, k)
		if clauses == nil {
			continue
		}
		out, err := searchTerms(ctx, s, tenantID, baseIDs, terms, clauses, limit)
		if err != nil || len(out) > 0 {
			return out, err
		}
	}
	return nil, nil
}

// maxQuorumClauses bounds the ways a level may choose its words: a level of more (all but
// three of ten words is 120 ways) is skipped for the next, whose chunks then may have more
// than its number of the words, and the words they share with several ways count more than
// once in FTS5's ranking. A level of one word (any) is never skipped.
const maxQuorumClauses = 20

// combinations is every choice of k of the terms, or nil when there are more than
// maxQuorumClauses and k > 1.
func combinations(terms []string, k int) [][]string {
	if k > 1 && binomial(len(terms), k) > maxQuorumClauses {
		return nil
	}
	var out [][]string
	pick := make([]string, 0, k)
	var walk func(from int)
	walk = func(from int) {
		if len(pick) == k {
			out = append(out, slices.Clone(pick))
			return
		}
		for i := from; i <= len(terms)-(k-len(pick)); i++ {
			pick = append(pick, terms[i])
			walk(i + 1)
			pick = pick[:len(pick)-1]
		}
	}
	walk(0)
	return out
}

func binomial(n, k int) int {
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > 1<<20 {
			return r
		}
	}
	return r
}

// tenantBases keeps the bases that are the tenant's.
func tenantBases(ctx context.Context, s *Store, tenantID string, baseIDs []string) ([]string, error) {
	var out []string
	if err := s.db.NewSelect().Table("knowledge_bases").Column("id").Where("tenant_id = ?", tenantID).
		Where("id IN (?)", bun.List(baseIDs)).Order("id").Scan(ctx, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// presentTerms keeps the terms that at least one chunk of the bases has, in one query; each
// check stops at the first chunk found.
func presentTerms(ctx context.Context, s *Store, tenantID string, baseIDs, terms []string) ([]string, error) {
	var sb strings.Builder
	args := make([]any, 0, 4*len(terms))
	for i, t := range terms {
		if i > 0 {
			sb.WriteString(" UNION ALL ")
		}
		switch s.dialect {
		case Postgres:
			sb.WriteString("SELECT ? AS i WHERE EXISTS (SELECT 1 FROM knowledge_chunks WHERE tsv @@ to_tsquery('english', ?) AND tenant_id = ? AND base_id IN (?))")
			args = append(args, i, t, tenantID, bun.List(baseIDs))
		default:
			sb.WriteString("SELECT ? AS i WHERE EXISTS (SELECT 1 FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH ?)")
			args = append(args, i, ftsInBases(t, baseIDs))
		}
	}
	var present []int
	if err := s.db.NewRaw(sb.String(), args...).Scan(ctx, &present); err != nil {
		return nil, classify(err)
	}
	slices.Sort(present)
	kept := make([]string, 0, len(present))
	for _, i := range present {
		kept = append(kept, terms[i])
	}
	return kept, nil
}

// searchTerms ranks the chunks of the bases that have every word of at least one of the
// clauses, by all the terms.
func searchTerms(ctx context.Context, s *Store, tenantID string, baseIDs, terms []string, clauses [][]string, limit int) ([]KnowledgeMatch, error) {
	var out []KnowledgeMatch
	var q *bun.RawQuery
	switch s.dialect {
	case Postgres:
		// Terms are letters and digits only, so they are safe inside a tsquery. Words of
		// PostgreSQL's longer english stop list drop out of it by themselves. The rank is
		// by every term once, whatever clause matched.
		ors := make([]string, len(clauses))
		for i, c := range clauses {
			ors[i] = "(" + strings.Join(c, " & ") + ")"
		}
		q = s.db.NewRaw(`SELECT c.id, c.document_id, c.base_id, d.file_name, c.position, c.heading_path, c.page, c.text, m.score
FROM (SELECT id, ts_rank(tsv, to_tsquery('english', ?), 1) AS score
      FROM knowledge_chunks WHERE tsv @@ to_tsquery('english', ?) AND tenant_id = ? AND base_id IN (?)
      ORDER BY score DESC, id LIMIT ?) m
JOIN knowledge_chunks c ON c.id = m.id JOIN knowledge_documents d ON d.id = c.document_id
ORDER BY m.score DESC, c.id`, strings.Join(terms, " | "), strings.Join(ors, " | "), tenantID, bun.List(baseIDs), limit)
	default:
		// The bases are checked on the chunks FTS5 finds, not inside the index: bm25() counts,
		// once a search, the chunks that have each phrase of the query, and the base's
		// token is in every chunk of the base (100,000 of them, most of a search's time in a
		// big base). The scores do not change: FTS5 counts a word's chunks over the whole
		// index either way. The base of a chunk FTS5 finds is checked in the base index
		// (base_id with the rowid), not in the chunk's row: a row is a page read, the index
		// a few cached pages. The bases are the tenant's (tenantBases).
		q = s.db.NewRaw(`SELECT c.id, c.document_id, c.base_id, d.file_name, c.position, c.heading_path, c.page, c.text, m.score
FROM (SELECT f.rowid AS id, -bm25(knowledge_chunks_fts, 1.0, 0.0) AS score
      FROM knowledge_chunks_fts f
      WHERE knowledge_chunks_fts MATCH ?
        AND EXISTS (SELECT 1 FROM knowledge_chunks k INDEXED BY knowledge_chunks_base_idx WHERE k.base_id IN (?) AND k.id = f.rowid)
      ORDER BY score DESC, id LIMIT ?) m
JOIN knowledge_chunks c ON c.id = m.id JOIN knowledge_documents d ON d.id = c.document_id
ORDER BY m.score DESC, c.id`, ftsClauses(clauses), bun.List(baseIDs), limit)
	}
	if err := q.Scan(ctx, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// ftsClauses is the FTS5 query of the chunks with every term of any clause. Terms are
// letters and digits only. No column filter: a colset makes FTS5 read every match's position
// list, and no text has a base's 28-character ID token.
func ftsClauses(clauses [][]string) string {
	ors := make([]string, len(clauses))
	for i, c := range clauses {
		quoted := make([]string, len(c))
		for j, t := range c {
			quoted[j] = `"` + t + `"`
		}
		ors[i] = "(" + strings.Join(quoted, " AND ") + ")"
	}
	return strings.Join(ors, " OR ")
}

// ftsInBases is the FTS5 query of a term in any of the bases: the index holds a base's ID
// as one token, without its underscore, so that a check that stops at the first chunk
// found does not walk other bases' chunks.
func ftsInBases(term string, baseIDs []string) string {
	bases := make([]string, len(baseIDs))
	for i, b := range baseIDs {
		bases[i] = `"` + strings.ReplaceAll(strings.ReplaceAll(b, "_", ""), `"`, `""`) + `"`
	}
	return `"` + term + `" AND (` + strings.Join(bases, " OR ") + ")"
}

// KnowledgeVector is one chunk's embedding.
type KnowledgeVector struct {
	ChunkID int64  `bun:"id"`
	Vector  []byte `bun:"vector"`
}

// KnowledgeVectors reads the embeddings of a base of the tenant, and the base's revision
// they are at least as new as. The revision is read first, without a transaction (SQLite's
// would take the write lock): vectors newer than their revision are read again by the next
// search, which is safe; older ones could not be.
func KnowledgeVectors(ctx context.Context, s *Store, tenantID, baseID string) ([]KnowledgeVector, int64, error) {
	var out []KnowledgeVector
	var rev int64
	if err := s.db.NewSelect().Table("knowledge_bases").Column("revision").Where("id = ?", baseID).
		Where("tenant_id = ?", tenantID).Scan(ctx, &rev); err != nil {
		return nil, 0, classify(err)
	}
	if err := s.db.NewSelect().Table("knowledge_chunks").Column("id", "vector").Where("base_id = ?", baseID).
		Where("tenant_id = ?", tenantID).Where("vector IS NOT NULL").Order("id").Scan(ctx, &out); err != nil {
		return nil, 0, classify(err)
	}
	return out, rev, nil
}

// KnowledgeBaseState is what a search needs to know of a base: the embedding model of its
// vectors and the revision of its chunks.
type KnowledgeBaseState struct {
	ID             string `bun:"id"`
	EmbeddingModel string `bun:"embedding_model"`
	Revision       int64  `bun:"revision"`
}

// KnowledgeBaseStates reads the state of the tenant's bases by ID; a base that is not the
// tenant's is missing from the answer.
func KnowledgeBaseStates(ctx context.Context, s *Store, tenantID string, baseIDs []string) (map[string]KnowledgeBaseState, error) {
	var rows []KnowledgeBaseState
	if len(baseIDs) == 0 {
		return map[string]KnowledgeBaseState{}, nil
	}
	if err := s.db.NewSelect().Table("knowledge_bases").Column("id", "embedding_model", "revision").Where("tenant_id = ?", tenantID).
		Where("id IN (?)", bun.List(baseIDs)).Scan(ctx, &rows); err != nil {
		return nil, classify(err)
	}
	out := make(map[string]KnowledgeBaseState, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// KnowledgeChunksByID reads chunks of the tenant by ID, with their documents' names, in no
// particular order; Score is zero.
func KnowledgeChunksByID(ctx context.Context, s *Store, tenantID string, ids []int64) ([]KnowledgeMatch, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []KnowledgeMatch
	err := s.db.NewRaw(`SELECT c.id, c.document_id, c.base_id, d.file_name, c.position, c.heading_path, c.page, c.text, 0.0 AS score
FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
WHERE c.tenant_id = ? AND c.id IN (?)`, tenantID, bun.List(ids)).Scan(ctx, &out)
	if err != nil {
		return nil, classify(err)
	}
	return out, nil
}
