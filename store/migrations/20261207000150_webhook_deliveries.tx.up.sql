-- Call webhooks: an agent or a phone number may name a server that Switchboard posts its
-- calls' events to ({"url","events","secret_enc"}: the secret sealed with the server
-- secret, since signing needs it back). Each event to post is a row of webhook_deliveries,
-- written when the event happens and sent by whichever node claims it, so that a delivery
-- outlives a restart and is retried with backoff until it is delivered or given up.
ALTER TABLE agents ADD COLUMN server {{.JSON}};
--bun:split
ALTER TABLE phone_numbers ADD COLUMN server {{.JSON}};
--bun:split
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id         TEXT NOT NULL,
    event           TEXT NOT NULL,
    url             TEXT NOT NULL,
    source          TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    response_code   INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at {{.Time}},
    delivered_at    {{.Time}},
    payload         TEXT NOT NULL,
    secret_enc      TEXT NOT NULL,
    dedupe_key      TEXT NOT NULL UNIQUE,
    created_at      {{.Time}} NOT NULL,
    updated_at      {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
--bun:split
CREATE INDEX webhook_deliveries_call_idx ON webhook_deliveries (tenant_id, call_id, created_at);
--bun:split
CREATE INDEX webhook_deliveries_tenant_idx ON webhook_deliveries (tenant_id, created_at);
