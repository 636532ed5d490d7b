//! Two OS processes sharing one database, as a CLI run beside the daemon (or
//! two replicas) would: writes queue instead of failing, claims stay disjoint,
//! and concurrent records of one reference stay consistent.
//!
//! The test re-runs its own binary, filtered to itself, as the second
//! process; the environment variable tells that copy to play the child.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use freshen_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{Ctx, Db, make_event, obs, run_on, t};

const CHILD_ENV: &str = "FRESHEN_STORE_TEST_CHILD_URL";
const LEASE: Duration = Duration::from_secs(60);
const SHARED_REFS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_sqlite() {
    two_processes(Db::Sqlite, "processes::two_processes_sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_postgres() {
    two_processes(Db::Postgres, "processes::two_processes_postgres").await
}

async fn two_processes(kind: Db, test_name: &'static str) {
    match std::env::var(CHILD_ENV) {
        Ok(url) => child(&url).await,
        Err(_) => run_on(kind, move |ctx| parent(ctx, test_name)).await,
    }
}

async fn child(url: &str) {
    let store = Store::open(url).await.expect("child: open store");
    println!("READY");
    // Wait for the parent's go (blocking stdin: tokio's `io-std` is not enabled).
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
        .await
        .unwrap()
        .unwrap();
    for id in work(&store, "child").await {
        println!("CLAIMED {id}");
    }
    store.close().await;
}

async fn parent(ctx: Ctx, test_name: &'static str) {
    for i in 0..12 {
        let reference = format!("docker.io/library/p{i}:1");
        make_event(&ctx.store, &reference, i, &["t1", "t2", "t3", "t4", "t5"]).await;
    }
    let expected: HashSet<i64> = ctx
        .store
        .deliveries(None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &ctx.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest prints "test <name> ... " without a newline before our output.
            if line.ends_with("READY") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "child process did not get ready");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GO\n")
        .await
        .unwrap();

    let mine = work(&ctx.store, "parent").await;
    let mut theirs = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(id) = line.strip_prefix("CLAIMED ") {
            theirs.push(id.parse::<i64>().unwrap());
        }
    }
    assert!(
        child.wait().await.unwrap().success(),
        "child process failed"
    );

    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "both processes worked"
    );
    let mut seen = HashSet::new();
    for id in mine.iter().chain(&theirs) {
        assert!(seen.insert(*id), "delivery {id} claimed by both processes");
    }
    assert_eq!(seen, expected);

    // Each event on a shared reference is one more run of its platform.
    for i in 0..SHARED_REFS {
        let reference = shared_ref(i);
        let runs = ctx
            .store
            .history(&reference)
            .await
            .unwrap()
            .into_iter()
            .filter(|h| h.platform == "linux/amd64")
            .count();
        let events = ctx
            .store
            .events(Some(&reference), 1000)
            .await
            .unwrap()
            .len();
        assert_eq!(runs, events + 1, "{reference}");
    }
}

fn shared_ref(i: usize) -> String {
    format!("docker.io/library/shared{i}:1")
}

/// Claims and acknowledges deliveries one at a time until none are left,
/// recording flip-flopping digests of shared references in between.
async fn work(store: &Store, owner: &str) -> Vec<i64> {
    let mut mine = Vec::new();
    for i in 0.. {
        let digest = if (i / SHARED_REFS).is_multiple_of(2) {
            "sha256:a"
        } else {
            "sha256:b"
        };
        store
            .record(&obs(
                &shared_ref(i % SHARED_REFS),
                1,
                digest,
                &[("linux/amd64", digest)],
                &[],
            ))
            .await
            .unwrap();
        let got = store
            .claim_deliveries(owner, t(100), LEASE, 1)
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for d in got {
            // Stands in for the call to the target, and lets the other process in.
            tokio::time::sleep(Duration::from_millis(2)).await;
            assert!(
                store
                    .delivery_succeeded(d.id, owner, t(101), None)
                    .await
                    .unwrap()
            );
            mine.push(d.id);
        }
    }
    mine
}
