-- Sessions: text (and mixed) conversations with an agent that the server keeps. The agent
-- may be deleted later; the session stays, with the reference cleared, as a call does.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id           TEXT REFERENCES agents (id) ON DELETE SET NULL,
    label              TEXT NOT NULL,
    status             TEXT NOT NULL,
    metadata           {{.JSON}} NOT NULL,
    message_count      INTEGER NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cost_usd           DOUBLE PRECISION NOT NULL,
    created_by_key_id  TEXT NOT NULL,
    created_by_user_id TEXT NOT NULL,
    closed_at          {{.Time}},
    created_at         {{.Time}} NOT NULL,
    updated_at         {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX sessions_tenant_idx ON sessions (tenant_id, created_at);
--bun:split
CREATE INDEX sessions_tenant_status_idx ON sessions (tenant_id, status, created_at);
--bun:split
CREATE INDEX sessions_tenant_agent_idx ON sessions (tenant_id, agent_id, created_at);
--bun:split
-- A session's messages. Their IDs are ULIDs, which sort by creation time, so a page of a
-- long session is one range of the (session_id, id) index: "after this message id".
CREATE TABLE session_messages (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    parts         {{.JSON}} NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    metadata      {{.JSON}} NOT NULL,
    created_at    {{.Time}} NOT NULL
);
--bun:split
CREATE UNIQUE INDEX session_messages_session_idx ON session_messages (session_id, id);
