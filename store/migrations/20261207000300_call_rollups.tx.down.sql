DROP INDEX call_rollups_agent_idx;
--bun:split
DROP TABLE call_rollups;
--bun:split
ALTER TABLE calls DROP COLUMN turn_latencies_ms;
