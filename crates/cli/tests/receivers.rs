//! Webhook receivers end to end, with real parts: a real Distribution
//! registry (Debian's docker-registry) whose `notifications.endpoints`
//! point at `freshen watch --serve`, pushes made with skopeo, Docker Hub's
//! and Harbor's payloads as their documentation shows them, the callback
//! and the triggers received by a loopback server. On SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Env, http};
use freshen_testkit::{
    Db, Registry, RegistryOptions, WebhookReceiver, both_stores, free_port, skopeo_copy,
};
use serde_json::{Value, json};

const KEY: &str = "k3y-0f-the-registry-receiver";
const TOKEN: &str = "t0ken-sent-by-the-registry";

/// `freshen watch --serve ADDR` for `config`, ready once `/healthz` answers.
async fn watch_serving(env: &Env, config: &str, port: u16, log: &str) -> tokio::process::Child {
    let addr = format!("127.0.0.1:{port}");
    let child = env.spawn(
        &[
            "watch",
            "--config",
            config,
            "--serve",
            &addr,
            "--log",
            "info,tower_http=debug",
        ],
        log,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http().get(format!("http://{addr}/healthz")).send().await
            && r.status() == 200
        {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "freshen watch --serve never answered; log:\n{}",
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `yaml` as the config and starts `freshen watch --serve` on
/// `port`: the config's path, the server's URL, and the process.
async fn serving(env: &Env, port: u16, yaml: &str) -> (String, String, tokio::process::Child) {
    let config = env.config(yaml).to_str().unwrap().to_string();
    let child = watch_serving(env, &config, port, "watch.log").await;
    (config, format!("http://127.0.0.1:{port}"), child)
}

/// Sends `req` and reads its JSON answer.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// Change events of `reference`, through the API.
async fn events(url: &str, reference: &str) -> Vec<Value> {
    http()
        .get(format!("{url}/events"))
        .query(&[("reference", reference)])
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// The metric's value, 0 when absent.
async fn metric(url: &str, kind: &str, outcome: &str) -> u64 {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!("freshen_hook_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.parse().unwrap())
}

/// Waits until `check` holds, or panics with `what` and the log.
async fn wait_until(env: &Env, log: &str, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never: {what}; log:\n{}",
            env.log(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A push to the real registry reaches freshen as a notification and fires
/// the watch's trigger once; the same digest pushed twice more, and a later
/// poll, fire nothing; a tag only the receiver wants fires its own trigger
/// from its first push; a tag nobody wants is ignored.
async fn registry_notifications(db: Db) {
    let port = free_port();
    let hooks = WebhookReceiver::start("s").await;
    let reg = Registry::start_with(RegistryOptions {
        notifications_url: Some(format!("http://127.0.0.1:{port}/hooks/registry/{KEY}")),
        notifications_token: Some(TOKEN.into()),
        ..RegistryOptions::default()
    })
    .await;
    let host = reg.host();
    let push = reg.pusher();
    let v1 = push.push_image("app", "src-v1", "linux/amd64", "v1").await;
    let v2 = push.push_image("app", "src-v2", "linux/amd64", "v2").await;
    push.tag("app", &v1, "1").await;
    let env = Env::new(db).await;
    let (config, url, _watch) = serving(
        &env,
        port,
        &format!(
            r#"
default_schedule: 1h
jitter: 0s
watches:
  - {{ref: "{host}/app:1", on_change: [notify]}}
triggers:
  notify:
    webhook: {{url: "{}/watched", secret: s}}
  other:
    webhook: {{url: "{}/other", secret: s}}
receivers:
  reg:
    kind: registry
    key: {KEY}
    token: {TOKEN}
    images: ["{host}/side/*"]
    on_change: [other]
"#,
            hooks.base_url(),
            hooks.base_url()
        ),
    )
    .await;
    let config = config.as_str();
    let watched = format!("{host}/app:1");
    wait_until(
        &env,
        "watch.log",
        "the baseline poll of app:1",
        async || env.run(&["history", &watched]).await.code == 0,
    )
    .await;
    assert!(events(&url, &watched).await.is_empty());

    // The tag moves: pushed with skopeo, three times with one digest. Then
    // a tag only the receiver wants (its first push fires the receiver's
    // trigger) and a tag nobody wants (ignored). The registry notifies an
    // endpoint in order, so once the receiver's trigger fires, the three
    // pushes before it have been taken.
    for _ in 0..3 {
        skopeo_copy(&format!("{host}/app:src-v2"), &watched).await;
    }
    let side = format!("{host}/side/tool:1");
    skopeo_copy(&format!("{host}/app:src-v1"), &side).await;
    skopeo_copy(&format!("{host}/app:src-v1"), &format!("{host}/nobody:1")).await;
    let mut got = hooks.wait_for(2, Duration::from_secs(30)).await;
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got[0].path, "/other");
    assert_eq!(got[0].body["reference"], side.as_str());
    assert_eq!(got[0].body["changes"][0]["old_digest"], Value::Null);
    assert_eq!(got[0].body["changes"][0]["new_digest"], v1.as_str());
    assert_eq!(got[1].path, "/watched");
    assert_eq!(got[1].body["reference"], watched.as_str());
    assert_eq!(got[1].body["changes"][0]["old_digest"], v1.as_str());
    assert_eq!(got[1].body["changes"][0]["new_digest"], v2.as_str());
    assert_eq!(got[1].body["source"], "webhook:reg");
    let evs = events(&url, &watched).await;
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0]["new_digest"], v2.as_str());

    // A poll after the webhook agrees: nothing changed.
    let r = env.run(&["check", "--config", config, "--json"]).await;
    r.expect(0);
    assert_eq!(
        common::status_of(&r.json(), &watched, "linux/amd64"),
        "unchanged"
    );
    assert_eq!(events(&url, &watched).await.len(), 1);
    // Past the daemon's idle wait: a second delivery would have gone out.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hooks.received().len(), 2, "{:#?}", hooks.received());
    assert_ne!(
        env.run(&["history", &format!("{host}/nobody:1")])
            .await
            .code,
        0
    );
    assert!(metric(&url, "registry", "accepted").await >= 5);
    assert_eq!(metric(&url, "registry", "unauthorised").await, 0);
    let log = env.log("watch.log");
    assert!(
        !log.contains(KEY) && !log.contains(TOKEN),
        "a secret in the log:\n{log}"
    );
}

both_stores!(registry_notifications);

/// Docker Hub's webhook, exactly as its documentation shows it, with the
/// callback URL pointing at a loopback server the allowlist admits.
fn docker_hub_payload(callback_url: &str) -> Value {
    let mut v: Value = serde_json::from_str(DOCKER_HUB_EXAMPLE).unwrap();
    v["callback_url"] = callback_url.into();
    v
}

/// The example payload of Docker Hub's webhook documentation.
const DOCKER_HUB_EXAMPLE: &str = r##"{
  "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {
    "pushed_at": 1417566161,
    "pusher": "trustedbuilder",
    "tag": "latest"
  },
  "repository": {
    "comment_count": 0,
    "date_created": 1417494799,
    "description": "",
    "dockerfile": "#\n# BUILD\u0009\u0009docker build -t svendowideit/apt-cacher .\n# RUN\u0009\u0009docker run -d -p 3142:3142 -name apt-cacher-run apt-cacher\n#\n# and then you can run containers with:\n# \u0009\u0009docker run -t -i -rm -e http_proxy http://192.168.1.2:3142/ debian bash\n#\nFROM\u0009\u0009ubuntu\n\n\nVOLUME\u0009\u0009[/var/cache/apt-cacher-ng]\nRUN\u0009\u0009apt-get update ; apt-get install -yq apt-cacher-ng\n\nEXPOSE \u0009\u00093142\nCMD\u0009\u0009chmod 777 /var/cache/apt-cacher-ng ; /etc/init.d/apt-cacher-ng start ; tail -f /var/log/apt-cacher-ng/*\n",
    "full_description": "Docker Hub based automated build from a GitHub repo",
    "is_official": false,
    "is_private": true,
    "is_trusted": true,
    "name": "testhook",
    "namespace": "svendowideit",
    "owner": "svendowideit",
    "repo_name": "svendowideit/testhook",
    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
    "star_count": 0,
    "status": "Active"
  }
}"##;

/// A Docker Hub webhook fires the receiver's trigger, then the outcome is
/// posted to its callback_url; a repeat of the same digest is answered at
/// once; a failing trigger reports `failure`; a callback_url outside the
/// allowlist is never called.
async fn docker_hub_callback(db: Db) {
    let port = free_port();
    let hooks = WebhookReceiver::start("s").await;
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let v1 = push
        .push_image("svendowideit/testhook", "latest", "linux/amd64", "hub-v1")
        .await;
    let env = Env::new(db).await;
    let dead = free_port();
    let (_config, url, _watch) = serving(
        &env,
        port,
        &format!(
            r#"
jitter: 0s
outbox: {{initial_backoff: 100ms, max_attempts: 2}}
triggers:
  notify:
    webhook: {{url: "{base}/notify", secret: s}}
  broken:
    webhook: {{url: "http://127.0.0.1:{dead}/gone", timeout: 1s}}
receivers:
  hub:
    kind: dockerhub
    key: the-docker-hub-receiver-key
    registry: "{host}"
    images: ["{host}/svendowideit/*"]
    on_change: [notify]
    callback:
      allow: ["{base}/callback/"]
      context: freshen-test
      target_url: https://freshen.example/events
  hub-broken:
    kind: dockerhub
    key: the-failing-docker-hub-receiver
    registry: "{host}"
    on_change: [broken]
    callback: {{allow: ["{base}/callback/"]}}
"#,
            base = hooks.base_url()
        ),
    )
    .await;
    let hook_url = format!("{url}/hooks/dockerhub/the-docker-hub-receiver-key");
    let callback = format!(
        "{}/callback/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        hooks.base_url()
    );

    let answer = http()
        .post(&hook_url)
        .json(&docker_hub_payload(&callback))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    let reference = format!("{host}/svendowideit/testhook:latest");
    assert_eq!(answer["pushes"][0]["reference"], reference.as_str());
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    assert_eq!(answer["pushes"][0]["digest"], v1.as_str());
    assert!(
        answer["callback"].as_str().unwrap().starts_with("queued"),
        "{answer:#}"
    );

    // The trigger first, then the callback with the outcome.
    let got = hooks.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got[0].path, "/notify");
    assert_eq!(
        got[1].path,
        "/callback/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/"
    );
    assert_eq!(got[1].body["state"], "success", "{:#}", got[1].body);
    assert_eq!(got[1].body["context"], "freshen-test");
    assert_eq!(got[1].body["target_url"], "https://freshen.example/events");
    assert!(
        got[1].body["description"]
            .as_str()
            .unwrap()
            .contains("notify done")
    );

    // The same digest again: no new event; the callback reports on the
    // event of that digest, whose deliveries are done.
    let answer = json_of(http().post(&hook_url).json(&docker_hub_payload(&callback))).await;
    assert_eq!(answer["pushes"][0]["outcome"], "unchanged", "{answer:#}");
    assert!(
        answer["callback"].as_str().unwrap().starts_with("queued"),
        "{answer:#}"
    );
    let got = hooks.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got[2].body["state"], "success");
    assert!(
        got[2].body["description"]
            .as_str()
            .unwrap()
            .contains("notify done")
    );
    assert_eq!(events(&url, &reference).await.len(), 1);

    // A callback_url outside the allowlist is never called.
    let v2 = push
        .push_image("svendowideit/testhook", "latest", "linux/amd64", "hub-v2")
        .await;
    let answer: Value = http()
        .post(&hook_url)
        .json(&docker_hub_payload(
            "http://169.254.169.254/latest/meta-data/",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["pushes"][0]["digest"], v2.as_str());
    assert!(
        answer["callback"].as_str().unwrap().starts_with("refused"),
        "{answer:#}"
    );

    // A trigger that gives up: the callback says failure.
    push.push_image("svendowideit/other", "latest", "linux/amd64", "o")
        .await;
    let mut other = docker_hub_payload(&callback);
    other["repository"]["repo_name"] = "svendowideit/other".into();
    let answer: Value = http()
        .post(format!(
            "{url}/hooks/dockerhub/the-failing-docker-hub-receiver"
        ))
        .json(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let failure = loop {
        if let Some(r) = hooks
            .received()
            .into_iter()
            .find(|r| r.path.starts_with("/callback/") && r.body["state"] == "failure")
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no failure callback; log:\n{}",
            env.log("watch.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        failure.body["description"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{:#}",
        failure.body
    );
    // Deliveries list the callback without its URL (a capability).
    let listed = env.run(&["outbox", "list", "--json"]).await;
    listed.expect(0);
    assert!(listed.stdout.contains("dockerhub-callback"), "{listed}");
    assert!(
        !listed
            .stdout
            .contains("2141b5bi5i5b02bec211i4eeih0242eg11000a"),
        "{listed}"
    );
    let log = env.log("watch.log");
    assert!(
        !log.contains("2141b5bi5i5b02bec211i4eeih0242eg11000a")
            && !log.contains("the-docker-hub-receiver-key"),
        "a secret in the log:\n{log}"
    );
}

both_stores!(docker_hub_callback);

/// Forged, unsigned, oversized and malformed requests are refused, and
/// nothing is stored.
async fn forged_hooks_change_nothing(db: Db) {
    let port = free_port();
    let reg = Registry::start().await;
    let host = reg.host();
    reg.pusher()
        .push_image("app", "1", "linux/amd64", "f")
        .await;
    let env = Env::new(db).await;
    let hooks = WebhookReceiver::start("s").await;
    let (_config, url, _watch) = serving(
        &env,
        port,
        &format!(
            r#"
server: {{max_body_bytes: 65536}}
triggers:
  notify:
    webhook: {{url: "{}/notify"}}
receivers:
  reg:
    kind: registry
    key: {KEY}
    token: {TOKEN}
    images: ["{host}/*"]
    on_change: [notify]
  gen:
    kind: generic
    key: generic-key
    hmac_secret: the-hmac-secret
    registry: "{host}"
    on_change: [notify]
"#,
            hooks.base_url()
        ),
    )
    .await;
    let body = json!({"ref": format!("{host}/app:1")}).to_string();
    let signed = freshen_testkit::sign("the-hmac-secret", body.as_bytes());
    let envelope = json!({"events": [{
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "app", "tag": "1", "digest": "sha256:00"},
        "request": {"host": host}
    }]})
    .to_string();
    let post = |path: &str| http().post(format!("{url}{path}"));
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "unknown key",
            post("/hooks/registry/not-the-key")
                .bearer_auth(TOKEN)
                .body(envelope.clone()),
            401,
        ),
        (
            "no token",
            post(&format!("/hooks/registry/{KEY}")).body(envelope.clone()),
            401,
        ),
        (
            "wrong token",
            post(&format!("/hooks/registry/{KEY}"))
                .bearer_auth("guess")
                .body(envelope.clone()),
            401,
        ),
        (
            "key of another kind",
            post(&format!("/hooks/harbor/{KEY}"))
                .bearer_auth(TOKEN)
                .body(envelope.clone()),
            401,
        ),
        (
            "unsigned",
            post("/hooks/generic/generic-key").body(body.clone()),
            401,
        ),
        (
            "signature of another body",
            post("/hooks/generic/generic-key")
                .header(
                    "X-Freshen-Signature",
                    freshen_testkit::sign("the-hmac-secret", b"{}"),
                )
                .body(body.clone()),
            401,
        ),
        (
            "oversized",
            post("/hooks/generic/generic-key")
                .header("X-Freshen-Signature", signed.clone())
                .body(vec![b' '; 100_000]),
            413,
        ),
        (
            "malformed",
            post(&format!("/hooks/registry/{KEY}"))
                .bearer_auth(TOKEN)
                .body("{\"events\": 3}"),
            400,
        ),
        (
            "not JSON",
            post(&format!("/hooks/registry/{KEY}"))
                .bearer_auth(TOKEN)
                .body("<xml/>"),
            400,
        ),
        (
            "unknown kind",
            post(&format!("/hooks/quay/{KEY}")).body("{}"),
            404,
        ),
    ];
    for (what, req, want) in cases {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, want, "{what}: {text}");
        if want == 401 {
            assert_eq!(text, r#"{"error":"not authorised"}"#, "{what}");
        }
        if want == 400 {
            assert!(text.contains("receiver \\\"reg\\\""), "{what}: {text}");
        }
    }
    assert_eq!(metric(&url, "registry", "unauthorised").await, 3);
    assert_eq!(metric(&url, "generic", "unauthorised").await, 2);
    assert_eq!(metric(&url, "harbor", "unauthorised").await, 1);
    assert_eq!(metric(&url, "registry", "malformed").await, 2);
    assert_eq!(metric(&url, "generic", "too_large").await, 1);
    // Nothing stored: no history, no event, nothing sent.
    let reference = format!("{host}/app:1");
    assert_ne!(env.run(&["history", &reference]).await.code, 0);
    assert!(events(&url, &reference).await.is_empty());

    // The same requests, authenticated, do get through.
    let ok = post("/hooks/generic/generic-key")
        .header("X-Freshen-Signature", signed)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["pushes"][0]["outcome"], "fired", "{ok:#}");
    hooks.wait_for(1, Duration::from_secs(30)).await;
    // A tag that does not exist: a permanent failure, answered 200 with the
    // reason (502 would make a registry retry it forever).
    let missing = json!({"ref": format!("{host}/missing:1")}).to_string();
    let resp = post("/hooks/generic/generic-key")
        .header(
            "X-Freshen-Signature",
            freshen_testkit::sign("the-hmac-secret", missing.as_bytes()),
        )
        .body(missing)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["pushes"][0]["outcome"], "failed", "{answer:#}");
    assert!(
        answer["pushes"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{answer:#}"
    );
    let log = env.log("watch.log");
    for secret in [KEY, TOKEN, "generic-key", "the-hmac-secret"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("webhook refused"), "{log}");
}

both_stores!(forged_hooks_change_nothing);

/// The image digest the Harbor report fixture names.
const FIXTURE_DIGEST: &str =
    "sha256:45359232780cb2e777e9ce27d87c001dd67e2fb2f00d0742fce54ee68328c2bc";

/// Harbor's `SCANNING_COMPLETED` webhook (default format) as Harbor's
/// documentation shows it, for `golden/base@digest`.
fn harbor_scan_completed(digest: &str) -> Value {
    json!({
        "type": "SCANNING_COMPLETED",
        "occur_at": 1680502375,
        "operator": "auto",
        "event_data": {
            "resources": [{
                "digest": digest,
                "tag": "old",
                "resource_url": format!("harbor.example/golden/base@{digest}"),
                "scan_overview": {
                    "application/vnd.security.vulnerability.report; version=1.1": {
                        "report_id": "5e1a4e51-1a5e-4a5e-9e5e-0c5e1a4e51e0",
                        "scan_status": "Success",
                        "severity": "High",
                        "duration": 7,
                        "summary": {"total": 20, "fixable": 20, "summary": {"High": 5, "Medium": 15}},
                        "start_time": "2023-04-03T06:12:48Z",
                        "end_time": "2023-04-03T06:12:55Z",
                        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.37.2"},
                        "complete_percent": 100
                    }
                }
            }],
            "repository": {
                "date_created": 1680501893,
                "name": "base",
                "namespace": "golden",
                "repo_full_name": "golden/base",
                "repo_type": "private"
            }
        }
    })
}

/// Harbor: a push in the CloudEvents format fires the receiver's trigger;
/// a completed scan's full report is read from Harbor's API and stored.
async fn harbor_push_and_scan(db: Db) {
    let port = free_port();
    let hooks = WebhookReceiver::start("s").await;
    let reg = Registry::start().await;
    let host = reg.host();
    let pushed = reg
        .pusher()
        .push_image("golden/app", "1", "linux/amd64", "h")
        .await;
    let harbor = freshen_testkit::Harbor::start(freshen_testkit::HarborOptions::default()).await;
    // Harbor scanned the image pushed: its report is that image's findings.
    let scanned = pushed.clone();
    let report = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vuln/tests/fixtures/reports/harbor-debian12.json"),
    )
    .unwrap()
    .replace(FIXTURE_DIGEST, &scanned);
    harbor.add_artifact(
        "golden/base",
        freshen_testkit::HarborArtifact {
            digest: scanned.clone(),
            tags: vec!["old".into()],
            report: Some(serde_json::from_str(&report).unwrap()),
        },
    );
    let mut env = Env::new(db).await;
    env.env("FRESHEN_HARBOR_USER", &harbor.user());
    env.env("FRESHEN_HARBOR_PASSWORD", &harbor.password());
    let (config, url, _watch) = serving(
        &env,
        port,
        &format!(
            r#"
triggers:
  notify:
    webhook: {{url: "{}/notify"}}
policy:
  on_vulnerable: [notify]
receivers:
  harbor:
    kind: harbor
    key: harbor-key
    token: harbor-auth-header
    harbor_url: "{}"
    images: ["*/golden/*"]
    on_change: [notify]
  harbor-blind:
    kind: harbor
    key: harbor-key-without-api
    token: harbor-auth-header
"#,
            hooks.base_url(),
            harbor.url()
        ),
    )
    .await;
    let post = |key: &str, body: &Value| {
        http()
            .post(format!("{url}/hooks/harbor/{key}"))
            .bearer_auth("harbor-auth-header")
            .json(body)
            .send()
    };

    // PUSH_ARTIFACT, CloudEvents format.
    let push_event = json!({
        "specversion": "1.0",
        "id": "a1b2c3",
        "source": "/projects/2/webhook/policies/3",
        "type": "harbor.artifact.pushed",
        "datacontenttype": "application/json",
        "time": "2023-04-03T06:12:48Z",
        "operator": "harbor-jobservice",
        "data": {
            "resources": [{
                "digest": pushed,
                "tag": "1",
                "resource_url": format!("{host}/golden/app:1")
            }],
            "repository": {
                "date_created": 1680501893,
                "name": "app",
                "namespace": "golden",
                "repo_full_name": "golden/app",
                "repo_type": "private"
            }
        }
    });
    let answer: Value = post("harbor-key", &push_event)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    assert_eq!(answer["pushes"][0]["digest"], pushed.as_str());
    let got = hooks.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].body["reference"], format!("{host}/golden/app:1"));

    // SCANNING_COMPLETED: the full report is read and stored, and the
    // image (in the inventory) is judged again: its policy acts on the
    // report's findings, so one `vulnerability` event fires `notify`.
    env.run(&["scan", &format!("{host}/golden/app:1")])
        .await
        .expect(0);
    let resp = post("harbor-key", &harbor_scan_completed(&scanned))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let scan = &answer["scans"][0];
    assert_eq!(scan["outcome"], "imported", "{answer:#}");
    assert_eq!(scan["reports"], 1);
    assert!(scan["findings"].as_u64().unwrap() > 0, "{answer:#}");
    assert_eq!(
        scan["events"].as_array().map(Vec::len),
        Some(1),
        "{answer:#}"
    );
    let got = hooks.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got[1].body["source"], "vulnerability", "{:#}", got[1].body);
    assert_eq!(got[1].body["reference"], format!("{host}/golden/app:1"));
    assert_eq!(got[1].body["id"], scan["events"][0]);
    assert!(
        harbor
            .requests()
            .iter()
            .any(|r| r.authorized && r.path.ends_with("/additions/vulnerabilities"))
    );
    // Stored: the same report from the CLI is unchanged.
    let again = env
        .run(&[
            "vulns",
            "import",
            "--config",
            &config,
            "--harbor",
            &harbor.url(),
            "--project",
            "golden",
            "--json",
        ])
        .await;
    again.expect(0);
    assert_eq!(again.json()[0]["report"]["outcome"], "unchanged", "{again}");
    assert!(!again.stderr.contains("vulnerability event"), "{again}");

    // Without harbor_url, a scan is skipped with why.
    let answer: Value = post("harbor-key-without-api", &harbor_scan_completed(&scanned))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["scans"][0]["outcome"], "skipped");
    assert!(
        answer["scans"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("harbor_url")
    );
    let log = env.log("watch.log");
    assert!(
        !log.contains(&harbor.password()),
        "the Harbor secret in the log"
    );
}

both_stores!(harbor_push_and_scan);

/// A Docker Hub webhook whose trigger is a Jenkins job: the callback waits
/// for the build the job queued to end, and reports its result.
async fn docker_hub_callback_follows_jenkins(db: Db) {
    let port = free_port();
    let hooks = WebhookReceiver::start("s").await;
    let jenkins = freshen_testkit::Jenkins::start(freshen_testkit::JenkinsOptions {
        build_duration: Duration::from_millis(1500),
        ..freshen_testkit::JenkinsOptions::default()
    })
    .await;
    jenkins.set_result("images/app", "FAILURE");
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    push.push_image("myorg/app", "latest", "linux/amd64", "j1")
        .await;
    let env = Env::new(db).await;
    let (_config, url, _watch) = serving(
        &env,
        port,
        &format!(
            r#"
jitter: 0s
triggers:
  ci:
    jenkins: {{url: "{}", job: images/app, user: "{}", token: "{}"}}
receivers:
  hub:
    kind: dockerhub
    key: the-docker-hub-receiver-key
    registry: "{host}"
    images: ["{host}/myorg/*"]
    on_change: [ci]
    callback: {{allow: ["{}/callback/"]}}
"#,
            jenkins.url(),
            jenkins.user(),
            jenkins.api_token(),
            hooks.base_url()
        ),
    )
    .await;
    let hook_url = format!("{url}/hooks/dockerhub/the-docker-hub-receiver-key");
    let callback = format!("{}/callback/u/myorg/app/hook/0a1b2c/", hooks.base_url());
    let mut payload = docker_hub_payload(&callback);
    payload["repository"]["repo_name"] = "myorg/app".into();

    // The job's build fails: the callback says so, once the build ended.
    let answer = json_of(http().post(&hook_url).json(&payload)).await;
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    let got = hooks.wait_for(1, Duration::from_secs(40)).await;
    assert_eq!(got[0].body["state"], "failure", "{:#}", got[0].body);
    assert!(
        got[0].body["description"]
            .as_str()
            .unwrap()
            .ends_with("ci #1 FAILURE"),
        "{:#}",
        got[0].body
    );
    assert_eq!(jenkins.builds().len(), 1);

    // A new digest, a build that succeeds.
    jenkins.set_result("images/app", "SUCCESS");
    push.push_image("myorg/app", "latest", "linux/amd64", "j2")
        .await;
    let answer = json_of(http().post(&hook_url).json(&payload)).await;
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    let got = hooks.wait_for(2, Duration::from_secs(40)).await;
    assert_eq!(got[1].body["state"], "success", "{:#}", got[1].body);
    assert!(
        got[1].body["description"]
            .as_str()
            .unwrap()
            .ends_with("ci #2 done"),
        "{:#}",
        got[1].body
    );
}

both_stores!(docker_hub_callback_follows_jenkins);

/// `freshen serve` alone takes webhooks and records their events; the
/// triggers wait in the outbox until a `freshen watch` delivers them.
async fn serve_records_and_watch_delivers(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let digest = reg
        .pusher()
        .push_image("team/tool", "1", "linux/amd64", "s")
        .await;
    let env = Env::new(db).await;
    let hooks = WebhookReceiver::start("s").await;
    let config = env.config(&format!(
        r#"
server: {{listen: "127.0.0.1:0"}}
jitter: 0s
triggers:
  notify:
    webhook: {{url: "{}/notify"}}
receivers:
  ci:
    kind: generic
    key: a-generic-receiver-key
    registry: "{host}"
    on_change: [notify]
"#,
        hooks.base_url()
    ));
    let served = common::serve(&env, &config).await;
    let body = json!({"ref": format!("{host}/team/tool:1"), "digest": digest});
    let answer = json_of(
        http()
            .post(format!(
                "{}/hooks/generic/a-generic-receiver-key",
                served.url
            ))
            .json(&body),
    )
    .await;
    assert_eq!(answer["pushes"][0]["outcome"], "fired", "{answer:#}");
    let listed = env.run(&["outbox", "list", "--json"]).await;
    listed.expect(0);
    let pending = listed.json();
    assert_eq!(pending[0]["trigger"], "notify", "{listed}");
    assert_eq!(pending[0]["state"], "pending", "{listed}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hooks.received().is_empty(), "serve delivered by itself");

    // A watcher delivers what serve recorded.
    let port = free_port();
    let config = config.to_str().unwrap();
    let _watch = watch_serving(&env, config, port, "watch.log").await;
    let got = hooks.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].body["reference"], format!("{host}/team/tool:1"));
    assert_eq!(got[0].body["source"], "webhook:ci");
}

both_stores!(serve_records_and_watch_delivers);
