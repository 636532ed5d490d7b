//! Watching tags: what a watch is, checking it (one `HEAD` per tag in steady
//! state), the daemon that checks on schedule and drains the outbox, and
//! the cascades it runs on its own (`on_change: [cascade]`).

mod check;
mod daemon;
mod intake;

// Moved to the rebuild crate (beside `plan_event`); old paths kept while
// callers move.
pub use check::{CheckError, CheckResult, Checker, PlatformResult, Pushed};
pub use daemon::{Daemon, DaemonSettings};
pub use freshen_rebuild::{CascadeDone, CascadeError, Cascader};
pub use intake::{Intake, PushOutcome, ReceiverError, ScanOutcome, Taken};

/// What a watch is and when it is checked: defined with the other
/// settings types (`freshen-settings`), so the config layer can read them
/// without this crate's runtime.
pub use freshen_settings::{Schedule, Watch, WatchSpec};
