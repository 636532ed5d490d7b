//! npm: `node_modules/<name>/package.json` and
//! `node_modules/@scope/<name>/package.json` (local and global installs).

use super::package;
use crate::model::{Ecosystem, Package};

/// Parses one `package.json`. `Ok(None)` when it lacks a name or version
/// (not every `package.json` is a package).
pub(crate) fn parse(data: &[u8], location: &str) -> Result<Option<Package>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("package.json is not valid JSON: {e}"))?;
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty());
    let version = v
        .get("version")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty());
    Ok(match (name, version) {
        (Some(n), Some(ver)) => Some(package(Ecosystem::Npm, n, ver, location)),
        _ => None,
    })
}
