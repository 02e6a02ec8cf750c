-- What went wrong in sessions (text conversations), for the analytics error log: the model
-- failing an answer, or a tool's webhook failing, with the session and its agent. Written
-- with the turn that had them, in the same transaction.
CREATE TABLE session_errors (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    agent_id    TEXT,
    stage       TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX session_errors_tenant_idx ON session_errors (tenant_id, created_at);
--bun:split
CREATE INDEX session_errors_session_idx ON session_errors (session_id);
