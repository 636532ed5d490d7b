//! Vulnerability feeds end to end: a real Debian image built by buildah
//! into a real registry and scanned; OSV records (real schema, real
//! advisories) published as `Debian/all.zip` by a loopback export that
//! answers conditional requests as OSV's bucket does; `freshen vulns sync`
//! imports them, asks again with the validators (a `304`), keeps the data
//! in force when an archive is corrupt or too large, and reports why; on
//! SQLite and PostgreSQL.

mod common;

use common::{Buildah, Env, fixtures};
use freshen_testkit::{
    DEBIAN_ROOT_DOCKERFILE, Db, OsvMirror, Registry, WebhookReceiver, both_stores, debian_root,
    osv_fixtures,
};

/// Bookworm's `/etc/os-release`, as the inventory reads it.
const BOOKWORM: &str =
    "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
use serde_json::Value;

/// Builds and scans a bookworm image whose openssl predates DSA-5532-1.
async fn vulnerable_image(env: &Env, host: &str) -> String {
    let image = format!("{host}/golden/base:old");
    build_bookworm(env, &image, true).await;
    env.run(&["scan", &image]).await.expect(0);
    image
}

/// Builds and pushes a bookworm image as `image`: with openssl 3.0.11
/// (before DSA-5532-1) when `vulnerable`, else the fixed 3.0.19. Returns
/// the pushed digest.
async fn build_bookworm(env: &Env, image: &str, vulnerable: bool) -> String {
    let mut status = std::fs::read_to_string(fixtures().join("dpkg/status")).unwrap();
    if vulnerable {
        status = status.replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.11-1~deb12u1");
    }
    let ctx = env.path().join(format!("ctx-{vulnerable}"));
    debian_root(&ctx, &status, BOOKWORM);
    Buildah::new()
        .build_push(&ctx, DEBIAN_ROOT_DOCKERFILE, image, &[])
        .await
}

fn finding_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["platforms"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    ids.dedup();
    ids
}

/// The one archive of the one feed synced.
fn archive(v: &Value) -> &Value {
    assert_eq!(v["feeds"].as_array().unwrap().len(), 1, "{v}");
    let archives = v["feeds"][0]["archives"].as_array().unwrap();
    assert_eq!(archives.len(), 1, "{v}");
    &archives[0]
}

async fn feeds_sync(db: Db) {
    let reg = Registry::start().await;
    let env = Env::new(db).await;
    let mirror = OsvMirror::start().await;
    let image = vulnerable_image(&env, &reg.host()).await;
    let debian = osv_fixtures().join("debian");
    mirror.publish_dir("Debian", &debian);
    // No `ecosystems`: the inventory's distributions decide (Debian:12 -> Debian).
    let cfg = env.config(&format!("feeds:\n  osv:\n    url: {}/\n", mirror.url()));
    let cfg = cfg.to_str().unwrap();

    let first = env.run(&["vulns", "sync", "--config", cfg, "--json"]).await;
    first.expect(0);
    let first = first.json();
    let a = archive(&first);
    assert_eq!(a["source"], format!("{}/Debian/all.zip", mirror.url()));
    assert_eq!(a["outcome"], "imported", "{first}");
    assert_eq!(
        (
            a["summary"]["records"].as_u64(),
            a["summary"]["added"].as_u64()
        ),
        (Some(3), Some(3)),
        "{first}"
    );
    let v = env.run(&["vulns", &image, "--json"]).await;
    v.expect(0);
    assert_eq!(finding_ids(&v.json()), ["CVE-2023-5363"]);

    // Again: asked with the ETag it came with, answered 304, nothing imported.
    let again = env.run(&["vulns", "sync", "--config", cfg, "--json"]).await;
    again.expect(0);
    assert_eq!(archive(&again.json())["outcome"], "unchanged");
    let requests = mirror.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].if_none_match, None);
    assert_eq!(requests[0].status, 200);
    assert!(requests[1].if_none_match.is_some(), "{requests:?}");
    assert!(requests[1].if_modified_since.is_some(), "{requests:?}");
    assert_eq!(requests[1].status, 304);

    // An amended record: only it is written.
    let amended = env.path().join("amended");
    std::fs::create_dir_all(&amended).unwrap();
    for e in std::fs::read_dir(&debian).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == "DSA-5532-1.json" {
            let mut rec: Value = serde_json::from_str(&text).unwrap();
            rec["modified"] = "2026-12-01T00:00:00Z".into();
            text = rec.to_string();
        }
        std::fs::write(amended.join(p.file_name().unwrap()), text).unwrap();
    }
    let good = mirror.publish_dir("Debian", &amended);
    let third = env.run(&["vulns", "sync", "--config", cfg, "--json"]).await;
    third.expect(0);
    let third = third.json();
    let s = &archive(&third)["summary"];
    assert_eq!(
        (
            s["added"].as_u64(),
            s["updated"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(0), Some(1), Some(2)),
        "{third}"
    );

    // A truncated archive: reported, named, exit 1; the data stays.
    mirror.publish("Debian", good[..good.len() / 2].to_vec());
    let broken = env.run(&["vulns", "sync", "--config", cfg]).await;
    broken.expect(1);
    let url = format!("{}/Debian/all.zip", mirror.url());
    assert!(
        broken.stderr.contains(&url) && broken.stderr.contains("stays in force"),
        "{}",
        broken.stderr
    );
    assert!(broken.stdout.contains("failed"), "{}", broken.stdout);
    let v = env.run(&["vulns", &image, "--json"]).await;
    v.expect(0);
    assert_eq!(finding_ids(&v.json()), ["CVE-2023-5363"]);
    let state = env
        .run(&["vulns", "feeds", "--config", cfg, "--json"])
        .await;
    state.expect(0);
    let state = state.json();
    assert_eq!(state[0]["source"], url);
    assert!(
        state[0]["error"].as_str().unwrap().contains("all.zip"),
        "{state}"
    );
    // The next ask still names the last good copy, so a fixed archive is
    // fetched whole, and a 304 could only mean the good one.
    let last = mirror.requests().pop().unwrap();
    assert_eq!(last.status, 200);
    assert!(last.if_none_match.is_some());

    // Over the feed's max_size: refused before it is read.
    mirror.publish_dir("Debian", &debian);
    let small = env.config_file(
        "small.yaml",
        &format!(
            "feeds:\n  osv:\n    url: {}\n    max_size: 100B\n",
            mirror.url()
        ),
    );
    let big = env
        .run(&["vulns", "sync", "--config", small.to_str().unwrap()])
        .await;
    big.expect(1);
    assert!(
        big.stderr.contains("max_size is 100 bytes"),
        "{}",
        big.stderr
    );

    // An ecosystem the export doesn't hold: a 404 that says what to check.
    let nope = env.config_file(
        "nope.yaml",
        &format!(
            "feeds:\n  osv:\n    url: {}\n    ecosystems: [Debain]\n",
            mirror.url()
        ),
    );
    let missing = env
        .run(&["vulns", "sync", "--config", nope.to_str().unwrap()])
        .await;
    missing.expect(1);
    assert!(
        missing.stderr.contains("404") && missing.stderr.contains("Debain/all.zip"),
        "{}",
        missing.stderr
    );

    // A local directory feed (PyPI records), and --feed choosing it.
    let local = env.config_file(
        "local.yaml",
        &format!(
            "feeds:\n  osv:\n    url: {}\n  local:\n    path: {}\n",
            mirror.url(),
            osv_fixtures().join("pypi").display()
        ),
    );
    let l = env
        .run(&[
            "vulns",
            "sync",
            "--config",
            local.to_str().unwrap(),
            "--feed",
            "local",
            "--json",
        ])
        .await;
    l.expect(0);
    let l = l.json();
    assert_eq!(l["feeds"][0]["feed"], "local");
    assert_eq!(archive(&l)["summary"]["added"].as_u64(), Some(1), "{l}");
    let unknown = env
        .run(&[
            "vulns",
            "sync",
            "--config",
            local.to_str().unwrap(),
            "--feed",
            "nvd",
        ])
        .await;
    unknown.expect(2);
    assert!(
        unknown
            .stderr
            .contains("no feed named \"nvd\" (defined: local, osv)"),
        "{}",
        unknown.stderr
    );
}

both_stores!(feeds_sync);

#[tokio::test]
async fn feed_config_errors_name_the_field() {
    let env = Env::new(Db::Sqlite).await;
    for (yaml, wanted) in [
        (
            "feeds:\n  x:\n    ecosystems: [Debian]\n",
            "feeds.x.url: a feed needs `url`",
        ),
        (
            "feeds:\n  x:\n    url: https://a.example\n    path: here\n",
            "feeds.x.url: give either `url`",
        ),
        (
            "feeds:\n  x:\n    url: https://a.example\n    max_size: 1TiB\n",
            "feeds.x.max_size: \"1TiB\": unknown unit",
        ),
        (
            "feeds:\n  x:\n    url: https://a.example\n    schedule: sometimes\n",
            "feeds.x.schedule",
        ),
    ] {
        let cfg = env.config_file("bad.yaml", yaml);
        let r = env
            .run(&["vulns", "sync", "--config", cfg.to_str().unwrap()])
            .await;
        r.expect(2);
        assert!(r.stderr.contains(wanted), "{yaml}: {}", r.stderr);
    }
    for (yaml, wanted) in [
        (
            "policy:\n  on_vulnerable: [page]\n",
            "policy.on_vulnerable[0]: no trigger named \"page\"",
        ),
        (
            "policies:\n  team:\n    images: [\"*\"]\n    on_vulnerable: [cascade, pager]\n",
            "policies.team.on_vulnerable[1]: no trigger named \"pager\"",
        ),
    ] {
        let cfg = env.config_file("bad.yaml", yaml);
        let r = env
            .run(&["vulns", "sync", "--config", cfg.to_str().unwrap()])
            .await;
        r.expect(2);
        assert!(r.stderr.contains(wanted), "{yaml}: {}", r.stderr);
    }
    // No feeds at all: says how to add one.
    let none = env.config_file("none.yaml", "{}\n");
    let r = env
        .run(&["vulns", "sync", "--config", none.to_str().unwrap()])
        .await;
    r.expect(2);
    assert!(r.stderr.contains("no feeds in the config"), "{}", r.stderr);
}

/// `freshen watch` with feeds and no watches syncs each feed at start and
/// then on its schedule, conditionally; SIGTERM ends it cleanly.
async fn the_daemon_syncs_feeds_on_schedule(db: Db) {
    use std::time::Duration;
    let env = Env::new(db).await;
    let mirror = OsvMirror::start().await;
    mirror.publish_dir("Debian", &osv_fixtures().join("debian"));
    let cfg = env.config(&format!(
        "jitter: 0s\nfeeds:\n  osv:\n    url: {}\n    ecosystems: [Debian]\n    schedule: 2s\n",
        mirror.url()
    ));
    let mut child = env.spawn(&["watch", "--config", cfg.to_str().unwrap()], "watch.log");
    // The first run at start, then a 304 on schedule.
    freshen_testkit::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || format!("{:?}\n{}", mirror.requests(), env.log("watch.log")),
        async || {
            let r = mirror.requests();
            (r.len() >= 2).then_some(())
        },
    )
    .await;
    let r = mirror.requests();
    assert_eq!((r[0].status, r[1].status), (200, 304), "{r:?}");
    assert!(r[1].if_none_match.is_some());
    let state = env
        .run(&[
            "vulns",
            "feeds",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
        ])
        .await;
    state.expect(0);
    let state = state.json();
    assert_eq!(state[0]["feed"], "osv");
    assert!(state[0]["import_id"].as_i64().is_some(), "{state}");
    assert!(state[0]["error"].is_null(), "{state}");

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .unwrap();
    assert!(
        status.success(),
        "clean exit: {status:?}\n{}",
        env.log("watch.log")
    );
}

both_stores!(the_daemon_syncs_feeds_on_schedule);

/// The security loop's alert: the daemon syncs a feed, the new data makes
/// the image's policy act, and one `vulnerability` event (naming the image,
/// the CVE, the policy version and the data snapshot) reaches the alert
/// webhook exactly once; later syncs, of the same data or a republished
/// copy of it, make no second event.
async fn new_data_alerts_once(db: Db) {
    use std::time::Duration;
    let reg = Registry::start().await;
    let env = Env::new(db).await;
    let mirror = OsvMirror::start().await;
    let hook = WebhookReceiver::start("k").await;
    let image = vulnerable_image(&env, &reg.host()).await;
    mirror.publish_dir("Debian", &osv_fixtures().join("debian"));
    let cfg = env.config(&format!(
        "jitter: 0s\n\
         triggers:\n  alert:\n    webhook: {{url: \"{}\", secret: \"k\", timeout: 5s}}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [alert]\n\
         feeds:\n  osv:\n    url: {}\n    schedule: 2s\n",
        hook.url(),
        mirror.url()
    ));
    let cfg = cfg.to_str().unwrap();
    let mut child = env.spawn(&["watch", "--config", cfg], "watch.log");
    let got = hook.wait_for(1, Duration::from_secs(30)).await;
    let body = &got[0].body;
    assert!(got[0].signature_valid);
    assert_eq!(body["source"], "vulnerability", "{body}");
    assert_eq!(body["reference"], image.as_str(), "{body}");
    let cause = &body["vulnerability"];
    assert_eq!(cause["policy"], "default", "{body}");
    assert!(
        cause["policy_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        cause["snapshot"]["vuln_import"].as_i64().is_some(),
        "{body}"
    );
    let ids: Vec<&str> = cause["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == "CVE-2023-5363") && !ids.is_empty(),
        "{body}"
    );
    assert!(
        body["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("high > 0"),
        "{body}"
    );

    // Two more scheduled syncs (304s), and a republished copy of the same
    // records (a new ETag, nothing new inside): still one alert.
    freshen_testkit::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || format!("{:?}", mirror.requests()),
        async || (mirror.requests().len() >= 3).then_some(()),
    )
    .await;
    let compact = env.path().join("compact");
    std::fs::create_dir_all(&compact).unwrap();
    for e in std::fs::read_dir(osv_fixtures().join("debian")).unwrap() {
        let p = e.unwrap().path();
        let rec: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        std::fs::write(compact.join(p.file_name().unwrap()), rec.to_string()).unwrap();
    }
    mirror.publish_dir("Debian", &compact);
    let sync = env.run(&["vulns", "sync", "--config", cfg, "--json"]).await;
    sync.expect(0);
    assert_eq!(
        sync.json()["events"],
        serde_json::json!([]),
        "{}",
        sync.stdout
    );
    // Data that changes (an amended bullseye advisory) but not what this
    // image is exposed to: judged again by the daemon, no new event.
    let amended = env.path().join("amended");
    std::fs::create_dir_all(&amended).unwrap();
    for e in std::fs::read_dir(osv_fixtures().join("debian")).unwrap() {
        let p = e.unwrap().path();
        let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        if p.file_name().unwrap() == "DSA-5417-1.json" {
            rec["modified"] = "2026-12-02T00:00:00Z".into();
        }
        std::fs::write(amended.join(p.file_name().unwrap()), rec.to_string()).unwrap();
    }
    let before = mirror.requests().len();
    mirror.publish_dir("Debian", &amended);
    freshen_testkit::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || format!("{:?}", mirror.requests()),
        async || {
            let r = mirror.requests();
            (r.len() > before + 1 && r[before..].iter().any(|q| q.status == 200)).then_some(())
        },
    )
    .await;
    // And a manual import of the same records judges every image again.
    let import = env
        .run(&[
            "vulns",
            "import",
            "--config",
            cfg,
            amended.to_str().unwrap(),
        ])
        .await;
    import.expect(0);
    assert!(
        !import.stdout.contains("vulnerability event"),
        "{}",
        import.stdout
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "one alert only\n{}",
        env.log("watch.log")
    );
    let events = env.run(&["events", "--json"]).await;
    events.expect(0);
    let events = events.json();
    let vulnerability: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "vulnerability")
        .collect();
    assert_eq!(vulnerability.len(), 1, "{events}");
    assert_eq!(vulnerability[0]["id"], body["id"]);

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

both_stores!(new_data_alerts_once);

/// The nightly loop (`rescan:`): the daemon scans every inventory tag
/// again on its schedule, so a tag that moved to a vulnerable digest is
/// read without a push or a manual scan, judged, and alerted on once.
async fn rescan_reads_moved_tags_and_alerts(db: Db) {
    use std::time::Duration;
    let reg = Registry::start().await;
    let env = Env::new(db).await;
    let hook = WebhookReceiver::start("k").await;
    let image = format!("{}/golden/base:1", reg.host());
    let fixed = build_bookworm(&env, &image, false).await;
    env.run(&["scan", &image]).await.expect(0);
    let cfg = env.config(&format!(
        "jitter: 0s\n\
         triggers:\n  alert:\n    webhook: {{url: \"{}\", secret: \"k\", timeout: 5s}}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [alert]\n\
         rescan:\n  schedule: 2s\n",
        hook.url()
    ));
    let cfg = cfg.to_str().unwrap();
    let debian = osv_fixtures().join("debian");
    let imported = env
        .run(&["vulns", "import", "--config", cfg, debian.to_str().unwrap()])
        .await;
    imported.expect(0);
    assert!(
        !imported.stdout.contains("vulnerability event"),
        "the fixed build is not vulnerable: {}",
        imported.stdout
    );

    // The tag moves to a vulnerable build; nobody scans it.
    let moved = build_bookworm(&env, &image, true).await;
    assert_ne!(fixed, moved);
    let mut child = env.spawn(&["watch", "--config", cfg], "watch.log");
    let got = hook.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(got[0].body["source"], "vulnerability", "{}", got[0].body);
    assert_eq!(got[0].body["reference"], image.as_str());
    let shown = env.run(&["images", "show", &image, "--json"]).await;
    shown.expect(0);
    assert!(shown.stdout.contains(&moved), "{}", shown.stdout);
    // Later rescans find the same findings: still one alert.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.received().len(), 1, "{}", env.log("watch.log"));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

both_stores!(rescan_reads_moved_tags_and_alerts);

/// Copies the Debian OSV fixtures to `dir`, each record with `modified`
/// set to `modified` and, with `withdrawn`, withdrawn then.
fn debian_records(dir: &std::path::Path, modified: &str, withdrawn: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(osv_fixtures().join("debian")).unwrap() {
        let p = e.unwrap().path();
        let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        rec["modified"] = modified.into();
        if withdrawn {
            rec["withdrawn"] = modified.into();
        }
        std::fs::write(dir.join(p.file_name().unwrap()), rec.to_string()).unwrap();
    }
}

/// An advisory withdrawn: the image stops acting and is forgotten, so the
/// advisory coming back is news (a second event); the first event's
/// decision still replays as it was made, on the data of its snapshot.
async fn withdrawn_advisories_and_replay(db: Db) {
    let reg = Registry::start().await;
    let env = Env::new(db).await;
    let image = vulnerable_image(&env, &reg.host()).await;
    let cfg = env.config(
        "triggers:\n  alert:\n    webhook: {url: \"http://127.0.0.1:9/\", timeout: 1s}\n\
         policy:\n  mode: thresholds\n  thresholds: \"high > 0\"\n  on_vulnerable: [alert]\n",
    );
    let cfg = cfg.to_str().unwrap();
    let import = |dir: std::path::PathBuf| {
        let env = &env;
        async move {
            let r = env
                .run(&["vulns", "import", "--config", cfg, dir.to_str().unwrap()])
                .await;
            r.expect(0);
            r.stdout
        }
    };
    let vulnerability_events = async || {
        let r = env.run(&["events", "--json"]).await;
        r.expect(0);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["source"] == "vulnerability")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    let first = env.path().join("v1");
    debian_records(&first, "2026-01-01T00:00:00Z", false);
    assert!(import(first).await.contains("vulnerability event"));
    let events = vulnerability_events().await;
    assert_eq!(events.len(), 1);

    let gone = env.path().join("v2");
    debian_records(&gone, "2026-02-01T00:00:00Z", true);
    let out = import(gone).await;
    assert!(!out.contains("vulnerability event"), "{out}");
    let v = env.run(&["vulns", &image, "--json"]).await;
    v.expect(0);
    assert!(
        finding_ids(&v.json()).is_empty(),
        "withdrawn records match nothing"
    );

    let back = env.path().join("v3");
    debian_records(&back, "2026-03-01T00:00:00Z", false);
    assert!(import(back).await.contains("vulnerability event"));
    assert_eq!(
        vulnerability_events().await.len(),
        2,
        "acting again is news"
    );

    // The first event's decision, replayed as made: it acted, on the data
    // of its snapshot (before the withdrawal).
    let decisions = env
        .run(&["policy", "decisions", "--event", &events[0], "--json"])
        .await;
    decisions.expect(0);
    let id = decisions.json()[0]["id"].as_str().unwrap().to_string();
    let replay = env.run(&["policy", "replay", &id, "--json"]).await;
    replay.expect(0);
    let replay = replay.json();
    assert_eq!(replay["verdict"]["act"], true, "{replay:#}");
    assert_eq!(replay["same"], true, "{replay:#}");
    // With today's data (withdrawn, then back) it still acts.
    let now = env
        .run(&["policy", "replay", &id, "--now", "--config", cfg, "--json"])
        .await;
    now.expect(0);
    assert_eq!(now.json()["verdict"]["act"], true, "{now}");
}

both_stores!(withdrawn_advisories_and_replay);
