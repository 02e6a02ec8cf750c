{{if eq .Dialect "postgres"}}
ALTER INDEX knowledge_chunks_tsv_idx SET (fastupdate = on);
{{else}}
SELECT 1;
{{end}}
