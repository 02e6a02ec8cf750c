DROP TABLE call_slots;
--bun:split
ALTER TABLE tenants DROP COLUMN max_calls;
