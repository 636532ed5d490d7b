//! The registry client's metrics, through the `metrics` facade: a no-op
//! until a long-running command installs a recorder. Labels are the
//! registry's host (as configured or named in references), the method and
//! the status code: never a repository, tag or digest.

use std::time::Duration;

use crate::RegistryError;

/// HTTP requests sent, each attempt once: `registry`, `method`, `code`
/// (the status, or `error` when no answer came).
pub const REQUESTS: &str = "freshen_registry_requests_total";
/// Time to a registry's answer (its headers), per request: `registry`.
pub const REQUEST_DURATION: &str = "freshen_registry_request_duration_seconds";
/// `429 Too Many Requests` answers: `registry`.
pub const RATE_LIMITED: &str = "freshen_registry_rate_limited_total";
/// Requests that failed for their caller, after retries: `registry`, `kind`.
pub const ERRORS: &str = "freshen_registry_errors_total";
/// The last `RateLimit-Remaining` (Docker Hub: `ratelimit-remaining`) the
/// registry sent: `registry`.
pub const RATE_LIMIT_REMAINING: &str = "freshen_registry_rate_limit_remaining";

/// Describes this crate's metrics to the installed recorder, and registers
/// the series whose labels are known in advance at zero, so that a
/// dashboard and `rate()` see them before the first event.
pub fn register() {
    metrics::describe_counter!(
        REQUESTS,
        "Registry HTTP requests sent (each attempt), by registry, method and status code (`error`: no answer)."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to a registry's answer, by registry."
    );
    metrics::describe_counter!(RATE_LIMITED, "429 Too Many Requests answers, by registry.");
    metrics::describe_counter!(
        ERRORS,
        "Registry requests that failed for their caller after retries, by registry and kind."
    );
    metrics::describe_gauge!(
        RATE_LIMIT_REMAINING,
        "The last RateLimit-Remaining the registry sent, by registry."
    );
}

/// One request answered (`code` its status) or not (`None`) after `took`.
pub(crate) fn request(registry: &str, method: &reqwest::Method, code: Option<u16>, took: Duration) {
    if code == Some(429) {
        metrics::counter!(RATE_LIMITED, "registry" => registry.to_string()).increment(1);
    }
    let code = code.map_or_else(|| "error".to_string(), |c| c.to_string());
    metrics::counter!(REQUESTS, "registry" => registry.to_string(), "method" => method.as_str().to_string(), "code" => code).increment(1);
    metrics::histogram!(REQUEST_DURATION, "registry" => registry.to_string()).record(took);
}

/// A request that failed for its caller.
pub(crate) fn error(registry: &str, e: &RegistryError) {
    metrics::counter!(ERRORS, "registry" => registry.to_string(), "kind" => e.kind()).increment(1);
}

/// The rate-limit budget the registry says is left: the number before any
/// `;w=<window>` (Docker Hub sends `76;w=21600`). Other values are ignored.
pub(crate) fn rate_limit_remaining(registry: &str, header: &str) {
    if let Some(n) = parse_remaining(header) {
        metrics::gauge!(RATE_LIMIT_REMAINING, "registry" => registry.to_string()).set(n);
    }
}

fn parse_remaining(header: &str) -> Option<f64> {
    header
        .split([';', ','])
        .next()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_reads_docker_hub_and_ietf_forms() {
        assert_eq!(parse_remaining("76;w=21600"), Some(76.0));
        assert_eq!(parse_remaining("50"), Some(50.0));
        assert_eq!(parse_remaining(" 0 , 10;w=1"), Some(0.0));
        assert_eq!(parse_remaining("lots"), None);
        assert_eq!(parse_remaining(""), None);
    }
}
