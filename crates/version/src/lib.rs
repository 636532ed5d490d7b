//! Version ordering per package ecosystem.
//!
//! Vulnerability matching asks "is the installed version below the fixed
//! one?", and the answer depends on the ecosystem's own rules: dpkg's
//! `1.0~rc1 < 1.0`, rpm's `1.0^git1 > 1.0`, apk's `1.0_p1 > 1.0`, PEP 440's
//! `1.0 == 1.0.0`. [`Scheme`] names a set of rules, [`Version`] is a version
//! parsed once under one of them so that comparing it many times is cheap,
//! and [`compare`] does both for a single comparison.
//!
//! ```
//! use freshen_version::{compare, Scheme, Version};
//! use std::cmp::Ordering;
//!
//! let scheme = Scheme::for_ecosystem("Debian:12");
//! assert_eq!(compare(scheme, "1.0~rc1", "1.0").unwrap(), Ordering::Less);
//! let fixed = Version::parse(Scheme::Pep440, "2.31.0").unwrap();
//! assert!(Version::parse(Scheme::Pep440, "2.31.0rc1").unwrap() < fixed);
//! ```

mod apk;
mod dpkg;
mod generic;
mod rpm;
mod semverish;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// How versions of one ecosystem are ordered.
///
/// The declaration order is also the order of [`Version`]s of different
/// schemes (see [`Version`]'s `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Debian and Ubuntu: `[epoch:]upstream[-revision]`, Debian Policy 5.6.12.
    Dpkg,
    /// Alpine, Wolfi and Chainguard: apk-tools' rules.
    Apk,
    /// Red Hat, Fedora, SUSE and friends: rpm's `rpmvercmp` over
    /// `[epoch:]version[-release]`.
    Rpm,
    /// Python: PEP 440 (normalisation, epochs, pre/post/dev, local).
    Pep440,
    /// SemVer 2.0 precedence, lenient: a leading `v` and a short core
    /// (`1.2`) are accepted, build metadata is ignored.
    Semver,
    /// No known rules: digit runs numerically, the rest byte-wise.
    Generic,
}

impl Scheme {
    /// The scheme for an OSV ecosystem name. Only the part before the first
    /// `:` counts (`"Debian:12"`, `"Alpine:v3.20"`, `"Ubuntu:22.04:LTS"`).
    ///
    /// - Debian, Ubuntu → [`Scheme::Dpkg`]
    /// - Alpine, Wolfi, Chainguard → [`Scheme::Apk`]
    /// - Red Hat, Rocky Linux, AlmaLinux, openSUSE, SUSE, Mageia,
    ///   openEuler → [`Scheme::Rpm`]
    /// - PyPI → [`Scheme::Pep440`]
    /// - npm, crates.io, Go, Packagist, NuGet, RubyGems, Hex, Pub →
    ///   [`Scheme::Semver`]. Not all of these are strictly SemVer (Go's
    ///   module versions are, with a `v` prefix, which is accepted; NuGet
    ///   and RubyGems have their own quirks), but SemVer precedence orders
    ///   their usual versions correctly.
    /// - anything else → [`Scheme::Generic`]
    pub fn for_ecosystem(osv_ecosystem: &str) -> Scheme {
        let base = osv_ecosystem.split(':').next().unwrap_or_default().trim();
        match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "npm" | "crates.io" | "Go" | "Packagist" | "NuGet" | "RubyGems" | "Hex" | "Pub" => {
                Scheme::Semver
            }
            _ => Scheme::Generic,
        }
    }

    /// The scheme for one of freshen's package types (the sbom crate's
    /// ecosystem names, which are also purl types): `deb`, `apk`, `rpm`,
    /// `pypi`, and `npm`, `go`/`golang`, `cargo`, `gem`, `composer`,
    /// `nuget`, `hex`, `pub` (SemVer); anything else is
    /// [`Scheme::Generic`]. Case does not matter.
    pub fn for_package_type(ty: &str) -> Scheme {
        match ty.to_ascii_lowercase().as_str() {
            "deb" | "dpkg" => Scheme::Dpkg,
            "apk" | "alpine" => Scheme::Apk,
            "rpm" => Scheme::Rpm,
            "pypi" | "python" => Scheme::Pep440,
            "npm" | "go" | "golang" | "cargo" | "gem" | "composer" | "nuget" | "hex" | "pub" => {
                Scheme::Semver
            }
            _ => Scheme::Generic,
        }
    }

    /// A short machine name: `dpkg`, `apk`, `rpm`, `pep440`, `semver`,
    /// `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dpkg => "dpkg",
            Scheme::Apk => "apk",
            Scheme::Rpm => "rpm",
            Scheme::Pep440 => "pep440",
            Scheme::Semver => "semver",
            Scheme::Generic => "generic",
        }
    }

    /// The name people use, for messages.
    fn display_name(self) -> &'static str {
        match self {
            Scheme::Dpkg => "Debian (dpkg)",
            Scheme::Apk => "Alpine (apk)",
            Scheme::Rpm => "RPM",
            Scheme::Pep440 => "PEP 440",
            Scheme::Semver => "SemVer",
            Scheme::Generic => "generic",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a version of a scheme.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The string does not follow the scheme's syntax.
    #[error("{input:?} is not a valid {} version: {reason}", scheme.display_name())]
    Invalid {
        /// The scheme it was parsed under.
        scheme: Scheme,
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl VersionError {
    fn new(scheme: Scheme, input: &str, reason: impl Into<String>) -> VersionError {
        VersionError::Invalid {
            scheme,
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The parsed form, per scheme; comparing it needs no more parsing.
#[derive(Clone, Debug)]
enum Key {
    Dpkg(dpkg::Dpkg),
    Apk(apk::Apk),
    Rpm(rpm::Rpm),
    Pep440(pep440_rs::Version),
    Semver(semver::Version),
    Generic,
}

/// A version parsed once under a [`Scheme`], for fast repeated comparison.
///
/// Ordering is total within a scheme, and two versions are equal exactly
/// when the scheme says so (dpkg `1.0 == 0:1.0`, PEP 440 `1.0 == 1.0.0`,
/// SemVer `1.0.0+a == 1.0.0+b`), so `==` is not string equality; use
/// [`Version::as_str`] for that. Versions of different schemes are ordered
/// by scheme first, in [`Scheme`]'s declaration order: comparing them is
/// meaningless, but sorting a mixed list must still be well-defined.
#[derive(Clone, Debug)]
pub struct Version {
    text: Box<str>,
    scheme: Scheme,
    key: Key,
}

impl Version {
    /// Parses `s` under `scheme`. [`Scheme::Generic`] accepts anything.
    pub fn parse(scheme: Scheme, s: &str) -> Result<Version, VersionError> {
        let err = |reason: String| VersionError::new(scheme, s, reason);
        let key = match scheme {
            Scheme::Dpkg => Key::Dpkg(dpkg::parse(s).map_err(|r| err(r.into()))?),
            Scheme::Apk => Key::Apk(apk::parse(s).map_err(|r| err(r.into()))?),
            Scheme::Rpm => Key::Rpm(rpm::parse(s).map_err(|r| err(r.into()))?),
            Scheme::Pep440 => {
                Key::Pep440(pep440_rs::Version::from_str(s).map_err(|e| err(e.to_string()))?)
            }
            Scheme::Semver => Key::Semver(semverish::parse(s).map_err(err)?),
            Scheme::Generic => Key::Generic,
        };
        Ok(Version {
            text: s.into(),
            scheme,
            key,
        })
    }

    /// The string it was parsed from, unchanged.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme it was parsed under.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.key, &other.key) {
            (Key::Dpkg(a), Key::Dpkg(b)) => a.cmp(b),
            (Key::Apk(a), Key::Apk(b)) => a.cmp(b),
            (Key::Rpm(a), Key::Rpm(b)) => a.cmp(b),
            (Key::Pep440(a), Key::Pep440(b)) => a.cmp(b),
            (Key::Semver(a), Key::Semver(b)) => a.cmp_precedence(b),
            (Key::Generic, Key::Generic) => {
                generic::cmp(self.text.as_bytes(), other.text.as_bytes())
            }
            _ => self.scheme.cmp(&other.scheme),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Compares two version strings under `scheme`; an error names the first
/// one that does not parse.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Version::parse(scheme, a)?.cmp(&Version::parse(scheme, b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn c(s: Scheme, a: &str, b: &str) -> Ordering {
        compare(s, a, b).unwrap()
    }

    #[test]
    fn ecosystems_map_to_schemes() {
        for (e, s) in [
            ("Debian", Scheme::Dpkg),
            ("Debian:12", Scheme::Dpkg),
            ("Ubuntu:22.04:LTS", Scheme::Dpkg),
            ("Alpine:v3.20", Scheme::Apk),
            ("Wolfi", Scheme::Apk),
            ("Chainguard", Scheme::Apk),
            ("Red Hat:enterprise_linux:9", Scheme::Rpm),
            ("Rocky Linux:9", Scheme::Rpm),
            ("AlmaLinux:8", Scheme::Rpm),
            ("openSUSE:Tumbleweed", Scheme::Rpm),
            ("SUSE:Linux Enterprise Server 15", Scheme::Rpm),
            ("Mageia:9", Scheme::Rpm),
            ("openEuler:22.03-LTS", Scheme::Rpm),
            ("PyPI", Scheme::Pep440),
            ("npm", Scheme::Semver),
            ("crates.io", Scheme::Semver),
            ("Go", Scheme::Semver),
            ("Packagist", Scheme::Semver),
            ("NuGet", Scheme::Semver),
            ("RubyGems", Scheme::Semver),
            ("Hex", Scheme::Semver),
            ("Pub", Scheme::Semver),
            ("Maven", Scheme::Generic),
            ("", Scheme::Generic),
        ] {
            assert_eq!(Scheme::for_ecosystem(e), s, "{e}");
        }
        assert_eq!(Scheme::for_package_type("deb"), Scheme::Dpkg);
        assert_eq!(Scheme::for_package_type("golang"), Scheme::Semver);
        assert_eq!(Scheme::for_package_type("go"), Scheme::Semver);
        assert_eq!(Scheme::for_package_type("cargo"), Scheme::Semver);
        assert_eq!(Scheme::for_package_type("pypi"), Scheme::Pep440);
        assert_eq!(Scheme::for_package_type("maven"), Scheme::Generic);
        assert_eq!(Scheme::Pep440.as_str(), "pep440");
    }

    #[test]
    fn errors_name_input_and_scheme() {
        let e = compare(Scheme::Pep440, "1.0", "1.2.x")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("\"1.2.x\" is not a valid PEP 440 version"),
            "{e}"
        );
        let e = Version::parse(Scheme::Dpkg, "a:1").unwrap_err().to_string();
        assert!(
            e.starts_with("\"a:1\" is not a valid Debian (dpkg) version"),
            "{e}"
        );
        assert!(Version::parse(Scheme::Apk, "1.0_foo").is_err());
        assert!(Version::parse(Scheme::Rpm, "").is_err());
        assert!(Version::parse(Scheme::Semver, "1.2.x").is_err());
        assert!(Version::parse(Scheme::Generic, "").is_ok());
    }

    #[test]
    fn equality_follows_the_scheme() {
        assert_eq!(c(Scheme::Dpkg, "1.0", "0:1.0"), Equal);
        assert_eq!(c(Scheme::Dpkg, "1.0", "1.0-0"), Equal);
        assert_eq!(c(Scheme::Pep440, "1.0", "1.0.0"), Equal);
        assert_eq!(c(Scheme::Pep440, "1.0RC1", "1.0rc1"), Equal);
        assert_eq!(c(Scheme::Semver, "v1.2", "1.2.0+build"), Equal);
        assert_eq!(c(Scheme::Rpm, "0:1.0-1", "1.0-1"), Equal);
        assert_eq!(c(Scheme::Generic, "1.01", "1.1"), Equal);
        assert_ne!(
            Version::parse(Scheme::Dpkg, "1.0").unwrap(),
            Version::parse(Scheme::Generic, "1.0").unwrap()
        );
    }

    #[test]
    fn scheme_rules() {
        assert_eq!(c(Scheme::Dpkg, "1.0~rc1", "1.0"), Less);
        assert_eq!(c(Scheme::Dpkg, "1:0.1", "2.0"), Greater);
        assert_eq!(c(Scheme::Dpkg, "1.0a", "1.0+"), Less);
        assert_eq!(c(Scheme::Rpm, "1.0^git1", "1.0"), Greater);
        assert_eq!(c(Scheme::Rpm, "1.0^git1", "1.0.1"), Less);
        assert_eq!(c(Scheme::Rpm, "1.0~rc1", "1.0"), Less);
        assert_eq!(c(Scheme::Rpm, "1.010", "1.10"), Equal);
        assert_eq!(c(Scheme::Rpm, "1.a", "1.1"), Less);
        assert_eq!(c(Scheme::Rpm, "1.0", "1.0-1"), Less);
        assert_eq!(c(Scheme::Semver, "1.0.0-alpha", "1.0.0"), Less);
        assert_eq!(
            c(
                Scheme::Semver,
                "v1.2.4-0.20191109021931-daa7c04131f5",
                "v1.2.4"
            ),
            Less
        );
        assert_eq!(
            c(
                Scheme::Semver,
                "v1.2.4-0.20191109021931-daa7c04131f5",
                "v1.2.3"
            ),
            Greater
        );
        assert_eq!(c(Scheme::Semver, "v2.0.0+incompatible", "v2.0.0"), Equal);
        assert_eq!(c(Scheme::Semver, "1", "1.0.0"), Equal);
        assert_eq!(c(Scheme::Semver, "1.2-rc.1", "1.2.0"), Less);
        assert_eq!(c(Scheme::Generic, "1.10", "1.9"), Greater);
        assert_eq!(c(Scheme::Generic, "1.0a", "1.0"), Greater);
        // Non-digit runs are byte-wise: "." < "a".
        assert_eq!(c(Scheme::Generic, "1a", "1.0"), Greater);
        assert_eq!(c(Scheme::Pep440, "1!0.1", "2.0"), Greater);
        assert_eq!(c(Scheme::Pep440, "1.0.dev1", "1.0a1"), Less);
        assert_eq!(c(Scheme::Pep440, "1.0+local", "1.0"), Greater);
    }
}
