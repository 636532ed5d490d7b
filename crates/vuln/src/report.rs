//! Scanner reports: Trivy's JSON (`trivy image -f json`, schema version 2),
//! Grype's JSON (`grype -o json`) and Harbor's vulnerability reports, read
//! into [`Finding`]s for one image, and documents recognised by their
//! content (OSV record, Trivy report, Grype report, Harbor report).
//!
//! Formats as the scanners write them:
//! - Trivy: `SchemaVersion`, `CreatedAt`, `ArtifactName`, `ArtifactType`,
//!   `Metadata{OS{Family,Name}, ImageID, RepoDigests, ImageConfig}`,
//!   `Results[]{Target, Class, Type, Vulnerabilities[]{VulnerabilityID,
//!   VendorIDs, PkgName, PkgIdentifier{PURL}, InstalledVersion, FixedVersion,
//!   Severity, SeveritySource, CVSS{vendor: {V2Score, V3Score, …}}, Title,
//!   Description}}`, and since 0.69 `Trivy{Version}`;
//! - Grype: `matches[]{vulnerability{id, severity, fix{versions, state},
//!   cvss[]{version, vector, metrics{baseScore}}, description},
//!   relatedVulnerabilities[], artifact{name, version, type, purl}}`,
//!   `source{type, target}` (for images: `userInput`, `manifestDigest`,
//!   `repoDigests`, `architecture`, `os`), `distro{name, version}`,
//!   `descriptor{name, version, timestamp}`.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest as _, Sha256};

use crate::index::Finding;
use crate::load::{Loaded, load_path};
use crate::severity::Severity;
use crate::{VulnError, merge_findings};

/// The largest report accepted (a Trivy report with `--list-all-pkgs` of a
/// big image is tens of MiB).
pub const MAX_REPORT_BYTES: u64 = 128 << 20;

/// What a JSON document is, by its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An OSV record (`id`, `modified`).
    Osv,
    /// A Trivy JSON report (`SchemaVersion`, `Results`).
    Trivy,
    /// A Grype JSON report (`matches`, with `source` or `descriptor`).
    Grype,
    /// A Harbor vulnerability report (`GET …/artifacts/{digest}/additions/vulnerabilities`:
    /// `{"<report mime type>": {generated_at, scanner, severity, vulnerabilities}}`).
    Harbor,
}

impl Format {
    /// `osv`, `trivy`, `grype`, `harbor`: the import kind and the scanner's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Osv => "osv",
            Format::Trivy => "trivy",
            Format::Grype => "grype",
            Format::Harbor => "harbor",
        }
    }
}

/// What `freshen vulns import` accepts, for error messages.
pub const ACCEPTED: &str = "expected an OSV record (with `id` and `modified`), a directory or all.zip of them, a Trivy JSON report (`trivy image -f json`: `SchemaVersion` 2 and `Results`), a Grype JSON report (`grype -o json`: `matches` and `source`) or a Harbor vulnerability report (`{\"application/vnd.security.vulnerability.report; version=1.1\": {...}}`)";

/// One scanner report, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Which scanner wrote it.
    pub format: Format,
    /// The scanner's version, when the report says (`Trivy.Version`,
    /// `descriptor.version`, Harbor's `scanner` name and version).
    pub scanner_version: Option<String>,
    /// `sha256:<hex>` of the report's bytes: the data snapshot it is.
    pub digest: String,
    /// When the scan ran, as the report says (RFC 3339), if it says.
    pub created: Option<String>,
    /// What was scanned, as the user named it (`ArtifactName`, `userInput`).
    pub artifact: Option<String>,
    /// Manifest digests of the image the report names, best first (Grype's
    /// `manifestDigest`, then `RepoDigests`/`repoDigests`, then a digest in
    /// the artifact name; Harbor's `artifact.digest`). Empty when the report doesn't name its image.
    pub image_digests: Vec<String>,
    /// `os/arch[/variant]` of the image, when the report says.
    pub platform: Option<String>,
    /// The distribution the scanner saw (`debian 12.2`).
    pub os: Option<String>,
    /// Findings, one per (vulnerability, package), sourced `trivy`,
    /// `grype` or `harbor`.
    pub findings: Vec<Finding>,
}

/// A document read from a path given to `import`.
#[derive(Debug)]
pub enum Document {
    /// OSV records (a record, a directory of them, or a zip export).
    Osv(Loaded),
    /// A scanner report.
    Report(Box<Report>),
}

/// Reads what `path` holds, recognised by content: a directory or a zip
/// archive of OSV records, or one JSON file that is an OSV record, a Trivy
/// report, a Grype report or a Harbor report. Anything else is an error naming the path and
/// the accepted formats.
pub fn load_document(path: &Path) -> Result<Document, VulnError> {
    let shown = path.display().to_string();
    let io = |source| VulnError::Io {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return load_path(path).map(Document::Osv);
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(io)?;
    if n == 4 && magic == *b"PK\x03\x04" {
        return load_path(path).map(Document::Osv);
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(VulnError::Limit {
            path: shown,
            detail: format!(
                "{} bytes is larger than a report may be ({MAX_REPORT_BYTES})",
                meta.len()
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    match detect(&bytes) {
        Some(Format::Osv) => load_path(path).map(Document::Osv),
        Some(_) => parse_report(&bytes, &shown).map(|r| Document::Report(Box::new(r))),
        None => Err(unrecognised(&bytes, &shown)),
    }
}

fn unrecognised(bytes: &[u8], name: &str) -> VulnError {
    let detail = match serde_json::from_slice::<IgnoredAny>(bytes) {
        Err(e) => format!("not JSON ({e}); {ACCEPTED}"),
        Ok(_) if first_byte(bytes) == Some(b'[') => format!(
            "a JSON array (Trivy's schema version 1, from before Trivy 0.20, is not read: re-run a current trivy); {ACCEPTED}"
        ),
        Ok(_) => format!("not a vulnerability document freshen knows; {ACCEPTED}"),
    };
    VulnError::Unrecognised {
        path: name.to_string(),
        detail,
    }
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// The keys that tell formats apart (values are skipped, not kept).
#[derive(Deserialize)]
struct Sniff {
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<IgnoredAny>,
    #[serde(rename = "Results")]
    results: Option<IgnoredAny>,
    #[serde(rename = "ArtifactName")]
    artifact_name: Option<IgnoredAny>,
    matches: Option<IgnoredAny>,
    source: Option<IgnoredAny>,
    descriptor: Option<IgnoredAny>,
    id: Option<IgnoredAny>,
    modified: Option<IgnoredAny>,
}

/// Recognises a JSON document by its keys; `None` when it is none of the
/// accepted formats (or not a JSON object).
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if first_byte(bytes) != Some(b'{') {
        return None;
    }
    let s: Sniff = serde_json::from_slice(bytes).ok()?;
    if s.schema_version.is_some() && (s.results.is_some() || s.artifact_name.is_some()) {
        Some(Format::Trivy)
    } else if s.matches.is_some() && (s.source.is_some() || s.descriptor.is_some()) {
        Some(Format::Grype)
    } else if s.id.is_some() && s.modified.is_some() {
        Some(Format::Osv)
    } else if is_harbor(bytes) {
        Some(Format::Harbor)
    } else {
        None
    }
}

/// Harbor's report mime types (`X-Accept-Vulnerabilities`), most wanted first.
pub const HARBOR_REPORT_MIME_TYPES: [&str; 2] = [
    "application/vnd.security.vulnerability.report; version=1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
];

fn is_harbor(bytes: &[u8]) -> bool {
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, IgnoredAny>>(bytes) else {
        return false;
    };
    !map.is_empty()
        && map
            .keys()
            .all(|k| k.starts_with("application/vnd.") && k.contains("report"))
}

/// Parses a Trivy, Grype or Harbor report (`name` is the file, for errors).
pub fn parse_report(bytes: &[u8], name: &str) -> Result<Report, VulnError> {
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(VulnError::Limit {
            path: name.to_string(),
            detail: format!("a report larger than {MAX_REPORT_BYTES} bytes"),
        });
    }
    let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
    let mut report = match detect(bytes) {
        Some(Format::Trivy) => trivy(bytes, name)?,
        Some(Format::Grype) => grype(bytes, name)?,
        Some(Format::Harbor) => harbor(bytes, name)?,
        Some(Format::Osv) => {
            return Err(VulnError::Unrecognised {
                path: name.to_string(),
                detail: "an OSV record, not a scanner report".into(),
            });
        }
        None => return Err(unrecognised(bytes, name)),
    };
    report.digest = digest;
    Ok(report)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn typed<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    name: &str,
    format: Format,
) -> Result<T, VulnError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        VulnError::Report {
            path: name.to_string(),
            format: format.as_str(),
            field: if field == "." { String::new() } else { field },
            detail: e.into_inner().to_string(),
        }
    })
}

fn invalid(name: &str, format: Format, field: String, detail: &str) -> VulnError {
    VulnError::Report {
        path: name.to_string(),
        format: format.as_str(),
        field,
        detail: detail.to_string(),
    }
}

/// `null` reads as the default (Trivy and Grype write `null` for empty lists).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---- Trivy ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyReport {
    schema_version: i64,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    artifact_name: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    metadata: Option<TrivyMetadata>,
    #[serde(default, deserialize_with = "nullable")]
    results: Vec<TrivyResult>,
    #[serde(default)]
    trivy: Option<TrivyInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyInfo {
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct TrivyMetadata {
    #[serde(default, rename = "OS")]
    os: Option<TrivyOs>,
    #[serde(default, deserialize_with = "nullable")]
    repo_digests: Vec<String>,
    #[serde(default)]
    image_config: Option<TrivyImageConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyOs {
    #[serde(default)]
    family: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct TrivyImageConfig {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    #[serde(default, rename = "Type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    vulnerabilities: Vec<TrivyVuln>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyVuln {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    #[serde(default, rename = "VendorIDs", deserialize_with = "nullable")]
    vendor_ids: Vec<String>,
    pkg_name: String,
    #[serde(default)]
    pkg_identifier: Option<TrivyPkgId>,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    severity_source: Option<String>,
    #[serde(default, rename = "CVSS", deserialize_with = "nullable")]
    cvss: BTreeMap<String, TrivyCvss>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct TrivyPkgId {
    #[serde(default, rename = "PURL")]
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyCvss {
    #[serde(default)]
    v2_score: Option<f64>,
    #[serde(default)]
    v3_score: Option<f64>,
    #[serde(default)]
    v40_score: Option<f64>,
}

fn trivy(bytes: &[u8], name: &str) -> Result<Report, VulnError> {
    let r: TrivyReport = typed(bytes, name, Format::Trivy)?;
    if r.schema_version != 2 {
        return Err(invalid(
            name,
            Format::Trivy,
            "SchemaVersion".into(),
            &format!("schema version {} is not read (2 is)", r.schema_version),
        ));
    }
    let meta = r.metadata.unwrap_or_default();
    let mut findings = Vec::new();
    for (ri, result) in r.results.iter().enumerate() {
        for (vi, v) in result.vulnerabilities.iter().enumerate() {
            let field = |f: &str| format!("Results[{ri}].Vulnerabilities[{vi}].{f}");
            if v.vulnerability_id.trim().is_empty() {
                return Err(invalid(
                    name,
                    Format::Trivy,
                    field("VulnerabilityID"),
                    "empty",
                ));
            }
            if v.pkg_name.trim().is_empty() {
                return Err(invalid(name, Format::Trivy, field("PkgName"), "empty"));
            }
            let score = trivy_score(v);
            let severity = match v.severity.as_deref().map(Severity::from_word) {
                Some(Some(s)) if s != Severity::Unknown => s,
                Some(None) => {
                    return Err(invalid(
                        name,
                        Format::Trivy,
                        field("Severity"),
                        &format!(
                            "unknown severity {:?} (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)",
                            v.severity.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                _ => score.map_or(Severity::Unknown, Severity::from_score),
            };
            let purl = v.pkg_identifier.as_ref().and_then(|p| p.purl.as_deref());
            findings.push(Finding {
                id: v.vulnerability_id.trim().to_string(),
                aliases: v.vendor_ids.clone(),
                matched: vec![v.vulnerability_id.trim().to_string()],
                package: v.pkg_name.clone(),
                version: v.installed_version.clone(),
                package_type: package_type(purl, result.kind.as_deref()),
                fixed: first_fixed(v.fixed_version.as_deref()),
                severity,
                score,
                summary: summary(v.title.as_deref(), v.description.as_deref()),
                sources: vec![Format::Trivy.as_str().to_string()],
            });
        }
    }
    let mut image_digests = Vec::new();
    for d in &meta.repo_digests {
        push_digest(&mut image_digests, d);
    }
    // `trivy image name@sha256:…` names the digest scanned.
    if let Some(a) = &r.artifact_name {
        push_digest(&mut image_digests, a);
    }
    // A filesystem or rootfs scan is no image's, whatever its name says.
    if r.artifact_type
        .as_deref()
        .is_some_and(|t| t != "container_image")
    {
        image_digests.clear();
    }
    let platform = meta.image_config.as_ref().and_then(|c| {
        platform(
            c.os.as_deref(),
            c.architecture.as_deref(),
            c.variant.as_deref(),
        )
    });
    let os = meta
        .os
        .as_ref()
        .map(|o| format!("{} {}", o.family, o.name).trim().to_string())
        .filter(|s| !s.is_empty());
    Ok(Report {
        format: Format::Trivy,
        scanner_version: r.trivy.and_then(|t| t.version).filter(|v| !v.is_empty()),
        digest: String::new(),
        created: r.created_at.filter(|s| !s.is_empty()),
        artifact: r.artifact_name.filter(|s| !s.is_empty()),
        image_digests,
        platform,
        os,
        findings: merge_findings(findings),
    })
}

/// The score of the vendor Trivy took the severity from, else NVD's, else
/// any vendor's (sorted by name): CVSS v4, then v3, then v2.
fn trivy_score(v: &TrivyVuln) -> Option<f64> {
    let mut vendors: Vec<&TrivyCvss> = Vec::new();
    if let Some(c) = v.severity_source.as_deref().and_then(|s| v.cvss.get(s)) {
        vendors.push(c);
    }
    if let Some(c) = v.cvss.get("nvd") {
        vendors.push(c);
    }
    vendors.extend(v.cvss.values());
    vendors
        .iter()
        .find_map(|c| c.v40_score.or(c.v3_score).or(c.v2_score))
        .filter(|s| s.is_finite() && (0.0..=10.0).contains(s))
}

// ---- Grype ----

#[derive(Deserialize)]
struct GrypeReport {
    #[serde(deserialize_with = "nullable")]
    matches: Vec<GrypeMatch>,
    #[serde(default)]
    source: Option<GrypeSource>,
    #[serde(default)]
    distro: Option<GrypeDistro>,
    #[serde(default)]
    descriptor: Option<GrypeDescriptor>,
}

#[derive(Deserialize)]
struct GrypeMatch {
    vulnerability: GrypeVuln,
    #[serde(
        default,
        rename = "relatedVulnerabilities",
        deserialize_with = "nullable"
    )]
    related: Vec<GrypeMeta>,
    artifact: GrypeArtifact,
}

#[derive(Deserialize)]
struct GrypeVuln {
    id: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    cvss: Vec<GrypeCvss>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    fix: Option<GrypeFix>,
}

#[derive(Deserialize)]
struct GrypeMeta {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    cvss: Vec<GrypeCvss>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct GrypeCvss {
    #[serde(default)]
    version: String,
    metrics: GrypeMetrics,
}

#[derive(Deserialize)]
struct GrypeMetrics {
    #[serde(rename = "baseScore")]
    base_score: f64,
}

#[derive(Deserialize)]
struct GrypeFix {
    #[serde(default, deserialize_with = "nullable")]
    versions: Vec<String>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
struct GrypeArtifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct GrypeSource {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    target: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct GrypeImage {
    #[serde(default, rename = "userInput")]
    user_input: Option<String>,
    #[serde(default, rename = "manifestDigest")]
    manifest_digest: Option<String>,
    #[serde(default, rename = "repoDigests", deserialize_with = "nullable")]
    repo_digests: Vec<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
}

#[derive(Deserialize)]
struct GrypeDistro {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct GrypeDescriptor {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

fn grype(bytes: &[u8], name: &str) -> Result<Report, VulnError> {
    let r: GrypeReport = typed(bytes, name, Format::Grype)?;
    let mut findings = Vec::new();
    for (mi, m) in r.matches.iter().enumerate() {
        let field = |f: &str| format!("matches[{mi}].{f}");
        let v = &m.vulnerability;
        if v.id.trim().is_empty() {
            return Err(invalid(
                name,
                Format::Grype,
                field("vulnerability.id"),
                "empty",
            ));
        }
        if m.artifact.name.trim().is_empty() {
            return Err(invalid(
                name,
                Format::Grype,
                field("artifact.name"),
                "empty",
            ));
        }
        // Grype puts NVD's scores on the related record of a distro match.
        let score = best_cvss(&v.cvss).or_else(|| {
            m.related
                .iter()
                .filter_map(|r| best_cvss(&r.cvss))
                .reduce(f64::max)
        });
        let severity = match v.severity.as_deref().map(Severity::from_word) {
            Some(Some(s)) if s != Severity::Unknown => s,
            Some(None) => {
                return Err(invalid(
                    name,
                    Format::Grype,
                    field("vulnerability.severity"),
                    &format!(
                        "unknown severity {:?} (Unknown, Negligible, Low, Medium, High, Critical)",
                        v.severity.as_deref().unwrap_or_default()
                    ),
                ));
            }
            _ => score.map_or(Severity::Unknown, Severity::from_score),
        };
        let fixed = v
            .fix
            .as_ref()
            .filter(|f| f.state.as_deref().is_none_or(|s| s == "fixed"))
            .and_then(|f| f.versions.iter().find(|x| !x.trim().is_empty()).cloned());
        let description = v
            .description
            .as_deref()
            .or_else(|| m.related.iter().find_map(|r| r.description.as_deref()));
        findings.push(Finding {
            id: v.id.trim().to_string(),
            aliases: m.related.iter().map(|r| r.id.clone()).collect(),
            matched: vec![v.id.trim().to_string()],
            package: m.artifact.name.clone(),
            version: m.artifact.version.clone(),
            package_type: package_type(m.artifact.purl.as_deref(), m.artifact.kind.as_deref()),
            fixed,
            severity,
            score,
            summary: summary(None, description),
            sources: vec![Format::Grype.as_str().to_string()],
        });
    }
    let mut image_digests = Vec::new();
    let mut artifact = None;
    let mut platform_str = None;
    if let Some(src) = &r.source
        && src.kind.as_deref() == Some("image")
        && let Some(target) = &src.target
    {
        let img: GrypeImage = serde_path_to_error::deserialize(target).map_err(|e| {
            invalid(
                name,
                Format::Grype,
                format!("source.target.{}", e.path()),
                &e.into_inner().to_string(),
            )
        })?;
        if let Some(d) = &img.manifest_digest {
            push_digest(&mut image_digests, d);
        }
        for d in &img.repo_digests {
            push_digest(&mut image_digests, d);
        }
        if let Some(u) = &img.user_input {
            push_digest(&mut image_digests, u);
        }
        artifact = img.user_input.clone();
        platform_str = platform(img.os.as_deref(), img.architecture.as_deref(), None);
    } else if let Some(serde_json::Value::String(t)) =
        r.source.as_ref().and_then(|s| s.target.as_ref())
    {
        artifact = Some(t.clone());
    }
    let os = r
        .distro
        .as_ref()
        .map(|d| format!("{} {}", d.name, d.version).trim().to_string())
        .filter(|s| !s.is_empty());
    let (version, created) = match r.descriptor {
        Some(d) => (d.version, d.timestamp),
        None => (None, None),
    };
    Ok(Report {
        format: Format::Grype,
        scanner_version: version.filter(|v| !v.is_empty() && v != "[not provided]"),
        digest: String::new(),
        created: created.filter(|s| !s.is_empty()),
        artifact: artifact.filter(|s| !s.is_empty()),
        image_digests,
        platform: platform_str,
        os,
        findings: merge_findings(findings),
    })
}

fn best_cvss(list: &[GrypeCvss]) -> Option<f64> {
    let ok = |c: &&GrypeCvss| {
        c.metrics.base_score.is_finite() && (0.0..=10.0).contains(&c.metrics.base_score)
    };
    // The newest CVSS version given decides; among equals, the highest.
    let newest = list.iter().filter(ok).map(|c| major(&c.version)).max()?;
    list.iter()
        .filter(ok)
        .filter(|c| major(&c.version) == newest)
        .map(|c| c.metrics.base_score)
        .reduce(f64::max)
}

fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

// ---- Harbor ----

#[derive(Deserialize)]
struct HarborReport {
    #[serde(default)]
    generated_at: Option<String>,
    #[serde(default)]
    scanner: Option<HarborScanner>,
    #[serde(default)]
    artifact: Option<HarborArtifact>,
    #[serde(default, deserialize_with = "nullable")]
    vulnerabilities: Vec<HarborVuln>,
}

#[derive(Deserialize)]
struct HarborScanner {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct HarborArtifact {
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Deserialize)]
struct HarborVuln {
    id: String,
    package: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    fix_version: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    preferred_cvss: Option<HarborCvss>,
}

#[derive(Deserialize)]
struct HarborCvss {
    #[serde(default)]
    score_v3: Option<f64>,
    #[serde(default)]
    score_v2: Option<f64>,
}

fn harbor(bytes: &[u8], name: &str) -> Result<Report, VulnError> {
    let mut by_mime: BTreeMap<String, serde_json::Value> = typed(bytes, name, Format::Harbor)?;
    let Some((mime, value)) = HARBOR_REPORT_MIME_TYPES
        .iter()
        .find_map(|m| by_mime.remove_entry(*m))
        .or_else(|| by_mime.pop_first())
    else {
        return Err(invalid(
            name,
            Format::Harbor,
            String::new(),
            "no report in it",
        ));
    };
    let r: HarborReport = serde_path_to_error::deserialize(&value).map_err(|e| {
        invalid(
            name,
            Format::Harbor,
            format!("{mime}.{}", e.path()),
            &e.into_inner().to_string(),
        )
    })?;
    let mut findings = Vec::new();
    for (i, v) in r.vulnerabilities.iter().enumerate() {
        let field = |f: &str| format!("{mime}.vulnerabilities[{i}].{f}");
        if v.id.trim().is_empty() {
            return Err(invalid(name, Format::Harbor, field("id"), "empty"));
        }
        if v.package.trim().is_empty() {
            return Err(invalid(name, Format::Harbor, field("package"), "empty"));
        }
        let score = v
            .preferred_cvss
            .as_ref()
            .and_then(|c| {
                c.score_v3
                    .filter(|s| *s > 0.0)
                    .or(c.score_v2.filter(|s| *s > 0.0))
            })
            .filter(|s| s.is_finite() && *s <= 10.0);
        let severity = match v.severity.as_deref().map(Severity::from_word) {
            Some(Some(s)) if s != Severity::Unknown => s,
            Some(None) => {
                return Err(invalid(
                    name,
                    Format::Harbor,
                    field("severity"),
                    &format!(
                        "unknown severity {:?} (None, Unknown, Low, Medium, High, Critical)",
                        v.severity.as_deref().unwrap_or_default()
                    ),
                ));
            }
            _ => score.map_or(Severity::Unknown, Severity::from_score),
        };
        findings.push(Finding {
            id: v.id.trim().to_string(),
            aliases: Vec::new(),
            matched: vec![v.id.trim().to_string()],
            package: v.package.clone(),
            version: v.version.clone(),
            package_type: "generic".to_string(),
            fixed: first_fixed(v.fix_version.as_deref()),
            severity,
            score,
            summary: summary(None, v.description.as_deref()),
            sources: vec![Format::Harbor.as_str().to_string()],
        });
    }
    let mut image_digests = Vec::new();
    if let Some(d) = r.artifact.as_ref().and_then(|a| a.digest.as_deref()) {
        push_digest(&mut image_digests, d);
    }
    let scanner = r.scanner.unwrap_or(HarborScanner {
        name: None,
        version: None,
    });
    let version = match (scanner.name, scanner.version) {
        (Some(n), Some(v)) if !n.is_empty() => Some(format!("{n} {v}")),
        (_, v) => v,
    };
    Ok(Report {
        format: Format::Harbor,
        scanner_version: version.filter(|v| !v.is_empty()),
        digest: String::new(),
        created: r.generated_at.filter(|s| !s.is_empty()),
        artifact: None,
        image_digests,
        platform: None,
        os: None,
        findings: merge_findings(findings),
    })
}

// ---- shared ----

/// Adds the `sha256:…` digest in `s` (`name@sha256:…`, or a bare digest).
fn push_digest(out: &mut Vec<String>, s: &str) {
    let d = s.rsplit_once('@').map_or(s, |(_, d)| d).trim();
    let valid = d
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        let d = d.to_ascii_lowercase();
        if !out.contains(&d) {
            out.push(d);
        }
    }
}

fn platform(os: Option<&str>, arch: Option<&str>, variant: Option<&str>) -> Option<String> {
    let (os, arch) = (
        os.filter(|s| !s.is_empty())?,
        arch.filter(|s| !s.is_empty())?,
    );
    Some(match variant.filter(|s| !s.is_empty()) {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

/// freshen's package type from a purl (`pkg:deb/…`), else the scanner's
/// own type word (Trivy's result `Type`, Grype's artifact `type`).
fn package_type(purl: Option<&str>, kind: Option<&str>) -> String {
    if let Some(t) = purl
        .and_then(|p| p.strip_prefix("pkg:"))
        .and_then(|p| p.split('/').next())
        .filter(|t| !t.is_empty())
    {
        // purl types are freshen's package types (`deb`, `pypi`, `golang`, …).
        return t.to_string();
    }
    let t = match kind.unwrap_or("") {
        "debian" | "ubuntu" | "deb" => "deb",
        "alpine" | "wolfi" | "chainguard" | "apk" => "apk",
        "redhat"
        | "centos"
        | "rocky"
        | "alma"
        | "amazon"
        | "oracle"
        | "photon"
        | "suse"
        | "opensuse"
        | "opensuse.leap"
        | "opensuse.tumbleweed"
        | "sles"
        | "fedora"
        | "cbl-mariner"
        | "azurelinux"
        | "rpm" => "rpm",
        "python-pkg" | "pip" | "pipenv" | "poetry" | "uv" | "python" => "pypi",
        "node-pkg" | "npm" | "yarn" | "pnpm" | "bun" => "npm",
        "gobinary" | "gomod" | "go-module" => "golang",
        "cargo" | "rustbinary" | "rust-crate" => "cargo",
        "jar" | "pom" | "gradle" | "sbt" | "java-archive" => "maven",
        "gemspec" | "bundler" | "gem" => "gem",
        "nuget" | "dotnet-core" | "packages-props" | "dotnet" => "nuget",
        "composer" | "composer-vendor" | "php-composer" => "composer",
        _ => "generic",
    };
    t.to_string()
}

/// Trivy writes `1.2.3, 1.3.1` when several branches fix it: the first is
/// the lowest.
fn first_fixed(s: Option<&str>) -> Option<String> {
    s?.split(',')
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// The title, else the description's first line, cut at 200 characters.
fn summary(title: Option<&str>, description: Option<&str>) -> Option<String> {
    let s = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| description.and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty())))?;
    Some(match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_from_names() {
        let mut out = Vec::new();
        let d = format!("sha256:{}", "a".repeat(64));
        push_digest(&mut out, &format!("localhost:5000/app@{d}"));
        push_digest(&mut out, &d);
        push_digest(&mut out, "localhost:5000/app:1");
        push_digest(&mut out, "app@sha256:short");
        assert_eq!(out, [d]);
    }

    #[test]
    fn types_from_purls_and_words() {
        assert_eq!(package_type(Some("pkg:deb/debian/libssl3@3"), None), "deb");
        assert_eq!(package_type(None, Some("debian")), "deb");
        assert_eq!(package_type(None, Some("python")), "pypi");
        assert_eq!(package_type(None, Some("binary")), "generic");
        assert_eq!(first_fixed(Some("1.2.3, 1.3.1")).as_deref(), Some("1.2.3"));
        assert_eq!(first_fixed(Some("")), None);
    }

    #[test]
    fn detects_by_keys() {
        assert_eq!(
            detect(br#"{"SchemaVersion": 2, "Results": []}"#),
            Some(Format::Trivy)
        );
        assert_eq!(
            detect(br#"{"matches": [], "source": {"type": "image"}}"#),
            Some(Format::Grype)
        );
        assert_eq!(
            detect(br#"{"id": "X", "modified": "2024-01-01T00:00:00Z"}"#),
            Some(Format::Osv)
        );
        assert_eq!(detect(br#"{"bomFormat": "CycloneDX"}"#), None);
        assert_eq!(detect(b"[]"), None);
        assert_eq!(detect(b"not json"), None);
    }
}
