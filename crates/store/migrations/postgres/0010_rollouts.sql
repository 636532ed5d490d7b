-- Roll-outs (`freshen rollout`, or after a cascade): Kubernetes workloads
-- moved to rebuilt digests, each workload's outcome and timings, so that a
-- roll-out is listed afterwards and one cut short resumes where it was.
CREATE TABLE rollouts (
    id          TEXT   NOT NULL PRIMARY KEY,   -- UUID v7
    trigger     TEXT   NOT NULL,               -- JSON: what is rolled out (a rebuild run, an image)
    run_id      TEXT,                          -- the rebuild run it follows; NULL when started by hand
    state       TEXT   NOT NULL,               -- running | done | failed
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    lease_owner TEXT,                          -- the process carrying it out, while running
    lease_until BIGINT                         -- renewed while it runs; a lapsed lease may be taken to resume
);
CREATE UNIQUE INDEX rollouts_run_id ON rollouts (run_id);

CREATE TABLE rollout_items (
    rollout_id  TEXT    NOT NULL REFERENCES rollouts (id),
    workload    TEXT    NOT NULL,              -- cluster/namespace/kind/name
    cluster     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,              -- Deployment | StatefulSet | DaemonSet | CronJob
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    wave        INTEGER NOT NULL,              -- 0-based, the latest of its images' waves
    containers  TEXT    NOT NULL,              -- JSON: [{container, init, old, new}]
    state       TEXT    NOT NULL,              -- pending | rolling | done | rolled_back | failed | skipped
    detail      TEXT,                          -- what happened, or why not
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (rollout_id, workload)
);
