-- What was said on a call: the transcript of its turns, kept apart from the call's row so
-- that listing calls stays light, and the end-of-call report on the call itself.
CREATE TABLE call_transcripts (
    call_id    TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    turns      {{.JSON}} NOT NULL,
    created_at {{.Time}} NOT NULL,
    updated_at {{.Time}} NOT NULL
);
--bun:split
ALTER TABLE calls ADD COLUMN report {{.JSON}} NOT NULL DEFAULT '{}';
