-- Model providers a tenant configures for itself (its own keys to OpenAI-compatible or
-- Anthropic-compatible upstreams); the key is sealed with the server secret.
CREATE TABLE providers (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    api_key_enc TEXT NOT NULL,
    models      {{.JSON}} NOT NULL,
    aliases     {{.JSON}} NOT NULL,
    prices      {{.JSON}} NOT NULL,
    fallbacks   {{.JSON}} NOT NULL,
    created_at  {{.Time}} NOT NULL,
    updated_at  {{.Time}} NOT NULL,
    UNIQUE (tenant_id, name)
);
