-- Deployments: published, immutable versions of an agent. The agent as it was (and the tools
-- it could call) is kept whole in the row, so that editing the agent later changes no
-- deployment; deleting the agent removes its deployments with it.
CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    label       TEXT NOT NULL,
    agent       {{.JSON}} NOT NULL,
    tools       {{.JSON}} NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL
);
--bun:split
CREATE UNIQUE INDEX deployments_agent_version_idx ON deployments (agent_id, version);
--bun:split
CREATE INDEX deployments_tenant_agent_idx ON deployments (tenant_id, agent_id, created_at);
