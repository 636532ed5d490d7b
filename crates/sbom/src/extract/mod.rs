//! Extractors: bytes of one file in, packages out. None of them does I/O;
//! a malformed file gives warnings, never an error.

pub(crate) mod apk;
pub(crate) mod cargo_auditable;
pub(crate) mod dpkg;
pub(crate) mod golang;
pub(crate) mod npm;
pub(crate) mod os_release;
pub(crate) mod python;
pub(crate) mod rpm;

use crate::layer::Interest;
use crate::model::{DbKind, Ecosystem, FileFinding, Package};

/// Runs the extractor for `interest` over `data` (the file at `location`).
pub(crate) fn extract(
    interest: Interest,
    location: &str,
    data: &[u8],
    warnings: &mut Vec<String>,
) -> FileFinding {
    let (kind, packages) = match interest {
        Interest::OsRelease => return FileFinding::OsRelease(os_release::parse(data)),
        Interest::DpkgStatus => (
            DbKind::DpkgStatus,
            dpkg::parse(data, location, true, warnings),
        ),
        Interest::DpkgStatusD => (
            DbKind::DpkgStatusD,
            dpkg::parse(data, location, false, warnings),
        ),
        Interest::Apk => (DbKind::ApkInstalled, apk::parse(data, location, warnings)),
        Interest::Rpm => match rpm::parse(data, location, warnings) {
            Ok(found) => found,
            Err(reason) => {
                warnings.push(format!("{location}: rpm database not read: {reason}"));
                return FileFinding::Skipped { reason };
            }
        },
        Interest::Python => match python::parse(data, location) {
            Ok(p) => (DbKind::PythonMetadata, vec![p]),
            Err(reason) => {
                warnings.push(format!("{location}: {reason}"));
                return FileFinding::Skipped { reason };
            }
        },
        Interest::Npm => match npm::parse(data, location) {
            Ok(Some(p)) => (DbKind::NpmPackageJson, vec![p]),
            Ok(None) => (DbKind::NpmPackageJson, vec![]),
            Err(reason) => {
                warnings.push(format!("{location}: {reason}"));
                return FileFinding::Skipped { reason };
            }
        },
    };
    FileFinding::Packages { kind, packages }
}

/// Looks into an ELF file for Go build info and cargo-auditable data.
/// `None` when it holds neither.
pub(crate) fn binary(
    location: &str,
    data: &[u8],
    warnings: &mut Vec<String>,
) -> Option<FileFinding> {
    let elf = match object::read::elf::ElfFile64::<object::Endianness>::parse(data) {
        Ok(f) => Elf::B64(f),
        Err(_) => match object::read::elf::ElfFile32::<object::Endianness>::parse(data) {
            Ok(f) => Elf::B32(f),
            Err(_) => return None,
        },
    };
    if let Some(section) = elf.section(".dep-v0") {
        match cargo_auditable::parse(section, location) {
            Ok(packages) => {
                return Some(FileFinding::Packages {
                    kind: DbKind::RustAuditable,
                    packages,
                });
            }
            Err(reason) => warnings.push(format!(
                "{location}: cargo-auditable data not read: {reason}"
            )),
        }
    }
    // Go writes `.go.buildinfo` in every ELF binary; only a file stripped of
    // its section headers is searched whole.
    let go = if elf.has_sections() {
        elf.section(".go.buildinfo").and_then(golang::find_in)
    } else {
        golang::find_in(data)
    };
    if let Some(found) = go {
        match golang::parse(found, location) {
            Ok(packages) => {
                return Some(FileFinding::Packages {
                    kind: DbKind::GoBinary,
                    packages,
                });
            }
            Err(reason) => warnings.push(format!("{location}: Go build info not read: {reason}")),
        }
    }
    None
}

enum Elf<'a> {
    B64(object::read::elf::ElfFile64<'a, object::Endianness>),
    B32(object::read::elf::ElfFile32<'a, object::Endianness>),
}

impl<'a> Elf<'a> {
    fn has_sections(&self) -> bool {
        use object::Object;
        match self {
            Elf::B64(f) => f.sections().count() > 1,
            Elf::B32(f) => f.sections().count() > 1,
        }
    }

    fn section(&self, name: &str) -> Option<&'a [u8]> {
        use object::{Object, ObjectSection};
        let data = match self {
            Elf::B64(f) => f.section_by_name(name)?.data().ok()?,
            Elf::B32(f) => f.section_by_name(name)?.data().ok()?,
        };
        Some(data)
    }
}

/// A package as an extractor makes it: no purl, no layer yet.
pub(crate) fn package(
    ecosystem: Ecosystem,
    name: impl Into<String>,
    version: impl Into<String>,
    location: &str,
) -> Package {
    Package {
        ecosystem,
        name: name.into(),
        version: version.into(),
        arch: None,
        source_name: None,
        source_version: None,
        purl: String::new(),
        location: location.to_string(),
        layer: None,
    }
}

/// One paragraph of a control-style file: fields in order, continuation
/// lines joined with `\n`.
pub(crate) struct Stanza {
    pub fields: Vec<(String, String)>,
    /// 1-based line where it starts.
    pub line: usize,
}

impl Stanza {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a Debian-control / RFC 822 style text into stanzas. With
/// `headers_only`, stops at the first blank line (Python METADATA, whose
/// body is the description).
pub(crate) fn stanzas(text: &str, headers_only: bool) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur: Option<Stanza> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if let Some(s) = cur.take() {
                out.push(s);
                if headers_only {
                    return out;
                }
            }
            continue;
        }
        let stanza = cur.get_or_insert_with(|| Stanza {
            fields: Vec::new(),
            line: i + 1,
        });
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = stanza.fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            stanza
                .fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(s) = cur {
        out.push(s);
    }
    out
}
