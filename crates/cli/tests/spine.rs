//! The spine end to end: `freshen` against a real Distribution registry, the
//! Jenkins remote-API double, a webhook receiver and a command, on SQLite and
//! PostgreSQL.

mod common;

use std::time::Duration;

use common::{Env, status_of};
use freshen_testkit::{
    Db, Fault, FaultProxy, Jenkins, JenkinsOptions, Registry, WebhookReceiver, both_stores,
};

/// First sight is a baseline; the same digest is unchanged; a re-pushed tag
/// is a change (exit code 1 with --exit-code) with an event and history.
async fn baseline_change_unchanged(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let env = Env::new(db).await;
    let r = format!("{}/app:1", reg.host());
    let first = push.push_image("app", "1", "linux/amd64", "one").await;

    let run = env.run(&["check", &r, "--json", "--exit-code"]).await;
    run.expect(0);
    assert_eq!(status_of(&run.json(), &r, "linux/amd64"), "new");

    let run = env.run(&["check", &r, "--json", "--exit-code"]).await;
    run.expect(0);
    assert_eq!(status_of(&run.json(), &r, "linux/amd64"), "unchanged");

    let second = push.push_image("app", "1", "linux/amd64", "two").await;
    let run = env.run(&["check", &r, "--json", "--exit-code"]).await;
    run.expect(1);
    let json = run.json();
    assert_eq!(status_of(&json, &r, "linux/amd64"), "changed");
    let result = &json["results"][0];
    assert_eq!(result["platforms"][0]["old"], first.as_str());
    assert_eq!(result["digest"], second.as_str());
    assert!(result["event_id"].is_string(), "{json}");

    let run = env.run(&["check", &r, "--exit-code"]).await;
    run.expect(0);
    assert!(run.stdout.contains("unchanged"), "{run}");

    let hist = env.run(&["history", &r, "--json"]).await;
    hist.expect(0);
    let rows = hist.json()["history"].as_array().unwrap().clone();
    let amd: Vec<_> = rows
        .iter()
        .filter(|h| h["platform"] == "linux/amd64")
        .collect();
    assert_eq!(amd.len(), 2, "{rows:?}");
    assert_eq!(
        amd.iter().filter(|h| h["digest"] == first.as_str()).count(),
        1
    );
    assert_eq!(
        amd.iter()
            .filter(|h| h["digest"] == second.as_str())
            .count(),
        1
    );

    let events = env.run(&["events", &r, "--json"]).await;
    events.expect(0);
    let ev = events.json();
    assert_eq!(ev.as_array().unwrap().len(), 1, "{ev}");
    assert_eq!(ev[0]["changes"][0]["new_digest"], second.as_str());
}

/// The issue's scenario: a re-pushed tag reaches Jenkins as exactly one
/// parameterised build (crumb + session cookie + API token), and the next
/// run fires nothing.
async fn jenkins_gets_exactly_one_build(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let jenkins = Jenkins::start(JenkinsOptions {
        require_crumb: true,
        ..JenkinsOptions::default()
    })
    .await;
    let mut env = Env::new(db).await;
    env.env("JENKINS_TOKEN", &jenkins.api_token());
    let r = format!("{}/base:bookworm", reg.host());
    let config = env.config(&format!(
        r#"
watches:
  - ref: {r}
    on_change: [rebuild-app]
triggers:
  rebuild-app:
    jenkins:
      url: {url}
      job: images/rebuild-app
      user: {user}
      token: ${{JENKINS_TOKEN}}
      parameters:
        BASE_IMAGE: "{{{{ref}}}}"
        NEW_DIGEST: "{{{{new_digest}}}}"
        EVENT: "{{{{event_id}}}}"
"#,
        url = jenkins.url(),
        user = jenkins.user(),
    ));
    let config = config.to_str().unwrap();
    push.push_image("base", "bookworm", "linux/amd64", "v1")
        .await;
    env.run(&["check", "--config", config]).await.expect(0);
    assert!(jenkins.builds().is_empty(), "a baseline fires nothing");

    let new = push
        .push_image("base", "bookworm", "linux/amd64", "v2")
        .await;
    let run = env
        .run(&["check", "--config", config, "--exit-code", "--json"])
        .await;
    run.expect(1);
    let event_id = run.json()["results"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(run.json()["deliveries"][0]["state"], "delivered", "{run}");
    assert!(
        run.json()["deliveries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("/queue/item/"),
        "the queue item is recorded: {run}"
    );

    let builds = jenkins.builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].job, "images/rebuild-app");
    assert_eq!(builds[0].params["BASE_IMAGE"], r);
    assert_eq!(builds[0].params["NEW_DIGEST"], new);
    assert_eq!(builds[0].params["EVENT"], event_id);
    assert!(builds[0].crumb_ok, "the crumb came with its session cookie");

    env.run(&["check", "--config", config, "--exit-code"])
        .await
        .expect(0);
    assert_eq!(jenkins.builds().len(), 1, "a second run fires nothing");

    let outbox = env.run(&["outbox", "list", "--json"]).await;
    outbox.expect(0);
    assert_eq!(outbox.json()[0]["state"], "delivered");
    assert!(
        !outbox.stdout.contains(&jenkins.api_token()),
        "no secret in the outbox"
    );
}

/// An index whose digest moved while the watched platform kept its manifest
/// is history, not a change; a change of the watched platform fires.
async fn unwatched_platform_change_fires_nothing(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("hook-secret").await;
    let mut env = Env::new(db).await;
    env.env("HOOK_SECRET", "hook-secret");
    let r = format!("{}/multi:1", reg.host());
    let config = env.config(&format!(
        "watches:\n  - ref: {r}\n    platforms: [linux/amd64]\n    on_change: [notify]\ntriggers:\n  notify:\n    webhook: {{url: \"{}\", secret: \"${{HOOK_SECRET}}\"}}\n",
        hook.url()
    ));
    let config = config.to_str().unwrap();
    let amd = push
        .push_image_untagged("multi", "linux/amd64", "amd-1")
        .await;
    let arm1 = push
        .push_image_untagged("multi", "linux/arm64", "arm-1")
        .await;
    let idx1 = push
        .push_index(
            "multi",
            "1",
            &[("linux/amd64", &amd), ("linux/arm64", &arm1)],
            true,
        )
        .await;
    env.run(&["check", "--config", config]).await.expect(0);

    let arm2 = push
        .push_image_untagged("multi", "linux/arm64", "arm-2")
        .await;
    let idx2 = push
        .push_index(
            "multi",
            "1",
            &[("linux/amd64", &amd), ("linux/arm64", &arm2)],
            true,
        )
        .await;
    assert_ne!(idx1, idx2);
    let run = env
        .run(&["check", "--config", config, "--json", "--exit-code"])
        .await;
    run.expect(0);
    let json = run.json();
    assert_eq!(status_of(&json, &r, "linux/amd64"), "unchanged");
    assert_eq!(json["results"][0]["top"]["status"], "changed", "{json}");
    assert!(json["results"][0]["event_id"].is_null());
    assert!(hook.received().is_empty());
    let hist = env.run(&["history", &r, "--json"]).await.json();
    let tag_rows = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["platform"] == "")
        .count();
    assert_eq!(tag_rows, 2, "the index move is in the history: {hist}");

    // Now the watched platform changes: exactly one signed webhook.
    let amd2 = push
        .push_image_untagged("multi", "linux/amd64", "amd-2")
        .await;
    push.push_index(
        "multi",
        "1",
        &[("linux/amd64", &amd2), ("linux/arm64", &arm2)],
        true,
    )
    .await;
    let run = env
        .run(&["check", "--config", config, "--json", "--exit-code"])
        .await;
    run.expect(1);
    let event_id = run.json()["results"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].signature_valid, "HMAC over the exact body");
    assert_eq!(got[0].event_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(got[0].body["id"], event_id.as_str());
    assert_eq!(got[0].body["changes"][0]["platform"], "linux/amd64");
    assert_eq!(got[0].body["changes"][0]["new_digest"], amd2.as_str());
}

/// A command trigger gets the event on stdin and in FRESHEN_* variables;
/// a failing command is retried later, not lost.
async fn command_trigger_and_retry(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let env = Env::new(db).await;
    let script = env.path().join("rebuild.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nif [ -f fail-once ]; then rm fail-once; echo 'boom' >&2; exit 3; fi\ncat > event.json\necho \"$FRESHEN_REF $FRESHEN_NEW_DIGEST $FRESHEN_EVENT_ID $1\" > env.txt\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let r = format!("{}/cmd:1", reg.host());
    let config = env.config(&format!(
        "watches:\n  - ref: {r}\n    on_change: [local]\ntriggers:\n  local:\n    command: [\"./rebuild.sh\", \"{{{{tag}}}}\"]\noutbox:\n  initial_backoff: 1ms\n"
    ));
    let config = config.to_str().unwrap();
    push.push_image("cmd", "1", "linux/amd64", "a").await;
    env.run(&["check", "--config", config]).await.expect(0);
    let new = push.push_image("cmd", "1", "linux/amd64", "b").await;
    std::fs::write(env.path().join("fail-once"), "").unwrap();
    let run = env.run(&["check", "--config", config, "--json"]).await;
    run.expect(0);
    assert_eq!(run.json()["deliveries"][0]["state"], "retrying", "{run}");
    assert!(
        run.json()["deliveries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
    assert!(!env.path().join("env.txt").exists());

    // The next pass delivers what is due.
    let run = env.run(&["check", "--config", config, "--json"]).await;
    run.expect(0);
    assert_eq!(run.json()["deliveries"][0]["state"], "delivered", "{run}");
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("event.json")).unwrap())
            .unwrap();
    let line = std::fs::read_to_string(env.path().join("env.txt")).unwrap();
    assert_eq!(
        line.trim(),
        format!("{r} {new} {} 1", event["id"].as_str().unwrap())
    );
}

/// Basic auth against the real registry's htpasswd: credentials from the
/// config (via ${ENV}) or from the docker config; without them, a clear error.
async fn basic_auth_registry(db: Db) {
    let reg = Registry::start_with_auth("ci", "s3cr3t-pass").await;
    let push = reg.pusher();
    push.push_image("private", "1", "linux/amd64", "x").await;
    let mut env = Env::new(db).await;
    let r = format!("{}/private:1", reg.host());

    let run = env.run(&["check", &r]).await;
    run.expect(2);
    assert!(run.stderr.contains("authentication required"), "{run}");
    assert!(run.stderr.lines().count() == 1, "one line: {run}");

    env.env("REG_PASSWORD", "s3cr3t-pass");
    let config = env.config(&format!(
        "registries:\n  - host: \"{}\"\n    username: ci\n    password: ${{REG_PASSWORD}}\n",
        reg.host()
    ));
    let run = env
        .run(&["check", "--config", config.to_str().unwrap(), &r, "--json"])
        .await;
    run.expect(0);
    assert_eq!(status_of(&run.json(), &r, "linux/amd64"), "new");

    // Wrong password: refused, and the password never printed.
    env.env("REG_PASSWORD", "wrong-pass");
    let run = env
        .run(&["check", "--config", config.to_str().unwrap(), &r])
        .await;
    run.expect(2);
    assert!(run.stderr.contains("refused"), "{run}");
    assert!(!run.stderr.contains("wrong-pass"));

    // ~/.docker/config.json `auths`.
    let docker = env.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64_encode(b"ci:s3cr3t-pass");
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let run = env.run(&["check", &r, "--json"]).await;
    run.expect(0);
    assert_eq!(status_of(&run.json(), &r, "linux/amd64"), "unchanged");
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Through a fault-injecting proxy: 429 with Retry-After is waited out, 503s
/// and a stall are retried, RateLimit-Remaining is reported.
async fn faults_are_retried(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    push.push_image("flaky", "1", "linux/amd64", "x").await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let env = Env::new(db).await;
    let r = format!("{}/flaky:1", proxy.host());
    let config = env.config(&format!(
        "registries:\n  - host: \"{}\"\n    timeout: 1s\n",
        proxy.host()
    ));
    let config = config.to_str().unwrap();

    proxy.push_fault(Fault::TooMany {
        retry_after_secs: 1,
    });
    proxy.push_fault(Fault::Unavailable);
    proxy.push_fault(Fault::RateLimitHeader("99;w=21600".into()));
    let started = std::time::Instant::now();
    let run = env.run(&["check", "--config", config, &r, "--json"]).await;
    run.expect(0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(
        run.json()["rate_limit_remaining"][0]["remaining"],
        "99;w=21600",
        "{run}"
    );

    proxy.push_fault(Fault::Stall(Duration::from_secs(3)));
    let run = env.run(&["check", "--config", config, &r, "--json"]).await;
    run.expect(0);
    assert_eq!(status_of(&run.json(), &r, "linux/amd64"), "unchanged");

    // Persistent failure: a clear error and exit 2, after the retries.
    for _ in 0..4 {
        proxy.push_fault(Fault::Unavailable);
    }
    let run = env
        .run(&["check", "--config", config, &r, "--exit-code"])
        .await;
    run.expect(2);
    assert!(run.stderr.contains("HTTP 503 after 4 attempt(s)"), "{run}");
}

/// Steady state costs exactly one HEAD per tag and no GET.
async fn steady_state_is_one_head_per_tag(db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let digest = push.push_image("many", "seed", "linux/amd64", "x").await;
    let tags = push.create_tags("many", 25, &digest).await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let env = Env::new(db).await;
    let refs: Vec<String> = tags
        .iter()
        .map(|t| format!("{}/many:{t}", proxy.host()))
        .collect();
    let mut args = vec!["check"];
    args.extend(refs.iter().map(String::as_str));
    env.run(&args).await.expect(0);
    proxy.clear_requests();
    env.run(&args).await.expect(0);
    assert_eq!(proxy.count("HEAD"), 25, "{:?}", proxy.requests());
    assert_eq!(proxy.requests().len(), 25, "nothing but one HEAD per tag");
}

/// `freshen digest` shows the index and its platforms, never attestations.
async fn digest_command(_db: Db) {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let (index, children) = push
        .push_multiarch(
            "dig",
            "1",
            &["linux/amd64", "linux/arm64", "linux/arm/v7"],
            "s",
            true,
        )
        .await;
    let env = Env::new(Db::Sqlite).await;
    let r = format!("{}/dig:1", reg.host());
    let run = env.run(&["digest", &r, "--json"]).await;
    run.expect(0);
    let j = run.json();
    assert_eq!(j["digest"], index.as_str());
    assert_eq!(j["index"], true);
    let platforms: Vec<&str> = j["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let run = env
        .run(&["digest", &r, "--platform", "linux/arm64", "--json"])
        .await;
    assert_eq!(run.json()["platforms"][0]["digest"], children[1].as_str());
    let run = env.run(&["digest", &r, "--platform", "linux/s390x"]).await;
    run.expect(2);
    assert!(run.stderr.contains("platform linux/s390x is not in the image (it has: linux/amd64, linux/arm64, linux/arm/v7)"), "{run}");
    let run = env.run(&["digest", "Bad:Ref"]).await;
    run.expect(2);
    assert!(run.stderr.contains("\"Bad:Ref\""), "{run}");
    let run = env
        .run(&["digest", &format!("{}/nope:1", reg.host())])
        .await;
    run.expect(2);
    assert!(run.stderr.contains("not found"), "{run}");
}

/// Config mistakes are one line naming the file and the key; nothing stored.
async fn config_errors_name_the_key(db: Db) {
    let env = Env::new(db).await;
    let config = env.config("watches:\n  - ref: debian\n    on_change: [missing]\n");
    let run = env
        .run(&["check", "--config", config.to_str().unwrap()])
        .await;
    run.expect(2);
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stderr
            .contains("watches[0].on_change[0]: no trigger named \"missing\""),
        "{run}"
    );
    let run = env.run(&["check"]).await;
    run.expect(2);
    assert!(run.stderr.contains("nothing to check"), "{run}");
}

both_stores!(
    baseline_change_unchanged,
    jenkins_gets_exactly_one_build,
    unwatched_platform_change_fires_nothing,
    command_trigger_and_retry,
    basic_auth_registry,
    faults_are_retried,
    steady_state_is_one_head_per_tag,
    config_errors_name_the_key,
);

#[tokio::test(flavor = "multi_thread")]
async fn digest_shows_platforms() {
    digest_command(Db::Sqlite).await
}
