//! `GET /metrics`, `GET /readyz`, and the Prometheus recorder behind them.
//!
//! The layers count through the `metrics` facade; a long-running command
//! installs this recorder once (building a router does), and until then
//! their counting is a no-op. Histograms have fixed buckets: seconds-long
//! work below a minute, and wider ones for deliveries, rebuilds and
//! roll-outs, which take minutes to hours.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use freshen_app::App;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::routes::AppState;

/// Webhook requests: `kind` (the receiver kind, or `unknown`), `outcome`.
pub(crate) const HOOK_REQUESTS: &str = "freshen_hook_requests_total";

/// How long `/readyz` waits for the store, and a scrape for its gauges.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often histograms' samples are folded into their buckets when
/// nobody scrapes (they would pile up in memory otherwise).
const UPKEEP: Duration = Duration::from_secs(5);

/// Most `_seconds` histograms: a request, a check, a scan.
const SHORT: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// One delivery attempt: a webhook in milliseconds, a cascade in hours.
const ATTEMPT: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];
/// From queued to delivered: backoffs and approvals included.
const LATENCY: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];
/// Builds, runs and roll-outs: minutes to hours.
const LONG: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing it (once per process) as the
/// `metrics` facade's global recorder, with every layer's metrics
/// described. Needs a Tokio runtime (for the upkeep task).
pub(crate) fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = |b: PrometheusBuilder, m: Matcher, v: &[f64]| {
            b.set_buckets_for_metric(m, v)
                .expect("bucket lists are not empty")
        };
        let mut b = buckets(
            PrometheusBuilder::new(),
            Matcher::Suffix("_seconds".into()),
            SHORT,
        );
        b = buckets(
            b,
            Matcher::Full(freshen_app::metric_names::DELIVERY_DURATION.into()),
            ATTEMPT,
        );
        b = buckets(
            b,
            Matcher::Full(freshen_app::metric_names::DELIVERY_LATENCY.into()),
            LATENCY,
        );
        for long in freshen_app::metric_names::LONG {
            b = buckets(b, Matcher::Full((*long).into()), LONG);
        }
        let recorder = b.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // An embedder installed its own: the layers count there.
            tracing::warn!("a metrics recorder is installed already: /metrics shows only its own");
        }
        freshen_app::register_metrics();
        metrics::describe_counter!(
            HOOK_REQUESTS,
            "Webhook requests, by receiver kind and outcome."
        );
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP).await;
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// A webhook request of receiver kind `kind` ended `outcome`.
pub(crate) fn hook(kind: &'static str, outcome: &'static str) {
    metrics::counter!(HOOK_REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
}

impl FromRef<AppState> for Arc<App> {
    fn from_ref(st: &AppState) -> Arc<App> {
        st.app.clone()
    }
}

/// `GET /metrics`: the gauges read from the store (when it answers in
/// time), then everything counted, in the Prometheus text format.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let handle = install();
    match tokio::time::timeout(STORE_TIMEOUT, app.refresh_gauges()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: the store's gauges could not be read"),
        Err(_) => tracing::warn!(
            "metrics: the store did not answer within {}s; its gauges are stale",
            STORE_TIMEOUT.as_secs()
        ),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// `GET /readyz`: 200 when the store answers a trivial query in time and
/// holds every migration; 503 with the reason otherwise.
pub(crate) async fn readyz(State(app): State<Arc<App>>) -> Response {
    let reason = match tokio::time::timeout(STORE_TIMEOUT, app.ready()).await {
        Ok(Ok(())) => return axum::Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "the database did not answer within {}s",
            STORE_TIMEOUT.as_secs()
        ),
    };
    tracing::warn!(%reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "status": "not ready", "reason": reason })),
    )
        .into_response()
}

/// The router of `freshen watch --metrics`: `/metrics`, `/healthz` and
/// `/readyz` only.
pub(crate) fn router(app: Arc<App>) -> Router {
    install();
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::routes::healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_counts_render_as_prometheus_text() {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            hook("registry", "accepted");
            hook("registry", "accepted");
            hook("dockerhub", "unauthorised");
        });
        let text = recorder.handle().render();
        assert!(
            text.contains(
                "freshen_hook_requests_total{kind=\"registry\",outcome=\"accepted\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("{kind=\"dockerhub\",outcome=\"unauthorised\"} 1\n"),
            "{text}"
        );
    }
}
