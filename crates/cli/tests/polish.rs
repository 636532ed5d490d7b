//! The command line's manners, each as a user meets it: a closed pipe, logs
//! off a terminal, errors said once and naming what to fix, the outbox's
//! words, the rebuilds table, and commands that read without the triggers'
//! secrets.

mod common;

use std::time::Duration;

use common::{Env, golden_base, rig, upstream_v1_v2};
use freshen_testkit::{
    DEBIAN_ROOT_DOCKERFILE, Db, Registry, WebhookReceiver, debian_root, eventually,
};
use tokio::io::AsyncBufReadExt as _;

/// A dpkg status of `n` packages: `images packages` prints a line each.
fn many_packages(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}-1\nArchitecture: amd64\n\n"
            )
        })
        .collect()
}

/// `freshen images packages REF | head -1` printed the first line and then
/// panicked (exit 101) on the closed pipe. Now the command stops writing
/// and ends with its own status; output that can't be written for another
/// reason (a full disk) is an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_the_command_quietly() {
    let (_reg, host, _push, buildah, env, d) = rig(Db::Sqlite).await;
    let image = format!("{host}/many:1");
    let ctx = d.join("many");
    debian_root(&ctx, &many_packages(3000), "ID=debian\nVERSION_ID=12\n");
    buildah
        .build_push(&ctx, DEBIAN_ROOT_DOCKERFILE, &image, &[])
        .await;
    let config = env.config(&format!(
        "registries:\n  - {{host: \"{host}\", insecure: true}}\n"
    ));
    let cfg = config.to_str().unwrap();
    env.run(&["scan", "--config", cfg, &image]).await.expect(0);

    for args in [
        vec!["images", "packages", &image],
        vec!["images", "packages", &image, "--json"],
    ] {
        // The output (3000 rows, well over a pipe's 64 KiB) fills the pipe;
        // the reader takes one line and leaves, as `head -1` does.
        let mut child = env
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("a first line");
        drop(lines);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("freshen ends once its reader is gone")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}: nothing said, no panic");
        assert!(
            first.starts_with("PLATFORM") || first == "{",
            "{args:?}: {first}"
        );
    }

    // Through a real shell pipeline too.
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(r#""$0" images packages "$1" | head -1; echo "exit ${PIPESTATUS[0]}""#)
        .arg(env!("CARGO_BIN_EXE_freshen"))
        .arg(&image)
        .env("FRESHEN_DATABASE", &env.database)
        .env_remove("FRESHEN_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("exit 0\n"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // A full disk is not a reader that left.
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let out = env
        .command(&["images", "packages", &image])
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "freshen: error: cannot write the output: No space left on device (os error 28)\n"
    );
}

/// Logs written to a pipe or file carry no color codes; `--log-format json`
/// (or FRESHEN_LOG_FORMAT) writes one object per line; and fields read as
/// values, not as Rust's `Debug` (`event=Some("…")`).
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(Db::Sqlite).await;
    let r = format!("{}/svc:1", reg.host());
    push.push_image("svc", "1", "linux/amd64", "a").await;
    let config = env.config(&format!(
        "jitter: 0s\nwatches:\n  - {{ref: \"{r}\", schedule: 1s, on_change: [notify]}}\n\
         triggers:\n  notify:\n    webhook: {{url: \"{}\", secret: k}}\n",
        hook.url()
    ));
    let cfg = config.to_str().unwrap();

    // The daemon, text logs to a file: a change is logged with its event.
    let mut child = env.spawn(&["watch", "--config", cfg, "--log", "info"], "watch.log");
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || format!("no baseline; log:\n{}", env.log("watch.log")),
        async || (env.run(&["history", &r]).await.code == 0).then_some(()),
    )
    .await;
    push.push_image("svc", "1", "linux/amd64", "b").await;
    let got = hook.wait_for(1, Duration::from_secs(15)).await;
    let event = got[0].event_id.clone().expect("an event id");
    let line = eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || format!("no `changed` line; log:\n{}", env.log("watch.log")),
        async || {
            env.log("watch.log")
                .lines()
                .find(|l| l.contains(" changed "))
                .map(str::to_string)
        },
    )
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let log = env.log("watch.log");
    assert!(!log.contains('\x1b'), "no ANSI codes in a file:\n{log}");
    assert!(!log.contains("Some("), "no Debug text:\n{log}");
    assert!(line.contains(&format!("event={event}")), "{line}");
    assert!(log.contains("backend=sqlite"), "{log}");

    // One pass with JSON logs, by flag and by environment.
    push.push_image("svc", "1", "linux/amd64", "c").await;
    let mut json = env.command(&["check", "--config", cfg, "--log", "info"]);
    json.env("FRESHEN_LOG_FORMAT", "json");
    let out = json.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let objects: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let delivered = objects
        .iter()
        .find(|o| o["message"] == "delivered")
        .unwrap_or_else(|| panic!("no `delivered` object:\n{stderr}"));
    assert_eq!(delivered["level"], "INFO");
    assert_eq!(delivered["trigger"], "notify");
    assert!(delivered["event"].as_str().is_some_and(|e| e.len() > 30));
    let by_flag = env
        .run(&[
            "check",
            "--config",
            cfg,
            "--log",
            "debug",
            "--log-format",
            "json",
        ])
        .await;
    assert!(
        by_flag
            .stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .count()
            > 0,
        "{by_flag}"
    );
    assert!(!by_flag.stderr.contains('\x1b'), "{by_flag}");
}

/// The tracing macros in the workspace's code record values by `Display`
/// or as plain values, never with `?` (Rust's `Debug`): a log line reads
/// `event=0190…`, not `event=Some("0190…")`.
#[test]
fn no_log_field_is_debug_formatted() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !["tests", "target", "fixtures"].contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for hit in debug_fields(&text) {
                    found.push(format!("{}: {hit}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Debug-formatted log fields:\n{}",
        found.join("\n")
    );
}

/// The arguments of `tracing::` event and span macros in `text` that record
/// a field with `?`, each with its line.
fn debug_fields(text: &str) -> Vec<String> {
    const MACROS: [&str; 10] = [
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "trace_span",
        "debug_span",
        "info_span",
        "warn_span",
        "error_span",
    ];
    let mut hits = Vec::new();
    for (at, _) in text.match_indices("!(") {
        let Some(name) = text[..at]
            .rsplit(|c: char| c.is_whitespace() || c == '(')
            .next()
        else {
            continue;
        };
        if !MACROS.iter().any(|m| name == format!("tracing::{m}")) {
            continue;
        }
        // The top-level arguments, string literals skipped over.
        let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
        let mut args = Vec::new();
        let mut arg = String::new();
        for c in text[at + 1..].chars() {
            if in_str {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '(' | '[' | '{' => {
                    depth += 1;
                    arg.push(c);
                }
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth == 0 {
                        args.push(std::mem::take(&mut arg));
                        break;
                    }
                    arg.push(c);
                }
                ',' if depth == 1 => args.push(std::mem::take(&mut arg)),
                _ => arg.push(c),
            }
        }
        let line = text[..at].lines().count();
        for a in args {
            let a = a.trim().trim_start_matches('(').trim();
            if a.starts_with('?') || a.contains("= ?") {
                hits.push(format!("line {line}: {a}"));
            }
        }
    }
    hits
}

#[test]
fn debug_fields_are_found() {
    let text = "x\ntracing::info!(a = %b, c = ?d, \"m, ?x\");\ntracing::warn!(\n    x = f(1, 2),\n    ?list,\n    \"m\"\n);\nlet y = f()?;\nprintln!(\"{:?}\", ?z);\n";
    assert_eq!(debug_fields(text), ["line 2: c = ?d", "line 3: ?list"]);
}

/// A config file that isn't there is one error, said once.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_is_said_once() {
    let env = Env::new(Db::Sqlite).await;
    let missing = env.path().join("nope.yaml");
    let run = env
        .run(&["history", "debian", "--config", missing.to_str().unwrap()])
        .await;
    run.expect(2);
    assert_eq!(
        run.stderr,
        format!(
            "freshen: error: cannot read config {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

/// `outbox retry` says which state a delivery that isn't failed is in,
/// and a delivered row shows no error of an earlier attempt.
#[tokio::test(flavor = "multi_thread")]
async fn outbox_retry_and_list_say_what_is_so() {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let hook = WebhookReceiver::start("k").await;
    let env = Env::new(Db::Sqlite).await;
    let r = format!("{}/svc:1", reg.host());
    push.push_image("svc", "1", "linux/amd64", "a").await;
    let config = env.config(&format!(
        "watches:\n  - {{ref: \"{r}\", on_change: [notify]}}\n\
         triggers:\n  notify:\n    webhook: {{url: \"{}\", secret: k}}\n\
         outbox:\n  max_attempts: 1\n  initial_backoff: 1ms\n",
        hook.url()
    ));
    let cfg = config.to_str().unwrap();
    env.run(&["check", "--config", cfg]).await.expect(0);
    push.push_image("svc", "1", "linux/amd64", "b").await;
    hook.fail_next(1, 500);
    env.run(&["check", "--config", cfg]).await.expect(0);
    let list = env.run(&["outbox", "list", "--json"]).await;
    let id = list.json()[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(list.json()[0]["state"], "failed", "{list}");

    let retried = env.run(&["outbox", "retry", &id]).await;
    retried.expect(0);
    assert_eq!(retried.stdout, format!("delivery {id} queued again\n"));
    let again = env.run(&["outbox", "retry", &id]).await;
    again.expect(2);
    assert_eq!(
        again.stderr,
        format!(
            "freshen: error: delivery {id} is pending, not failed: only a failed delivery is retried (a pending one is tried again when it is due)\n"
        )
    );

    env.run(&["check", "--config", cfg]).await.expect(0);
    assert_eq!(hook.received().len(), 2, "the retry went out");
    let delivered = env.run(&["outbox", "retry", &id]).await;
    delivered.expect(2);
    assert_eq!(
        delivered.stderr,
        format!(
            "freshen: error: delivery {id} is delivered, not failed: only a failed delivery is retried\n"
        )
    );
    let none = env.run(&["outbox", "retry", "999999"]).await;
    none.expect(2);
    assert_eq!(
        none.stderr,
        "freshen: error: no delivery 999999 (see `freshen outbox list`)\n"
    );

    // The table: the delivered row's detail is not the 500 it got first
    // (`--json` keeps the last error for whoever wants the history).
    let table = env.run(&["outbox"]).await;
    table.expect(0);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no row {id}: {table}"));
    assert!(row.contains("delivered"), "{row}");
    assert!(!row.contains("500"), "{row}");
    let json = env.run(&["outbox", "list", "--json"]).await;
    assert!(
        json.json()[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{json}"
    );
}

/// `freshen rebuilds` says what a run started from in words, not as the
/// stored JSON.
#[tokio::test(flavor = "multi_thread")]
async fn the_rebuilds_trigger_column_is_readable() {
    let (_reg, host, push, buildah, env, d) = rig(Db::Sqlite).await;
    upstream_v1_v2(&buildah, &d, &host).await;
    let v1 = push.head_digest("upstream/os", "v1").await.unwrap();
    push.tag("upstream/os", &v1, "stable").await;
    golden_base(&d, &host);
    let buildah_root = tempfile::tempdir().unwrap();
    let config = env.config(&format!(
        "builds:\n  - {{image: {host}/golden/base:1, context: images/base}}\n\
         builders:\n  buildah:\n    root: {root}/root\n    runroot: {root}/run\n    storage_driver: vfs\n",
        root = buildah_root.path().display(),
    ));
    let cfg = config.to_str().unwrap();
    let upstream = format!("{host}/upstream/os:stable");
    env.rebuild(cfg, &["--base", &upstream]).await.expect(0);
    env.rebuild(cfg, &["--image", &format!("{host}/golden/base:1")])
        .await
        .expect(0);

    let table = env.run(&["rebuilds", "--config", cfg]).await;
    table.expect(0);
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert!(rows[0].contains("TRIGGER"), "{table}");
    assert!(
        rows[1].contains(&format!("rebuild {host}/golden/base:1")),
        "{table}"
    );
    assert!(rows[2].contains(&format!("{upstream} changed")), "{table}");
    assert!(!table.stdout.contains("\"kind\""), "{table}");
}

/// Commands that send no trigger start without the triggers' `${ENV}`
/// secrets; `check` and `watch`, which send them, refuse before recording
/// anything.
#[tokio::test(flavor = "multi_thread")]
async fn read_only_commands_need_no_trigger_secrets() {
    let reg = Registry::start().await;
    let push = reg.pusher();
    let env = Env::new(Db::Sqlite).await;
    let r = format!("{}/svc:1", reg.host());
    push.push_image("svc", "1", "linux/amd64", "a").await;
    let config = env.config(&format!(
        "watches:\n  - {{ref: \"{r}\", on_change: [notify]}}\n\
         triggers:\n  notify:\n    webhook: {{url: \"${{FRESHEN_TEST_HOOK_URL}}\", secret: \"${{FRESHEN_TEST_HOOK_SECRET}}\"}}\n"
    ));
    let cfg = config.to_str().unwrap();
    let refusal =
        "triggers.notify.webhook.url: environment variable FRESHEN_TEST_HOOK_URL is not set";

    for args in [
        vec!["events"],
        vec!["outbox", "list"],
        vec!["outbox"],
        vec!["rebuilds"],
        vec!["rollouts"],
        vec!["approvals"],
        vec!["policy", "decisions"],
        vec!["vulns", "feeds"],
    ] {
        let mut full = args.clone();
        full.extend(["--config", cfg]);
        env.run(&full).await.expect(0);
    }
    // These fail for their own reasons, not the config's.
    for args in [vec!["history", &r], vec!["images", "show", &r]] {
        let mut full = args.clone();
        full.extend(["--config", cfg]);
        let run = env.run(&full).await;
        run.expect(2);
        assert!(!run.stderr.contains("FRESHEN_TEST_HOOK"), "{run}");
    }

    for args in [vec!["check"], vec!["watch"]] {
        let mut full = args.clone();
        full.extend(["--config", cfg]);
        let run = env.run(&full).await;
        run.expect(2);
        assert!(run.stderr.contains(refusal), "{args:?}: {run}");
    }
    let history = env.run(&["history", &r]).await;
    history.expect(2);
    assert!(
        history.stderr.contains("no history"),
        "nothing recorded: {history}"
    );
}

/// A database file in a directory that doesn't exist is an error naming
/// the directory (nothing is created); the default data directory is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_in_a_missing_directory_is_named() {
    let env = Env::new(Db::Sqlite).await;
    let missing = env.path().join("no/such");
    let url = format!("sqlite://{}/freshen.db", missing.display());
    let run = env.run(&["events", "--database", &url]).await;
    run.expect(2);
    assert_eq!(
        run.stderr,
        format!(
            "freshen: error: cannot open database {url}: directory {} does not exist\n",
            missing.display()
        )
    );
    assert!(!env.path().join("no").exists());

    let data = env.path().join("new/data");
    let run = env
        .command(&["events"])
        .env_remove("FRESHEN_DATABASE")
        .env("FRESHEN_DATA_DIR", &data)
        .output()
        .await
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(data.join("freshen.db").is_file());
}

/// `server.listen` and `--serve` errors name the value given.
#[tokio::test(flavor = "multi_thread")]
async fn listen_errors_name_the_value() {
    let env = Env::new(Db::Sqlite).await;
    let config = env.config("server:\n  listen: \"localhost:80\"\n");
    let run = env
        .run(&["events", "--config", config.to_str().unwrap()])
        .await;
    run.expect(2);
    assert!(
        run.stderr.contains(
            "server.listen: \"localhost:80\" is not an address to listen on: an IP address and a port"
        ),
        "{run}"
    );
    let run = env.run(&["watch", "--serve", "nope"]).await;
    run.expect(2);
    assert!(run.stderr.contains("--serve \"nope\""), "{run}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let run = env.run(&["serve", "--listen", &addr]).await;
    run.expect(2);
    assert!(
        run.stderr.contains(&format!("cannot listen on {addr}")),
        "{run}"
    );
}

/// Every `--json` flag says what it does in `--help`, man pages and
/// completions (fish completions carry each option's help as `-d`).
#[tokio::test(flavor = "multi_thread")]
async fn every_json_flag_has_help() {
    let env = Env::new(Db::Sqlite).await;
    let fish = env.run(&["completions", "fish"]).await;
    fish.expect(0);
    let json: Vec<&str> = fish
        .stdout
        .lines()
        .filter(|l| l.contains("-l json"))
        .collect();
    assert!(json.len() >= 25, "{}", fish.stdout);
    let bare: Vec<&&str> = json.iter().filter(|l| !l.contains(" -d '")).collect();
    assert!(bare.is_empty(), "--json without help: {bare:#?}");
    let help = env.run(&["outbox", "list", "--help"]).await;
    assert!(
        help.stdout.contains("--json") && help.stdout.contains("Print the result as JSON"),
        "{help}"
    );
}
