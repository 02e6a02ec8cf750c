{{if eq .Dialect "sqlite"}}
DROP TABLE knowledge_chunks_vocab;
{{else}}
SELECT 1;
{{end}}
