//! `notify:`: the triggers told when a rebuild run or a roll-out ends.
//! (Change events go to a watch's `on_change`, vulnerability events to a
//! policy's `on_vulnerable`, approval requests to `approvals.announce`.)

use serde::Deserialize;

/// `notify:` as written in the config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Triggers told when a rebuild run ends (done or failed), whether a
    /// cascade or `freshen rebuild` started it.
    pub rebuilds: Vec<String>,
    /// Triggers told when a roll-out ends (done or failed).
    pub rollouts: Vec<String>,
    /// Tell them only of runs and roll-outs that failed.
    pub failures_only: bool,
}
