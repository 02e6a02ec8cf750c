-- Trunk registrations: the state of each trunk's outbound registration (register: true) and
-- which node holds it. One node registers a trunk at a time: the one whose lease is current;
-- it renews the lease while it runs, and another node takes the trunk over once the lease
-- lapses (a node that died) or is released (a node that stopped).
CREATE TABLE trunk_registrations (
    trunk_id    TEXT PRIMARY KEY REFERENCES trunks (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    node        TEXT,
    lease_until {{.Time}} NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  {{.Time}},
    updated_at  {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX trunk_registrations_tenant_idx ON trunk_registrations (tenant_id);
