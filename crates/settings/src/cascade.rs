//! `cascade:`: how the watcher runs the rebuild cascades it carries out
//! on its own (`on_change: [cascade]`).

use serde::Deserialize;

/// Cascade behaviour, as written under `cascade:` in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CascadeSettings {
    /// Builds of one wave in flight at once.
    pub parallel: usize,
    /// Promote a vulnerable image's rebuild that fixed none of the
    /// findings its policy acted on (`rebuild --vulnerable`): `true` keeps
    /// the image fresh anyway, `false` leaves its tags where they were.
    pub promote_unfixed: bool,
}

impl Default for CascadeSettings {
    fn default() -> Self {
        CascadeSettings {
            parallel: 2,
            promote_unfixed: true,
        }
    }
}
