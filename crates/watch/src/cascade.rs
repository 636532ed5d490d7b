//! Cascade settings (`cascade:` in the config). The cascades themselves
//! (`Cascader`) live in the rebuild crate, beside the plan they carry out;
//! they are re-exported here under their old paths.

use serde::Deserialize;

/// Cascade behaviour, as written under `cascade:` in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CascadeSettings {
    /// Builds of one wave in flight at once.
    pub parallel: usize,
}

impl Default for CascadeSettings {
    fn default() -> Self {
        CascadeSettings { parallel: 2 }
    }
}
