//! Rebuilds' metrics, through the `metrics` facade (a no-op until a
//! long-running command installs a recorder). Labels: the executor and the
//! result; never an image.

use std::time::Duration;

/// Rebuild runs finished: `result` (`done`, `failed`).
pub const RUNS: &str = "freshen_rebuild_runs_total";
/// From a run's creation to its end (a resumed run counts from its creation): `result`.
pub const RUN_DURATION: &str = "freshen_rebuild_run_duration_seconds";
/// Images a run rebuilt, failed or skipped: `executor`, `result` (`done`,
/// `failed`, `skipped`).
pub const IMAGES: &str = "freshen_rebuilds_total";
/// How long one image's rebuild took (version, build or rebase, push,
/// promote, scan): `executor`, `result` (`done`, `failed`).
pub const IMAGE_DURATION: &str = "freshen_rebuild_duration_seconds";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(RUNS, "Rebuild runs finished, by result (done, failed).");
    metrics::describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "From a rebuild run's creation to its end, by result."
    );
    metrics::describe_counter!(
        IMAGES,
        "Images rebuilt, failed or skipped, by executor and result."
    );
    metrics::describe_histogram!(
        IMAGE_DURATION,
        metrics::Unit::Seconds,
        "How long one image's rebuild took, by executor and result."
    );
    for result in ["done", "failed"] {
        metrics::counter!(RUNS, "result" => result).increment(0);
        let _ = metrics::histogram!(RUN_DURATION, "result" => result);
    }
    use crate::Executor::{Buildah, Docker, Jenkins, Kaniko, Podman, Rebase};
    for executor in [Buildah, Docker, Podman, Kaniko, Jenkins, Rebase] {
        for result in ["done", "failed", "skipped"] {
            metrics::counter!(IMAGES, "executor" => executor.as_str(), "result" => result)
                .increment(0);
        }
        for result in ["done", "failed"] {
            let _ = metrics::histogram!(IMAGE_DURATION, "executor" => executor.as_str(), "result" => result);
        }
    }
}

/// One image of a run ended `result`; `took` unless it was skipped.
pub(crate) fn image(executor: &'static str, result: &'static str, took: Option<Duration>) {
    metrics::counter!(IMAGES, "executor" => executor, "result" => result).increment(1);
    if let Some(took) = took {
        metrics::histogram!(IMAGE_DURATION, "executor" => executor, "result" => result)
            .record(took);
    }
}

/// A run ended, done or not, `took` after its creation.
pub(crate) fn run(done: bool, took: Duration) {
    let result = if done { "done" } else { "failed" };
    metrics::counter!(RUNS, "result" => result).increment(1);
    metrics::histogram!(RUN_DURATION, "result" => result).record(took);
}
