//! Metrics and health end to end: `freshen watch --serve` does real work
//! (a baseline poll, a tag that is missing, a webhook-pushed change of a
//! real registry's tag read through the fault proxy with a 429, a delivery
//! to a receiver and one that fails, the inventory scan of the new digest,
//! an inventory rejudge), and `/metrics`, scraped with a real HTTP client
//! and parsed, moved by exactly that; the Grafana dashboard queries only
//! what is exported and covers every family. `freshen watch --metrics`
//! serves `/metrics`, `/healthz` and `/readyz` alone; `/readyz` is 503
//! when the migrations are missing and when the database is dropped. On
//! SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Env, http};
use freshen_testkit::{
    Db, Fault, FaultProxy, FreshDb, Registry, WebhookReceiver, both_stores, free_port,
};
use serde_json::{Value, json};

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (version 0.0.4): comments and blank
/// lines skipped, `name{k="v",...} value` or `name value`.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                // Our label values hold no `",` or escapes.
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// A scrape of `/metrics`.
struct Scrape(Vec<Sample>);

impl Scrape {
    async fn of(url: &str) -> Scrape {
        let r = http().get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            r.headers()
        );
        Scrape(parse(&r.text().await.unwrap()))
    }

    /// The sum of `name`'s samples whose labels include `labels`; `None`
    /// when no sample matches.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// Like [`Scrape::get`], 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    fn names(&self) -> BTreeSet<String> {
        self.0.iter().map(|s| s.name.clone()).collect()
    }
}

/// Waits for `/healthz` on `url`, or panics with the log.
async fn wait_healthy(env: &Env, url: &str, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http().get(format!("{url}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}/healthz never answered; log:\n{}",
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Scrapes until `what` holds, or panics with the log and the last scrape.
async fn scrape_until(
    env: &Env,
    url: &str,
    log: &str,
    what: &str,
    holds: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = Scrape::of(url).await;
        if holds(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "never: {what}; samples: {:#?}\nlog:\n{}",
            s.0.iter()
                .filter(|x| x.value != 0.0)
                .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
                .collect::<Vec<_>>(),
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The metric names a dashboard's queries use.
fn queried(dashboard: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(e)) = o.get("expr") {
                    out.push(e.clone());
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    assert!(!exprs.is_empty(), "the dashboard has no queries");
    let mut names = BTreeSet::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("freshen_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

/// A histogram's series names back to its family's.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Real work, then `/metrics` moved by exactly that work.
async fn pipeline_counted(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let proxy = FaultProxy::start(&reg.host()).await;
    let host = proxy.host();
    let v1 = push.push_image("app", "src-v1", "linux/amd64", "v1").await;
    let v2 = push.push_image("app", "src-v2", "linux/amd64", "v2").await;
    push.tag("app", &v1, "1").await;
    let hooks = WebhookReceiver::start("s").await;
    let env = Env::new(db).await;
    let port = free_port();
    let config = env.config(&format!(
        r#"
default_schedule: 1h
jitter: 0s
outbox: {{max_attempts: 1}}
watches:
  - {{ref: "{host}/app:1", on_change: [notify, broken]}}
  - {{ref: "{host}/app:missing"}}
triggers:
  notify:
    webhook: {{url: "{hooks}/notify", secret: s}}
  broken:
    webhook: {{url: "http://127.0.0.1:{closed}/gone"}}
receivers:
  ci:
    kind: generic
    key: a-generic-receiver-key
    registry: "{host}"
policies:
  alerts:
    images: ["{host}/elsewhere/*"]
    mode: thresholds
    thresholds: "high > 0"
    on_vulnerable: [notify]
rescan:
  schedule: 1h
"#,
        hooks = hooks.base_url(),
        closed = free_port(),
    ));
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}");
    let _watch = env.spawn(
        &[
            "watch",
            "--config",
            config.to_str().unwrap(),
            "--serve",
            &addr,
        ],
        "watch.log",
    );
    wait_healthy(&env, &url, "watch.log").await;

    // The first polls: a baseline, and a tag the registry doesn't have;
    // the rescan judged the (empty) inventory.
    let before = scrape_until(&env, &url, "watch.log", "the first polls", |s| {
        s.value(
            "freshen_checks_total",
            &[("source", "poll"), ("result", "new")],
        ) == 1.0
            && s.value(
                "freshen_checks_total",
                &[("source", "poll"), ("result", "error")],
            ) == 1.0
            && s.get("freshen_findings", &[("severity", "high")]).is_some()
    })
    .await;
    assert_eq!(
        before.get(
            "freshen_registry_errors_total",
            &[("registry", &host), ("kind", "not_found")]
        ),
        Some(1.0)
    );
    assert_eq!(
        before.value("freshen_checks_total", &[("result", "changed")]),
        0.0
    );
    assert_eq!(before.value("freshen_scans_total", &[]), 0.0);
    for severity in ["critical", "high", "medium", "low", "negligible", "unknown"] {
        assert_eq!(
            before.get("freshen_findings", &[("severity", severity)]),
            Some(0.0),
            "{severity}"
        );
    }

    // The tag moves; a webhook says so. Its HEAD meets a 429 first, then
    // an answer with a rate-limit budget.
    push.tag("app", &v2, "1").await;
    proxy.push_fault(Fault::TooMany {
        retry_after_secs: 1,
    });
    proxy.push_fault(Fault::RateLimitHeader("42;w=21600".into()));
    let refused = http()
        .post(format!("{url}/hooks/generic/not-the-key"))
        .json(&json!({"ref": format!("{host}/app:1")}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let answer: Value = http()
        .post(format!("{url}/hooks/generic/a-generic-receiver-key"))
        .json(&json!({"ref": format!("{host}/app:1")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    hooks.wait_for(1, Duration::from_secs(30)).await;
    let after = scrape_until(&env, &url, "watch.log", "both deliveries", |s| {
        s.value(
            "freshen_deliveries_total",
            &[("trigger", "broken"), ("result", "failed")],
        ) == 1.0
            && s.value(
                "freshen_deliveries_total",
                &[("trigger", "notify"), ("result", "delivered")],
            ) == 1.0
    })
    .await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    // Checks and changes.
    let webhook = ("source", "webhook");
    assert_eq!(
        moved("freshen_checks_total", &[webhook, ("result", "changed")]),
        1.0
    );
    assert_eq!(moved("freshen_checks_total", &[webhook]), 1.0);
    assert_eq!(
        moved("freshen_changes_total", &[webhook, ("decision", "act")]),
        1.0
    );
    assert_eq!(moved("freshen_changes_total", &[]), 1.0);
    assert_eq!(
        moved(
            "freshen_check_duration_seconds_count",
            &[("result", "changed")]
        ),
        1.0
    );
    // The 429 made the check wait a second.
    assert!(
        after.value(
            "freshen_check_duration_seconds_bucket",
            &[("result", "changed"), ("le", "0.5")]
        ) == 0.0
    );

    // Deliveries and the outbox.
    assert_eq!(moved("freshen_deliveries_total", &[]), 2.0);
    assert_eq!(
        moved(
            "freshen_delivery_latency_seconds_count",
            &[("trigger", "notify")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "freshen_delivery_latency_seconds_count",
            &[("trigger", "broken")]
        ),
        0.0,
        "a failed delivery has no latency"
    );
    assert_eq!(moved("freshen_delivery_duration_seconds_count", &[]), 2.0);
    assert_eq!(
        after.get("freshen_outbox_deliveries", &[("state", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("freshen_outbox_deliveries", &[("state", "pending")]),
        Some(0.0)
    );

    // The policy groups make the watcher judge the change: the old and
    // the new digest scanned into the inventory, each layer read once,
    // and one decision to act (the watch's image is under `always`).
    let mut layers = 0;
    let mut bytes = 0;
    for digest in [&v1, &v2] {
        let (_, manifest) = push.get_manifest("app", digest).await.unwrap();
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        for l in manifest["layers"].as_array().unwrap() {
            layers += 1;
            bytes += l["size"].as_u64().unwrap();
        }
    }
    assert_eq!(
        moved("freshen_scans_total", &[("result", "ok")]),
        2.0,
        "{}",
        env.log("watch.log")
    );
    assert_eq!(moved("freshen_scans_total", &[("result", "error")]), 0.0);
    assert_eq!(
        moved("freshen_scan_layers_total", &[("source", "read")]),
        f64::from(layers)
    );
    assert_eq!(
        moved("freshen_scan_layer_read_bytes_total", &[]),
        bytes as f64
    );
    assert_eq!(
        moved("freshen_scan_duration_seconds_count", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        moved(
            "freshen_policy_decisions_total",
            &[("source", "change"), ("decision", "act")]
        ),
        1.0
    );
    assert_eq!(moved("freshen_policy_decisions_total", &[]), 1.0);

    // Registry requests: what the proxy saw, request for request.
    let mut seen: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in proxy.request_log() {
        let code = r.status.map_or("error".to_string(), |s| s.to_string());
        *seen.entry((r.method, code)).or_default() += 1.0;
    }
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in after
        .0
        .iter()
        .filter(|s| s.name == "freshen_registry_requests_total")
        .filter(|s| s.labels["registry"] == host)
    {
        *counted
            .entry((s.labels["method"].clone(), s.labels["code"].clone()))
            .or_default() += s.value;
    }
    assert_eq!(counted, seen);
    assert_eq!(seen.get(&("HEAD".into(), "429".into())), Some(&1.0));
    assert_eq!(
        after.get(
            "freshen_registry_rate_limited_total",
            &[("registry", &host)]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.get(
            "freshen_registry_rate_limit_remaining",
            &[("registry", &host)]
        ),
        Some(42.0)
    );
    assert_eq!(
        after.value(
            "freshen_registry_request_duration_seconds_count",
            &[("registry", &host)]
        ),
        seen.values().sum::<f64>()
    );

    // Webhooks, under their old name.
    assert_eq!(
        after.get(
            "freshen_hook_requests_total",
            &[("kind", "generic"), ("outcome", "accepted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.get(
            "freshen_hook_requests_total",
            &[("kind", "generic"), ("outcome", "unauthorised")]
        ),
        Some(1.0)
    );

    // No image, tag, digest or key in any label.
    for s in &after.0 {
        for v in s.labels.values() {
            assert!(
                !v.contains("sha256:") && !v.contains("app:") && !v.contains("key"),
                "{} {:?}",
                s.name,
                s.labels
            );
        }
    }

    // The dashboard: a Prometheus datasource variable, every query on a
    // name freshen exports, every exported family on a panel.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/freshen.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{vars:?}"
    );
    let exported = after.names();
    let used = queried(&dashboard);
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries {unknown:?}, which freshen does not export (it does: {exported:?})"
    );
    let families: BTreeSet<&str> = exported.iter().map(|n| family(n)).collect();
    let shown: BTreeSet<&str> = used.iter().map(|n| family(n)).collect();
    let missing: Vec<_> = families.difference(&shown).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// `freshen watch --metrics ADDR`: `/metrics`, `/healthz` and `/readyz`
/// without the API; `/readyz` 503 when a migration is missing and, on
/// PostgreSQL, when the database is dropped.
async fn health(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    push.push_image("app", "1", "linux/amd64", "v1").await;
    let fresh = FreshDb::create(db).await;
    let mut env = Env::new(db).await;
    env.database = fresh.url().to_string();
    let config = env.config(&format!(
        "default_schedule: 1h\njitter: 0s\nwatches:\n  - {{ref: \"{}/app:1\"}}\n",
        reg.host()
    ));
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let _watch = env.spawn(
        &[
            "watch",
            "--config",
            config.to_str().unwrap(),
            "--metrics",
            &addr,
        ],
        "watch.log",
    );
    wait_healthy(&env, &url, "watch.log").await;
    scrape_until(&env, &url, "watch.log", "the baseline poll", |s| {
        s.value(
            "freshen_checks_total",
            &[("source", "poll"), ("result", "new")],
        ) == 1.0
    })
    .await;
    let get = |path: &'static str| {
        let url = url.clone();
        async move {
            let r = http().get(format!("{url}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, r#"{"status":"ok"}"#.into()));
    assert_eq!(get("/readyz").await, (200, r#"{"status":"ready"}"#.into()));
    // Only these: no API, no webhooks.
    assert_eq!(get("/openapi.json").await.0, 404);
    assert_eq!(get("/events").await.0, 404);

    // A migration this build needs is not applied.
    fresh
        .exec_raw("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .await;
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "not ready");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("migrations applied up to"), "{reason}");
    assert_eq!(get("/healthz").await.0, 200);

    if db == Db::Postgres {
        // The database goes away (its connections ended).
        fresh.remove().await;
        let (status, body) = get("/readyz").await;
        assert_eq!(status, 503, "{body}");
        let reason: Value = serde_json::from_str(&body).unwrap();
        let reason = reason["reason"].as_str().unwrap();
        assert!(
            reason.contains("check that the database is ready")
                || reason.contains("did not answer within 2s"),
            "{body}"
        );
        assert!(!body.contains("postgres@"), "{body}");
        assert_eq!(get("/healthz").await.0, 200);
    }
}

both_stores!(pipeline_counted, health);
