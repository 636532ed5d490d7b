//! Package URLs (<https://github.com/package-url/purl-spec>).

use crate::extract::python::normalize_name;
use crate::model::{Ecosystem, OsRelease, Package};

/// Percent-encodes everything but the unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`); so `1:2.36-9+deb12u4` becomes
/// `1%3A2.36-9%2Bdeb12u4`.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn qualifiers(q: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = q
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn distro(os: Option<&OsRelease>) -> Option<String> {
    let os = os?;
    Some(match &os.version_id {
        Some(v) => format!("{}-{v}", os.id),
        None => os.id.clone(),
    })
}

fn is_like(os: Option<&OsRelease>, family: &[&str]) -> bool {
    os.is_some_and(|o| {
        family.contains(&o.id.as_str()) || o.id_like.iter().any(|l| family.contains(&l.as_str()))
    })
}

/// The purl of `p`, with the distribution (namespace and `distro`
/// qualifier) taken from `os` for OS packages. Qualifiers are in
/// lexicographic order, as the spec asks.
pub fn purl(p: &Package, os: Option<&OsRelease>) -> String {
    let arch = p.arch.clone();
    match p.ecosystem {
        Ecosystem::Deb => {
            let ns = if is_like(os, &["debian", "ubuntu"]) {
                os.map_or("debian", |o| o.id.as_str())
            } else {
                "debian"
            };
            format!(
                "pkg:deb/{}/{}@{}{}",
                enc(ns),
                enc(&p.name),
                enc(&p.version),
                qualifiers(&[("arch", arch), ("distro", distro(os))])
            )
        }
        Ecosystem::Apk => {
            let ns = if is_like(os, &["alpine", "wolfi", "chainguard"]) {
                os.map_or("alpine", |o| o.id.as_str())
            } else {
                "alpine"
            };
            format!(
                "pkg:apk/{}/{}@{}{}",
                enc(ns),
                enc(&p.name),
                enc(&p.version),
                qualifiers(&[("arch", arch), ("distro", distro(os))])
            )
        }
        Ecosystem::Rpm => {
            let (epoch, version) = match p.version.split_once(':') {
                Some((e, v)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                    (Some(e.to_string()), v)
                }
                _ => (None, p.version.as_str()),
            };
            let ns = match os.map(|o| o.id.as_str()) {
                Some("rhel") => "redhat/".to_string(),
                Some(id) => format!("{}/", enc(id)),
                None => String::new(),
            };
            format!(
                "pkg:rpm/{ns}{}@{}{}",
                enc(&p.name),
                enc(version),
                qualifiers(&[("arch", arch), ("distro", distro(os)), ("epoch", epoch)])
            )
        }
        Ecosystem::PyPI => format!(
            "pkg:pypi/{}@{}",
            enc(&normalize_name(&p.name)),
            enc(&p.version)
        ),
        Ecosystem::Npm => {
            let name = match p.name.split_once('/') {
                Some((scope, n)) if scope.starts_with('@') => format!("{}/{}", enc(scope), enc(n)),
                _ => enc(&p.name),
            };
            format!("pkg:npm/{name}@{}", enc(&p.version))
        }
        Ecosystem::Go => {
            let path: Vec<String> = p.name.split('/').map(enc).collect();
            format!("pkg:golang/{}@{}", path.join("/"), enc(&p.version))
        }
        Ecosystem::Cargo => format!("pkg:cargo/{}@{}", enc(&p.name), enc(&p.version)),
    }
}
