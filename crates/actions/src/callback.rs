//! Docker Hub callbacks: once the work a push set off has ended, the
//! outcome is posted to the `callback_url` Docker Hub sent with the push.
//!
//! The callback is a delivery of the push's change event like any other,
//! under the reserved trigger [`HUB_CALLBACK`], so it survives restarts. It
//! waits (without counting attempts) while the event's other deliveries are
//! pending; then it posts `success` when they were all delivered, `failure`
//! when one gave up, and `error` when they outlast the receiver's
//! `callback.max_wait`.
//!
//! A `callback_url` is a capability (anyone holding it can report on the
//! repository): it is stored in the outbox row but never logged or shown;
//! messages name its host only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use freshen_receive::CallbackBody;
use freshen_store::{Delivery, DeliveryState, Store};
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::jenkins::{QueueItem, QueueState, Session};
use crate::targets::{Ack, DeliveryError, JenkinsEndpoint as _, TriggerSpec};

/// The reserved trigger name of Docker Hub callbacks; no trigger under
/// `triggers:` may take it. Defined with the trigger specs
/// (`freshen-settings`), which the config checks it against.
pub use freshen_settings::HUB_CALLBACK;

/// How often a waiting callback looks at the event's other deliveries.
const POLL: Duration = Duration::from_secs(5);

/// A callback delivery's payload. `Debug` shows the URL's host only.
#[derive(Clone, Serialize, Deserialize)]
pub struct CallbackPayload {
    /// Where to post; checked against the receiver's allowlist on receipt.
    pub url: String,
    /// The `context` posted.
    pub context: String,
    /// The `target_url` posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// After this, stop waiting and post `error`.
    pub deadline: DateTime<Utc>,
    /// The tag pushed, for the description.
    pub reference: String,
}

impl std::fmt::Debug for CallbackPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackPayload")
            .field("url", &format_args!("{} (path redacted)", host(&self.url)))
            .field("context", &self.context)
            .field("target_url", &self.target_url)
            .field("deadline", &self.deadline)
            .field("reference", &self.reference)
            .finish()
    }
}

/// A delivery's payload as shown to users: a callback's URL (a
/// capability) reduced to its host.
pub fn shown_payload(trigger: &str, payload: &serde_json::Value) -> serde_json::Value {
    let mut p = payload.clone();
    if trigger == HUB_CALLBACK
        && let Some(url) = p.get_mut("url")
    {
        let h = host(url.as_str().unwrap_or_default());
        *url = format!("(redacted: a callback URL on {h})").into();
    }
    p
}

/// What one attempt of a callback did.
pub(crate) enum Step {
    /// Posted; the outcome is the acknowledgement stored.
    Sent(Ack),
    /// The event's other deliveries are still pending: look again at this time.
    Wait(DateTime<Utc>),
}

/// Where one of the event's other deliveries stands, for the callback.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Work {
    /// Not done yet: pending, or a Jenkins build queued or running.
    Running,
    /// Done: the trigger's name (and build).
    Done(String),
    /// Gave up, or its build did not succeed: the trigger's name and a
    /// word on why (never an error's text: it names internal hosts).
    Failed(String),
}

/// Posts the outcome of `d`'s event, or says when to look again.
pub(crate) async fn attempt(
    store: &Store,
    triggers: &BTreeMap<String, TriggerSpec>,
    d: &Delivery,
) -> Result<Step, DeliveryError> {
    let p: CallbackPayload =
        serde_json::from_value(d.payload.clone()).map_err(|e| DeliveryError {
            message: format!("callback delivery {}: unreadable payload: {e}", d.id),
            retryable: false,
        })?;
    let others: Vec<Delivery> = store
        .event_deliveries(&d.event_id)
        .await
        .map_err(|e| DeliveryError {
            message: format!("reading the event's deliveries: {e}"),
            retryable: true,
        })?
        .into_iter()
        .filter(|o| o.id != d.id && o.trigger != HUB_CALLBACK)
        .collect();
    let mut works = Vec::with_capacity(others.len());
    for o in &others {
        works.push(work_of(o, triggers).await);
    }
    let now = Utc::now();
    let body = match outcome(&works, &p, now) {
        Some(body) => body,
        None => {
            return Ok(Step::Wait(
                now + POLL.min((p.deadline - now).to_std().unwrap_or(POLL)),
            ));
        }
    };
    post(&p.url, &body).await?;
    tracing::info!(event = %d.event_id, state = body.state, host = %host(&p.url), "Docker Hub callback posted");
    Ok(Step::Sent(Some(format!(
        "{}: {}",
        body.state, body.description
    ))))
}

/// Where `d` stands. A delivered Jenkins trigger is done when the build
/// it queued has ended: the queue item (its acknowledgement) is followed
/// to the build and its result.
async fn work_of(d: &Delivery, triggers: &BTreeMap<String, TriggerSpec>) -> Work {
    match d.state {
        DeliveryState::Pending => return Work::Running,
        DeliveryState::Failed => return Work::Failed(format!("{} gave up", d.trigger)),
        DeliveryState::Delivered => {}
    }
    let item = d.response.as_deref().and_then(QueueItem::from_location);
    let (Some(TriggerSpec::Jenkins(j)), Some(item)) = (triggers.get(&d.trigger), item) else {
        return Work::Done(d.trigger.clone());
    };
    let build = async {
        let session = Session::open(j.endpoint(false)).await?;
        match session.queue_item(&item).await? {
            QueueState::Waiting(_) => Ok::<_, crate::jenkins::JenkinsError>(Work::Running),
            QueueState::Cancelled => Ok(Work::Failed(format!(
                "{}: the build was cancelled",
                d.trigger
            ))),
            QueueState::Started { number, .. } => {
                let b = session.build(&j.job, number).await?;
                Ok(match (b.building, b.result.as_deref()) {
                    (true, _) | (false, None) => Work::Running,
                    (false, Some("SUCCESS")) => Work::Done(format!("{} #{number}", d.trigger)),
                    (false, Some(r)) => Work::Failed(format!("{} #{number} {r}", d.trigger)),
                })
            }
        }
    };
    match build.await {
        Ok(w) => w,
        Err(e) => {
            // Jenkins unreachable for now: look again, until the deadline.
            tracing::debug!(trigger = %d.trigger, error = %e, "following a Jenkins build for a callback");
            Work::Running
        }
    }
}

/// The body to post given where the other deliveries stand, or `None` to
/// keep waiting.
fn outcome(works: &[Work], p: &CallbackPayload, now: DateTime<Utc>) -> Option<CallbackBody> {
    let failed: Vec<&str> = works
        .iter()
        .filter_map(|w| match w {
            Work::Failed(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    let running = works.iter().filter(|w| **w == Work::Running).count();
    let done: Vec<&str> = works
        .iter()
        .filter_map(|w| match w {
            Work::Done(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let (state, description) = if !failed.is_empty() {
        (
            "failure",
            format!(
                "{}: {} of {} trigger(s) failed: {}",
                p.reference,
                failed.len(),
                works.len(),
                failed.join(", ")
            ),
        )
    } else if running == 0 {
        let description = if done.is_empty() {
            format!("{}: nothing to do", p.reference)
        } else {
            format!("{}: {} done", p.reference, done.join(", "))
        };
        ("success", description)
    } else if now < p.deadline {
        return None;
    } else {
        (
            "error",
            format!(
                "{}: {running} trigger(s) still running or retrying at the callback deadline",
                p.reference
            ),
        )
    };
    Some(CallbackBody {
        state,
        // Docker Hub shows a line, not a log.
        description: shorten(description, 250),
        context: p.context.clone(),
        target_url: p.target_url.clone(),
    })
}

/// Posts `body` to `url` (JSON, no redirects, 30 s); a non-2xx answer is
/// retried by the outbox. Errors name the host, never the URL.
pub async fn post(url: &str, body: &CallbackBody) -> Result<(), DeliveryError> {
    let client = crate::targets::http_client(None)?;
    let shown = format!("callback to {}", host(url));
    let resp = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).expect("the callback body serialises"))
        .send()
        .await
        .map_err(|e| DeliveryError {
            // reqwest's error text quotes the URL: keep only its kind.
            message: format!(
                "{shown}: {}",
                if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                }
            ),
            retryable: true,
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(DeliveryError {
            message: format!("{shown}: HTTP {}", resp.status().as_u16()),
            retryable: true,
        })
    }
}

/// The URL's host (and port), for messages.
fn host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| "an unparsable URL".into())
}

/// `s` cut to at most `max` bytes (on a character boundary), `...` marking a cut.
pub fn shorten(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(deadline: DateTime<Utc>) -> CallbackPayload {
        CallbackPayload {
            url: "https://registry.hub.docker.com/u/a/b/hook/x/".into(),
            context: "freshen".into(),
            target_url: None,
            deadline,
            reference: "docker.io/a/b:latest".into(),
        }
    }

    #[test]
    fn waits_then_reports() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        let done = |n: &str| Work::Done(n.into());
        assert!(outcome(&[Work::Running], &payload(later), now).is_none());
        let late = outcome(&[Work::Running], &payload(now), now).unwrap();
        assert_eq!(late.state, "error");
        let ok = outcome(&[done("jenkins #4"), done("cascade")], &payload(later), now).unwrap();
        assert_eq!(ok.state, "success");
        assert_eq!(
            ok.description,
            "docker.io/a/b:latest: jenkins #4, cascade done"
        );
        // A failure is reported without waiting for the rest; trigger
        // names only, never error text.
        let bad = outcome(
            &[Work::Failed("jenkins #4 FAILURE".into()), Work::Running],
            &payload(later),
            now,
        )
        .unwrap();
        assert_eq!(bad.state, "failure");
        assert_eq!(
            bad.description,
            "docker.io/a/b:latest: 1 of 2 trigger(s) failed: jenkins #4 FAILURE"
        );
        assert_eq!(outcome(&[], &payload(later), now).unwrap().state, "success");
    }

    #[test]
    fn messages_name_the_host_only() {
        assert_eq!(
            host("https://registry.hub.docker.com/u/a/b/hook/secret/"),
            "registry.hub.docker.com"
        );
        assert_eq!(host("http://127.0.0.1:9/x"), "127.0.0.1:9");
        assert_eq!(shorten("é".repeat(200), 250).len(), 249);
    }
}
