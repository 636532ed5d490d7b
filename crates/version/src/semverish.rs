//! Semantic-versioning order as npm, Cargo, Go modules and most language
//! registries use it, with the leniency real advisories need.

/// Parses `s` as SemVer 2.0, after dropping a leading `v` (Go module
/// versions, many tags) and padding a short core (`1.2`, `1`) with zeros.
/// Go pseudo-versions (`v0.0.0-20191109021931-daa7c04131f5`) are plain
/// pre-releases and need nothing special; `+incompatible` is build metadata.
pub(crate) fn parse(s: &str) -> Result<semver::Version, String> {
    let t = s.strip_prefix(['v', 'V']).unwrap_or(s);
    // The core ends at the first '-' (pre-release) or '+' (build).
    let end = t.find(['-', '+']).unwrap_or(t.len());
    let (core, tail) = t.split_at(end);
    let dots = core.bytes().filter(|&b| b == b'.').count();
    let padded;
    let text = if dots < 2 && !core.is_empty() {
        padded = format!("{core}{}{tail}", ".0".repeat(2 - dots));
        padded.as_str()
    } else {
        t
    };
    semver::Version::parse(text).map_err(|e| e.to_string())
}
