-- Notifications: a delivery may carry a rebuild run's or a roll-out's
-- result (`notify:`), so `event_id` names the event, run or roll-out a
-- delivery is about and no longer references change_events. `dedup_key`
-- makes such a result's deliveries unique: written with the run's final
-- state, once per (run, state, trigger), however often the run ends.
-- SQLite can't drop a foreign key: the table is made again.
CREATE TABLE deliveries_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL,
    trigger_name    TEXT    NOT NULL,
    payload         TEXT    NOT NULL,         -- JSON
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    response        TEXT,
    created_at      BIGINT  NOT NULL,
    delivered_at    BIGINT,
    dedup_key       TEXT
);
INSERT INTO deliveries_new (id, event_id, trigger_name, payload, state, attempts, next_attempt_at,
                            lease_owner, lease_until, last_error, response, created_at, delivered_at)
    SELECT id, event_id, trigger_name, payload, state, attempts, next_attempt_at,
           lease_owner, lease_until, last_error, response, created_at, delivered_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE UNIQUE INDEX deliveries_dedup_key ON deliveries (dedup_key);
