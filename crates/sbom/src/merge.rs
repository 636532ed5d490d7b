//! Applying layers in order: overlay semantics over the findings.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Ecosystem, FileFinding, Inventory, LayerFindings, Link, OsRelease};
use crate::purl::purl;

type Key = (Ecosystem, String, String, Option<String>);

struct Held {
    finding: FileFinding,
    /// Per package of `finding` (same order), the index of the layer since
    /// which it has been present at this path without a break.
    since: Vec<usize>,
}

/// Merges layers' findings, bottom layer first, into the image's inventory.
///
/// A later file at a path replaces an earlier one; a whiteout (`.wh.name`)
/// removes the path and everything under it; an opaque whiteout removes
/// what the lower layers had under its directory. A symlink or hard link at
/// a path replaces a file there, and the reverse. Each package's `layer` is
/// the first layer from which the same (ecosystem, name, version, arch) was
/// present at the same location continuously up to the top; `purl` is
/// filled in with the distribution from the merged `os-release`.
pub fn merge(layers: &[(String, LayerFindings)]) -> Inventory {
    let mut files: BTreeMap<String, Held> = BTreeMap::new();
    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (idx, (digest, lf)) in layers.iter().enumerate() {
        for d in &lf.deletions {
            if !d.opaque {
                files.remove(&d.path);
                links.remove(&d.path);
            }
            remove_under(&mut files, &d.path);
            remove_under(&mut links, &d.path);
        }
        for (path, finding) in &lf.files {
            let before: HashMap<Key, usize> = match files.remove(path) {
                Some(Held {
                    finding: FileFinding::Packages { packages, .. },
                    since,
                }) => packages.iter().map(key).zip(since).collect(),
                _ => HashMap::new(),
            };
            let since = match finding {
                FileFinding::Packages { packages, .. } => packages
                    .iter()
                    .map(|p| before.get(&key(p)).copied().unwrap_or(idx))
                    .collect(),
                _ => Vec::new(),
            };
            links.remove(path);
            files.insert(
                path.clone(),
                Held {
                    finding: finding.clone(),
                    since,
                },
            );
        }
        for (path, link) in &lf.links {
            files.remove(path);
            links.insert(path.clone(), link.clone());
        }
        warnings.extend(lf.warnings.iter().map(|w| format!("{digest}: {w}")));
    }

    let os = ["etc/os-release", "usr/lib/os-release"]
        .into_iter()
        .find_map(|p| resolve_os(&files, &links, p));
    let mut packages = Vec::new();
    for held in files.values() {
        if let FileFinding::Packages { packages: list, .. } = &held.finding {
            for (p, &since) in list.iter().zip(&held.since) {
                let mut p = p.clone();
                p.purl = purl(&p, os.as_ref());
                p.layer = layers.get(since).map(|(d, _)| d.clone());
                packages.push(p);
            }
        }
    }
    Inventory {
        os,
        packages,
        warnings,
    }
}

fn key(p: &crate::model::Package) -> Key {
    (
        p.ecosystem,
        p.name.clone(),
        p.version.clone(),
        p.arch.clone(),
    )
}

/// Removes every key strictly under directory `dir` (`""` is the root).
fn remove_under<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

/// Follows links (as path strings inside the image, at most 16) from
/// `path` to an os-release finding.
fn resolve_os(
    files: &BTreeMap<String, Held>,
    links: &BTreeMap<String, Link>,
    path: &str,
) -> Option<OsRelease> {
    let mut cur = path.to_string();
    for _ in 0..16 {
        if let Some(held) = files.get(&cur) {
            return match &held.finding {
                FileFinding::OsRelease(os) => Some(os.clone()),
                _ => None,
            };
        }
        let link = links.get(&cur)?;
        let base = if link.hard || link.target.starts_with('/') {
            ""
        } else {
            cur.rsplit_once('/').map_or("", |(d, _)| d)
        };
        cur = join(base, &link.target);
    }
    None
}

/// Joins and normalizes within the image: `..` stops at the root, as it
/// does inside a container.
pub(crate) fn join(base: &str, target: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn joins_stay_inside() {
        assert_eq!(
            super::join("etc", "../usr/lib/os-release"),
            "usr/lib/os-release"
        );
        assert_eq!(super::join("etc", "../../../../etc/shadow"), "etc/shadow");
        assert_eq!(super::join("", "/usr/lib/os-release"), "usr/lib/os-release");
    }
}
