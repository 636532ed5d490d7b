//! One finding per vulnerability and package, whatever said so: OSV
//! matching, and the scanner reports stored for an image.

use std::collections::{BTreeSet, HashMap};

use freshen_version::Scheme;

use crate::index::Finding;

/// Merges findings from several sources (OSV matches, Trivy, Grype and
/// Harbor reports) into one finding per (vulnerability, package): two
/// findings are one when they name the same package and share an id or an
/// alias. The merged finding is named by its CVE when one is among its
/// names, keeps every other name as an alias, the highest severity and
/// score, the lowest fixed version, the first summary, and the union of
/// sources. The result is sorted by package, then id.
pub fn merge_findings(findings: impl IntoIterator<Item = Finding>) -> Vec<Finding> {
    let mut slots: Vec<Option<Finding>> = Vec::new();
    let mut by_package: HashMap<String, Vec<usize>> = HashMap::new();
    for f in findings {
        let names: BTreeSet<String> = names(&f);
        let idxs = by_package.entry(f.package.clone()).or_default();
        let same: Vec<usize> = idxs
            .iter()
            .copied()
            .filter(|&i| {
                slots[i]
                    .as_ref()
                    .is_some_and(|g| names_of(g).any(|n| names.contains(n)))
            })
            .collect();
        match same.split_first() {
            None => {
                idxs.push(slots.len());
                slots.push(Some(f));
            }
            Some((&first, rest)) => {
                let mut into = slots[first].take().expect("a live slot");
                absorb(&mut into, f);
                // The new finding can join two that were apart (A~B, B~C).
                for &i in rest {
                    if let Some(other) = slots[i].take() {
                        absorb(&mut into, other);
                    }
                }
                slots[first] = Some(into);
                idxs.retain(|i| slots[*i].is_some());
            }
        }
    }
    let mut out: Vec<Finding> = slots.into_iter().flatten().map(normalise).collect();
    out.sort_by(|a, b| (&a.package, &a.id).cmp(&(&b.package, &b.id)));
    out
}

fn names_of(f: &Finding) -> impl Iterator<Item = &String> {
    std::iter::once(&f.id).chain(f.aliases.iter())
}

fn names(f: &Finding) -> BTreeSet<String> {
    names_of(f).cloned().collect()
}

fn absorb(into: &mut Finding, f: Finding) {
    into.aliases.push(f.id);
    into.aliases.extend(f.aliases);
    into.matched.extend(f.matched);
    into.sources.extend(f.sources);
    into.severity = into.severity.max(f.severity);
    into.score = match (into.score, f.score) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if into.summary.is_none() {
        into.summary = f.summary;
    }
    if into.version.is_empty() {
        into.version = f.version;
    }
    if into.package_type.is_empty() || into.package_type == "generic" {
        into.package_type = f.package_type;
    }
    into.fixed = match (into.fixed.take(), f.fixed) {
        (Some(a), Some(b)) => {
            let scheme = Scheme::for_package_type(&into.package_type);
            match freshen_version::compare(scheme, &b, &a) {
                Ok(o) if o.is_lt() => Some(b),
                _ => Some(a),
            }
        }
        (a, b) => a.or(b),
    };
}

/// Names the finding by its CVE, and sorts and dedupes its lists.
fn normalise(mut f: Finding) -> Finding {
    let mut all: BTreeSet<String> = f.aliases.drain(..).collect();
    all.insert(std::mem::take(&mut f.id));
    all.remove("");
    let id = all
        .iter()
        .find(|i| i.starts_with("CVE-"))
        .or_else(|| all.iter().next())
        .cloned()
        .unwrap_or_default();
    all.remove(&id);
    f.id = id;
    f.aliases = all.into_iter().collect();
    f.matched.sort();
    f.matched.dedup();
    f.sources.sort();
    f.sources.dedup();
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn f(id: &str, aliases: &[&str], package: &str, source: &str, sev: Severity) -> Finding {
        Finding {
            id: id.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            matched: vec![id.into()],
            package: package.into(),
            version: "3.0.11-1~deb12u1".into(),
            package_type: "deb".into(),
            fixed: None,
            severity: sev,
            score: None,
            summary: None,
            sources: vec![source.into()],
        }
    }

    #[test]
    fn one_finding_per_vulnerability_and_package() {
        let mut osv = f(
            "CVE-2023-5363",
            &["DSA-5532-1"],
            "libssl3",
            "osv",
            Severity::High,
        );
        osv.fixed = Some("3.0.11-1~deb12u2".into());
        let mut trivy = f("CVE-2023-5363", &[], "libssl3", "trivy", Severity::Medium);
        trivy.fixed = Some("3.0.13-1~deb12u1".into());
        trivy.score = Some(7.5);
        // Named by its DSA only: still the same vulnerability.
        let grype = f("DSA-5532-1", &[], "libssl3", "grype", Severity::Critical);
        let other_pkg = f("CVE-2023-5363", &[], "openssl", "trivy", Severity::High);
        let merged = merge_findings([osv, trivy, grype, other_pkg]);
        assert_eq!(merged.len(), 2, "{merged:#?}");
        let m = &merged[0];
        assert_eq!(m.id, "CVE-2023-5363");
        assert_eq!(m.package, "libssl3");
        assert_eq!(m.aliases, ["DSA-5532-1"]);
        assert_eq!(m.sources, ["grype", "osv", "trivy"]);
        assert_eq!(m.severity, Severity::Critical);
        assert_eq!(m.score, Some(7.5));
        assert_eq!(m.fixed.as_deref(), Some("3.0.11-1~deb12u2"));
        assert_eq!(merged[1].package, "openssl");
        assert_eq!(merged[1].sources, ["trivy"]);
    }

    #[test]
    fn a_finding_can_join_two() {
        let a = f("GHSA-x", &[], "p", "grype", Severity::Low);
        let b = f("CVE-1", &[], "p", "trivy", Severity::Low);
        let c = f("CVE-1", &["GHSA-x"], "p", "osv", Severity::Low);
        let merged = merge_findings([a, b, c]);
        assert_eq!(merged.len(), 1, "{merged:#?}");
        assert_eq!(merged[0].id, "CVE-1");
        assert_eq!(merged[0].aliases, ["GHSA-x"]);
        assert_eq!(merged[0].sources, ["grype", "osv", "trivy"]);
    }
}
