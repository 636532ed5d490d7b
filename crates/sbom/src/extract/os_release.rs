//! `os-release(5)`: shell-style `KEY=value` lines.

use crate::model::OsRelease;

/// Parses an os-release file. Unknown keys are ignored; a file without `ID`
/// gives `id = "linux"`, as os-release(5) says.
pub(crate) fn parse(data: &[u8]) -> OsRelease {
    let text = String::from_utf8_lossy(data);
    let mut os = OsRelease {
        id: "linux".to_string(),
        ..OsRelease::default()
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        let opt = || Some(value.clone()).filter(|v| !v.is_empty());
        match key.trim() {
            "ID" if !value.is_empty() => os.id = value.clone(),
            "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_string).collect(),
            "VERSION_ID" => os.version_id = opt(),
            "VERSION" => os.version = opt(),
            "VERSION_CODENAME" => os.version_codename = opt(),
            "PRETTY_NAME" => os.pretty_name = opt(),
            _ => {}
        }
    }
    os
}

fn unquote(v: &str) -> String {
    let mut chars = v.chars();
    match chars.next() {
        Some('"') => {
            let mut out = String::new();
            let mut esc = false;
            for c in chars {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    break;
                } else {
                    out.push(c);
                }
            }
            out
        }
        Some('\'') => chars.take_while(|&c| c != '\'').collect(),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems() {
        let deb = parse(
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(deb.osv_ecosystem().as_deref(), Some("Debian:12"));
        let ubuntu = parse(
            b"VERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
        );
        assert_eq!(ubuntu.osv_ecosystem().as_deref(), Some("Ubuntu:22.04:LTS"));
        let ubuntu =
            parse(b"ID=ubuntu\nVERSION_ID=\"23.10\"\nVERSION=\"23.10 (Mantic Minotaur)\"\n");
        assert_eq!(ubuntu.osv_ecosystem().as_deref(), Some("Ubuntu:23.10"));
        let alpine = parse(b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.1\n");
        assert_eq!(alpine.osv_ecosystem().as_deref(), Some("Alpine:v3.20"));
        let rocky = parse(b"ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n");
        assert_eq!(rocky.osv_ecosystem().as_deref(), Some("Rocky Linux:9"));
        assert_eq!(rocky.id_like, ["rhel", "centos", "fedora"]);
        let alma = parse(b"ID='almalinux'\nVERSION_ID=9.3\n");
        assert_eq!(alma.osv_ecosystem().as_deref(), Some("AlmaLinux:9"));
        let rhel = parse(b"ID=\"rhel\"\nVERSION_ID=\"9.4\"\n");
        assert_eq!(rhel.osv_ecosystem().as_deref(), Some("Red Hat"));
        assert_eq!(parse(b"ID=arch\n").osv_ecosystem(), None);
        assert_eq!(
            parse(b"PRETTY_NAME=\"a \\\"q\\\"\"\n")
                .pretty_name
                .as_deref(),
            Some("a \"q\"")
        );
    }
}
