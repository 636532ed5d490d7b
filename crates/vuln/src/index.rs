//! Matching installed packages against OSV records.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use freshen_version::{Scheme, Version};
use serde::{Deserialize, Serialize};

use crate::osv::Record;
use crate::severity::Severity;

/// One installed package, as the inventory knows it.
#[derive(Clone, Copy, Debug)]
pub struct Installed<'a> {
    /// freshen's package type: `deb`, `apk`, `rpm`, `pypi`, `npm`, `golang`, `cargo`.
    pub package_type: &'a str,
    /// Binary package name.
    pub name: &'a str,
    /// Installed version.
    pub version: &'a str,
    /// Source package (dpkg `Source`, apk origin, rpm source rpm name).
    pub source_name: Option<&'a str>,
    /// Source package version.
    pub source_version: Option<&'a str>,
    /// The image's distribution as OSV names it (`Debian:12`), if known.
    pub os_ecosystem: Option<&'a str>,
}

/// A vulnerability that affects one installed package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability's id: the CVE when one is among the merged ids.
    pub id: String,
    /// The other ids of the same vulnerability (a DSA, a GHSA, …), sorted.
    pub aliases: Vec<String>,
    /// The record ids that matched (a subset of `id` + `aliases`).
    pub matched: Vec<String>,
    /// The package it affects (the binary name).
    pub package: String,
    /// The installed version.
    pub version: String,
    /// The package type (`deb`, …).
    pub package_type: String,
    /// The lowest version that fixes it, if one is known.
    pub fixed: Option<String>,
    /// Its severity (the highest of the merged records).
    pub severity: Severity,
    /// The CVSS base score, when one was given.
    pub score: Option<f64>,
    /// One line, from the first record that has one.
    pub summary: Option<String>,
    /// Where it came from, sorted: `osv` (the imported records matched
    /// against the inventory), `trivy`, `grype`, `harbor` (scanner reports
    /// stored for the image). Empty in JSON written before sources existed.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// A point of a range, in version order: `introduced: "0"` is below all.
#[derive(Clone, Debug)]
enum Point {
    Zero,
    At(Version),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

#[derive(Clone, Debug)]
struct ParsedRange {
    /// Sorted by version; `Zero` first.
    events: Vec<(Point, Kind)>,
}

#[derive(Clone, Debug)]
struct Entry {
    record: usize,
    affected: usize,
    ranges: Vec<ParsedRange>,
    /// `affected[].versions`, parsed (ones that don't parse can't match).
    versions: Vec<Version>,
    /// `Severity::of` the record for this entry, worked out at its first hit.
    severity: OnceLock<(Severity, Option<f64>)>,
}

/// OSV records prepared for matching: one hash lookup per package, then
/// the ranges of that package only. Versions in records are parsed once,
/// when the index is built.
#[derive(Debug, Default)]
pub struct Index {
    records: Vec<Record>,
    /// Ecosystem, then (normalised) name: looked up without allocating.
    by_package: HashMap<String, HashMap<String, Vec<Entry>>>,
    /// Alias group of every id, and each group's ids.
    group_of: HashMap<String, usize>,
    groups: Vec<BTreeSet<String>>,
    /// Alias group of each record, by its place in `records`.
    record_groups: Vec<Vec<usize>>,
    /// Range versions that didn't parse in their ecosystem's scheme (those ranges are skipped).
    unparsed: usize,
}

impl Index {
    /// Builds an index. When two records share an id, the one with the later
    /// `modified` wins; withdrawn records are left out.
    pub fn new(records: impl IntoIterator<Item = Record>) -> Index {
        let mut latest: HashMap<String, Record> = HashMap::new();
        for r in records {
            match latest.get(&r.id) {
                Some(old) if old.modified >= r.modified => {}
                _ => {
                    latest.insert(r.id.clone(), r);
                }
            }
        }
        let mut records: Vec<Record> = latest
            .into_values()
            .filter(|r| r.withdrawn.is_none())
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let mut index = Index {
            records: Vec::new(),
            ..Index::default()
        };
        index.group_aliases(&records);
        for (ri, r) in records.iter().enumerate() {
            for (ai, a) in r.affected.iter().enumerate() {
                let Some(p) = &a.package else { continue };
                if p.ecosystem.is_empty() || p.name.is_empty() {
                    continue;
                }
                let scheme = Scheme::for_ecosystem(&p.ecosystem);
                let ranges = a
                    .ranges
                    .iter()
                    .filter(|range| range.kind == "ECOSYSTEM" || range.kind == "SEMVER")
                    .filter_map(|range| {
                        let s = if range.kind == "SEMVER" {
                            Scheme::Semver
                        } else {
                            scheme
                        };
                        let parsed = parse_range(s, range);
                        if parsed.is_none() {
                            index.unparsed += 1;
                        }
                        parsed
                    })
                    .collect();
                index
                    .by_package
                    .entry(p.ecosystem.clone())
                    .or_default()
                    .entry(normalise_name(scheme, &p.name).into_owned())
                    .or_default()
                    .push(Entry {
                        record: ri,
                        affected: ai,
                        ranges,
                        versions: a
                            .versions
                            .iter()
                            .filter_map(|v| Version::parse(scheme, v).ok())
                            .collect(),
                        severity: OnceLock::new(),
                    });
            }
        }
        // A record naming several upstream vulnerabilities (a DSA fixing
        // four CVEs) counts once for each of them; else for its own group.
        index.record_groups = records
            .iter()
            .map(|r| {
                if r.upstream.len() > 1 {
                    let mut g: Vec<usize> = r.upstream.iter().map(|u| index.group_of[u]).collect();
                    g.sort_unstable();
                    g.dedup();
                    g
                } else {
                    vec![index.group_of[&r.id]]
                }
            })
            .collect();
        index.records = records;
        index
    }

    /// Records in the index.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the index holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Ranges left out because a version in them isn't valid in its
    /// ecosystem's scheme.
    pub fn unparsed_ranges(&self) -> usize {
        self.unparsed
    }

    /// A record by id.
    pub fn record(&self, id: &str) -> Option<&Record> {
        self.records
            .binary_search_by(|r| r.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.records[i])
    }

    /// The vulnerabilities affecting one installed package, one finding per
    /// vulnerability (aliases merged), sorted by id.
    pub fn matches(&self, pkg: &Installed<'_>) -> Vec<Finding> {
        // The first hit of each record counts (a record can file one
        // package twice, or under two keys): (alias group, hit order,
        // entry, fixed).
        let mut hits: Vec<(usize, usize, &Entry, Option<&Version>)> = Vec::new();
        let keys = lookup_keys(pkg);
        let mut seen: HashSet<usize> = HashSet::new();
        for &(ecosystem, name, version) in &keys {
            let scheme = Scheme::for_ecosystem(ecosystem);
            let Some(entries) = self
                .by_package
                .get(ecosystem)
                .and_then(|names| names.get(normalise_name(scheme, name).as_ref()))
            else {
                continue;
            };
            let Ok(installed) = Version::parse(scheme, version) else {
                continue;
            };
            for e in entries {
                let Some(fixed) = affects(e, &installed) else {
                    continue;
                };
                // A key's entries are in record order, so a record's
                // entries under one key are next to each other; only a
                // second key needs the set.
                let again = if keys.len() == 1 {
                    hits.last().is_some_and(|(_, _, h, _)| h.record == e.record)
                } else {
                    !seen.insert(e.record)
                };
                if !again {
                    for &g in &self.record_groups[e.record] {
                        hits.push((g, hits.len(), e, fixed));
                    }
                }
            }
        }
        self.merge(pkg, hits)
    }

    fn merge(
        &self,
        pkg: &Installed<'_>,
        mut hits: Vec<(usize, usize, &Entry, Option<&Version>)>,
    ) -> Vec<Finding> {
        // Hits of one vulnerability (by alias group) become one finding. Its
        // aliases are the names the matched records give, not the whole
        // group (which spans other distributions' records too). Each
        // group's hits go together, in hit order; findings are built once,
        // in id order.
        hits.sort_unstable_by_key(|h| (h.0, h.1));
        let mut names: Vec<&str> = Vec::new();
        // (id, its hits, its names)
        let mut groups: Vec<(&str, Range<usize>, Range<usize>)> = Vec::new();
        let mut start = 0;
        for chunk in hits.chunk_by(|a, b| a.0 == b.0) {
            let n0 = names.len();
            for &(g, _, e, _) in chunk {
                // A record's upstream ids of other vulnerabilities are not
                // this one's names.
                let r = &self.records[e.record];
                names.extend(r.ids().filter(|i| {
                    r.upstream.len() <= 1
                        || !r.upstream.iter().any(|u| u == i)
                        || self.group_of[*i] == g
                }));
            }
            names[n0..].sort_unstable();
            let mut kept = n0;
            for k in n0..names.len() {
                if k == n0 || names[k] != names[kept - 1] {
                    names[kept] = names[k];
                    kept += 1;
                }
            }
            names.truncate(kept);
            // The CVE names it best: scanners and people use it.
            let id = names[n0..]
                .iter()
                .copied()
                .find(|i| i.starts_with("CVE-"))
                .or_else(|| {
                    self.groups[chunk[0].0]
                        .iter()
                        .map(String::as_str)
                        .find(|i| i.starts_with("CVE-"))
                })
                .unwrap_or(&self.records[chunk[0].2.record].id);
            groups.push((id, start..start + chunk.len(), n0..names.len()));
            start += chunk.len();
        }
        groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let scheme = Scheme::for_package_type(pkg.package_type);
        let mut out: Vec<Finding> = Vec::with_capacity(groups.len());
        let mut matched: Vec<&str> = Vec::new();
        for (id, hit_range, name_range) in groups {
            matched.clear();
            let mut severity = Severity::Unknown;
            let mut score: Option<f64> = None;
            let mut summary: Option<&str> = None;
            let mut fixed: Option<&Version> = None;
            for &(_, _, e, fx) in &hits[hit_range] {
                let r = &self.records[e.record];
                let (s, sc) = *e
                    .severity
                    .get_or_init(|| Severity::of(r, Some(&r.affected[e.affected])));
                severity = severity.max(s);
                score = match (score, sc) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
                if summary.is_none() {
                    summary = r.summary.as_deref();
                }
                matched.push(&r.id);
                if let Some(fx) = fx {
                    let lower = match fixed {
                        None => true,
                        Some(cur) => is_lower(scheme, fx, cur),
                    };
                    if lower {
                        fixed = Some(fx);
                    }
                }
            }
            matched.sort_unstable();
            out.push(Finding {
                id: id.to_string(),
                aliases: names[name_range]
                    .iter()
                    .filter(|i| **i != id)
                    .map(|i| i.to_string())
                    .collect(),
                matched: matched.iter().map(|i| i.to_string()).collect(),
                package: pkg.name.to_string(),
                version: pkg.version.to_string(),
                package_type: pkg.package_type.to_string(),
                fixed: fixed.map(|v| v.as_str().to_string()),
                severity,
                score,
                summary: summary.map(str::to_string),
                sources: vec!["osv".to_string()],
            });
        }
        out
    }

    /// Ids that name one vulnerability end up in one group (union-find over
    /// `id` + `aliases` of every record).
    fn group_aliases(&mut self, records: &[Record]) {
        let mut parent: Vec<usize> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for r in records {
            let mut first = None;
            for id in r.ids() {
                let s = *slot.entry(id.to_string()).or_insert_with(|| {
                    parent.push(parent.len());
                    parent.len() - 1
                });
                // `upstream` means "derived from": one upstream id is the
                // same vulnerability (DEBIAN-CVE-X of CVE-X); several are
                // different ones this record covers, kept apart.
                if r.upstream.len() > 1 && r.upstream.iter().any(|u| u == id) {
                    continue;
                }
                match first {
                    None => first = Some(s),
                    Some(f) => {
                        let (a, b) = (find(&mut parent, f), find(&mut parent, s));
                        if a != b {
                            parent[b] = a;
                        }
                    }
                }
            }
        }
        let mut root_group: HashMap<usize, usize> = HashMap::new();
        let mut ids: Vec<(String, usize)> = slot.into_iter().collect();
        ids.sort();
        for (id, s) in ids {
            let root = find(&mut parent, s);
            let g = *root_group.entry(root).or_insert_with(|| {
                self.groups.push(BTreeSet::new());
                self.groups.len() - 1
            });
            self.groups[g].insert(id.clone());
            self.group_of.insert(id, g);
        }
    }
}

/// The (OSV ecosystem, name, version) keys under which records for a
/// package are filed. Distribution packages are scoped to the image's
/// release and looked up by source package; language packages by name.
fn lookup_keys<'a>(pkg: &Installed<'a>) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut keys = Vec::with_capacity(2);
    let source = pkg.source_name.filter(|s| !s.is_empty());
    let source_version = pkg.source_version.filter(|s| !s.is_empty());
    match pkg.package_type {
        "deb" | "apk" | "rpm" => {
            let Some(os) = pkg.os_ecosystem else {
                return keys;
            };
            let version = source_version.unwrap_or(pkg.version);
            match source {
                Some(s) => keys.push((os, s, version)),
                None => keys.push((os, pkg.name, pkg.version)),
            }
            // rpm databases (Red Hat, Alma, Rocky) file advisories under
            // binary names too.
            if pkg.package_type == "rpm" && source.is_some_and(|s| s != pkg.name) {
                keys.push((os, pkg.name, pkg.version));
            }
        }
        other => {
            let Some(ecosystem) = osv_ecosystem(other) else {
                return keys;
            };
            keys.push((ecosystem, pkg.name, pkg.version));
        }
    }
    keys
}

/// The OSV ecosystem a language package type's records are filed under
/// (`npm` -> `npm`, `pypi` -> `PyPI`); `None` for distribution packages
/// (scoped by the image's release instead) and types OSV doesn't cover.
pub fn osv_ecosystem(package_type: &str) -> Option<&'static str> {
    Some(match package_type {
        "pypi" => "PyPI",
        "npm" => "npm",
        "golang" => "Go",
        "cargo" => "crates.io",
        "gem" => "RubyGems",
        "maven" => "Maven",
        "nuget" => "NuGet",
        "composer" => "Packagist",
        _ => return None,
    })
}

/// PyPI names compare case-insensitively with `-`, `_` and `.` alike (PEP 503).
fn normalise_name(scheme: Scheme, name: &str) -> Cow<'_, str> {
    if scheme != Scheme::Pep440 {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    Cow::Owned(out)
}

fn parse_range(scheme: Scheme, range: &crate::osv::Range) -> Option<ParsedRange> {
    let mut events = Vec::with_capacity(range.events.len());
    for e in &range.events {
        let (kind, v) = if let Some(v) = &e.introduced {
            (Kind::Introduced, v)
        } else if let Some(v) = &e.fixed {
            (Kind::Fixed, v)
        } else if let Some(v) = &e.last_affected {
            (Kind::LastAffected, v)
        } else if let Some(v) = &e.limit {
            (Kind::Limit, v)
        } else {
            continue;
        };
        let point = if kind == Kind::Introduced && v == "0" {
            Point::Zero
        } else if kind == Kind::Limit && v == "*" {
            continue;
        } else {
            Point::At(Version::parse(scheme, v).ok()?)
        };
        events.push((point, kind));
    }
    // The OSV evaluation: walk events in version order.
    events.sort_by(|a, b| match (&a.0, &b.0) {
        (Point::Zero, Point::Zero) => std::cmp::Ordering::Equal,
        (Point::Zero, _) => std::cmp::Ordering::Less,
        (_, Point::Zero) => std::cmp::Ordering::Greater,
        (Point::At(x), Point::At(y)) => x.cmp(y),
    });
    Some(ParsedRange { events })
}

/// `a < b` in the package type's scheme, as [`freshen_version::compare`]
/// of their texts says; versions already parsed in that scheme compare as
/// they are.
fn is_lower(scheme: Scheme, a: &Version, b: &Version) -> bool {
    if a.scheme() == scheme && b.scheme() == scheme {
        a < b
    } else {
        freshen_version::compare(scheme, a.as_str(), b.as_str()).is_ok_and(|o| o.is_lt())
    }
}

/// `Some(fixed)` when `v` is affected by the entry (`fixed` is the version
/// that ends the range it falls in, if any); `None` when it isn't.
fn affects<'e>(e: &'e Entry, v: &Version) -> Option<Option<&'e Version>> {
    if e.versions.iter().any(|x| x == v) {
        return Some(fixed_after(e, v));
    }
    for r in &e.ranges {
        if in_range(r, v) {
            return Some(next_fixed(r, v));
        }
    }
    None
}

fn fixed_after<'e>(e: &'e Entry, v: &Version) -> Option<&'e Version> {
    e.ranges.iter().find_map(|r| next_fixed(r, v))
}

fn in_range(r: &ParsedRange, v: &Version) -> bool {
    let mut affected = false;
    for (p, kind) in &r.events {
        let cmp = match p {
            Point::Zero => std::cmp::Ordering::Less,
            Point::At(x) => x.cmp(v),
        };
        match kind {
            // Events at or below v decide; later ones don't apply.
            Kind::Introduced if cmp.is_le() => affected = true,
            Kind::Fixed if cmp.is_le() => affected = false,
            Kind::LastAffected if cmp.is_lt() => affected = false,
            Kind::Limit if cmp.is_le() => return false,
            _ => {}
        }
    }
    affected
}

fn next_fixed<'r>(r: &'r ParsedRange, v: &Version) -> Option<&'r Version> {
    r.events.iter().find_map(|(p, kind)| match (p, kind) {
        (Point::At(x), Kind::Fixed) if x > v => Some(x),
        _ => None,
    })
}
