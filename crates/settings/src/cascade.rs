//! `cascade:`: how the watcher runs the rebuild cascades it carries out
//! on its own (`on_change: [cascade]`).

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
