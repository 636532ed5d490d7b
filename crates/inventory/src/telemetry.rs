//! The scanner's metrics, through the `metrics` facade (a no-op until a
//! long-running command installs a recorder). No image names in labels.

use std::time::Duration;

/// Images scanned, one per platform read into the inventory or a scan
/// that failed: `result` (`ok`, `error`).
pub const SCANS: &str = "freshen_scans_total";
/// How long a scan of a reference (its wanted platforms) took: `result`.
pub const SCAN_DURATION: &str = "freshen_scan_duration_seconds";
/// Layers a scan needed: `source` (`read` from the registry, or `cached`
/// findings of a layer read before).
pub const LAYERS: &str = "freshen_scan_layers_total";
/// Compressed bytes of the layers read (as their descriptors state them).
pub const LAYER_BYTES: &str = "freshen_scan_layer_read_bytes_total";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(
        SCANS,
        "Image platforms scanned into the inventory (ok), and scans that failed (error)."
    );
    metrics::describe_histogram!(
        SCAN_DURATION,
        metrics::Unit::Seconds,
        "How long a scan of a reference took, by result."
    );
    metrics::describe_counter!(
        LAYERS,
        "Layers scans needed, by source (read from the registry, or cached findings)."
    );
    metrics::describe_counter!(
        LAYER_BYTES,
        metrics::Unit::Bytes,
        "Compressed bytes of the layers scans read from registries."
    );
    for result in ["ok", "error"] {
        metrics::counter!(SCANS, "result" => result).increment(0);
        let _ = metrics::histogram!(SCAN_DURATION, "result" => result);
    }
    for source in ["read", "cached"] {
        metrics::counter!(LAYERS, "source" => source).increment(0);
    }
    metrics::counter!(LAYER_BYTES).increment(0);
}

/// A scan ended: `platforms` scanned, or `None` for an error, after `took`.
pub(crate) fn scanned(platforms: Option<usize>, took: Duration) {
    let result = match platforms {
        Some(n) => {
            metrics::counter!(SCANS, "result" => "ok").increment(n as u64);
            "ok"
        }
        None => {
            metrics::counter!(SCANS, "result" => "error").increment(1);
            "error"
        }
    };
    metrics::histogram!(SCAN_DURATION, "result" => result).record(took);
}

/// One platform's layers: `read` of them read (`bytes` in all), `cached` not.
pub(crate) fn layers(read: usize, cached: usize, bytes: u64) {
    metrics::counter!(LAYERS, "source" => "read").increment(read as u64);
    metrics::counter!(LAYERS, "source" => "cached").increment(cached as u64);
    metrics::counter!(LAYER_BYTES).increment(bytes);
}
