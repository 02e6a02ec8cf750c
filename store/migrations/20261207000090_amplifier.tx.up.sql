-- Amplifier configs: a tenant's YAML bundle kept byte for byte as written, and the agent it
-- defines (cleared if that agent is deleted elsewhere; a PUT of the config makes it again).
CREATE TABLE amplifier_configs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    yaml_content TEXT NOT NULL,
    tags         {{.JSON}} NOT NULL,
    agent_id     TEXT REFERENCES agents (id) ON DELETE SET NULL,
    created_at   {{.Time}} NOT NULL,
    updated_at   {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX amplifier_configs_tenant_idx ON amplifier_configs (tenant_id, created_at);
--bun:split
-- Amplifier applications: a name a client chose (app_id, unique in its tenant) for one of
-- the tenant's app_ keys in api_keys; regenerating revokes that key and points at a new one.
CREATE TABLE amplifier_applications (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    app_id     TEXT NOT NULL,
    app_name   TEXT NOT NULL,
    key_id     TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at {{.Time}} NOT NULL,
    updated_at {{.Time}} NOT NULL
);
--bun:split
CREATE UNIQUE INDEX amplifier_applications_app_idx ON amplifier_applications (tenant_id, app_id);
