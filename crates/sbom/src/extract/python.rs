//! Python: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` and `*.egg-info`
//! files (core metadata: RFC 822 headers, `Name:` and `Version:`).

use super::{package, stanzas};
use crate::model::{Ecosystem, Package};

/// Parses one core-metadata file.
pub(crate) fn parse(data: &[u8], location: &str) -> Result<Package, String> {
    let text = String::from_utf8_lossy(data);
    let headers = stanzas(&text, true);
    let st = headers.first().ok_or("empty metadata file")?;
    let name = st.get("Name").filter(|n| !n.is_empty());
    let version = st.get("Version").filter(|v| !v.is_empty());
    match (name, version) {
        (Some(n), Some(v)) => Ok(package(Ecosystem::PyPI, n, v, location)),
        _ => Err("metadata without Name or Version".into()),
    }
}

/// PEP 503 normalization: lower case, runs of `-`, `_`, `.` become `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pep503() {
        assert_eq!(super::normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(super::normalize_name("zope.interface"), "zope-interface");
    }
}
