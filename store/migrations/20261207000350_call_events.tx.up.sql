-- What a call published as it went (state changes, transcript, agent speech, latency,
-- tool calls, barge-ins, errors, answering-machine detection), kept past the hub's short
-- replay so that a past call's history can be read. Bounded per call by the writer
-- (store.MaxCallEvents, store.MaxCallEventBytes); deleted with the call or its tenant, and
-- by the node's retention of call events.
CREATE TABLE call_events (
    id         {{.Serial}},
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id    TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    at         {{.Time}} NOT NULL,
    data       {{.JSON}} NOT NULL
);
--bun:split
-- A call's events are read in the order they were written.
CREATE INDEX call_events_call_idx ON call_events (call_id, at, id);
--bun:split
-- Retention deletes the oldest first.
CREATE INDEX call_events_at_idx ON call_events (at);
--bun:split
-- The call history filters a tenant's calls by direction over a time range.
CREATE INDEX calls_tenant_direction_idx ON calls (tenant_id, direction, created_at);
