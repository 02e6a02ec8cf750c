DROP INDEX calls_tenant_reason_idx;
--bun:split
DROP TABLE call_errors;
--bun:split
ALTER TABLE usage_records DROP COLUMN source_id;
--bun:split
ALTER TABLE usage_records DROP COLUMN source;
--bun:split
ALTER TABLE providers DROP COLUMN speech_prices;
--bun:split
ALTER TABLE trunks DROP COLUMN price_per_minute_usd;
--bun:split
ALTER TABLE calls DROP COLUMN cost;
--bun:split
ALTER TABLE calls DROP COLUMN cost_usd;
--bun:split
ALTER TABLE calls DROP COLUMN latency_p50_ms;
--bun:split
ALTER TABLE calls DROP COLUMN tool_failures;
--bun:split
ALTER TABLE calls DROP COLUMN tool_calls;
--bun:split
ALTER TABLE calls DROP COLUMN interruptions;
--bun:split
ALTER TABLE calls DROP COLUMN turns;
--bun:split
ALTER TABLE calls DROP COLUMN tts_characters;
--bun:split
ALTER TABLE calls DROP COLUMN stt_seconds;
--bun:split
ALTER TABLE calls DROP COLUMN output_tokens;
--bun:split
ALTER TABLE calls DROP COLUMN input_tokens;
