//! The cascade from the command line: build definitions (config and an
//! `app/version/Dockerfile` tree) planned in waves.

mod common;

use common::{Env, write};
use freshen_testkit::{Db, both_stores};

async fn plan_shows_waves(db: Db) {
    let env = Env::new(db).await;
    let d = env.path();
    write(&d.join("base/Dockerfile"), "FROM debian:bookworm\n");
    write(
        &d.join("mid/Dockerfile"),
        "FROM localhost:5000/golden/base:1\n",
    );
    for app in ["api", "web", "worker"] {
        write(
            &d.join(format!("dockerfiles/{app}/1.0/Dockerfile")),
            "ARG MID=localhost:5000/golden/mid:1\nFROM ${MID}\n",
        );
    }
    let config = env.config_file(
        "cascade.yaml",
        "builds:\n  - {image: localhost:5000/golden/base:1, context: base}\n  - {image: localhost:5000/golden/mid:1, context: mid, executor: rebase}\n\
         discover:\n  - {root: dockerfiles, image: \"localhost:5000/apps/{app}:{version}\"}\n",
    );
    let cfg = config.to_str().unwrap();
    let run = env
        .run(&[
            "plan",
            "--config",
            cfg,
            "--base",
            "debian:bookworm",
            "--json",
        ])
        .await;
    run.expect(0);
    let p = run.json();
    let waves: Vec<Vec<String>> = p["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w.as_array()
                .unwrap()
                .iter()
                .map(|b| b["image"].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        waves,
        [
            vec!["localhost:5000/golden/base:1".to_string()],
            vec!["localhost:5000/golden/mid:1".to_string()],
            vec![
                "localhost:5000/apps/api:1.0".to_string(),
                "localhost:5000/apps/web:1.0".to_string(),
                "localhost:5000/apps/worker:1.0".to_string()
            ],
        ]
    );
    assert_eq!(p["waves"][1][0]["executor"], "rebase");
    assert_eq!(p["trigger"]["kind"], "base");
    let text = env
        .run(&[
            "plan",
            "--config",
            cfg,
            "--image",
            "localhost:5000/golden/mid:1",
        ])
        .await;
    text.expect(0);
    assert!(
        text.stdout.contains("4 image(s) in 2 wave(s)")
            && text
                .stdout
                .contains("FROM localhost:5000/golden/mid:1 (rebuilt in wave 1)"),
        "{text}"
    );
    let dot = env.run(&["plan", "--config", cfg, "--dot"]).await;
    dot.expect(0);
    assert!(dot.stdout.starts_with("digraph"), "{dot}");
    // A cycle is an error naming it; a missing context names the definition.
    write(
        &d.join("base/Dockerfile"),
        "FROM localhost:5000/apps/api:1.0\n",
    );
    let cycle = env.run(&["plan", "--config", cfg]).await;
    cycle.expect(2);
    assert!(
        cycle.stderr.contains("the builds form a cycle: "),
        "{cycle}"
    );
    let missing = env.config_file(
        "missing.yaml",
        "builds:\n  - {image: localhost:5000/x:1, context: nowhere}\n",
    );
    let bad = env
        .run(&["plan", "--config", missing.to_str().unwrap()])
        .await;
    bad.expect(2);
    assert!(bad.stderr.contains("builds[0].context: "), "{bad}");
}

both_stores!(plan_shows_waves);
