-- Nodes: the heartbeat of every Switchboard node sharing the database. A node beats every
-- few seconds (beats counts them); one whose count stops moving for the timeout is lost, and
-- whichever node notices removes its row and fails the calls it was carrying (node-lost).
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    started_at   {{.Time}} NOT NULL,
    heartbeat_at {{.Time}} NOT NULL,
    beats        BIGINT NOT NULL
);
