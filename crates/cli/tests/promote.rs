//! `freshen promote` end to end against a real Distribution registry: the
//! same digest under other tags and in another repository, and one clear
//! line with exit 2 on error. No store is involved.

mod common;

use common::Env;
use freshen_testkit::{Db, Registry};

#[tokio::test(flavor = "multi_thread")]
async fn promote_to_tags_and_another_repository() {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let (index, _) = push
        .push_multiarch(
            "team/app",
            "1.4",
            &["linux/amd64", "linux/arm64"],
            "pr",
            false,
        )
        .await;
    let env = Env::new(Db::Sqlite).await;
    let src = format!("{}/team/app:1.4", reg.host());
    let prod = format!("{}/prod/app:1.4", reg.host());

    // Two tags of the same repository, as people write them.
    let run = env
        .run(&["promote", &src, "--to", "1.4-rc", "--to", "latest"])
        .await;
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert_eq!(lines[0], format!("{src}  {index}"));
    for (line, tag) in lines[1..].iter().zip(["1.4-rc", "latest"]) {
        assert!(
            line.starts_with(&format!("  -> {}/team/app:{tag}  {index}", reg.host())),
            "{run}"
        );
    }
    for tag in ["1.4-rc", "latest"] {
        assert_eq!(
            push.head_digest("team/app", tag).await.as_deref(),
            Some(index.as_str())
        );
    }

    // JSON, with a target in another repository: children and blobs mounted.
    let run = env
        .run(&["promote", &src, "--to", "stable", "--to", &prod, "--json"])
        .await;
    run.expect(0);
    let j = run.json();
    assert_eq!(j["source"], src.as_str());
    assert_eq!(j["digest"], index.as_str());
    assert_eq!(j["media_type"], "application/vnd.oci.image.index.v1+json");
    let targets = j["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(
        targets[0]["reference"],
        format!("{}/team/app:stable", reg.host())
    );
    assert_eq!(targets[1]["reference"], prod.as_str());
    for t in targets {
        assert_eq!(t["digest"], index.as_str(), "{j}");
    }
    assert_eq!(targets[0]["manifests_pushed"], 1);
    assert_eq!(
        targets[1]["manifests_pushed"], 3,
        "two children, then the index"
    );
    assert_eq!(targets[1]["blobs_mounted"], 4);
    assert_eq!(targets[1]["blobs_copied"], 0);
    let (_, src_bytes) = push.get_manifest("team/app", "1.4").await.unwrap();
    let (_, prod_bytes) = push.get_manifest("prod/app", "1.4").await.unwrap();
    assert_eq!(prod_bytes, src_bytes, "the exact bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_errors_are_one_line_and_exit_2() {
    let reg = Registry::start().await;
    let env = Env::new(Db::Sqlite).await;
    let missing = format!("{}/team/missing:1", reg.host());
    let run = env.run(&["promote", &missing, "--to", "latest"]).await;
    run.expect(2);
    assert_eq!(run.stdout, "");
    let err = run.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "{run}");
    assert!(err.starts_with("freshen: error: promoting "), "{run}");
    assert!(err.contains(&missing) && err.contains("not found"), "{run}");

    let run = env.run(&["promote", &missing, "--to=-bad"]).await;
    run.expect(2);
    assert!(run.stderr.contains("--to -bad"), "{run}");

    // --to is required.
    let run = env.run(&["promote", &missing]).await;
    run.expect(2);
}
