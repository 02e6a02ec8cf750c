-- Users' emails are unique within a tenant, not across the server: one tenant must not learn
-- from a 409 that another tenant has a user of some address. A login names the tenant when
-- the email and password match users of several (see api login).
-- Refresh tokens belong to a family: the chain of tokens that began with one login. A spent
-- token presented again revokes its whole family (see store.RotateRefreshToken). Tokens
-- issued before families each begin a family of their own.
-- SQLite cannot change a table's constraints in place, so both tables are rebuilt, in the
-- same way on both dialects: refresh_tokens points at users and goes with it.
CREATE TABLE users_new (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    scopes        {{.JSON}} NOT NULL,
    last_login_at {{.Time}},
    created_at    {{.Time}} NOT NULL,
    updated_at    {{.Time}} NOT NULL,
    CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email)
);
--bun:split
INSERT INTO users_new (id, tenant_id, email, name, password_hash, scopes, last_login_at, created_at, updated_at)
SELECT id, tenant_id, email, name, password_hash, scopes, last_login_at, created_at, updated_at FROM users;
--bun:split
CREATE TABLE refresh_tokens_new (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    expires_at {{.Time}} NOT NULL,
    revoked_at {{.Time}},
    created_at {{.Time}} NOT NULL
);
--bun:split
INSERT INTO refresh_tokens_new (id, tenant_id, user_id, family_id, hash, expires_at, revoked_at, created_at)
SELECT id, tenant_id, user_id, id, hash, expires_at, revoked_at, created_at FROM refresh_tokens;
--bun:split
DROP TABLE refresh_tokens;
--bun:split
DROP TABLE users;
--bun:split
ALTER TABLE users_new RENAME TO users;
--bun:split
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
--bun:split
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);
--bun:split
CREATE INDEX users_email_idx ON users (email);
--bun:split
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
--bun:split
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
