//! `POST /hooks/{kind}/{key}`: registry webhooks.
//!
//! In order, so that nothing is read or stored for a caller who is not a
//! receiver: the declared size (413), the body within the limit (413), the
//! receiver's secrets (401, the same answer whatever was wrong, with the
//! reason in the log and a metric), the payload (400 with the reason), and
//! then the application's intake (200, or 502 when a tag could not be checked, so
//! the sender retries). The path's key is a secret: logs show `/hooks/{kind}/…`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use freshen_app::App;
use freshen_receive::{Gate, Headers, Kind, Notice, Presented, ReceiverSpec};

use crate::error::ApiError;
use crate::routes::{AppState, declared_too_large, drain, drain_allowance, read_body, too_large};

/// The configured receivers, and the application their notices go to.
pub(crate) struct Hooks {
    gate: Gate,
    specs: BTreeMap<String, ReceiverSpec>,
    app: Arc<App>,
}

impl Hooks {
    /// Receivers `specs` (validated by the app), handled by `app`.
    pub(crate) fn new(specs: BTreeMap<String, ReceiverSpec>, app: Arc<App>) -> Hooks {
        Hooks {
            gate: Gate::new(&specs),
            specs,
            app,
        }
    }
}

/// What the app made of a notice: the JSON body, and whether the sender
/// should retry.
struct HookAnswer {
    body: serde_json::Value,
    retry: bool,
}

/// Hands `notice`, which receiver `receiver` admitted, to the app.
async fn take(app: &App, receiver: &str, notice: Notice) -> HookAnswer {
    match app.take_notice(receiver, notice).await {
        Ok(taken) => HookAnswer {
            retry: taken.retry(),
            body: serde_json::to_value(&taken).expect("the answer serialises"),
        },
        // The receivers were validated when the router was built, so this
        // is not expected; the sender may retry.
        Err(e) => HookAnswer {
            retry: true,
            body: serde_json::json!({ "error": e.to_string() }),
        },
    }
}

/// The path with a hook's key hidden, for logs.
pub(crate) fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/hooks/") {
        Some(rest) => {
            let kind = rest.split('/').next().unwrap_or_default();
            format!("/hooks/{kind}/…").into()
        }
        None => path.into(),
    }
}

fn unauthorised() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "not authorised")
}

/// `POST /hooks/{kind}/{key}`.
pub(crate) async fn receive(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let mut segments = path
        .strip_prefix("/hooks/")
        .unwrap_or_default()
        .splitn(2, '/');
    let (kind, key) = (
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
    );
    let Some(kind) = Kind::parse(kind) else {
        crate::telemetry::hook("unknown", "not_found");
        return refuse(
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no receiver kind {kind:?}: one of {}",
                    Kind::ALL.map(Kind::as_str).join(", ")
                ),
            ),
            body,
            st.max_body_bytes,
        )
        .await;
    };
    let label = kind.as_str();
    if declared_too_large(&parts.headers, st.max_body_bytes) {
        crate::telemetry::hook(label, "too_large");
        return refuse(too_large(st.max_body_bytes), body, st.max_body_bytes).await;
    }
    let bytes = match read_body(body, st.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            crate::telemetry::hook(label, "too_large");
            return e.into_response();
        }
    };
    let Some(hooks) = &st.hooks else {
        tracing::warn!(kind = label, "webhook refused: no receivers are configured");
        crate::telemetry::hook(label, "unauthorised");
        return unauthorised().into_response();
    };
    let presented = Presented {
        authorization: header_bytes(&parts.headers, header::AUTHORIZATION.as_str()),
        signature: header_bytes(&parts.headers, "x-freshen-signature")
            .or_else(|| header_bytes(&parts.headers, "x-hub-signature-256")),
    };
    let name = match hooks.gate.admit(kind, key, presented, &bytes) {
        Ok(name) => name.to_string(),
        Err(why) => {
            tracing::warn!(kind = label, reason = %why, "webhook refused");
            crate::telemetry::hook(label, "unauthorised");
            return unauthorised().into_response();
        }
    };
    let spec = &hooks.specs[&name];
    let hooks = hooks.clone();
    let text = |h: &str| parts.headers.get(h).and_then(|v| v.to_str().ok());
    let headers = Headers {
        ce_specversion: text("ce-specversion"),
        ce_type: text("ce-type"),
        ce_subject: text("ce-subject"),
    };
    let notice = match freshen_receive::parse(spec, headers, &bytes) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(receiver = %name, error = %e, "webhook payload refused");
            crate::telemetry::hook(label, "malformed");
            return ApiError::bad_request(format!("receiver {name:?}: {e}")).into_response();
        }
    };
    // In a task of its own: a sender that hangs up (its timeout) must not
    // cancel a check halfway; its retry then finds the work done.
    let answer = match tokio::spawn(async move { take(&hooks.app, &name, notice).await }).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "handling a webhook panicked");
            crate::telemetry::hook(label, "failed");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error handling the webhook",
            )
            .into_response();
        }
    };
    if answer.retry {
        crate::telemetry::hook(label, "failed");
        (StatusCode::BAD_GATEWAY, axum::Json(answer.body)).into_response()
    } else {
        crate::telemetry::hook(label, "accepted");
        axum::Json(answer.body).into_response()
    }
}

fn header_bytes<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(|v| v.as_bytes())
}

/// Answers `e` after draining some of the unread body, so the client sees
/// the answer rather than a reset.
async fn refuse(e: ApiError, body: Body, max: usize) -> Response {
    drain(body.into_data_stream(), drain_allowance(max)).await;
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_reach_logs() {
        assert_eq!(redacted_path("/hooks/registry/s3cret"), "/hooks/registry/…");
        assert_eq!(redacted_path("/images/debian"), "/images/debian");
    }
}
