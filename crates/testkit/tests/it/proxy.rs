use std::time::{Duration, Instant};

use freshen_testkit::{ACCEPT_ALL_MANIFESTS, Fault, FaultProxy, Pusher, Registry};

use crate::client;

#[tokio::test(flavor = "multi_thread")]
async fn faults_in_order_then_pass_through() {
    let reg = Registry::start_with_auth("bob", "pw").await;
    let d = reg
        .pusher()
        .push_image("app", "1", "linux/amd64", "p")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    assert_ne!(proxy.host(), reg.host());
    let c = client();
    let manifest_url = format!("{}/v2/app/manifests/1", proxy.url());

    proxy.push_fault(Fault::TooMany {
        retry_after_secs: 7,
    });
    proxy.push_fault(Fault::Unavailable);
    proxy.push_fault(Fault::RateLimitHeader("99;w=21600".into()));
    proxy.push_fault(Fault::Status(500));
    assert_eq!(proxy.pending_faults(), 4);

    let r = c.head(&manifest_url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let r = c.get(&manifest_url).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");

    // Forwarded with the header added; auth headers pass both ways.
    let r = c
        .head(&manifest_url)
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .basic_auth("bob", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ratelimit-remaining"], "99;w=21600");
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        len > 100,
        "HEAD must keep the upstream Content-Length, got {len}"
    );
    assert!(r.bytes().await.unwrap().is_empty());

    let r = c.get(&manifest_url).send().await.unwrap();
    assert_eq!(r.status(), 500);

    // Queue empty: plain pass-through, 401 challenge included.
    assert_eq!(proxy.pending_faults(), 0);
    let r = c.get(&manifest_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = c
        .get(&manifest_url)
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .basic_auth("bob", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], freshen_testkit::OCI_MANIFEST);
    assert_eq!(freshen_testkit::sha256_digest(&r.bytes().await.unwrap()), d);

    assert_eq!(proxy.count("HEAD"), 2);
    assert_eq!(proxy.count("get"), 4);
    let log = proxy.request_log();
    assert_eq!(log.len(), 6);
    assert_eq!(log[0].status, Some(429));
    assert_eq!(
        log[0].fault,
        Some(Fault::TooMany {
            retry_after_secs: 7
        })
    );
    assert_eq!(log[2].status, Some(200));
    assert!(
        proxy
            .requests()
            .iter()
            .all(|(_, p, _)| p == "/v2/app/manifests/1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stall_makes_the_client_time_out() {
    let reg = Registry::start().await;
    let proxy = FaultProxy::start(&reg.host()).await;
    proxy.push_fault(Fault::Stall(Duration::from_secs(3)));
    let c = client();
    let started = Instant::now();
    let err = c
        .get(format!("{}/v2/", proxy.url()))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the stalled request must time out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let log = proxy.request_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].fault, Some(Fault::Stall(Duration::from_secs(3))));
    // The next request passes.
    let r = c.get(format!("{}/v2/", proxy.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pushing_through_the_proxy_keeps_locations_on_the_proxy() {
    let reg = Registry::start().await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let p = Pusher::new(&proxy.host(), None);
    let d = p.push_image("via/proxy", "1", "linux/amd64", "x").await;
    let puts: Vec<_> = proxy
        .request_log()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    // Two blob PUTs (layer, config) that followed the upload Location, one manifest PUT.
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts[0].path.starts_with("/v2/via/proxy/blobs/uploads/"));
    assert!(puts[0].query.as_deref().unwrap().contains("digest=sha256"));
    assert_eq!(puts[2].path, "/v2/via/proxy/manifests/1");
    assert_eq!(reg.pusher().head_digest("via/proxy", "1").await, Some(d));
}
