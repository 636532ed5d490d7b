//! Rust binaries built with cargo-auditable: a `.dep-v0` section holding
//! zlib-compressed JSON, `{"packages":[{"name","version","source","kind",
//! "dependencies","root"}]}`.

use std::io::Read;

use serde::Deserialize;

use super::package;
use crate::model::{Ecosystem, Package};

/// cargo-auditable's own limit for the decompressed data.
const MAX_JSON: u64 = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct Info {
    packages: Vec<Dep>,
}

#[derive(Deserialize)]
struct Dep {
    name: String,
    version: String,
    #[serde(default)]
    kind: Option<String>,
}

/// Reads the crates from a `.dep-v0` section. Build-time dependencies
/// (`"kind": "build"`) are left out: they are not linked into the binary.
pub(crate) fn parse(section: &[u8], location: &str) -> Result<Vec<Package>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("bad zlib data: {e}"))?;
    if json.len() as u64 > MAX_JSON {
        return Err(format!("decompressed data passes {MAX_JSON} bytes"));
    }
    let info: Info = serde_json::from_slice(&json).map_err(|e| format!("bad JSON: {e}"))?;
    Ok(info
        .packages
        .into_iter()
        .filter(|d| d.kind.as_deref() != Some("build"))
        .map(|d| package(Ecosystem::Cargo, d.name, d.version, location))
        .collect())
}
