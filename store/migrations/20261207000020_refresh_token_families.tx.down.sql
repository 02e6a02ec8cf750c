DROP INDEX refresh_tokens_family_idx;
--bun:split
ALTER TABLE refresh_tokens DROP COLUMN family_id;
