//! Watch streams.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::resources::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::server::Ctx;
use super::{Key, Shared, with_type};

/// A watch: newline-delimited JSON events. With `sendInitialEvents=true`
/// (client-go's streaming list) the current objects come as ADDED followed
/// by a BOOKMARK annotated `k8s.io/initial-events-end`; without a
/// `resourceVersion` (or with `0`) they come as ADDED; from a
/// resourceVersion, every change after it. Open until `timeoutSeconds`,
/// the client leaving, or the double stopping.
pub(super) fn watch(
    ctx: &Ctx<'_>,
    res: &'static Resource,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Response {
    let ns = ns.map(str::to_string);
    let matches = move |key: &Key, object: &Value| {
        key.0 == res.plural
            && ns.as_ref().is_none_or(|n| *n == key.1)
            && labels.matches_object(object)
            && fields.matches_object(object)
    };
    let mut rx = ctx.shared.changes.subscribe();
    rx.borrow_and_update();
    let send_initial = ctx.param("sendInitialEvents") == Some("true");
    let from = ctx.param("resourceVersion").filter(|v| *v != "0");
    let mut pending = VecDeque::new();
    let cursor = {
        let d = ctx.shared.lock();
        if send_initial || from.is_none() {
            for (k, o) in &d.objects {
                if matches(k, o) {
                    pending.push_back(event_line("ADDED", &with_type(res, o)));
                }
            }
            if send_initial {
                let bookmark = json!({
                    "kind": res.kind, "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": d.rv.to_string(),
                                 "annotations": {"k8s.io/initial-events-end": "true"}},
                });
                pending.push_back(event_line("BOOKMARK", &bookmark));
            }
            d.rv
        } else {
            from.and_then(|v| v.parse().ok()).unwrap_or(d.rv)
        }
    };
    let deadline = ctx
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
    let state = WatchState {
        shared: ctx.shared.clone(),
        matches: Box::new(matches),
        cursor,
        pending,
        deadline,
        rx,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                return Some((Ok::<_, std::io::Error>(line), st));
            }
            if st.shared.stopped.load(Ordering::SeqCst) {
                return None;
            }
            st.rx.borrow_and_update();
            {
                let d = st.shared.lock();
                let start = d.events.partition_point(|e| e.rv <= st.cursor);
                for e in &d.events[start..] {
                    if (st.matches)(&e.key, &e.object) {
                        st.pending.push_back(event_line(e.kind, &e.object));
                    }
                }
                st.cursor = d.rv;
            }
            if !st.pending.is_empty() {
                continue;
            }
            let changed = st.rx.changed();
            let woke = match st.deadline {
                Some(at) => tokio::time::timeout_at(at, changed).await.ok(),
                None => Some(changed.await),
            };
            if !matches!(woke, Some(Ok(()))) {
                return None;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("building a response")
}

type Matcher = Box<dyn Fn(&Key, &Value) -> bool + Send>;

struct WatchState {
    shared: Arc<Shared>,
    matches: Matcher,
    cursor: u64,
    pending: VecDeque<Bytes>,
    deadline: Option<tokio::time::Instant>,
    rx: tokio::sync::watch::Receiver<u64>,
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}
