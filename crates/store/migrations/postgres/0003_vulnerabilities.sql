-- Vulnerability data and policy decisions. Same tables in ../sqlite and
-- ../postgres; only key generation differs. Timestamps are BIGINT unix ms.

-- One import run: the data snapshot a decision names.
CREATE TABLE vuln_imports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      TEXT   NOT NULL,             -- the path given
    kind        TEXT   NOT NULL,             -- osv
    records     BIGINT NOT NULL,             -- records read
    added       BIGINT NOT NULL,
    updated     BIGINT NOT NULL,
    imported_at BIGINT NOT NULL
);

-- OSV records, one per id; an import replaces a record only when its
-- `modified` is later than the stored one.
CREATE TABLE advisories (
    id          TEXT   NOT NULL PRIMARY KEY,
    modified    TEXT   NOT NULL,             -- RFC 3339, as in the record
    record      TEXT   NOT NULL,             -- the record's JSON
    import_id   BIGINT NOT NULL REFERENCES vuln_imports (id),
    imported_at BIGINT NOT NULL
);

-- Every policy decision, with what made it: the policy's version and the
-- data snapshot (latest import id), so it can be explained and replayed.
CREATE TABLE policy_decisions (
    id             TEXT   NOT NULL PRIMARY KEY, -- UUID v7
    subject        TEXT   NOT NULL,             -- registry/repository:tag (or @digest)
    image_digest   TEXT,
    event_id       TEXT,                        -- the change event decided on, if any
    policy         TEXT   NOT NULL,             -- its name in the config
    policy_version TEXT   NOT NULL,
    snapshot       TEXT   NOT NULL,             -- JSON: {"vuln_import": id, ...}
    act            BOOLEAN NOT NULL,
    reason         TEXT   NOT NULL,
    counts         TEXT   NOT NULL,             -- JSON: findings per severity
    decided_at     BIGINT NOT NULL
);
CREATE INDEX policy_decisions_by_subject ON policy_decisions (subject, decided_at);
CREATE INDEX policy_decisions_by_event ON policy_decisions (event_id);
