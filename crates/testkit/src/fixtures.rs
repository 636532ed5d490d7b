//! Where the repository's shared test fixtures are, for any crate's tests.

use std::path::{Path, PathBuf};

/// The workspace's `crates` directory.
fn crates_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `crates/sbom/tests/fixtures`: package databases (`dpkg/status`,
/// `rpm/rpmdb.sqlite`, …) in their real formats.
pub fn sbom_fixtures() -> PathBuf {
    crates_dir().join("sbom/tests/fixtures")
}

/// `crates/vuln/tests/fixtures`: OSV records (`osv/`) and scanner reports
/// (`reports/`: Trivy, Grype, Harbor).
pub fn vuln_fixtures() -> PathBuf {
    crates_dir().join("vuln/tests/fixtures")
}

/// `crates/vuln/tests/fixtures/osv`: OSV records in the real schema.
pub fn osv_fixtures() -> PathBuf {
    vuln_fixtures().join("osv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_directories_exist() {
        assert!(sbom_fixtures().join("dpkg/status").is_file());
        assert!(osv_fixtures().is_dir());
        assert!(vuln_fixtures().join("reports").is_dir());
    }
}
