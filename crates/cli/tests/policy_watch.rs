//! The watcher judged by policies, end to end: a bookworm base built by
//! buildah into a real registry, an app built on it and scanned, real OSV
//! records imported; the base tag then moves, and `freshen check` fires
//! its webhook or stays quiet as the app's policy says (security-only,
//! then thresholds), with the reason stored on the event and a decision
//! per image. On SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{Buildah, Env, fixtures};
use freshen_testkit::{Db, Registry, WebhookReceiver, both_stores};
use serde_json::Value;

fn osv_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vuln/tests/fixtures/osv")
}

/// Runs `check --json --exit-code` and returns (exit code, result).
async fn check(env: &Env, config: &str) -> (i32, Value) {
    let run = env
        .run(&["check", "--config", config, "--json", "--exit-code"])
        .await;
    assert!(run.code == 0 || run.code == 1, "{run}");
    (run.code, run.json()["results"][0].clone())
}

async fn policies_decide_what_fires(db: Db) {
    let reg = Registry::start().await;
    let host = reg.host();
    let push = reg.pusher();
    let buildah = Buildah::new();
    let hook = WebhookReceiver::start("hook-secret").await;
    let mut env = Env::new(db).await;
    env.env("HOOK_SECRET", "hook-secret");

    // Three builds of a bookworm base: v1 with the openssl of October 2023
    // (affected by CVE-2023-5363), v2 the same packages plus a file (fixes
    // nothing), v3 with the fixed openssl.
    let status = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
    let old_status = status.replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.11-1~deb12u1");
    let os_release =
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
    let mut v = Vec::new();
    for (tag, text, extra) in [
        ("v1", &old_status, false),
        ("v2", &old_status, true),
        ("v3", &status, false),
    ] {
        let ctx = env.path().join(format!("ctx-{tag}"));
        std::fs::create_dir_all(ctx.join("var/lib/dpkg")).unwrap();
        std::fs::create_dir_all(ctx.join("etc")).unwrap();
        std::fs::write(ctx.join("var/lib/dpkg/status"), text).unwrap();
        std::fs::write(ctx.join("etc/os-release"), os_release).unwrap();
        if extra {
            std::fs::write(ctx.join("etc/motd"), "v2\n").unwrap();
        }
        v.push(
            buildah
                .build_push(
                    &ctx,
                    "FROM scratch\nCOPY var /var\nCOPY etc /etc\n",
                    &format!("{host}/golden/base:{tag}"),
                    &[],
                )
                .await,
        );
    }
    let base = format!("{host}/golden/base:bookworm");
    push.tag("golden/base", &v[0], "bookworm").await;
    let app = format!("{host}/apps/app:1");
    let ctx = env.path().join("ctx-v1");
    std::fs::write(ctx.join("app.txt"), "app").unwrap();
    buildah
        .build_push(
            &ctx,
            "ARG BASE\nFROM ${BASE}\nCOPY app.txt /srv/app.txt\n",
            &app,
            &[("BASE", &base)],
        )
        .await;
    env.run(&["scan", &app]).await.expect(0);
    env.run(&["vulns", "import", osv_fixtures().to_str().unwrap()])
        .await
        .expect(0);

    // The app's group is security-only; the watch names no policy, so the
    // image built on the base is judged by its own group's policy.
    let watch = |policies: &str| {
        format!(
            "watches:\n  - ref: {base}\n    platforms: [linux/amd64]\n    on_change: [notify]\n\
             triggers:\n  notify:\n    webhook: {{url: \"{}\", secret: \"${{HOOK_SECRET}}\"}}\n\
             policy: {{mode: always}}\npolicies:\n{policies}",
            hook.url()
        )
    };
    let sec = env.config_file(
        "sec.yaml",
        &watch(&format!(
            "  apps:\n    images: [\"{host}/apps/*\"]\n    mode: security-only\n"
        )),
    );
    let sec = sec.to_str().unwrap();
    let (code, r) = check(&env, sec).await;
    assert_eq!(
        (code, r["platforms"][0]["status"].as_str()),
        (0, Some("new"))
    );

    // v1 -> v2 fixes nothing present in the app: recorded, quiet, and why.
    push.tag("golden/base", &v[1], "bookworm").await;
    let (code, r) = check(&env, sec).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["platforms"][0]["status"], "changed");
    assert_eq!(r["decision"]["act"], false, "{r}");
    let reason = r["decision"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&app) && reason.contains("security-only: the update fixes nothing present"),
        "{reason}"
    );
    let quiet_event = r["event_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hook.received().is_empty(), "a quiet change fires nothing");
    let events = env.run(&["events", "--json"]).await;
    events.expect(0);
    assert_eq!(events.json()[0]["id"], quiet_event.as_str());
    assert_eq!(events.json()[0]["decision"]["act"], false);
    let decisions = env
        .run(&["policy", "decisions", "--event", &quiet_event, "--json"])
        .await;
    decisions.expect(0);
    let d = &decisions.json()[0];
    assert_eq!(
        (
            d["subject"].as_str(),
            d["policy"].as_str(),
            d["act"].as_bool()
        ),
        (Some(app.as_str()), Some("apps"), Some(false)),
        "{d}"
    );
    assert!(d["snapshot"]["vuln_import"].as_i64().is_some(), "{d}");
    let table = env.run(&["events"]).await;
    assert!(
        table
            .stdout
            .contains("quiet: no image built on the old digest"),
        "{table}"
    );

    // v2 -> v3 fixes CVE-2023-5363, which the app holds: one webhook, with why.
    push.tag("golden/base", &v[2], "bookworm").await;
    let (code, r) = check(&env, sec).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["decision"]["act"], true, "{r}");
    let reason = r["decision"]["reason"].as_str().unwrap();
    assert!(reason.contains("CVE-2023-5363 (high)"), "{reason}");
    let got = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["id"], r["event_id"]);
    assert_eq!(got[0].body["decision"]["act"], true);

    // Thresholds count what the update fixes: `critical > 0` stays quiet on
    // a high fix, `high > 0` fires.
    for (expr, fires) in [("critical > 0", false), ("high > 0", true)] {
        let th = env.config_file(
            &format!("th-{}.yaml", fires),
            &watch(&format!(
            "  apps:\n    images: [\"{host}/apps/*\"]\n    mode: thresholds\n    thresholds: \"{expr}\"\n"
        )));
        let th = th.to_str().unwrap();
        // Back to v1, which the app is built on: nothing to rebuild.
        push.tag("golden/base", &v[0], "bookworm").await;
        let (code, r) = check(&env, th).await;
        assert_eq!(
            (code, &r["decision"]["act"]),
            (0, &Value::Bool(false)),
            "{r}"
        );
        assert!(
            r["decision"]["reason"]
                .as_str()
                .unwrap()
                .contains("is on the new digest already: nothing to do"),
            "{r}"
        );
        push.tag("golden/base", &v[2], "bookworm").await;
        let (code, r) = check(&env, th).await;
        assert_eq!(r["decision"]["act"], fires, "{expr}: {r}");
        assert_eq!(code, if fires { 1 } else { 0 });
        let reason = r["decision"]["reason"].as_str().unwrap();
        assert!(reason.contains("CVE-2023-5363 (high)"), "{reason}");
    }
    let got = hook.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "one webhook per acting change, no more");

    // Every judged change left one decision for the app, with its event.
    let all = env
        .run(&["policy", "decisions", &app, "--json", "--limit", "100"])
        .await;
    all.expect(0);
    let all = all.json();
    // (A move back to v1, which the app is built on, judges no image: the
    // app has four: v1 -> v2 quiet, v2 -> v3 acting, then v1 -> v3 once
    // quiet by `critical > 0` and once acting by `high > 0`.)
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|d| d["event_id"].is_string())
    );
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|d| d["act"] == true)
            .count(),
        2
    );

    // An image no group matches is judged by the default `policy`, here
    // `always`: the change fires.
    let always = env.config_file(
        "always.yaml",
        &watch("  apps:\n    images: [\"nothing/*\"]\n    mode: security-only\n"),
    );
    push.tag("golden/base", &v[1], "bookworm").await;
    let (code, r) = check(&env, always.to_str().unwrap()).await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["decision"]["act"], true, "{r}");
    let named = env.config_file(
        "named.yaml",
        &format!("watches:\n  - ref: {base}\n    policy: nope\n"),
    );
    let bad = env
        .run(&["check", "--config", named.to_str().unwrap()])
        .await;
    bad.expect(2);
    assert!(
        bad.stderr
            .contains("watches[0].policy: no policy named \"nope\""),
        "{bad}"
    );

    // Replays. The quiet decision, as made and with today's config: same.
    let replay = |args: Vec<String>| {
        let env = &env;
        async move {
            let mut a = vec!["policy".to_string(), "replay".into()];
            a.extend(args);
            a.push("--json".into());
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let run = env.run(&refs).await;
            run.expect(0);
            run.json()
        }
    };
    let quiet_id = d["id"].as_str().unwrap().to_string();
    let r = replay(vec![quiet_id.clone()]).await;
    assert_eq!(
        (r["same"].as_bool(), r["verdict"]["act"].as_bool()),
        (Some(true), Some(false)),
        "{r}"
    );
    assert_eq!(r["mode"], "as-of-snapshot");
    let r = replay(vec![
        quiet_id.clone(),
        "--now".into(),
        "--config".into(),
        sec.into(),
    ])
    .await;
    assert_eq!(r["same"], true, "{r}");
    // The acting v2 -> v3 decision, after Debian "reopens" DSA-5532-1 (a
    // later record: fixed only in 3.0.20-1): as made, it still acts; on
    // today's data v3 no longer fixes it, so it would stay quiet.
    let acting = all
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|d| d["act"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dsa = std::fs::read_to_string(osv_fixtures().join("debian/DSA-5532-1.json")).unwrap();
    assert!(
        dsa.contains("\"fixed\": \"3.0.11-1~deb12u2\""),
        "fixture changed"
    );
    let reopened = dsa
        .replace("\"fixed\": \"3.0.11-1~deb12u2\"", "\"fixed\": \"3.0.20-1\"")
        .replace("2023-10-26T09:00:00Z", "2026-12-01T00:00:00Z");
    let file = env.path().join("DSA-5532-1.json");
    std::fs::write(&file, reopened).unwrap();
    let imported = env
        .run(&["vulns", "import", file.to_str().unwrap(), "--json"])
        .await;
    imported.expect(0);
    assert_eq!(imported.json()[0]["updated"], 1, "{imported}");
    let r = replay(vec![acting.clone()]).await;
    assert_eq!(
        (r["same"].as_bool(), r["verdict"]["act"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    let r = replay(vec![
        acting.clone(),
        "--now".into(),
        "--config".into(),
        sec.into(),
    ])
    .await;
    assert_eq!(
        (r["same"].as_bool(), r["verdict"]["act"].as_bool()),
        (Some(false), Some(false)),
        "{r}"
    );
    let differs = env
        .run(&[
            "policy",
            "replay",
            &acting,
            "--now",
            "--config",
            sec,
            "--exit-code",
        ])
        .await;
    differs.expect(1);
    assert!(differs.stdout.contains("different outcome"), "{differs}");
    let none = env.run(&["policy", "replay", "nope"]).await;
    none.expect(2);
    assert!(
        none.stderr.contains("no policy decision \"nope\""),
        "{none}"
    );

    // The same over HTTP: the quiet event with its decision, and the
    // decisions filtered by event.
    let config = env.config("server:\n  listen: 127.0.0.1:0\n");
    let server = common::serve(&env, &config).await;
    let http = common::http();
    let body: Value = http
        .get(format!("{}/events/{quiet_event}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["event"]["decision"]["act"], false, "{body}");
    assert_eq!(body["decisions"][0]["subject"], app.as_str(), "{body}");
    let list: Value = http
        .get(format!("{}/decisions?event={quiet_event}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let listed: Value = http
        .get(format!("{}/events?limit=2", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let missing = http
        .get(format!("{}/events/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let typo = http
        .get(format!("{}/decisions?evnt=x", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), 400);
}

both_stores!(policies_decide_what_fires);
