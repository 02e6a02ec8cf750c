{{if eq .Dialect "sqlite"}}
-- The lexical index's words, one row per occurrence (term, chunk, column, offset): a node
-- reads a word's chunks and how often each has it from here once per base revision, and
-- ranks searches in memory instead of asking FTS5's bm25() to count every word's chunks
-- again on each search.
CREATE VIRTUAL TABLE knowledge_chunks_vocab USING fts5vocab (knowledge_chunks_fts, instance);
{{else}}
-- PostgreSQL reads the same from the chunks' tsvectors: nothing to create.
SELECT 1;
{{end}}
