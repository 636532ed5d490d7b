-- Vulnerability feeds (`feeds:` in the config): per archive URL (or local
-- path), the validators of the copy last imported, so the next sync asks
-- with If-None-Match / If-Modified-Since and a 304 costs one request; and
-- the last attempt's outcome, so `freshen vulns feeds` can say why an
-- archive's data is older than its schedule.
CREATE TABLE feed_archives (
    source TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    import_id BIGINT,
    checked_at BIGINT NOT NULL,
    changed_at BIGINT,
    error TEXT
);
