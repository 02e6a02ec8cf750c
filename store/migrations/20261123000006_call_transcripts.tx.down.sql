ALTER TABLE calls DROP COLUMN report;
--bun:split
DROP TABLE call_transcripts;
