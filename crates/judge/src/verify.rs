//! After a vulnerable image is rebuilt: which of the findings its policy
//! acted on are gone, and for each one still there, why.

use serde::Serialize;

use freshen_vuln::Finding;

/// What became of one finding after the rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingOutcome {
    /// The vulnerability (its CVE, when it has one).
    pub id: String,
    /// The package it was found in.
    pub package: String,
    /// The version before the rebuild.
    pub version: String,
    /// `fixed` (gone from the rebuilt image) or `not fixed`.
    pub outcome: &'static str,
    /// For `not fixed`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Compares the findings acted on (`before`) with the rebuilt image's
/// (`after`). A finding still there is explained, in this order: no
/// fixed version exists in the distribution yet; the base (`base`, its
/// findings `in_base`) still holds it, so the base must move first; the
/// Dockerfile pins the package's version; else it is only said to remain.
pub fn verify(
    before: &[Finding],
    after: &[Finding],
    base: Option<&str>,
    in_base: &[Finding],
    dockerfile: Option<&str>,
) -> Vec<FindingOutcome> {
    let same = |a: &Finding, b: &Finding| a.id == b.id && a.package == b.package;
    let mut out: Vec<FindingOutcome> = Vec::new();
    for f in before {
        if out.iter().any(|o| o.id == f.id && o.package == f.package) {
            continue;
        }
        let still = after.iter().find(|a| same(a, f));
        let reason = still.map(|a| {
            if a.fixed.is_none() {
                "no fixed version in the distribution yet".to_string()
            } else if let Some(b) = base
                && in_base.iter().any(|x| same(x, a))
            {
                format!(
                    "the package comes from the base {b}, which must move first (fixed in {})",
                    a.fixed.as_deref().unwrap_or("?")
                )
            } else if let Some(pin) = dockerfile.and_then(|d| pinned(d, &a.package)) {
                format!("the Dockerfile pins it: {pin}")
            } else {
                format!(
                    "still {} after the rebuild (fixed in {})",
                    a.version,
                    a.fixed.as_deref().unwrap_or("?")
                )
            }
        });
        out.push(FindingOutcome {
            id: f.id.clone(),
            package: f.package.clone(),
            version: f.version.clone(),
            outcome: if reason.is_some() {
                "not fixed"
            } else {
                "fixed"
            },
            reason,
        });
    }
    out
}

/// `pkg=1.2.3` (apt), `pkg==1.2.3` (pip), `pkg@1.2.3` (npm) or
/// `pkg-1.2.3` (apk/yum) as a word of the Dockerfile, if any.
fn pinned(dockerfile: &str, package: &str) -> Option<String> {
    dockerfile
        .split(|c: char| c.is_whitespace() || c == '\\' || c == '"' || c == '\'')
        .find(|w| {
            ["=", "==", "@", "-"].iter().any(|sep| {
                w.strip_prefix(package)
                    .and_then(|rest| rest.strip_prefix(sep))
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, package: &str, version: &str, fixed: Option<&str>) -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": id, "aliases": [], "matched": [], "package": package, "version": version,
            "package_type": "deb", "fixed": fixed, "severity": "high", "score": null,
            "summary": null, "sources": ["osv"]
        }))
        .expect("a finding")
    }

    #[test]
    fn each_finding_ends_fixed_or_not_fixed_with_why() {
        let before = vec![
            finding("CVE-1", "libssl3", "3.0.11", Some("3.0.11-1~deb12u2")),
            finding("CVE-2", "zlib1g", "1.2", None),
            finding("CVE-3", "curl", "7.88", Some("7.88.2")),
            finding("CVE-4", "jq", "1.6", Some("1.6.1")),
            finding("CVE-5", "git", "2.39", Some("2.39.5")),
        ];
        let after = vec![
            finding("CVE-2", "zlib1g", "1.2", None),
            finding("CVE-3", "curl", "7.88", Some("7.88.2")),
            finding("CVE-4", "jq", "1.6", Some("1.6.1")),
            finding("CVE-5", "git", "2.39", Some("2.39.5")),
        ];
        let in_base = vec![finding("CVE-3", "curl", "7.88", Some("7.88.2"))];
        let dockerfile = "FROM base\nRUN apt-get install -y \\\n  jq=1.6-2 git\n";
        let got = verify(
            &before,
            &after,
            Some("golden/base:1"),
            &in_base,
            Some(dockerfile),
        );
        let outcome: Vec<(&str, &str, Option<&str>)> = got
            .iter()
            .map(|o| (o.id.as_str(), o.outcome, o.reason.as_deref()))
            .collect();
        assert_eq!(outcome[0], ("CVE-1", "fixed", None));
        assert_eq!(
            outcome[1],
            (
                "CVE-2",
                "not fixed",
                Some("no fixed version in the distribution yet")
            )
        );
        assert!(
            outcome[2]
                .2
                .unwrap()
                .contains("comes from the base golden/base:1")
        );
        assert_eq!(outcome[3].2, Some("the Dockerfile pins it: jq=1.6-2"));
        assert!(
            outcome[4]
                .2
                .unwrap()
                .starts_with("still 2.39 after the rebuild")
        );
    }

    #[test]
    fn pins() {
        assert_eq!(
            pinned("pip install requests==2.31.0", "requests").as_deref(),
            Some("requests==2.31.0")
        );
        assert_eq!(
            pinned("npm i lodash@4.17.20", "lodash").as_deref(),
            Some("lodash@4.17.20")
        );
        assert_eq!(pinned("apt-get install libssl3", "libssl3"), None);
        assert_eq!(pinned("apk add libssl3-dev", "libssl3"), None);
    }
}
