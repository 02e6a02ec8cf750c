-- The foundation: tenants and who may act for them (users, refresh tokens, API keys), and the
-- resources a voice agent is made of (workflows, tools, agents, trunks, phone numbers).
-- The same file serves SQLite and PostgreSQL; {{.JSON}} and {{.Time}} name the column types
-- each dialect uses for JSON documents and UTC timestamps.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    metadata   {{.JSON}} NOT NULL,
    created_at {{.Time}} NOT NULL,
    updated_at {{.Time}} NOT NULL
);
--bun:split
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    scopes        {{.JSON}} NOT NULL,
    last_login_at {{.Time}},
    created_at    {{.Time}} NOT NULL,
    updated_at    {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);
--bun:split
CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    expires_at {{.Time}} NOT NULL,
    revoked_at {{.Time}},
    created_at {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
--bun:split
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    display      TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    scopes       {{.JSON}} NOT NULL,
    rate_limit   INTEGER NOT NULL DEFAULT 0,
    last_used_at {{.Time}},
    expires_at   {{.Time}},
    revoked_at   {{.Time}},
    created_at   {{.Time}} NOT NULL,
    updated_at   {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);
--bun:split
CREATE TABLE workflows (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    graph       {{.JSON}} NOT NULL,
    metadata    {{.JSON}} NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX workflows_tenant_idx ON workflows (tenant_id, created_at);
--bun:split
CREATE TABLE tools (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    parameters  {{.JSON}} NOT NULL,
    webhook     {{.JSON}} NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL,
    UNIQUE (tenant_id, name)
);
--bun:split
CREATE INDEX tools_tenant_idx ON tools (tenant_id, created_at);
--bun:split
CREATE TABLE agents (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    instructions       TEXT NOT NULL,
    first_message      TEXT NOT NULL,
    language           TEXT NOT NULL,
    model              TEXT NOT NULL,
    temperature        DOUBLE PRECISION NOT NULL,
    voice              {{.JSON}} NOT NULL,
    transcriber        {{.JSON}} NOT NULL,
    tool_ids           {{.JSON}} NOT NULL,
    knowledge_base_ids {{.JSON}} NOT NULL,
    workflow_id        TEXT REFERENCES workflows (id),
    limits             {{.JSON}} NOT NULL,
    turn               {{.JSON}} NOT NULL,
    metadata           {{.JSON}} NOT NULL,
    created_at         {{.Time}} NOT NULL,
    updated_at         {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX agents_tenant_idx ON agents (tenant_id, created_at);
--bun:split
CREATE TABLE trunks (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    direction             TEXT NOT NULL,
    inbound               {{.JSON}} NOT NULL,
    outbound              {{.JSON}} NOT NULL,
    inbound_password_enc  TEXT NOT NULL,
    outbound_password_enc TEXT NOT NULL,
    created_at            {{.Time}} NOT NULL,
    updated_at            {{.Time}} NOT NULL,
    UNIQUE (tenant_id, name)
);
--bun:split
CREATE INDEX trunks_tenant_idx ON trunks (tenant_id, created_at);
--bun:split
CREATE TABLE phone_numbers (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    agent_id    TEXT REFERENCES agents (id),
    destination TEXT NOT NULL,
    trunk_id    TEXT REFERENCES trunks (id),
    metadata    {{.JSON}} NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX phone_numbers_tenant_idx ON phone_numbers (tenant_id, created_at);
