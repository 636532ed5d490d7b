//! dpkg: `var/lib/dpkg/status` and distroless `var/lib/dpkg/status.d/*`.

use super::{package, stanzas};
use crate::model::{Ecosystem, Package};

/// Parses a dpkg status file. With `require_status` (the main status file),
/// only packages whose files are on disk count: the status word (third
/// word of `Status:`) is anything but `not-installed` and `config-files`
/// (so `install ok installed` and `hold ok installed` both count).
/// Distroless `status.d` files carry no `Status:` field.
pub(crate) fn parse(
    data: &[u8],
    location: &str,
    require_status: bool,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for st in stanzas(&text, false) {
        if require_status {
            let status = st.get("Status").unwrap_or("");
            let word = status.split_whitespace().nth(2).unwrap_or("");
            if word.is_empty() {
                warnings.push(format!(
                    "{location}: line {}: stanza without a valid Status field skipped",
                    st.line
                ));
                continue;
            }
            if word == "not-installed" || word == "config-files" {
                continue;
            }
        }
        let (Some(name), Some(version)) = (st.get("Package"), st.get("Version")) else {
            warnings.push(format!(
                "{location}: line {}: stanza without Package or Version skipped",
                st.line
            ));
            continue;
        };
        if name.is_empty() || version.is_empty() {
            warnings.push(format!(
                "{location}: line {}: empty Package or Version skipped",
                st.line
            ));
            continue;
        }
        let mut p = package(Ecosystem::Deb, name, version, location);
        p.arch = st
            .get("Architecture")
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let (src, src_version) = match st.get("Source").filter(|s| !s.is_empty()) {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim_end_matches(')').trim().to_string(),
                ),
                None => (s.trim().to_string(), version.to_string()),
            },
            None => (name.to_string(), version.to_string()),
        };
        p.source_name = Some(src);
        p.source_version = Some(src_version);
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_forms() {
        let text = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\nSource: glibc\n\n\
Package: libssl3\nStatus: hold ok installed\nVersion: 3.0.11-1~deb12u2\nSource: openssl (3.0.11-1~deb12u2)\nDescription: x\n more\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
Package: broken\nVersion: 1\n";
        let mut w = Vec::new();
        let p = parse(text, "/var/lib/dpkg/status", true, &mut w);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source_name.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version.as_deref(), Some("2.36-9"));
        assert_eq!(p[1].source_name.as_deref(), Some("openssl"));
        assert_eq!(p[1].source_version.as_deref(), Some("3.0.11-1~deb12u2"));
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
