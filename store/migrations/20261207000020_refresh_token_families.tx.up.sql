-- Refresh tokens belong to a family: the chain of tokens that began with one login. A spent
-- token presented again revokes its whole family (see store.RotateRefreshToken). Tokens
-- issued before families each begin a family of their own.
ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT NOT NULL DEFAULT '';
--bun:split
UPDATE refresh_tokens SET family_id = id WHERE family_id = '';
--bun:split
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
