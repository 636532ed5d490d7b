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

use crate::targets::{Ack, DeliveryError};

/// The reserved trigger name of Docker Hub callbacks; no trigger under
/// `triggers:` may take it.
pub const HUB_CALLBACK: &str = "dockerhub-callback";

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

/// Posts the outcome of `d`'s event, or says when to look again.
pub(crate) async fn attempt(store: &Store, d: &Delivery) -> Result<Step, DeliveryError> {
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
    let now = Utc::now();
    let body = match outcome(&others, &p, now) {
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

/// The body to post given the other deliveries, or `None` to keep waiting.
fn outcome(others: &[Delivery], p: &CallbackPayload, now: DateTime<Utc>) -> Option<CallbackBody> {
    let of = |state| others.iter().filter(move |o| o.state == state);
    let failed: Vec<&Delivery> = of(DeliveryState::Failed).collect();
    let pending = of(DeliveryState::Pending).count();
    let delivered: Vec<&str> = of(DeliveryState::Delivered)
        .map(|o| o.trigger.as_str())
        .collect();
    // Docker Hub is a third party: trigger names and counts only, never
    // an error's text (it names internal hosts).
    let (state, description) = if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|f| f.trigger.as_str()).collect();
        (
            "failure",
            format!(
                "{}: {} of {} trigger(s) gave up: {}",
                p.reference,
                failed.len(),
                others.len(),
                names.join(", ")
            ),
        )
    } else if pending == 0 {
        let description = if delivered.is_empty() {
            format!("{}: nothing to do", p.reference)
        } else {
            format!("{}: {} done", p.reference, delivered.join(", "))
        };
        ("success", description)
    } else if now < p.deadline {
        return None;
    } else {
        (
            "error",
            format!(
                "{}: {pending} trigger(s) still running or retrying at the callback deadline",
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

    fn delivery(id: i64, trigger: &str, state: DeliveryState, err: Option<&str>) -> Delivery {
        Delivery {
            id,
            event_id: "e".into(),
            trigger: trigger.into(),
            payload: serde_json::json!({}),
            state,
            attempts: 1,
            next_attempt_at: Utc::now(),
            last_error: err.map(str::to_string),
            response: None,
            created_at: Utc::now(),
            delivered_at: None,
        }
    }

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
        let pending = [delivery(1, "jenkins", DeliveryState::Pending, None)];
        assert!(outcome(&pending, &payload(later), now).is_none());
        let late = outcome(&pending, &payload(now), now).unwrap();
        assert_eq!(late.state, "error");
        let done = [
            delivery(1, "jenkins", DeliveryState::Delivered, None),
            delivery(2, "cascade", DeliveryState::Delivered, None),
        ];
        let ok = outcome(&done, &payload(later), now).unwrap();
        assert_eq!(ok.state, "success");
        assert_eq!(
            ok.description,
            "docker.io/a/b:latest: jenkins, cascade done"
        );
        let failed = [
            delivery(1, "jenkins", DeliveryState::Failed, Some("HTTP 500")),
            delivery(2, "cascade", DeliveryState::Pending, None),
        ];
        let bad = outcome(&failed, &payload(later), now).unwrap();
        assert_eq!(bad.state, "failure");
        // Trigger names only: error text names internal hosts.
        assert_eq!(
            bad.description,
            "docker.io/a/b:latest: 1 of 2 trigger(s) gave up: jenkins"
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
