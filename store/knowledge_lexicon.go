package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// What a search ranks with, read from the lexical index itself so that a node can keep it in
// memory and rank without asking the database to count a word's chunks on every search:
// the index's form of the query's words, each chunk's length, and each word's chunks with
// how often each has it. The words are the index's own (FTS5's porter tokenizer, PostgreSQL's
// english configuration), so what is read agrees with what MATCH and @@ find.

// KnowledgeStems returns the index's terms for each word: stems[i] are words[i]'s, none when
// the index drops the word (a stop word of PostgreSQL's list).
func KnowledgeStems(ctx context.Context, s *Store, words []string) ([][]string, error) {
	out := make([][]string, len(words))
	if len(words) == 0 {
		return out, nil
	}
	var rows []struct {
		I    int    `bun:"i"`
		Term string `bun:"term"`
	}
	switch s.dialect {
	case Postgres:
		if err := s.db.NewRaw(`SELECT w.i - 1 AS i, t.lexeme AS term
FROM unnest(?::text[]) WITH ORDINALITY AS w(word, i) CROSS JOIN LATERAL unnest(to_tsvector('english', w.word)) AS t
ORDER BY w.i, t.lexeme`, pgdialect.Array(words)).Scan(ctx, &rows); err != nil {
			return nil, classify(err)
		}
	default:
		// FTS5 tokenizes only what it indexes: the words go into a table of the connection's
		// own (temp: nothing of the database is written or locked), tokenized as the chunks
		// are, and come back as the index's terms.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, classify(err)
		}
		defer conn.Close()
		for _, q := range []string{
			`CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_query_words USING fts5 (word, tokenize = 'porter unicode61')`,
			`CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_query_terms USING fts5vocab (temp, knowledge_query_words, instance)`,
			`DELETE FROM temp.knowledge_query_words`,
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return nil, classify(err)
			}
		}
		var sb strings.Builder
		args := make([]any, 0, 2*len(words))
		sb.WriteString("INSERT INTO temp.knowledge_query_words (rowid, word) VALUES ")
		for i, w := range words {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?)")
			args = append(args, i+1, w)
		}
		if _, err := conn.ExecContext(ctx, sb.String(), args...); err != nil {
			return nil, classify(err)
		}
		err = conn.NewRaw(`SELECT doc - 1 AS i, term FROM temp.knowledge_query_terms ORDER BY doc, "offset"`).Scan(ctx, &rows)
		if _, derr := conn.ExecContext(ctx, `DELETE FROM temp.knowledge_query_words`); err == nil {
			err = derr
		}
		if err != nil {
			return nil, classify(err)
		}
	}
	for _, r := range rows {
		if r.I >= 0 && r.I < len(out) {
			out[r.I] = append(out[r.I], r.Term)
		}
	}
	return out, nil
}

// KnowledgeChunkLengths reads the length of each chunk of a base (FTS5's tokens; in
// PostgreSQL the text's bytes), by chunk ID ascending. The caller has checked that
// the base is its tenant's.
func KnowledgeChunkLengths(ctx context.Context, s *Store, baseID string) ([]int64, []int32, error) {
	var q string
	switch s.dialect {
	case Postgres:
		// BM25 weighs a length against the average, so any measure proportional to the
		// words serves: the text's bytes cost nothing to read, where counting a tsvector's
		// positions unnests it (a second for 100,000 chunks) and its length counts each
		// distinct word once.
		q = `SELECT id, octet_length(text) FROM knowledge_chunks WHERE base_id = ? ORDER BY id`
	default:
		// The base index holds each chunk's rowid: no chunk row is read. docsize holds
		// each row's token count per column, the text's first.
		q = `SELECT d.id, d.sz FROM knowledge_chunks k INDEXED BY knowledge_chunks_base_idx
JOIN knowledge_chunks_fts_docsize d ON d.id = k.id WHERE k.base_id = ? ORDER BY k.id`
	}
	rows, err := s.db.QueryContext(ctx, q, baseID)
	if err != nil {
		return nil, nil, classify(err)
	}
	defer rows.Close()
	var ids []int64
	var lens []int32
	for rows.Next() {
		var id int64
		var n int32
		if s.dialect == Postgres {
			if err := rows.Scan(&id, &n); err != nil {
				return nil, nil, classify(err)
			}
		} else {
			var sz []byte
			if err := rows.Scan(&id, &sz); err != nil {
				return nil, nil, classify(err)
			}
			v, ok := fts5Varint(sz)
			if !ok {
				return nil, nil, fmt.Errorf("store: chunk %d: unreadable size in the lexical index", id)
			}
			n = int32(min(v, 1<<30))
		}
		ids = append(ids, id)
		lens = append(lens, n)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, classify(err)
	}
	return ids, lens, nil
}

// fts5Varint reads the first of FTS5's varints (SQLite's: big-endian groups of seven bits,
// the high bit set on all but the last; a ninth byte carries eight).
func fts5Varint(b []byte) (uint64, bool) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		if i == 8 {
			return v<<8 | uint64(b[i]), true
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, true
		}
	}
	return 0, false
}

// KnowledgeTermChunks reads the chunks that have term (an index term, from KnowledgeStems)
// and how often each has it, by chunk ID ascending. In SQLite the answer has every base's
// chunks (the caller keeps its own base's); in PostgreSQL only the base's.
func KnowledgeTermChunks(ctx context.Context, s *Store, baseID, term string) ([]int64, []int32, error) {
	// SQLite: one row an occurrence, counted here: SQLite's GROUP BY sorted them again and
	// cost three times the read. No column filter, as in SearchKnowledge: no text has a
	// base's ID token.
	q, args := `SELECT doc, 1 FROM knowledge_chunks_vocab WHERE term = ?`, []any{term}
	if s.dialect == Postgres {
		// ts_rank_cd of one word is 0.1 an occurrence (each is a cover of one, of weight D:
		// the chunks' tsvectors carry no weights), and costs a third of unnesting the
		// tsvector to count the word's positions.
		q, args = `SELECT id, round(ts_rank_cd(tsv, quote_literal(?)::tsquery, 0) * 10)::int
FROM knowledge_chunks WHERE base_id = ? AND tsv @@ quote_literal(?)::tsquery ORDER BY id`, []any{term, baseID, term}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, classify(err)
	}
	defer rows.Close()
	var ids []int64
	var tfs []int32
	sorted := true
	for rows.Next() {
		var id int64
		var tf int32
		if err := rows.Scan(&id, &tf); err != nil {
			return nil, nil, classify(err)
		}
		switch n := len(ids); {
		case n > 0 && ids[n-1] == id:
			tfs[n-1] += tf
			continue
		case n > 0 && ids[n-1] > id:
			sorted = false
		}
		ids = append(ids, id)
		tfs = append(tfs, tf)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, classify(err)
	}
	if !sorted {
		// fts5vocab reads a term's occurrences chunk by chunk; should a version not, the
		// counts are gathered here.
		ids, tfs = sumByID(ids, tfs)
	}
	return ids, tfs, nil
}

// sumByID sorts the pairs by ID and adds up the counts of each ID.
func sumByID(ids []int64, tfs []int32) ([]int64, []int32) {
	byID := make(map[int64]int32, len(ids))
	for i, id := range ids {
		byID[id] += tfs[i]
	}
	outIDs := make([]int64, 0, len(byID))
	for id := range byID {
		outIDs = append(outIDs, id)
	}
	slices.Sort(outIDs)
	outTFs := make([]int32, len(outIDs))
	for i, id := range outIDs {
		outTFs[i] = byID[id]
	}
	return outIDs, outTFs
}
