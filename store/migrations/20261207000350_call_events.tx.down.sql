DROP INDEX calls_tenant_direction_idx;
--bun:split
DROP TABLE call_events;
