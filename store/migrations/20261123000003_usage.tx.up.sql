-- What each request through the model gateway used, and the limits of keys on it.
CREATE TABLE usage_records (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id         TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    surface        TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       DOUBLE PRECISION NOT NULL,
    latency_ms     INTEGER NOT NULL,
    ttft_ms        INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    stream         BOOLEAN NOT NULL,
    created_at     {{.Time}} NOT NULL,
    updated_at     {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX usage_records_tenant_idx ON usage_records (tenant_id, created_at);
--bun:split
CREATE INDEX usage_records_key_idx ON usage_records (key_id);
--bun:split
ALTER TABLE api_keys ADD COLUMN token_limit INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE api_keys ADD COLUMN budget_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
