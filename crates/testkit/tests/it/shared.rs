//! One registry shared by several tests (each with its own tokio runtime).

use freshen_testkit::Registry;
use tokio::sync::OnceCell;

static SHARED: OnceCell<Registry> = OnceCell::const_new();

async fn shared() -> &'static Registry {
    SHARED.get_or_init(Registry::start).await
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_registry_first_user() {
    let p = shared().await.pusher();
    let d = p.push_image("shared/one", "1", "linux/amd64", "one").await;
    assert_eq!(p.head_digest("shared/one", "1").await, Some(d));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_registry_second_user() {
    let p = shared().await.pusher();
    let d = p.push_image("shared/two", "1", "linux/amd64", "two").await;
    assert_eq!(p.head_digest("shared/two", "1").await, Some(d));
}
