//! One registry shared by several tests (each with its own tokio runtime):
//! `Registry::shared`.

use freshen_testkit::Registry;

#[tokio::test(flavor = "multi_thread")]
async fn shared_registry_first_user() {
    let p = Registry::shared().await.pusher();
    let d = p.push_image("shared/one", "1", "linux/amd64", "one").await;
    assert_eq!(p.head_digest("shared/one", "1").await, Some(d));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_registry_second_user() {
    let p = Registry::shared().await.pusher();
    let d = p.push_image("shared/two", "1", "linux/amd64", "two").await;
    assert_eq!(p.head_digest("shared/two", "1").await, Some(d));
}
