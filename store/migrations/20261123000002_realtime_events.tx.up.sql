-- Events relayed between nodes that share PostgreSQL (see realtime.PostgresRelay). Rows are
-- kept for minutes, long enough for a node whose listening connection dropped to catch up.
-- SQLite nodes are alone and never write here.
CREATE TABLE realtime_events (
    seq       {{.Serial}},
    tenant_id TEXT NOT NULL,
    topic     TEXT NOT NULL,
    type      TEXT NOT NULL,
    data      TEXT NOT NULL,
    time      {{.Time}} NOT NULL
);
--bun:split
CREATE INDEX realtime_events_time_idx ON realtime_events (time);
