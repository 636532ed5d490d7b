-- What a policy said of a change event before it was recorded: whether it
-- fired the watch's triggers, and why. NULL acted: no policy judged it
-- (every policy involved was `always`), so it fired.
ALTER TABLE change_events ADD COLUMN acted BOOLEAN;
ALTER TABLE change_events ADD COLUMN reason TEXT;

-- Versions of OSV records that a later import replaced, so a decision can
-- be replayed on the data of its snapshot: as of import N, a record is the
-- current one if its import_id <= N, else its latest version here with
-- import_id <= N.
CREATE TABLE advisory_versions (
    id        TEXT   NOT NULL,
    modified  TEXT   NOT NULL,
    record    TEXT   NOT NULL,
    import_id BIGINT NOT NULL,               -- the import that stored this version
    PRIMARY KEY (id, import_id)
);

-- The rules of every policy version a decision names (policy_decisions.policy_version).
CREATE TABLE policy_versions (
    version    TEXT   NOT NULL PRIMARY KEY,
    spec       TEXT   NOT NULL,              -- the policy as JSON
    first_used BIGINT NOT NULL
);
