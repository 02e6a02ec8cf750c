{{if eq .Dialect "postgres"}}
-- The lexical index takes each chunk's words as it is written instead of through GIN's
-- pending list: a search reads the whole pending list, so after a big upload every search of
-- every base paid for it until the next vacuum. Indexing a document costs a little more; a
-- voice turn's search costs what the index says.
ALTER INDEX knowledge_chunks_tsv_idx SET (fastupdate = off);
--bun:split
-- Words already pending go into the index now.
SELECT gin_clean_pending_list('knowledge_chunks_tsv_idx'::regclass);
{{else}}
-- SQLite's FTS5 index has no pending list: nothing to change.
SELECT 1;
{{end}}
