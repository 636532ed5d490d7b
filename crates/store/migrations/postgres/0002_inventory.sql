-- The inventory: what each image manifest holds and what it is built on.
-- Same tables in ../sqlite and ../postgres. Timestamps are BIGINT unix ms.

-- One image manifest (platform-specific, content-addressed).
CREATE TABLE images (
    digest        TEXT   NOT NULL PRIMARY KEY,
    repository    TEXT   NOT NULL,           -- registry/repository it was read from
    platform      TEXT   NOT NULL,           -- os/arch[/variant]
    config_digest TEXT,
    layers        TEXT   NOT NULL,           -- JSON array of diff_ids, base first
    annotations   TEXT   NOT NULL,           -- JSON object (manifest annotations)
    os_id         TEXT,                      -- os-release ID: debian, alpine, ...
    os_version    TEXT,                      -- os-release VERSION_ID
    os_ecosystem  TEXT,                      -- OSV ecosystem: Debian:12, Alpine:v3.20
    source        TEXT   NOT NULL,           -- scan | manual
    scanned_at    BIGINT NOT NULL
);

-- Tags (registry/repository:tag) and the manifest each platform points at.
CREATE TABLE image_refs (
    reference    TEXT   NOT NULL,
    platform     TEXT   NOT NULL,
    digest       TEXT   NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
    index_digest TEXT,                       -- the tag's own digest when it is an index
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (reference, platform)
);
CREATE INDEX image_refs_by_digest ON image_refs (digest);

-- Packages found in an image, with the layer that brought them.
CREATE TABLE image_packages (
    image_digest   TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
    ecosystem      TEXT NOT NULL,            -- deb, apk, rpm, pypi, npm, golang, cargo
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    arch           TEXT,
    source_name    TEXT,
    source_version TEXT,
    purl           TEXT NOT NULL,
    location       TEXT NOT NULL,            -- package database or binary path
    layer          TEXT                      -- layer digest that introduced it
);
CREATE INDEX image_packages_by_image ON image_packages (image_digest);
CREATE INDEX image_packages_by_name ON image_packages (name, ecosystem);
CREATE INDEX image_packages_by_source ON image_packages (source_name);

-- What each layer holds, by layer (blob) digest: layers are read once ever.
CREATE TABLE layer_findings (
    layer_digest TEXT   NOT NULL PRIMARY KEY,
    findings     TEXT   NOT NULL,            -- JSON, the sbom layer's findings
    scanned_at   BIGINT NOT NULL
);

-- image -> base edges, one per kind of evidence.
CREATE TABLE lineage (
    image_digest   TEXT    NOT NULL REFERENCES images (digest) ON DELETE CASCADE,
    evidence       TEXT    NOT NULL,         -- manual | annotation | dockerfile | layer-prefix
    base_reference TEXT,                     -- registry/repository:tag of the base, when known
    base_digest    TEXT,                     -- the base manifest the image was built on
    confidence     INTEGER NOT NULL,
    detail         TEXT,
    recorded_at    BIGINT  NOT NULL,
    PRIMARY KEY (image_digest, evidence)
);
CREATE INDEX lineage_by_base_reference ON lineage (base_reference);
CREATE INDEX lineage_by_base_digest ON lineage (base_digest);
