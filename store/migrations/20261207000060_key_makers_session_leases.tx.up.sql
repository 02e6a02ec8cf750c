-- The key that made a key (POST /v1/keys, POST /api/v1/keys with a key): a key made by a key
-- is bounded by its maker while it is used, and revoked with it. Empty for keys made by a
-- user, an operator or the command line.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
--bun:split
CREATE INDEX api_keys_parent_idx ON api_keys (tenant_id, parent_id);
--bun:split
-- The lease of the node answering a session's message: one node answers a session at a time,
-- whichever node the message reached; a dead node's lease runs out at answer_until (NULL:
-- none is held). answer_node and answer_id name the last holder.
ALTER TABLE sessions ADD COLUMN answer_node TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE sessions ADD COLUMN answer_id TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE sessions ADD COLUMN answer_until {{.Time}};
--bun:split
-- A cancel asked on a node that is not answering: the answering node sees it and stops.
ALTER TABLE sessions ADD COLUMN answer_canceled BOOLEAN NOT NULL DEFAULT FALSE;
