-- freshen store schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql:
-- same tables, columns and indices; only key generation differs.
-- Timestamps are BIGINT unix milliseconds.

-- One row per reference ever observed. `record` upserts it first, which on
-- PostgreSQL row-locks the reference so replicas serialise per reference,
-- even on first sight when no digest rows exist yet to lock.
CREATE TABLE observed_references (
    reference  TEXT   NOT NULL PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- Runs of one digest per (reference, platform); the newest row is current.
-- platform '' is the tag's top-level digest (index or single manifest).
CREATE TABLE digest_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    reference  TEXT   NOT NULL REFERENCES observed_references (reference) ON DELETE CASCADE,
    platform   TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX digest_history_by_reference ON digest_history (reference, platform, id);

-- The current run per (reference, platform): one indexed lookup per check.
CREATE TABLE current_digests (
    reference  TEXT   NOT NULL REFERENCES observed_references (reference) ON DELETE CASCADE,
    platform   TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    history_id BIGINT NOT NULL REFERENCES digest_history (id) ON DELETE CASCADE,
    PRIMARY KEY (reference, platform)
);

-- Change events, written before anything acts on them.
CREATE TABLE change_events (
    id          TEXT   NOT NULL PRIMARY KEY, -- UUID v7
    reference   TEXT   NOT NULL,
    old_digest  TEXT,
    new_digest  TEXT   NOT NULL,
    changes     TEXT   NOT NULL,              -- JSON array of PlatformChange
    source      TEXT   NOT NULL,
    observed_at BIGINT NOT NULL
);
CREATE INDEX change_events_by_time ON change_events (observed_at, id);
CREATE INDEX change_events_by_reference ON change_events (reference, observed_at, id);

-- Outbox: one row per (event, trigger) delivery, leased by a dispatcher.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL REFERENCES change_events (id) ON DELETE CASCADE,
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
    delivered_at    BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

-- Poll schedule shared by daemon replicas: one row per watch key, leased while checked.
CREATE TABLE watch_schedule (
    watch_key   TEXT   NOT NULL PRIMARY KEY,
    next_due    BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX watch_schedule_due ON watch_schedule (next_due, watch_key);
