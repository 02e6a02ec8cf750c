ALTER TABLE sessions DROP COLUMN answer_canceled;
--bun:split
ALTER TABLE sessions DROP COLUMN answer_until;
--bun:split
ALTER TABLE sessions DROP COLUMN answer_id;
--bun:split
ALTER TABLE sessions DROP COLUMN answer_node;
--bun:split
DROP INDEX api_keys_parent_idx;
--bun:split
ALTER TABLE api_keys DROP COLUMN parent_id;
