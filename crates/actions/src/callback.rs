//! Docker Hub callbacks, from the webhook that asks for one to the post:
//! once the work a push set off has ended, the outcome is posted to the
//! `callback_url` Docker Hub sent with the push.
//!
//! On receipt ([`HubCallback`], called by the webhook intake): the URL is
//! checked against the receiver's `callback.allow` prefixes; the callback
//! then rides the push's change event (a delivery written in the event's
//! transaction), else joins the event of the digest the tag already had,
//! else, when no event is known, is posted at once.
//!
//! Queued, the callback is a delivery of the push's change event like any
//! other, under the reserved trigger [`HUB_CALLBACK`], so it survives
//! restarts. It waits (without counting attempts) while the event's other
//! deliveries are pending; then it posts `success` when they were all
//! delivered, `failure` when one gave up, and `error` when they outlast the
//! receiver's `callback.max_wait`.
//!
//! A `callback_url` is a capability (anyone holding it can report on the
//! repository): it is stored in the outbox row but never logged or shown;
//! messages name its host only.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use freshen_jenkins::{JenkinsError, QueueItem, QueueState, Session};
use freshen_receive::{CallbackSpec, Kind, Notice, ReceiverSpec};
use freshen_store::{Delivery, DeliveryState, Store};
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

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

/// What Docker Hub reads from a callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackBody {
    /// `success`, `failure` or `error`.
    pub state: &'static str,
    /// One line on the outcome.
    pub description: String,
    /// Who reports (the receiver's `callback.context`).
    pub context: String,
    /// Where to read more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// The callback URL, parsed, when it starts with one of the `allow`
/// prefixes; else why not.
pub fn allowed_callback(callback_url: &str, allow: &[String]) -> Result<url::Url, String> {
    let u = url::Url::parse(callback_url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") || !u.username().is_empty() || u.password().is_some()
    {
        return Err("only http(s) URLs without user info are called".into());
    }
    let s = u.as_str();
    if allow
        .iter()
        .filter_map(|a| freshen_receive::callback_prefix(a).ok())
        .any(|p| s.starts_with(&p))
    {
        Ok(u)
    } else {
        Err(format!(
            "{} is not under an allowed prefix (receivers.*.callback.allow)",
            u.origin().ascii_serialization()
        ))
    }
}

/// A Docker Hub push's callback, on receipt: where to post, what the
/// receiver says of it, whether the URL may be called, and the change
/// event its delivery rides once written.
pub struct HubCallback {
    url: String,
    spec: CallbackSpec,
    allowed: Result<(), String>,
    rode: Option<String>,
}

impl std::fmt::Debug for HubCallback {
    // The URL is a capability: its host only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCallback")
            .field("url", &format_args!("{} (path redacted)", host(&self.url)))
            .field("context", &self.spec.context)
            .field("allowed", &self.allowed)
            .field("rode", &self.rode)
            .finish()
    }
}

/// What a pushed tag came to, as far as its callback needs to know.
#[derive(Clone, Copy, Debug)]
pub struct PushedTag<'a> {
    /// The normalised reference.
    pub reference: &'a str,
    /// The tag's digest as read from the registry, if it was read.
    pub digest: Option<&'a str>,
    /// `fired`, `quiet`, `unchanged`, `ignored` or `failed`.
    pub outcome: &'a str,
    /// Why, for `quiet`, `ignored` and `failed`.
    pub reason: Option<&'a str>,
}

/// What became of a callback on receipt, for the webhook's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// `queued: ...`, `posting <state>`, `refused: <why>` or `not queued: ...`.
    pub said: String,
    /// The callback could not be queued: the sender should try again.
    pub retry: bool,
}

impl HubCallback {
    /// The callback `notice` asks of `receiver`: a Docker Hub receiver
    /// with callbacks on, and a `callback_url` in the payload. The URL is
    /// checked against the receiver's allowlist here, once.
    pub fn requested(receiver: &ReceiverSpec, notice: &Notice) -> Option<HubCallback> {
        let (Some(url), Some(spec)) = (&notice.callback_url, receiver.callback()) else {
            return None;
        };
        if receiver.kind != Kind::Dockerhub {
            return None;
        }
        let allowed = allowed_callback(url, &spec.allow).map(|_| ());
        Some(HubCallback {
            url: url.clone(),
            spec,
            allowed,
            rode: None,
        })
    }

    /// The delivery to write in the transaction of `reference`'s change
    /// event, if the push makes one: the callback then waits for the
    /// event's other deliveries. None when the URL is refused, or when a
    /// delivery already rode an event (Docker Hub names one tag per call).
    pub fn rider(&self, reference: &str) -> Vec<(String, serde_json::Value)> {
        if self.allowed.is_err() || self.rode.is_some() {
            return Vec::new();
        }
        vec![(
            HUB_CALLBACK.to_string(),
            payload(&self.url, &self.spec, reference),
        )]
    }

    /// Notes that the [`HubCallback::rider`] delivery was written with
    /// change event `event_id`.
    pub fn rode(&mut self, event_id: &str) {
        self.rode = Some(event_id.to_string());
    }

    /// Settles the callback once the request's pushes were checked: refused
    /// (the URL is not allowed), queued with the event it rode, else queued
    /// on the change event of the digest a tag now points at (an earlier
    /// one, when a poll saw the digest first), else posted at once.
    pub async fn settle(self, store: &Store, pushes: &[PushedTag<'_>]) -> Settled {
        let settled = |said: String, retry| Settled { said, retry };
        if let Err(why) = &self.allowed {
            tracing::warn!(reason = %why, "refused to call a callback_url");
            return settled(format!("refused: {why}"), false);
        }
        if let Some(event) = &self.rode {
            return settled(
                format!("queued: posted once event {event}'s deliveries end"),
                false,
            );
        }
        for p in pushes {
            let Some(digest) = p.digest else { continue };
            let event = match store.events(Some(p.reference), 1).await {
                Ok(mut list) => list.pop().filter(|e| e.new_digest == digest),
                Err(e) => {
                    tracing::warn!(error = %e, "could not look up the push's event");
                    return settled("not queued: the store failed".into(), true);
                }
            };
            let Some(event) = event else { continue };
            let value = payload(&self.url, &self.spec, p.reference);
            return match store
                .enqueue(&event.id, &[HUB_CALLBACK.to_string()], &value, Utc::now())
                .await
            {
                Ok(()) => settled(
                    format!("queued: posted once event {}'s deliveries end", event.id),
                    false,
                ),
                Err(e) => {
                    tracing::warn!(event = %event.id, error = %e, "could not queue the callback");
                    settled("not queued: the store failed".into(), true)
                }
            };
        }
        // Nothing to wait for: post now, without holding up the answer.
        let body = immediate(pushes, &self.spec);
        let state = body.state;
        let url = self.url;
        tokio::spawn(async move {
            if let Err(e) = post(&url, &body).await {
                tracing::warn!(error = %e.message, "posting the callback failed");
            }
        });
        settled(format!("posting {state}"), false)
    }
}

/// A callback delivery's payload for `reference`.
fn payload(url: &str, spec: &CallbackSpec, reference: &str) -> serde_json::Value {
    let payload = CallbackPayload {
        url: url.to_string(),
        context: spec.context.clone(),
        target_url: spec.target_url.clone(),
        deadline: Utc::now()
            + chrono::Duration::from_std(spec.max_wait).unwrap_or(chrono::Duration::MAX),
        reference: reference.to_string(),
    };
    serde_json::to_value(&payload).expect("the payload serialises")
}

/// The callback for a request whose pushes set nothing off.
fn immediate(pushes: &[PushedTag<'_>], spec: &CallbackSpec) -> CallbackBody {
    let failed: Vec<&PushedTag<'_>> = pushes.iter().filter(|p| p.outcome == "failed").collect();
    // Docker Hub is a third party: no error text (it names internal hosts).
    let (state, description) = if let Some(f) = failed.first() {
        (
            "error",
            format!(
                "{}: could not be read from its registry (freshen's log has why)",
                f.reference
            ),
        )
    } else {
        let parts: Vec<String> = pushes
            .iter()
            .map(|p| match p.outcome {
                "unchanged" => format!("{}: digest already known, nothing to do", p.reference),
                other => format!(
                    "{}: {other}{}",
                    p.reference,
                    p.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            })
            .collect();
        (
            "success",
            if parts.is_empty() {
                "no tag pushed".into()
            } else {
                parts.join("; ")
            },
        )
    };
    CallbackBody {
        state,
        description: shorten(description, 250),
        context: spec.context.clone(),
        target_url: spec.target_url.clone(),
    }
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
            QueueState::Waiting(_) => Ok::<_, JenkinsError>(Work::Running),
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
async fn post(url: &str, body: &CallbackBody) -> Result<(), DeliveryError> {
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
fn shorten(mut s: String, max: usize) -> String {
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

    #[test]
    fn on_receipt_rides_one_event_or_says_what_came_of_the_push() {
        let receiver: ReceiverSpec = serde_json::from_value(serde_json::json!({
            "kind": "dockerhub", "key": "hub-key-0123456789",
            "callback": {"allow": ["http://127.0.0.1:9999/hooks"]}
        }))
        .unwrap();
        let notice = |url: &str| Notice {
            callback_url: Some(url.into()),
            ..Notice::default()
        };
        let mut c =
            HubCallback::requested(&receiver, &notice("http://127.0.0.1:9999/hooks/1")).unwrap();
        let rider = c.rider("docker.io/a/b:latest");
        assert_eq!(rider.len(), 1);
        assert_eq!(rider[0].0, HUB_CALLBACK);
        assert!(!format!("{c:?}").contains("hooks/1"));
        c.rode("ev-1");
        assert!(c.rider("docker.io/a/b:latest").is_empty());
        let refused =
            HubCallback::requested(&receiver, &notice("http://10.0.0.1/hooks/1")).unwrap();
        assert!(refused.rider("docker.io/a/b:latest").is_empty());
        assert!(HubCallback::requested(&receiver, &Notice::default()).is_none());

        let spec = CallbackSpec::default();
        let tag = |reference, outcome, reason| PushedTag {
            reference,
            digest: None,
            outcome,
            reason,
        };
        let body = immediate(&[tag("docker.io/a/b:1", "unchanged", None)], &spec);
        assert_eq!(body.state, "success");
        assert_eq!(
            body.description,
            "docker.io/a/b:1: digest already known, nothing to do"
        );
        let body = immediate(
            &[
                tag("docker.io/a/b:1", "ignored", Some("no watch")),
                tag("docker.io/a/b:2", "failed", Some("registry.internal: 503")),
            ],
            &spec,
        );
        assert_eq!(body.state, "error");
        assert_eq!(
            body.description,
            "docker.io/a/b:2: could not be read from its registry (freshen's log has why)"
        );
        assert_eq!(immediate(&[], &spec).description, "no tag pushed");
    }

    #[test]
    fn only_allowed_prefixes() {
        let hub = [freshen_receive::DOCKER_HUB_CALLBACKS.to_string()];
        let ok = "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/";
        assert!(allowed_callback(ok, &hub).is_ok());
        for bad in [
            "https://registry.hub.docker.com.evil.example/u/x/",
            "http://registry.hub.docker.com/u/x/",
            "https://169.254.169.254/latest/meta-data/",
            "https://user@registry.hub.docker.com/u/x/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(allowed_callback(bad, &hub).is_err(), "{bad}");
        }
        let local = ["http://127.0.0.1:9999/hooks".to_string()];
        assert!(allowed_callback("http://127.0.0.1:9999/hooks/1", &local).is_ok());
        assert!(allowed_callback("http://127.0.0.1:9999/hooksX", &local).is_err());
        assert!(allowed_callback("http://127.0.0.1:9998/hooks/1", &local).is_err());
    }

    #[test]
    fn the_body_is_docker_hubs() {
        let b = CallbackBody {
            state: "success",
            description: "2 triggers delivered".into(),
            context: "freshen".into(),
            target_url: None,
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"state": "success", "description": "2 triggers delivered", "context": "freshen"})
        );
    }
}
