//! The OSV schema (<https://ossf.github.io/osv-schema/>), as much of it as
//! matching needs. Ecosystems stay strings: a record for an ecosystem freshen
//! doesn't know is kept and simply never matches (the `osv` crate rejects
//! the whole record instead).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One OSV vulnerability record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `DSA-5532-1`, `CVE-2023-5678`, `GHSA-…`, `PYSEC-…`.
    pub id: String,
    /// RFC 3339 time of the last change: imports are incremental by it.
    pub modified: String,
    /// When it was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Set when the record was withdrawn: it then matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Upstream ids this record is a downstream of (Debian's DSAs and
    /// `DEBIAN-CVE-*` name their CVE here): merged like aliases.
    #[serde(default)]
    pub upstream: Vec<String>,
    /// Ids of related, but different, vulnerabilities (not merged).
    #[serde(default)]
    pub related: Vec<String>,
    /// One line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Scores: CVSS vectors, or an ecosystem's own rating.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// What is affected.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Free-form data of the database; some carry a `severity` word here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<Value>,
}

/// A `severity[]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A vector, or a word for the ecosystem's own ratings.
    pub score: String,
}

/// An `affected[]` entry: one package and its affected versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// The package; entries without one cannot be matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<OsvPackage>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Affected versions listed one by one.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Per-package severity (some databases put it here).
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// Free-form; GHSA and others carry `severity` words here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem_specific: Option<Value>,
    /// Free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<Value>,
}

/// `affected[].package`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsvPackage {
    /// `Debian:12`, `Alpine:v3.20`, `PyPI`, `npm`, …
    #[serde(default)]
    pub ecosystem: String,
    /// The name in that ecosystem (a source package for distributions).
    #[serde(default)]
    pub name: String,
    /// Package URL, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// `affected[].ranges[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT` (GIT ranges are commits and never match a version).
    #[serde(rename = "type")]
    pub kind: String,
    /// Events in order.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Versions from here on are affected (`"0"`: from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// Versions from here on are fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// The last affected version (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// An upper bound of the range (exclusive), for branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl Record {
    /// Parses one record, checking what matching relies on: an id, a
    /// `modified` time, and range events with exactly one field each.
    pub fn parse(bytes: &[u8]) -> Result<Record, String> {
        let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.id.trim().is_empty() {
            return Err("empty id".into());
        }
        if r.modified.trim().is_empty() {
            return Err(format!("{}: empty modified", r.id));
        }
        for a in &r.affected {
            for range in &a.ranges {
                for e in &range.events {
                    let set = [&e.introduced, &e.fixed, &e.last_affected, &e.limit]
                        .iter()
                        .filter(|f| f.is_some())
                        .count();
                    if set != 1 {
                        return Err(format!(
                            "{}: a range event must have exactly one of introduced, fixed, last_affected, limit",
                            r.id
                        ));
                    }
                }
            }
        }
        Ok(r)
    }

    /// The record's id, its aliases and upstream ids: every name of the
    /// same vulnerability.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .chain(self.upstream.iter().map(String::as_str))
    }
}
