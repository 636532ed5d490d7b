//! The checker's metrics, through the `metrics` facade (a no-op until a
//! long-running command installs a recorder). Labels: where the check came
//! from (`poll` or `webhook`) and what it found; never a reference.

use std::time::Duration;

use crate::{CheckError, CheckResult};

/// Checks done: `source` (`poll`, `webhook`), `result` (`unchanged`,
/// `new`, `changed`, `error`).
pub const CHECKS: &str = "freshen_checks_total";
/// Change events a check recorded: `source`, `decision` (`act`, or
/// `quiet` when a policy said not to act).
pub const CHANGES: &str = "freshen_changes_total";
/// How long a check took, judging and the inventory's upkeep included:
/// `result`.
pub const CHECK_DURATION: &str = "freshen_check_duration_seconds";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(
        CHECKS,
        "Checks of watched tags, by source (poll, webhook) and result (unchanged, new, changed, error)."
    );
    metrics::describe_counter!(
        CHANGES,
        "Change events recorded by checks, by source and decision (act, quiet)."
    );
    metrics::describe_histogram!(
        CHECK_DURATION,
        metrics::Unit::Seconds,
        "How long a check took, by result."
    );
    for source in ["poll", "webhook"] {
        for result in ["unchanged", "new", "changed", "error"] {
            metrics::counter!(CHECKS, "source" => source, "result" => result).increment(0);
        }
        for decision in ["act", "quiet"] {
            metrics::counter!(CHANGES, "source" => source, "decision" => decision).increment(0);
        }
    }
    for result in ["unchanged", "new", "changed", "error"] {
        let _ = metrics::histogram!(CHECK_DURATION, "result" => result);
    }
}

/// A check from `source` (`poll`, `webhook:<receiver>`) ended with `r` after `took`.
pub(crate) fn checked(source: &str, r: &Result<CheckResult, CheckError>, took: Duration) {
    // The receiver's name is left out: `webhook` is enough to tell pushes
    // from polls, and the hook metrics have the receiver kinds.
    let source = if source.starts_with("webhook") {
        "webhook"
    } else if source == "poll" {
        "poll"
    } else {
        "other"
    };
    let result = match r {
        Err(_) => "error",
        Ok(c) if c.changed() => "changed",
        Ok(c)
            if c.top == freshen_store::Status::New
                || c.platforms
                    .iter()
                    .any(|p| p.status == freshen_store::Status::New) =>
        {
            "new"
        }
        Ok(_) => "unchanged",
    };
    metrics::counter!(CHECKS, "source" => source, "result" => result).increment(1);
    metrics::histogram!(CHECK_DURATION, "result" => result).record(took);
    if let Ok(c) = r
        && c.changed()
    {
        let decision = if c.fired() { "act" } else { "quiet" };
        metrics::counter!(CHANGES, "source" => source, "decision" => decision).increment(1);
    }
}
