//! A Jenkins job as the builder: freshen starts the image's job with
//! `IMAGE`, `VERSION`, `TARGET` and `NO_CACHE=true`, follows the queue item to its build,
//! and waits for the build's result. The job builds and pushes `TARGET`;
//! the digest is then asked of the registry.

use std::time::{Duration, Instant};

use freshen_jenkins::{Endpoint, JenkinsError, QueueItem, QueueState, Session};
use freshen_settings::JenkinsSettings;

use crate::{Build, BuildError};

/// Polls that may fail in a row (network, 429, 5xx) before the build does.
const MAX_MISSES: u32 = 5;

/// Per-request timeout: a poll that hangs must not outlive the build's.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Jenkins builder: a trait because [`JenkinsSettings`] is defined in
/// `freshen-settings`, which runs nothing.
pub trait JenkinsBuildPush {
    /// Runs `b`'s job to push `target` (`registry/repo:version`) and waits
    /// for it. Returns an empty digest: the job pushed, the registry tells.
    fn build_push(
        &self,
        b: &Build,
        version: &str,
        target: &str,
    ) -> impl Future<Output = Result<String, BuildError>> + Send;
}

impl JenkinsBuildPush for JenkinsSettings {
    /// Runs `b`'s job to push `target` (`registry/repo:version`) and waits
    /// for it. Returns an empty digest: the job pushed, the registry tells.
    async fn build_push(
        &self,
        b: &Build,
        version: &str,
        target: &str,
    ) -> Result<String, BuildError> {
        let job = b.job.as_deref().ok_or_else(|| {
            BuildError::Invalid(format!("{}: {}.job is not set", b.image, b.origin))
        })?;
        let fail = |message: String| BuildError::Jenkins {
            image: b.image.clone(),
            job: job.to_string(),
            message,
        };
        let deadline = Instant::now() + self.timeout;
        let shown_timeout = humantime::format_duration(self.timeout).to_string();
        let timed_out = |what: String| {
            fail(format!(
                "{what} after {shown_timeout} (builders.jenkins.timeout)"
            ))
        };
        let session = Session::open(Endpoint {
            url: &self.url,
            user: self.user.as_deref(),
            token: self.token.as_deref(),
            crumb: self.crumb,
            timeout: REQUEST_TIMEOUT.min(self.timeout),
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let mut parameters = vec![
            ("IMAGE".to_string(), b.image.clone()),
            ("VERSION".to_string(), version.to_string()),
            ("TARGET".to_string(), target.to_string()),
            // As every local executor: no layer cache, bases pulled, so a
            // rebuild installs the distribution's current packages. A job
            // that doesn't define it ignores it; a build's own
            // `parameters` may set it otherwise.
            ("NO_CACHE".to_string(), "true".to_string()),
        ];
        parameters.extend(b.parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
        let location = session
            .start(job, &parameters)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let item = location
            .as_deref()
            .and_then(QueueItem::from_location)
            .ok_or_else(|| {
                fail(format!(
                    "Jenkins {} started it without naming its queue item (Location {:?}); \
                     Jenkins 1.519 or later is needed",
                    session.shown(),
                    location.unwrap_or_default()
                ))
            })?;
        tracing::info!(image = %b.image, job, queue_item = item.id, %target, "Jenkins build queued");
        // A poll that fails for a moment (Jenkins restarting, a proxy's
        // 502) must not fail an hour-long build: a few in a row are
        // tolerated; an answer that cannot change (401, 403, 404) is not.
        let mut misses = 0;
        let tolerate = |misses: &mut u32, e: JenkinsError| -> Result<(), BuildError> {
            let transient = e.status().is_none_or(|s| s == 429 || s >= 500);
            *misses += 1;
            if !transient || *misses > MAX_MISSES || Instant::now() >= deadline {
                return Err(fail(e.to_string()));
            }
            tracing::warn!(image = %b.image, job, error = %e, "Jenkins poll failed; trying again");
            Ok(())
        };
        // The queue item, until it became a build.
        let (number, url) = loop {
            let state = match session.queue_item(&item).await {
                Ok(s) => {
                    misses = 0;
                    s
                }
                Err(e) => {
                    tolerate(&mut misses, e)?;
                    tokio::time::sleep(self.poll_interval.min(remaining(deadline))).await;
                    continue;
                }
            };
            match state {
                QueueState::Started { number, url } => break (number, url),
                QueueState::Cancelled => {
                    return Err(fail(format!(
                        "queue item {} was cancelled before it started",
                        item.id
                    )));
                }
                QueueState::Waiting(why) => {
                    if Instant::now() >= deadline {
                        return Err(timed_out(format!(
                            "still queued ({})",
                            why.unwrap_or_else(|| "no reason given".into())
                        )));
                    }
                }
            }
            tokio::time::sleep(self.poll_interval.min(remaining(deadline))).await;
        };
        tracing::info!(image = %b.image, job, build = number, %url, "Jenkins build started");
        // The build, until it finished.
        loop {
            let state = match session.build(job, number).await {
                Ok(s) => {
                    misses = 0;
                    s
                }
                Err(e) => {
                    tolerate(&mut misses, e)?;
                    tokio::time::sleep(self.poll_interval.min(remaining(deadline))).await;
                    continue;
                }
            };
            if !state.building {
                return match state.result.as_deref() {
                    Some("SUCCESS") => Ok(String::new()),
                    other => Err(fail(format!(
                        "build #{number} ended {}: {url}",
                        other.unwrap_or("without a result")
                    ))),
                };
            }
            if Instant::now() >= deadline {
                return Err(timed_out(format!("build #{number} still running ({url})")));
            }
            tokio::time::sleep(self.poll_interval.min(remaining(deadline))).await;
        }
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
