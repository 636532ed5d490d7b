-- Approvals: a cascade or a roll-out a policy or watch holds until a
-- person says yes (`approve: [cascade, rollout]`). The row is the waiting:
-- it outlives restarts, and the held delivery looks at it again until it
-- is approved, rejected or expired.
CREATE TABLE approvals (
    id           TEXT   NOT NULL PRIMARY KEY,   -- UUID v7
    stage        TEXT   NOT NULL,               -- cascade | rollout
    subject      TEXT   NOT NULL,               -- the change event (cascade) or rebuild run (rollout)
    event_id     TEXT   NOT NULL,               -- the change event behind it
    reference    TEXT   NOT NULL,               -- the image that changed
    reason       TEXT   NOT NULL,               -- who asks for it: watch, policy
    state        TEXT   NOT NULL,               -- pending | approved | rejected | expired
    requested_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    decided_at   BIGINT,
    decided_by   TEXT,
    comment      TEXT
);
CREATE UNIQUE INDEX approvals_subject ON approvals (stage, subject);
CREATE INDEX approvals_state ON approvals (state, expires_at);
