-- Recording every call, whatever carries it: an agent may ask for its calls to be recorded
-- (enabled, stereo or mono, kept for retention_days; '{}' reads as not asked), and a call's
-- record links its recording until the node that holds the file deletes it when its
-- retention runs out.
ALTER TABLE agents ADD COLUMN recording {{.JSON}} NOT NULL DEFAULT '{}';
--bun:split
ALTER TABLE calls ADD COLUMN recording_url TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE calls ADD COLUMN recording_expires_at {{.Time}};
--bun:split
-- Each node sweeps the recordings it holds whose retention ran out.
CREATE INDEX calls_node_recording_idx ON calls (node, recording_expires_at);
