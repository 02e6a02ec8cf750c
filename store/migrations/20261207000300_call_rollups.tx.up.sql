-- The voice-to-voice latency of each of a call's answered spoken turns, in milliseconds, so
-- that the analytics' turn-latency percentiles are over turns, not over calls' medians (null
-- for the calls recorded before: their median stands for their turns).
ALTER TABLE calls ADD COLUMN turn_latencies_ms {{.JSON}};
--bun:split
-- The analytics' hourly rollups: what a tenant's calls created in one hour (UTC) add up to,
-- by agent ('' for the calls no agent talked on). Every write of a call applies the change
-- of its figures here in the same transaction (store/rollup.go), so the analytics read a
-- month in a few thousand rows instead of every call. Durations and costs are kept as
-- integers (milliseconds, millionths of a dollar) so that adding and taking away a call's
-- share never drifts; the percentiles come from log-spaced histograms (bin -> [count,
-- sum]), documented in README.md. The JSON columns are TEXT in both databases: only
-- Switchboard reads them, and jsonb's parsing and printing would cost more than the rest.
CREATE TABLE call_rollups (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hour            {{.Time}} NOT NULL,
    agent_id        TEXT NOT NULL,
    calls           BIGINT NOT NULL DEFAULT 0,
    answered        BIGINT NOT NULL DEFAULT 0,
    duration_ms     BIGINT NOT NULL DEFAULT 0,
    turns           BIGINT NOT NULL DEFAULT 0,
    interruptions   BIGINT NOT NULL DEFAULT 0,
    tool_calls      BIGINT NOT NULL DEFAULT 0,
    tool_failures   BIGINT NOT NULL DEFAULT 0,
    input_tokens    BIGINT NOT NULL DEFAULT 0,
    output_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_micros     BIGINT NOT NULL DEFAULT 0,
    end_reasons     TEXT NOT NULL DEFAULT '{}',
    duration_bins   TEXT NOT NULL DEFAULT '{}',
    latency_bins    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, hour, agent_id)
);
--bun:split
CREATE INDEX call_rollups_agent_idx ON call_rollups (tenant_id, agent_id, hour);
