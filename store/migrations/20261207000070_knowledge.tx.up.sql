-- Knowledge bases: documents a tenant's agents search while they talk. A base's settings say
-- how its documents are cut into chunks and which embedding model, if any, gives each chunk
-- a vector. revision grows with every change to the base's chunks, so that a node holding a
-- base's vectors in memory knows when to read them again.
CREATE TABLE knowledge_bases (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    chunk_size      INTEGER NOT NULL,
    chunk_overlap   INTEGER NOT NULL,
    embedding_model TEXT NOT NULL,
    revision        BIGINT NOT NULL DEFAULT 0,
    created_at      {{.Time}} NOT NULL,
    updated_at      {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX knowledge_bases_tenant_idx ON knowledge_bases (tenant_id, created_at);
--bun:split
-- A base's documents. A document is processing until a node has extracted, chunked, embedded
-- and indexed it; the node holds it by a lease (node, lease_until) that it renews while it
-- works, so that a node that dies leaves its documents to another. One checksum is indexed
-- once per base.
CREATE TABLE knowledge_documents (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    base_id     TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    file_name   TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    checksum    TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    page_count  INTEGER NOT NULL,
    node        TEXT NOT NULL,
    lease_until {{.Time}},
    attempts    INTEGER NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL
);
--bun:split
CREATE UNIQUE INDEX knowledge_documents_checksum_idx ON knowledge_documents (base_id, checksum);
--bun:split
CREATE INDEX knowledge_documents_base_idx ON knowledge_documents (base_id, created_at);
--bun:split
CREATE INDEX knowledge_documents_status_idx ON knowledge_documents (status, lease_until);
--bun:split
-- The uploaded bytes of a document still processing, in the database so that any node can
-- pick the document up; removed once the document is ready or failed.
CREATE TABLE knowledge_document_contents (
    document_id TEXT PRIMARY KEY REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    data        {{.Blob}} NOT NULL
);
--bun:split
-- The chunks of ready documents: the unit of search. vector is the chunk's embedding
-- (little-endian float32) when its base names an embedding model.
CREATE TABLE knowledge_chunks (
    id           {{.Serial}},
    document_id  TEXT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    base_id      TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    position     INTEGER NOT NULL,
    heading_path {{.JSON}} NOT NULL,
    page         INTEGER NOT NULL,
    text         TEXT NOT NULL,
    vector       {{.Blob}}{{if eq .Dialect "postgres"}},
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED{{end}}
);
--bun:split
CREATE INDEX knowledge_chunks_document_idx ON knowledge_chunks (document_id, position);
--bun:split
CREATE INDEX knowledge_chunks_base_idx ON knowledge_chunks (base_id);
--bun:split
{{if eq .Dialect "sqlite"}}
-- The lexical index: FTS5 over the chunks' text (external content: the text is stored once,
-- in knowledge_chunks), kept in step by triggers, so that a chunk is searchable in the
-- transaction that writes it and gone in the one that deletes it. base_id is indexed too, as
-- one token (without its underscore), so that a search narrows to its bases inside the index.
CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5 (
    text, base_id, content = 'knowledge_chunks', content_rowid = 'id', tokenize = 'porter unicode61'
);
--bun:split
CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, text, base_id) VALUES (new.id, new.text, replace(new.base_id, '_', ''));
END;
--bun:split
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, text, base_id) VALUES ('delete', old.id, old.text, replace(old.base_id, '_', ''));
END;
--bun:split
CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, text, base_id) VALUES ('delete', old.id, old.text, replace(old.base_id, '_', ''));
    INSERT INTO knowledge_chunks_fts (rowid, text, base_id) VALUES (new.id, new.text, replace(new.base_id, '_', ''));
END;
{{else}}
-- The lexical index: the chunks' generated tsvector under GIN.
CREATE INDEX knowledge_chunks_tsv_idx ON knowledge_chunks USING GIN (tsv);
{{end}}
