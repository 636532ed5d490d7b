//! The judge's metrics, through the `metrics` facade (a no-op until a
//! long-running command installs a recorder). Labels: what asked for the
//! decision, what it decided, a severity; never an image or a CVE.

use std::collections::BTreeMap;

use freshen_vuln::Severity;

/// Policy decisions stored: `source` (`change`: a base change judged
/// before it is recorded; `vulnerability`: the inventory judged again on
/// new data; `check`: `policy check`), `decision` (`act`, `quiet`).
pub const DECISIONS: &str = "freshen_policy_decisions_total";
/// Findings by `severity` in the images the last inventory-wide judgement
/// covered (after a feed sync, a report import or a rescan: the images
/// under a policy with `on_vulnerable`).
pub const FINDINGS: &str = "freshen_findings";
/// `vulnerability` change events made by judging the inventory again.
pub const VULNERABILITY_EVENTS: &str = "freshen_vulnerability_events_total";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(
        DECISIONS,
        "Policy decisions, by source (change, vulnerability, check) and decision (act, quiet)."
    );
    metrics::describe_gauge!(
        FINDINGS,
        "Findings by severity in the images the last inventory-wide judgement covered."
    );
    metrics::describe_counter!(
        VULNERABILITY_EVENTS,
        "Vulnerability change events made by judging the inventory on new data."
    );
    for source in ["change", "vulnerability", "check"] {
        for decision in ["act", "quiet"] {
            metrics::counter!(DECISIONS, "source" => source, "decision" => decision).increment(0);
        }
    }
    metrics::counter!(VULNERABILITY_EVENTS).increment(0);
}

/// A decision from `source` that did (`act`) or did not act.
pub(crate) fn decided(source: &'static str, act: bool) {
    let decision = if act { "act" } else { "quiet" };
    metrics::counter!(DECISIONS, "source" => source, "decision" => decision).increment(1);
}

/// The findings of the images an inventory-wide judgement covered.
pub(crate) fn findings(severities: impl Iterator<Item = Severity>) {
    let mut by: BTreeMap<&'static str, u64> =
        Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for s in severities {
        *by.entry(s.as_str()).or_default() += 1;
    }
    for (severity, n) in by {
        metrics::gauge!(FINDINGS, "severity" => severity).set(n as f64);
    }
}

/// `n` vulnerability events were made.
pub(crate) fn vulnerability_events(n: usize) {
    metrics::counter!(VULNERABILITY_EVENTS).increment(n as u64);
}
