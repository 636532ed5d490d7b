//! The shared watch schedule.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Ctx, both, t};

const LEASE: Duration = Duration::from_secs(60);

both!(
    sync_claim_finish,
    concurrent_watch_claimers_get_disjoint_keys
);

fn keys(list: &[(&str, i64)]) -> Vec<(String, chrono::DateTime<chrono::Utc>)> {
    list.iter().map(|(k, s)| (k.to_string(), t(*s))).collect()
}

async fn sync_claim_finish(ctx: Ctx) {
    let s = &ctx.store;
    assert_eq!(s.next_watch_due().await.unwrap(), None);
    s.sync_schedule(&keys(&[("a", 0), ("b", 10), ("c", 0), ("e", 5)]))
        .await
        .unwrap();
    assert_eq!(s.next_watch_due().await.unwrap(), Some(t(0)));

    let r1 = s.claim_due_watches("r1", t(0), LEASE, 10).await.unwrap();
    assert_eq!(r1, ["a", "c"], "due ones, most overdue first, then by key");
    assert!(
        s.claim_due_watches("r2", t(1), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_due_watches("r2", t(5), LEASE, 10).await.unwrap(),
        ["e"]
    );

    s.finish_watch("a", "r1", t(300)).await.unwrap();
    // Not the holder: ignored.
    s.finish_watch("c", "r2", t(900)).await.unwrap();
    // b due at 10; c and e leased until 60 and 65.
    assert_eq!(s.next_watch_due().await.unwrap(), Some(t(10)));
    assert_eq!(
        s.claim_due_watches("r2", t(10), LEASE, 10).await.unwrap(),
        ["b"]
    );
    s.finish_watch("b", "r2", t(400)).await.unwrap();
    assert_eq!(
        s.next_watch_due().await.unwrap(),
        Some(t(60)),
        "c's lease expiry"
    );

    // r1 died holding c: once the lease expires, r2 takes it over.
    assert_eq!(
        s.claim_due_watches("r2", t(60), LEASE, 10).await.unwrap(),
        ["c"]
    );
    s.finish_watch("c", "r1", t(999)).await.unwrap(); // too late: ignored
    s.finish_watch("c", "r2", t(200)).await.unwrap();

    // Re-sync: kept keys keep their due times, new ones are added, gone ones deleted.
    s.sync_schedule(&keys(&[("a", 0), ("c", 0), ("d", 100), ("d", 100)]))
        .await
        .unwrap();
    assert_eq!(s.next_watch_due().await.unwrap(), Some(t(100)));
    assert_eq!(
        s.claim_due_watches("r1", t(250), LEASE, 10).await.unwrap(),
        ["d", "c"]
    );
    assert_eq!(
        s.claim_due_watches("r1", t(300), LEASE, 10).await.unwrap(),
        ["a"]
    );
    // Finishing a deleted key is harmless.
    s.finish_watch("b", "r2", t(1000)).await.unwrap();

    s.sync_schedule(&[]).await.unwrap();
    assert_eq!(s.next_watch_due().await.unwrap(), None);
}

async fn concurrent_watch_claimers_get_disjoint_keys(ctx: Ctx) {
    let list: Vec<(String, i64)> = (0..40).map(|i| (format!("watch-{i:02}"), i)).collect();
    let all: Vec<_> = list.iter().map(|(k, s)| (k.clone(), t(*s))).collect();
    ctx.store.sync_schedule(&all).await.unwrap();
    let other = ctx.another_store().await;

    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = if w % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let owner = format!("replica-{w}");
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due_watches(&owner, t(100), LEASE, 2)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for key in task.await.unwrap() {
            assert!(seen.insert(key.clone()), "{key} claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
    other.close().await;
}
