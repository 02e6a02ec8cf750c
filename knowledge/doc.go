// Package knowledge owns the documents agents search while they talk: extraction of text from
// uploaded files (plain text, Markdown, HTML, PDF, DOCX, CSV, JSON), chunking that follows a
// document's structure, ingestion off the request path, and search behind one index interface
// (SQLite FTS5 or PostgreSQL full text, fused with vectors when a base names an embedding model).
package knowledge
