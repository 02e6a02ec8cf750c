-- What each call used and cost, and the per-call facts the analytics API sums: tokens of the
-- agent's model, seconds of speech transcribed, characters spoken, turns, interruptions,
-- tool calls and their failures, the call's median turn latency, and its cost broken down
-- (model, speech to text, text to speech, telephony). Written when the call ends.
ALTER TABLE calls ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN stt_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN tts_characters INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN tool_failures INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN latency_p50_ms DOUBLE PRECISION;
--bun:split
ALTER TABLE calls ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE calls ADD COLUMN cost {{.JSON}} NOT NULL DEFAULT '{}';
--bun:split
-- The price of a minute of a call over the trunk, set by the operator.
ALTER TABLE trunks ADD COLUMN price_per_minute_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
--bun:split
-- The prices of a tenant's provider's speech: a minute transcribed, a million characters spoken.
ALTER TABLE providers ADD COLUMN speech_prices {{.JSON}} NOT NULL DEFAULT '{}';
--bun:split
-- Where model use came from: a gateway request, an agent's call, or a session's answer.
ALTER TABLE usage_records ADD COLUMN source TEXT NOT NULL DEFAULT 'gateway';
--bun:split
ALTER TABLE usage_records ADD COLUMN source_id TEXT NOT NULL DEFAULT '';
--bun:split
-- What went wrong on calls, for the analytics error log: a provider's failure (speech to
-- text, text to speech, the model) or a tool's webhook failing, with its call and agent.
CREATE TABLE call_errors (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id    TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    agent_id   TEXT,
    stage      TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX call_errors_tenant_idx ON call_errors (tenant_id, created_at);
--bun:split
CREATE INDEX call_errors_call_idx ON call_errors (call_id);
--bun:split
-- The error log finds a tenant's calls that ended in a failure by their end reason.
CREATE INDEX calls_tenant_reason_idx ON calls (tenant_id, ended_reason, created_at);
