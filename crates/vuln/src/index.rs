//! Matching installed packages against OSV records.

use std::collections::{BTreeSet, HashMap};

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
    events: Vec<(Point, Kind, String)>,
}

#[derive(Clone, Debug)]
struct Entry {
    record: usize,
    affected: usize,
    ranges: Vec<ParsedRange>,
    /// `affected[].versions`, parsed (ones that don't parse can't match).
    versions: Vec<Version>,
}

/// OSV records prepared for matching: one hash lookup per package, then
/// the ranges of that package only. Versions in records are parsed once,
/// when the index is built.
#[derive(Debug, Default)]
pub struct Index {
    records: Vec<Record>,
    by_package: HashMap<(String, String), Vec<Entry>>,
    /// Alias group of every id, and each group's ids.
    group_of: HashMap<String, usize>,
    groups: Vec<BTreeSet<String>>,
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
                    .entry((p.ecosystem.clone(), normalise_name(scheme, &p.name)))
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
                    });
            }
        }
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
        let mut hits: Vec<(usize, usize, Option<String>)> = Vec::new();
        for (ecosystem, name, version) in lookup_keys(pkg) {
            let scheme = Scheme::for_ecosystem(&ecosystem);
            let Some(entries) = self
                .by_package
                .get(&(ecosystem.clone(), normalise_name(scheme, &name)))
            else {
                continue;
            };
            let Ok(installed) = Version::parse(scheme, version) else {
                continue;
            };
            for e in entries {
                if let Some(fixed) = affects(e, &installed)
                    && !hits.iter().any(|(r, _, _)| *r == e.record)
                {
                    hits.push((e.record, e.affected, fixed));
                }
            }
        }
        self.merge(pkg, hits)
    }

    fn merge(
        &self,
        pkg: &Installed<'_>,
        hits: Vec<(usize, usize, Option<String>)>,
    ) -> Vec<Finding> {
        // Hits of one vulnerability (by alias group) become one finding. Its
        // aliases are the names the matched records give, not the whole
        // group (which spans other distributions' records too).
        let mut by_group: HashMap<usize, (Finding, BTreeSet<String>)> = HashMap::new();
        let scheme = Scheme::for_package_type(pkg.package_type);
        for (ri, ai, fixed) in hits {
            let r = &self.records[ri];
            let (severity, score) = Severity::of(r, Some(&r.affected[ai]));
            let g = self.group_of[&r.id];
            let (f, names) = by_group.entry(g).or_insert_with(|| {
                (
                    Finding {
                        id: String::new(),
                        aliases: Vec::new(),
                        matched: Vec::new(),
                        package: pkg.name.to_string(),
                        version: pkg.version.to_string(),
                        package_type: pkg.package_type.to_string(),
                        fixed: None,
                        severity,
                        score,
                        summary: None,
                        sources: vec!["osv".to_string()],
                    },
                    BTreeSet::new(),
                )
            });
            names.extend(r.ids().map(str::to_string));
            f.matched.push(r.id.clone());
            f.severity = f.severity.max(severity);
            f.score = match (f.score, score) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if f.summary.is_none() {
                f.summary = r.summary.clone();
            }
            if let Some(fx) = fixed {
                let lower = match &f.fixed {
                    None => true,
                    Some(cur) => {
                        freshen_version::compare(scheme, &fx, cur).is_ok_and(|o| o.is_lt())
                    }
                };
                if lower {
                    f.fixed = Some(fx);
                }
            }
        }
        let by_group: HashMap<usize, Finding> = by_group
            .into_iter()
            .map(|(g, (mut f, names))| {
                // The CVE names it best: scanners and people use it.
                let cve = names
                    .iter()
                    .find(|i| i.starts_with("CVE-"))
                    .or_else(|| self.groups[g].iter().find(|i| i.starts_with("CVE-")));
                f.id = cve.cloned().unwrap_or_else(|| f.matched[0].clone());
                f.aliases = names.into_iter().filter(|i| *i != f.id).collect();
                (g, f)
            })
            .collect();
        let mut out: Vec<Finding> = by_group.into_values().collect();
        for f in &mut out {
            f.matched.sort();
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
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
fn lookup_keys<'a>(pkg: &Installed<'a>) -> Vec<(String, String, &'a str)> {
    let mut keys = Vec::new();
    let source = pkg.source_name.filter(|s| !s.is_empty());
    let source_version = pkg.source_version.filter(|s| !s.is_empty());
    match pkg.package_type {
        "deb" | "apk" | "rpm" => {
            let Some(os) = pkg.os_ecosystem else {
                return keys;
            };
            let version = source_version.unwrap_or(pkg.version);
            match source {
                Some(s) => keys.push((os.to_string(), s.to_string(), version)),
                None => keys.push((os.to_string(), pkg.name.to_string(), pkg.version)),
            }
            // rpm databases (Red Hat, Alma, Rocky) file advisories under
            // binary names too.
            if pkg.package_type == "rpm" && source.is_some_and(|s| s != pkg.name) {
                keys.push((os.to_string(), pkg.name.to_string(), pkg.version));
            }
        }
        other => {
            let ecosystem = match other {
                "pypi" => "PyPI",
                "npm" => "npm",
                "golang" => "Go",
                "cargo" => "crates.io",
                "gem" => "RubyGems",
                "maven" => "Maven",
                "nuget" => "NuGet",
                "composer" => "Packagist",
                _ => return keys,
            };
            keys.push((ecosystem.to_string(), pkg.name.to_string(), pkg.version));
        }
    }
    keys
}

/// PyPI names compare case-insensitively with `-`, `_` and `.` alike (PEP 503).
fn normalise_name(scheme: Scheme, name: &str) -> String {
    if scheme != Scheme::Pep440 {
        return name.to_string();
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
    out
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
        events.push((point, kind, v.clone()));
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

/// `Some(fixed)` when `v` is affected by the entry (`fixed` is the version
/// that ends the range it falls in, if any); `None` when it isn't.
fn affects(e: &Entry, v: &Version) -> Option<Option<String>> {
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

fn fixed_after(e: &Entry, v: &Version) -> Option<String> {
    e.ranges.iter().find_map(|r| next_fixed(r, v))
}

fn in_range(r: &ParsedRange, v: &Version) -> bool {
    let mut affected = false;
    for (p, kind, _) in &r.events {
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

fn next_fixed(r: &ParsedRange, v: &Version) -> Option<String> {
    r.events.iter().find_map(|(p, kind, raw)| match (p, kind) {
        (Point::At(x), Kind::Fixed) if x > v => Some(raw.clone()),
        _ => None,
    })
}
