{{if eq .Dialect "sqlite"}}DROP TABLE knowledge_chunks_fts;
--bun:split
{{end}}DROP TABLE knowledge_chunks;
--bun:split
DROP TABLE knowledge_document_contents;
--bun:split
DROP TABLE knowledge_documents;
--bun:split
DROP TABLE knowledge_bases;
