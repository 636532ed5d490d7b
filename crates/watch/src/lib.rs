//! Watching tags: what a watch is, checking it (one `HEAD` per tag in steady
//! state), and the daemon that checks on schedule, drains the outbox and
//! runs the cascade deliverer it is handed.

mod check;
mod daemon;
pub mod telemetry;

pub use check::{CheckError, CheckResult, Checker, PlatformResult, Pushed};
pub use daemon::{Daemon, DaemonSettings, Job, JobFn};

/// What a watch is and when it is checked: defined with the other
/// settings types (`freshen-settings`), so the config layer can read them
/// without this crate's runtime.
pub use freshen_settings::{Schedule, Watch, WatchSpec};
