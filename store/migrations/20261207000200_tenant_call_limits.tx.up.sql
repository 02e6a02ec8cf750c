-- A tenant's limit of concurrent calls across every node (0: only each node's own limit),
-- and the places its live calls hold against it. A place is taken as a call starts, on
-- whichever node carries it, and given back as the call ends; a node that stops or is lost
-- gives back its own.
ALTER TABLE tenants ADD COLUMN max_calls INTEGER NOT NULL DEFAULT 0;
--bun:split
CREATE TABLE call_slots (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    node        TEXT NOT NULL,
    created_at  {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX call_slots_tenant_idx ON call_slots (tenant_id);
--bun:split
CREATE INDEX call_slots_node_idx ON call_slots (node);
