//! Image references, parsed and normalised the way the docker CLI does.
//!
//! `debian` becomes `docker.io/library/debian:latest`; `host:port/repo:tag@digest`
//! keeps its host. The registry a reference names (`docker.io`) is kept apart
//! from the host that serves it (`registry-1.docker.io`): that mapping, mirrors
//! and transport settings belong to the `registry` layer.
//!
//! This crate knows nothing else: no I/O, no configuration files.

use std::fmt;
use std::str::FromStr;

/// The registry name the docker CLI assumes when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// The tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a reference could not be parsed. Every variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input was empty or only white space.
    #[error("invalid image reference {input:?}: it is empty")]
    Empty {
        /// The text as given.
        input: String,
    },
    /// The input breaks the reference grammar (or a length limit).
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid {
        /// The text as given.
        input: String,
        /// Which rule it breaks, as a phrase for the user.
        reason: String,
    },
    /// The input is not `os/arch[/variant]`.
    #[error("invalid platform {input:?}: expected os/arch or os/arch/variant, e.g. linux/amd64")]
    Platform {
        /// The text as given.
        input: String,
    },
}

/// A fully normalised image reference: registry, repository, and a tag and/or digest.
///
/// At least one of `tag` and `digest` is present after parsing: a reference
/// with neither gets the `latest` tag, as `docker pull` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// How to fill in what a reference leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The registry for references that name none (docker's is `docker.io`).
    pub registry: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            registry: DOCKER_HUB.to_string(),
        }
    }
}

impl Reference {
    /// Parses with docker's defaults (`docker.io`, `library/`, `latest`).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        Self::parse_with(input, &Defaults::default())
    }

    /// Parses, filling in the registry from `defaults` when the input names none.
    pub fn parse_with(input: &str, defaults: &Defaults) -> Result<Reference, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty {
                input: input.to_string(),
            });
        }
        if s.chars().any(char::is_whitespace) {
            return Err(invalid("it contains white space"));
        }
        if s.contains("://") {
            return Err(invalid(
                "a reference has no URL scheme; write host/repository:tag",
            ));
        }

        let (name_and_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(|r| invalid(&r))?)),
            None => (s, None),
        };

        // A tag follows the last ':' that comes after the last '/', so
        // `host:5000/repo` keeps its port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|r| invalid(&r))?;
        }
        if name.is_empty() {
            return Err(invalid("the repository name is missing"));
        }

        let (registry, path) = split_registry(name, &defaults.registry);
        let registry = normalise_registry(&registry);
        if registry.is_empty() {
            return Err(invalid("the registry host is empty"));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        validate_repository(&repository).map_err(|r| invalid(&r))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid("the name is longer than 255 characters"));
        }

        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Builds a reference from parts that are already known to be valid
    /// (for example a repository name read back from a registry).
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = digest {
            s.push('@');
            s.push_str(d);
        }
        Reference::parse(&s)
    }

    /// The registry name, e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/debian`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to ask the registry's manifest endpoint for: the digest when
    /// pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::from_parts(&self.registry, &self.repository, Some(tag), None)
    }

    /// The same repository pinned to a digest (the tag is kept for display).
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        Reference::from_parts(
            &self.registry,
            &self.repository,
            self.tag.as_deref(),
            Some(digest),
        )
    }

    /// The short form the docker CLI prints: `debian:bookworm` for Docker Hub
    /// official images, `user/app:1` for other Hub images, else the full name.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        let mut s = name;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits `name` into registry and path the way docker does: the first
/// component is a registry only if it looks like a host (has a `.` or `:`,
/// or is `localhost`) or is not lowercase (hosts may be written any case).
fn split_registry<'a>(name: &'a str, default_registry: &str) -> (String, &'a str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest)
        }
        _ => (default_registry.to_string(), name),
    }
}

/// Docker Hub has several historical names; they all mean `docker.io`.
fn normalise_registry(registry: &str) -> String {
    let lower = registry.to_ascii_lowercase();
    match lower.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => lower,
    }
}

fn validate_repository(repo: &str) -> Result<(), String> {
    for component in repo.split('/') {
        if component.is_empty() {
            return Err("the repository has an empty path component".into());
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("repository names must be lowercase".into());
        }
        if !is_path_component(component) {
            return Err(format!(
                "path component {component:?} may only hold a-z, 0-9 and single separators (., _, __, -) between them"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` from the distribution grammar.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or any number of '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if tag.len() > MAX_TAG_LEN {
        return Err("the tag is longer than 128 characters".into());
    }
    let mut chars = tag.chars();
    let first = chars.next().unwrap_or('-');
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if !word(first) || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!(
            "tag {tag:?} may only hold letters, digits, '_', '.' and '-', and may not start with '.' or '-'"
        ));
    }
    Ok(())
}

/// Checks `algorithm:hex` and returns it unchanged.
///
/// Only `sha256`, `sha384` and `sha512` are accepted, with exactly 64, 96
/// or 128 lowercase hex digits; the error is a phrase naming the input.
pub fn parse_digest(d: &str) -> Result<String, String> {
    let (algo, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest {d:?} must look like sha256:<64 hex digits>"))?;
    let expected = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "digest algorithm {algo:?} is not sha256, sha384 or sha512"
            ));
        }
    };
    if hex.len() != expected
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(format!(
            "digest {d:?} must have {expected} lowercase hex digits after '{algo}:'"
        ));
    }
    Ok(d.to_string())
}

/// A platform as registries describe it: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `arm`, if any.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, normalising as containerd does
    /// (`x86_64` -> `amd64`, `aarch64` -> `arm64`, `arm64/v8` -> `arm64`).
    pub fn parse(input: &str) -> Result<Platform, ReferenceError> {
        let err = || ReferenceError::Platform {
            input: input.to_string(),
        };
        let parts: Vec<&str> = input.trim().split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(err());
        }
        let valid = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !parts.iter().all(|p| valid(p)) {
            return Err(err());
        }
        Ok(Platform::new(
            parts[0],
            parts[1],
            parts.get(2).copied().filter(|v| !v.is_empty()),
        ))
    }

    /// Builds a normalised platform from registry fields.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let mut arch = architecture.to_ascii_lowercase();
        let mut variant = variant.map(str::to_ascii_lowercase);
        match arch.as_str() {
            "x86_64" | "x86-64" => arch = "amd64".into(),
            "aarch64" => arch = "arm64".into(),
            "armhf" => {
                arch = "arm".into();
                variant = Some("v7".into());
            }
            "armel" => {
                arch = "arm".into();
                variant = Some("v6".into());
            }
            "i386" | "i686" => arch = "386".into(),
            _ => {}
        }
        // arm64 means arm64/v8 unless another variant is named.
        if arch == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }

    /// Whether an index entry's platform is what the user asked for. An
    /// unspecified variant in the request matches any; `arm` without a
    /// variant on the entry is taken as `v7`, as containerd does.
    pub fn matches(&self, entry: &Platform) -> bool {
        if self.os != entry.os || self.architecture != entry.architecture {
            return false;
        }
        match (&self.variant, &entry.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm" && want == "v7",
        }
    }

    /// True for the `unknown/unknown` entries BuildKit adds for attestations.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (`/` included) and everything else is literal: the image
/// patterns of policies and receivers (`localhost:5000/team-a/*`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("debian"), "docker.io/library/debian:latest");
        assert_eq!(full("debian:bookworm"), "docker.io/library/debian:bookworm");
        assert_eq!(full("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(full("docker.io/debian"), "docker.io/library/debian:latest");
        assert_eq!(
            full("index.docker.io/library/debian:12"),
            "docker.io/library/debian:12"
        );
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(
            full("localhost:5000/team/app:1.2"),
            "localhost:5000/team/app:1.2"
        );
        assert_eq!(full("ghcr.io/org/app"), "ghcr.io/org/app:latest");
        assert_eq!(full("Quay.IO/org/app:v1"), "quay.io/org/app:v1");
    }

    #[test]
    fn digests_and_tags() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/app:1@{d}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "app");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.manifest_reference(), d);
        let r = Reference::parse(&format!("debian@{d}")).unwrap();
        assert_eq!(r.tag(), None, "a digest-only reference gets no default tag");
        assert_eq!(r.familiar(), format!("debian@{d}"));
    }

    #[test]
    fn default_registry_is_configurable() {
        let defaults = Defaults {
            registry: "registry.corp:443".into(),
        };
        let r = Reference::parse_with("debian:12", &defaults).unwrap();
        assert_eq!(r.to_string(), "registry.corp:443/debian:12");
        let r = Reference::parse_with("docker.io/debian:12", &defaults).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/debian:12");
    }

    #[test]
    fn errors_name_the_input() {
        for bad in [
            "",
            "Debian",
            "debian:",
            "debian:-x",
            "debian@sha256:abc",
            "debian@md5:aaaa",
            "a//b",
            "https://ghcr.io/a",
            "deb ian",
            "app..x",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?} -> {e}");
        }
        let long = format!("x:{}", "a".repeat(129));
        assert!(Reference::parse(&long).is_err());
    }

    #[test]
    fn path_components() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["-a", "a-", "a..b", "a___b", "a._b", "_a"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        let want = Platform::parse("linux/arm/v7").unwrap();
        assert!(want.matches(&Platform::new("linux", "arm", None)));
        assert!(!want.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(
            Platform::parse("linux/arm")
                .unwrap()
                .matches(&Platform::new("linux", "arm", Some("v6")))
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
        assert!(Platform::new("unknown", "unknown", None).is_unknown());
    }
}
