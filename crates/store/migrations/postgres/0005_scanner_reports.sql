-- Scanner reports (Trivy, Grype, Harbor): what a scanner found in one image,
-- stored per image manifest digest and scanner. Same table in ../sqlite and
-- ../postgres. Timestamps are BIGINT unix ms.
--
-- Each import of a report that changes what is stored also writes a
-- vuln_imports row (kind `trivy`, `grype` or `harbor`; `records` = its
-- findings), so a policy decision's snapshot (the latest vuln_imports id)
-- names the reports it saw as well as the OSV data. Importing the same
-- report again (same sha256) changes nothing and writes no import row.

-- The latest report of each scanner for each image: a newer report (by the
-- scan time it states, else by import order) replaces the older one's
-- findings; an older one is not stored.
CREATE TABLE scanner_reports (
    image_digest    TEXT   NOT NULL,   -- the image's manifest digest
    scanner         TEXT   NOT NULL,   -- trivy, grype, harbor
    scanner_version TEXT,              -- as the report states, if it does
    report_digest   TEXT   NOT NULL,   -- sha256 of the report's bytes: the data snapshot
    source          TEXT   NOT NULL,   -- the path (or URL) it was read from
    scanned_at      BIGINT,            -- when the scan ran, as the report states
    findings        TEXT   NOT NULL,   -- JSON array of findings (freshen's Finding)
    finding_count   BIGINT NOT NULL,
    import_id       BIGINT NOT NULL REFERENCES vuln_imports (id),
    imported_at     BIGINT NOT NULL,
    PRIMARY KEY (image_digest, scanner)
);
