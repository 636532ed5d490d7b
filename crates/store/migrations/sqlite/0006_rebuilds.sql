-- Rebuild runs (`freshen rebuild`): the plan as made and each image's
-- progress, so a run that was killed resumes without redoing what is done.
CREATE TABLE rebuild_runs (
    id          TEXT   NOT NULL PRIMARY KEY,   -- UUID v7
    trigger     TEXT   NOT NULL,               -- JSON: what the plan started from
    cause       TEXT   NOT NULL,               -- JSON: event, decision, data snapshot
    plan        TEXT   NOT NULL,               -- JSON: the plan as made
    state       TEXT   NOT NULL,               -- running | done | failed
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE rebuild_items (
    run_id      TEXT    NOT NULL REFERENCES rebuild_runs (id),
    image       TEXT    NOT NULL,              -- the build's image (its own tag)
    wave        INTEGER NOT NULL,              -- 0-based
    state       TEXT    NOT NULL,              -- pending | running | done | failed | skipped
    version     TEXT,                          -- the version tag it was pushed as
    digest      TEXT,                          -- the manifest (or index) digest pushed
    detail      TEXT,                          -- why it failed or was skipped
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, image)
);
