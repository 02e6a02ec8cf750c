-- Calls: every conversation over SIP (inbound or outbound) or a browser (web), from the
-- moment it is queued or offered to the moment it ends, with where it went, who carried it
-- and how the media fared. The agent and trunk a call used may be deleted later; the call
-- stays in the history with the reference cleared.
CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    direction        TEXT NOT NULL,
    from_uri         TEXT NOT NULL,
    to_uri           TEXT NOT NULL,
    trunk_id         TEXT REFERENCES trunks (id) ON DELETE SET NULL,
    agent_id         TEXT REFERENCES agents (id) ON DELETE SET NULL,
    destination      TEXT NOT NULL,
    sip_call_id      TEXT NOT NULL,
    codec            TEXT NOT NULL,
    status           TEXT NOT NULL,
    ended_reason     TEXT NOT NULL,
    node             TEXT NOT NULL,
    timeout_seconds  INTEGER NOT NULL,
    started_at       {{.Time}},
    answered_at      {{.Time}},
    ended_at         {{.Time}},
    duration_seconds DOUBLE PRECISION NOT NULL,
    quality          {{.JSON}} NOT NULL,
    metadata         {{.JSON}} NOT NULL,
    created_at       {{.Time}} NOT NULL,
    updated_at       {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX calls_tenant_idx ON calls (tenant_id, created_at);
--bun:split
CREATE INDEX calls_tenant_status_idx ON calls (tenant_id, status, created_at);
--bun:split
CREATE INDEX calls_tenant_agent_idx ON calls (tenant_id, agent_id, created_at);
--bun:split
-- A node that restarts fails the calls it was carrying (FailInterruptedCalls).
CREATE INDEX calls_node_status_idx ON calls (node, status);
