-- Back to emails unique on the server and refresh tokens without families. This fails when
-- two tenants have users of the same email: one of them must change first.
CREATE TABLE users_old (
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
INSERT INTO users_old (id, tenant_id, email, name, password_hash, scopes, last_login_at, created_at, updated_at)
SELECT id, tenant_id, email, name, password_hash, scopes, last_login_at, created_at, updated_at FROM users;
--bun:split
CREATE TABLE refresh_tokens_old (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users_old (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    expires_at {{.Time}} NOT NULL,
    revoked_at {{.Time}},
    created_at {{.Time}} NOT NULL
);
--bun:split
INSERT INTO refresh_tokens_old (id, tenant_id, user_id, hash, expires_at, revoked_at, created_at)
SELECT id, tenant_id, user_id, hash, expires_at, revoked_at, created_at FROM refresh_tokens;
--bun:split
DROP TABLE refresh_tokens;
--bun:split
DROP TABLE users;
--bun:split
ALTER TABLE users_old RENAME TO users;
--bun:split
ALTER TABLE refresh_tokens_old RENAME TO refresh_tokens;
--bun:split
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);
--bun:split
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
