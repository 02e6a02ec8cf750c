DROP INDEX calls_node_recording_idx;
--bun:split
ALTER TABLE calls DROP COLUMN recording_expires_at;
--bun:split
ALTER TABLE calls DROP COLUMN recording_url;
--bun:split
ALTER TABLE agents DROP COLUMN recording;
