//! The delivery outbox: claims, leases, outcomes, retries.

use std::collections::HashSet;
use std::time::Duration;

use freshen_store::{DeliveryState, StoreError};

use crate::common::{Ctx, both, make_event, t};

const REF: &str = "docker.io/library/alpine:3";
const LEASE: Duration = Duration::from_secs(30);

both!(
    claim_lease_expiry_and_lost_lease,
    concurrent_claimers_get_disjoint_rows,
    failed_attempt_schedules_retry,
    give_up_then_retry_delivery,
    enqueue_replays_a_stored_event,
);

async fn claim_lease_expiry_and_lost_lease(ctx: Ctx) {
    let s = &ctx.store;
    make_event(s, REF, 0, &["jenkins", "hook"]).await;

    let a = s.claim_deliveries("a", t(0), LEASE, 10).await.unwrap();
    assert_eq!(a.len(), 2);
    assert!(a[0].id < a[1].id, "oldest first");
    assert_eq!(a[0].trigger, "jenkins");

    // Leased rows are invisible to others until the lease runs out...
    assert!(
        s.claim_deliveries("b", t(29), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(t(30)));
    // ...then another dispatcher takes them over.
    let b = s.claim_deliveries("b", t(30), LEASE, 1).await.unwrap();
    assert_eq!(b.len(), 1, "limit respected");
    assert_eq!(b[0].id, a[0].id);

    // "a" lost that lease: its outcome is refused and changes nothing.
    assert!(
        !s.delivery_succeeded(a[0].id, "a", t(31), Some("x"))
            .await
            .unwrap()
    );
    assert!(
        !s.delivery_failed(a[0].id, "a", "late", Some(t(99)))
            .await
            .unwrap()
    );
    // "a" still holds the other one (expired, but nobody took it over).
    assert!(
        s.delivery_succeeded(a[1].id, "a", t(31), None)
            .await
            .unwrap()
    );

    let queue_item = "http://jenkins.example/queue/item/42/";
    assert!(
        s.delivery_succeeded(b[0].id, "b", t(32), Some(queue_item))
            .await
            .unwrap()
    );
    // A second report for a delivered row is refused.
    assert!(
        !s.delivery_succeeded(b[0].id, "b", t(33), None)
            .await
            .unwrap()
    );

    let delivered = s
        .deliveries(Some(DeliveryState::Delivered), 10)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].id, a[1].id, "newest first");
    let d = delivered.iter().find(|d| d.id == b[0].id).unwrap();
    assert_eq!(d.response.as_deref(), Some(queue_item));
    assert_eq!(d.delivered_at, Some(t(32)));
    assert_eq!(d.attempts, 1);
    assert!(
        s.claim_deliveries("c", t(1000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_delivery_due().await.unwrap(), None);
}

async fn concurrent_claimers_get_disjoint_rows(ctx: Ctx) {
    let s = &ctx.store;
    let mut expected = HashSet::new();
    for i in 0..12 {
        let reference = format!("docker.io/library/img{i}:1");
        make_event(s, &reference, i, &["t1", "t2", "t3", "t4", "t5"]).await;
    }
    for d in s.deliveries(None, 1000).await.unwrap() {
        expected.insert(d.id);
    }
    assert_eq!(expected.len(), 60);

    // Claimers on the shared pool and on separate pools (other replicas).
    let mut stores = vec![
        s.clone(),
        ctx.another_store().await,
        ctx.another_store().await,
    ];
    stores.push(s.clone());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_deliveries(&owner, t(100), LEASE, 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                for d in got {
                    assert!(
                        store
                            .delivery_succeeded(d.id, &owner, t(101), None)
                            .await
                            .unwrap()
                    );
                    mine.push(d.id);
                }
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "delivery {id} claimed twice");
        }
    }
    assert_eq!(seen, expected);
    for store in &stores[1..3] {
        store.close().await;
    }
}

async fn failed_attempt_schedules_retry(ctx: Ctx) {
    let s = &ctx.store;
    make_event(s, REF, 0, &["jenkins"]).await;
    let d = s
        .claim_deliveries("w", t(0), LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(d.attempts, 0);

    assert!(
        !s.delivery_failed(d.id, "intruder", "x", Some(t(5)))
            .await
            .unwrap()
    );
    assert!(
        s.delivery_failed(d.id, "w", "HTTP 503 from jenkins", Some(t(10)))
            .await
            .unwrap()
    );

    let now = s.deliveries(None, 10).await.unwrap().remove(0);
    assert_eq!(now.state, DeliveryState::Pending);
    assert_eq!(now.attempts, 1);
    assert_eq!(now.last_error.as_deref(), Some("HTTP 503 from jenkins"));
    assert_eq!(now.next_attempt_at, t(10));
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(t(10)));

    // Not due before the backoff, lease released so anyone may take it after.
    assert!(
        s.claim_deliveries("w", t(9), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.claim_deliveries("other", t(10), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    // Huge error bodies are cut to 4 KiB (on a char boundary).
    let long = "é".repeat(5000);
    assert!(
        s.delivery_failed(d.id, "other", &long, Some(t(20)))
            .await
            .unwrap()
    );
    let now = s.deliveries(None, 10).await.unwrap().remove(0);
    assert_eq!(now.attempts, 2);
    let kept = now.last_error.unwrap();
    assert_eq!(kept.len(), 4096);
    assert!(long.starts_with(&kept));
}

async fn give_up_then_retry_delivery(ctx: Ctx) {
    let s = &ctx.store;
    make_event(s, REF, 0, &["jenkins"]).await;
    let d = s
        .claim_deliveries("w", t(0), LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert!(
        !s.retry_delivery(d.id, t(1)).await.unwrap(),
        "not failed yet"
    );
    assert!(
        s.delivery_failed(d.id, "w", "404 job not found", None)
            .await
            .unwrap()
    );

    let failed = s.deliveries(Some(DeliveryState::Failed), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 1);
    let one = s.delivery(d.id).await.unwrap().expect("read by id");
    assert_eq!(one.state, DeliveryState::Failed);
    assert_eq!(one.last_error.as_deref(), Some("404 job not found"));
    assert!(s.delivery(d.id + 1000).await.unwrap().is_none());
    assert!(
        s.deliveries(Some(DeliveryState::Pending), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.claim_deliveries("w", t(1000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_delivery_due().await.unwrap(), None);

    assert!(s.retry_delivery(d.id, t(500)).await.unwrap());
    assert!(
        !s.retry_delivery(d.id, t(500)).await.unwrap(),
        "already pending"
    );
    assert!(!s.retry_delivery(999_999, t(500)).await.unwrap());
    let pending = s
        .deliveries(Some(DeliveryState::Pending), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].next_attempt_at, t(500));
    assert_eq!(pending[0].attempts, 1, "attempts kept");
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(t(500)));
    let d = s
        .claim_deliveries("w2", t(500), LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert!(
        s.delivery_succeeded(d.id, "w2", t(501), None)
            .await
            .unwrap()
    );
    assert!(
        !s.retry_delivery(d.id, t(502)).await.unwrap(),
        "delivered stays delivered"
    );
}

async fn enqueue_replays_a_stored_event(ctx: Ctx) {
    let s = &ctx.store;
    let id = make_event(s, REF, 0, &[]).await;
    assert!(s.deliveries(None, 10).await.unwrap().is_empty());

    let event = s.event(&id).await.unwrap().unwrap();
    let payload = serde_json::to_value(&event).unwrap();
    let triggers = vec!["a".to_string(), "b".to_string(), "a".to_string()];
    s.enqueue(&id, &triggers, &payload, t(50)).await.unwrap();
    let rows = s.deliveries(None, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    for d in &rows {
        assert_eq!(
            (d.state, d.next_attempt_at),
            (DeliveryState::Pending, t(50))
        );
        assert_eq!(d.created_at, t(50));
        assert_eq!(d.payload, payload);
    }
    assert_eq!(s.deliveries(None, 1).await.unwrap().len(), 1);
    assert!(s.deliveries(None, -1).await.unwrap().is_empty());

    let err = s
        .enqueue("nope", &triggers, &payload, t(50))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownEvent(ref id) if id == "nope"),
        "{err}"
    );
}
