//! Waiting for something to become true, with a deadline and a message
//! that says what never happened.

use std::time::Duration;

/// Polls `f` every 20 ms until it returns `Some`, panicking with `what` after `timeout`.
pub(crate) async fn wait_until<T>(
    timeout: Duration,
    what: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "freshen-testkit: timed out after {timeout:?} waiting for {}",
                what()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `check` until it returns `Some`, sleeping `every` between calls,
/// and returns what it found; once `timeout` has passed, panics with the
/// message `failure` builds then (so it can read a log written meanwhile).
///
/// For tests that wait on another process: a daemon's baseline, a server
/// answering, a run reaching a state.
pub async fn eventually<T>(
    timeout: Duration,
    every: Duration,
    failure: impl FnOnce() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            panic!("{}", failure());
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_what_check_found() {
        let mut calls = 0;
        let found = eventually(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || "never".to_string(),
            async || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        )
        .await;
        assert_eq!(found, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never: ready; log: nothing")]
    async fn eventually_panics_with_the_failure_message() {
        eventually(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || "never: ready; log: nothing".to_string(),
            async || None::<()>,
        )
        .await;
    }
}
