//! Registry writes against a real CNCF Distribution registry: manifests
//! pushed as exact bytes, cross-repository mounts, streamed blob copies, and
//! `Client::copy` (promotion) directly, through the fault-injecting proxy
//! (to count what was sent) and through the token-auth double.

use std::time::Duration;

use freshen_reference::Reference;
use freshen_registry::{
    Client, ClientOptions, CopyReport, OCI_INDEX, RegistryError, RegistrySettings, RetryPolicy,
    sha256_digest,
};
use freshen_testkit::{FaultProxy, ProxiedRequest, Registry, TokenAuthOptions, TokenAuthProxy};
use tokio::sync::OnceCell;

/// One registry for the whole binary; every test uses its own repositories.
static REGISTRY: OnceCell<Registry> = OnceCell::const_new();

async fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::start).await
}

fn client_with(registries: Vec<RegistrySettings>) -> Client {
    Client::new(ClientOptions {
        registries,
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(20),
        docker_config: false,
        ..ClientOptions::default()
    })
}

fn client(host: &str) -> Client {
    client_with(vec![RegistrySettings::for_host(host)])
}

/// A client logging in to `host` as `user`.
fn client_as(host: &str, user: &str, password: &str) -> Client {
    client_with(vec![RegistrySettings {
        username: Some(user.into()),
        password: Some(password.into()),
        ..RegistrySettings::for_host(host)
    }])
}

fn image(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).expect("a valid reference")
}

/// The config and layer digests of an image manifest.
fn blobs_of(manifest: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut out = vec![v["config"]["digest"].as_str().unwrap().to_string()];
    for l in v["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out
}

fn blob_gets(log: &[ProxiedRequest]) -> usize {
    log.iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count()
}

fn mounts(log: &[ProxiedRequest]) -> Vec<&ProxiedRequest> {
    log.iter()
        .filter(|r| r.method == "POST" && r.query.as_deref().is_some_and(|q| q.contains("mount=")))
        .collect()
}

/// Blob uploads that carried bytes (a monolithic `PUT ...?digest=`, or `PATCH`).
fn blob_uploads(log: &[ProxiedRequest]) -> usize {
    log.iter()
        .filter(|r| {
            r.path.contains("/blobs/uploads/") && (r.method == "PUT" || r.method == "PATCH")
        })
        .count()
}

// ---------------------------------------------------------------- put_manifest

#[tokio::test(flavor = "multi_thread")]
async fn put_manifest_pushes_the_exact_bytes() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("put/exact", "1", "linux/amd64", "pe").await;
    let (mt, bytes) = p.get_manifest("put/exact", &d).await.unwrap();
    // The same document laid out differently: re-serialising it would
    // change the digest, pushing it as is must not.
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let want = sha256_digest(&pretty);
    assert_ne!(want, d);

    let c = client(&reg.host());
    let r = image(&reg.host(), "put/exact:pretty");
    let got = c.put_manifest(&r, &mt, pretty.clone()).await.unwrap();
    assert_eq!(got, want);
    let (_, served) = p.get_manifest("put/exact", "pretty").await.unwrap();
    assert_eq!(served, pretty, "the registry serves the bytes as pushed");

    // A reference pinning another digest is refused before anything is sent.
    let pinned = image(&reg.host(), &format!("put/exact:x@{d}"));
    let e = c.put_manifest(&pinned, &mt, pretty).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e:?}");
    assert!(p.get_manifest("put/exact", "x").await.is_none());
}

// ---------------------------------------------------------------- mounts

#[tokio::test(flavor = "multi_thread")]
async fn mount_blob_says_whether_the_registry_mounted() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("mount/src", "1", "linux/amd64", "ms").await;
    let (_, bytes) = p.get_manifest("mount/src", &d).await.unwrap();
    let layer = blobs_of(&bytes)[1].clone();
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let to = image(&proxy.host(), "mount/dst:1");

    assert!(!c.blob_exists(&to, &layer).await.unwrap());
    // A repository without the blob: the registry starts an upload instead
    // (202), which the client cancels.
    assert!(!c.mount_blob(&to, "mount/empty", &layer).await.unwrap());
    let log = proxy.request_log();
    let declined = &mounts(&log)[0];
    assert_eq!(declined.status, Some(202));
    assert!(
        log.iter()
            .any(|r| r.method == "DELETE" && r.path.contains("/blobs/uploads/")),
        "the upload the registry started is cancelled: {log:#?}"
    );
    assert!(!c.blob_exists(&to, &layer).await.unwrap());

    assert!(c.mount_blob(&to, "mount/src", &layer).await.unwrap());
    assert_eq!(mounts(&proxy.request_log())[1].status, Some(201));
    assert!(c.blob_exists(&to, &layer).await.unwrap());
    assert_eq!(blob_gets(&proxy.request_log()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_blob_uploads_once_and_transfer_blob_mounts() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("blob/src", "1", "linux/amd64", "bs").await;
    let (_, bytes) = p.get_manifest("blob/src", &d).await.unwrap();
    let layer = blobs_of(&bytes)[1].clone();
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let to = image(&proxy.host(), "blob/dst:1");

    // A small blob made in memory: uploaded once, then found present.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let digest = c.push_blob(&to, config.to_vec()).await.unwrap();
    assert_eq!(digest, sha256_digest(config));
    assert!(c.blob_exists(&to, &digest).await.unwrap());
    assert_eq!(c.push_blob(&to, config.to_vec()).await.unwrap(), digest);
    assert_eq!(blob_uploads(&proxy.request_log()), 1, "uploaded once");

    // A layer of another repository: mounted, no byte moved; again: present.
    let from = image(&proxy.host(), "blob/src:1");
    let desc: freshen_registry::Descriptor = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["layers"][0].clone(),
    )
    .unwrap();
    assert_eq!(desc.digest, layer);
    assert_eq!(
        c.transfer_blob(&from, &to, &desc).await.unwrap(),
        freshen_registry::BlobTransfer::Mounted
    );
    assert_eq!(blob_gets(&proxy.request_log()), 0);
    assert!(c.blob_exists(&to, &layer).await.unwrap());
    // Within one repository there is nothing to move.
    assert_eq!(
        c.transfer_blob(&to, &to, &desc).await.unwrap(),
        freshen_registry::BlobTransfer::Present
    );
}

// ---------------------------------------------------------------- copy

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_a_tag_of_the_same_repository_is_one_put() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p
        .push_image("promote/same", "1.4", "linux/amd64", "ps")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let from = image(&proxy.host(), "promote/same:1.4");

    for tag in ["1.4-rc", "latest"] {
        let report = c
            .copy_report(&from, &from.with_tag(tag).unwrap())
            .await
            .unwrap();
        assert_eq!(
            report,
            CopyReport {
                digest: d.clone(),
                media_type: freshen_registry::OCI_MANIFEST.into(),
                manifests_pushed: 1,
                ..CopyReport::default()
            }
        );
    }
    let (_, src) = p.get_manifest("promote/same", "1.4").await.unwrap();
    for tag in ["1.4-rc", "latest"] {
        let (_, copied) = p.get_manifest("promote/same", tag).await.unwrap();
        assert_eq!(copied, src, "{tag} holds the exact bytes");
    }
    let log: Vec<(String, String)> = proxy
        .request_log()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        log,
        vec![
            ("GET".into(), "/v2/promote/same/manifests/1.4".into()),
            ("PUT".into(), "/v2/promote/same/manifests/1.4-rc".into()),
            ("GET".into(), "/v2/promote/same/manifests/1.4".into()),
            ("PUT".into(), "/v2/promote/same/manifests/latest".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_another_repository_mounts_every_blob() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p
        .push_docker_image("promote/src", "2", "linux/arm64", "pm")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let from = image(&proxy.host(), "promote/src:2");
    let to = image(&proxy.host(), "promote/released:2");

    let report = c.copy_report(&from, &to).await.unwrap();
    assert_eq!(report.digest, d);
    assert_eq!(report.media_type, freshen_registry::DOCKER_MANIFEST);
    assert_eq!(report.blobs_mounted, 2, "{report:?}");
    assert_eq!((report.blobs_copied, report.manifests_pushed), (0, 1));
    let (_, src) = p.get_manifest("promote/src", "2").await.unwrap();
    let (_, dst) = p.get_manifest("promote/released", "2").await.unwrap();
    assert_eq!(dst, src);

    let log = proxy.request_log();
    let m = mounts(&log);
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|r| r.status == Some(201)
        && r.path == "/v2/promote/released/blobs/uploads/"
        && r.query.as_deref().unwrap().contains("from=promote%2Fsrc")));
    assert_eq!(blob_gets(&log), 0, "no layer pulled: {log:#?}");
    assert_eq!(blob_uploads(&log), 0, "no bytes uploaded");
    for blob in blobs_of(&src) {
        assert!(c.blob_exists(&to, &blob).await.unwrap(), "{blob}");
    }

    // Again: everything is there already; the copy is as cheap.
    let again = c
        .copy(&from, &to.with_tag("2-again").unwrap())
        .await
        .unwrap();
    assert_eq!(again, d);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_of_an_index_copies_each_child_first() {
    let reg = registry().await;
    let p = reg.pusher();
    let (index, children) = p
        .push_multiarch(
            "promote/multi",
            "3",
            &["linux/amd64", "linux/arm64", "linux/arm/v7"],
            "pi",
            true,
        )
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let from = image(&proxy.host(), "promote/multi:3");
    let to = image(&proxy.host(), "team/multi:3-rc");

    let report = c.copy_report(&from, &to).await.unwrap();
    assert_eq!(report.digest, index);
    assert_eq!(report.media_type, OCI_INDEX);
    // Three images and the attestation, then the index.
    assert_eq!(report.manifests_pushed, 5, "{report:?}");
    assert_eq!(report.blobs_mounted, 8, "a config and a layer each");
    assert_eq!(report.blobs_copied, 0);

    let (_, src) = p.get_manifest("promote/multi", "3").await.unwrap();
    let (_, dst) = p.get_manifest("team/multi", "3-rc").await.unwrap();
    assert_eq!(dst, src);
    let idx: serde_json::Value = serde_json::from_slice(&src).unwrap();
    let listed: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4);
    for child in &children {
        assert!(listed.contains(&child.as_str()));
    }
    for child in listed {
        let (_, cs) = p.get_manifest("promote/multi", child).await.unwrap();
        let (_, cd) = p
            .get_manifest("team/multi", child)
            .await
            .unwrap_or_else(|| panic!("child {child} missing in the target"));
        assert_eq!(cd, cs);
        for blob in blobs_of(&cs) {
            let r = to.with_digest(child).unwrap();
            assert!(c.blob_exists(&r, &blob).await.unwrap(), "{child}: {blob}");
        }
    }

    let log = proxy.request_log();
    assert_eq!(blob_gets(&log), 0, "no layer pulled");
    assert_eq!(blob_uploads(&log), 0);
    let puts: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(puts.len(), 5);
    assert_eq!(
        *puts.last().unwrap(),
        "/v2/team/multi/manifests/3-rc",
        "the index goes last, once its children are there"
    );

    // A second promotion of the same index: the children are found, not pushed.
    let again = c
        .copy_report(&from, &to.with_tag("latest").unwrap())
        .await
        .unwrap();
    assert_eq!(again.digest, index);
    assert_eq!((again.manifests_pushed, again.already_present), (1, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_mounts_fall_back_to_streaming_the_blob() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("fallback/src", "1", "linux/amd64", "fb").await;
    let proxy = FaultProxy::start(&reg.host()).await;
    proxy.set_refuse_mounts(true);
    let c = client(&proxy.host());
    let to = image(&proxy.host(), "fallback/dst:1");
    let report = c
        .copy_report(&image(&proxy.host(), "fallback/src:1"), &to)
        .await
        .unwrap();
    assert_eq!(report.digest, d);
    assert_eq!((report.blobs_mounted, report.blobs_copied), (0, 2));

    let log = proxy.request_log();
    assert!(mounts(&log).iter().all(|r| r.status == Some(202)));
    assert_eq!(blob_gets(&log), 2, "each blob streamed once");
    assert_eq!(blob_uploads(&log), 2, "one monolithic PUT each");
    let (_, src) = p.get_manifest("fallback/src", "1").await.unwrap();
    assert_eq!(p.get_manifest("fallback/dst", "1").await.unwrap().1, src);
    for blob in blobs_of(&src) {
        assert!(c.blob_exists(&to, &blob).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_another_registry_streams_the_blobs_it_lacks() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("cross/app", "5", "linux/amd64", "cr").await;
    let other = Registry::start().await;
    let src_proxy = FaultProxy::start(&reg.host()).await;
    let dst_proxy = FaultProxy::start(&other.host()).await;
    let c = client_with(vec![
        RegistrySettings::for_host(&src_proxy.host()),
        RegistrySettings::for_host(&dst_proxy.host()),
    ]);
    let from = image(&src_proxy.host(), "cross/app:5");
    let to = image(&dst_proxy.host(), "mirror/app:5");

    let report = c.copy_report(&from, &to).await.unwrap();
    assert_eq!(report.digest, d);
    assert_eq!((report.blobs_copied, report.already_present), (2, 0));
    let (_, src) = p.get_manifest("cross/app", "5").await.unwrap();
    let (_, dst) = other
        .pusher()
        .get_manifest("mirror/app", "5")
        .await
        .unwrap();
    assert_eq!(dst, src);
    assert_eq!(blob_gets(&src_proxy.request_log()), 2);
    assert_eq!(blob_uploads(&dst_proxy.request_log()), 2);
    assert!(mounts(&dst_proxy.request_log()).is_empty());

    // The blobs are there now: a second copy moves no bytes.
    src_proxy.clear_requests();
    let again = c
        .copy_report(&from, &to.with_tag("latest").unwrap())
        .await
        .unwrap();
    assert_eq!((again.blobs_copied, again.already_present), (0, 2));
    assert_eq!(blob_gets(&src_proxy.request_log()), 0);
}

// ---------------------------------------------------------------- token auth

#[tokio::test(flavor = "multi_thread")]
async fn copy_through_token_auth_asks_for_push_and_mount_scopes() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("tok/src", "1", "linux/amd64", "ts").await;
    let proxy = TokenAuthProxy::start_with(
        &reg.host(),
        TokenAuthOptions {
            credentials: Some(("ci".into(), "ci-Secret-pw".into())),
            ..TokenAuthOptions::default()
        },
    )
    .await;
    let c = client_as(&proxy.host(), "ci", "ci-Secret-pw");
    let from = image(&proxy.host(), "tok/src:1");

    // Same repository: one token for pull,push.
    assert_eq!(
        c.copy(&from, &from.with_tag("rc").unwrap()).await.unwrap(),
        d
    );
    // Another repository: the target's push and the source's pull in one token.
    let to = image(&proxy.host(), "tok/dst:1");
    let report = c.copy_report(&from, &to).await.unwrap();
    assert_eq!(report.digest, d);
    assert_eq!(report.blobs_mounted, 2);
    assert_eq!(p.head_digest("tok/dst", "1").await, Some(d.clone()));
    assert_eq!(p.head_digest("tok/src", "rc").await, Some(d));

    let log = proxy.request_log();
    let token_scopes: Vec<&str> = log
        .iter()
        .filter(|r| r.path == "/token" && r.status == Some(200))
        .map(|r| r.scope.as_deref().unwrap())
        .collect();
    assert!(
        token_scopes.contains(&"repository:tok/src:pull,push"),
        "{token_scopes:?}"
    );
    assert!(
        token_scopes.contains(&"repository:tok/dst:pull,push repository:tok/src:pull"),
        "{token_scopes:?}"
    );
    // The token spec's GET form: one `scope` parameter per scope.
    let mount_token = log
        .iter()
        .find(|r| {
            r.scope.as_deref() == Some("repository:tok/dst:pull,push repository:tok/src:pull")
        })
        .unwrap();
    assert_eq!(
        mount_token
            .query
            .as_deref()
            .unwrap()
            .matches("scope=")
            .count(),
        2
    );
    // Every write was let through with the token it needed.
    for r in log
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "POST")
    {
        if r.path != "/token" {
            assert!(r.status == Some(201) || r.status == Some(401), "{r:?}");
        }
    }
    let mounted: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.status == Some(201))
        .collect();
    assert_eq!(mounted.len(), 2);
    assert!(mounted.iter().all(|r| r.bearer));
    // The copy's token served every request to the target: no further token
    // fetches after the first of each scope.
    assert_eq!(token_scopes.len(), proxy.tokens_issued());
    let distinct: std::collections::BTreeSet<_> = token_scopes.iter().collect();
    assert_eq!(distinct.len(), token_scopes.len(), "{token_scopes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_anonymous_pushes_are_refused() {
    const RO_PASSWORD: &str = "Viewer-only-pw";
    let reg = registry().await;
    let p = reg.pusher();
    p.push_image("tok/ro", "1", "linux/amd64", "ro").await;
    let proxy = TokenAuthProxy::start_with(
        &reg.host(),
        TokenAuthOptions {
            credentials: Some(("ci".into(), "ci-pw".into())),
            read_only: Some(("viewer".into(), RO_PASSWORD.into())),
            ..TokenAuthOptions::default()
        },
    )
    .await;
    let from = image(&proxy.host(), "tok/ro:1");
    let to = from.with_tag("latest").unwrap();

    let viewer = client_as(&proxy.host(), "viewer", RO_PASSWORD);
    // The viewer can read...
    viewer.get_manifest(&from).await.unwrap();
    // ...but not push: the registry refuses the token, and the error says so.
    let e = viewer.copy(&from, &to).await.unwrap_err();
    assert!(matches!(e, RegistryError::Denied { .. }), "{e:?}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(text.contains(&proxy.host()), "{text}");
        assert!(text.contains("tok/ro:latest"), "{text}");
        assert!(!text.contains(RO_PASSWORD), "{text}");
    }
    let refused = proxy
        .request_log()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(refused.status, Some(401));
    assert!(p.get_manifest("tok/ro", "latest").await.is_none());

    // Cross-repository: the mount is refused the same way.
    let e = viewer
        .copy(&from, &image(&proxy.host(), "tok/ro-dst:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Denied { .. }), "{e:?}");

    // Anonymous: told to log in.
    let anon = client(&proxy.host());
    let e = anon.copy(&from, &to).await.unwrap_err();
    assert!(matches!(e, RegistryError::AuthRequired { .. }), "{e:?}");
    assert!(p.get_manifest("tok/ro", "latest").await.is_none());
}

// ---------------------------------------------------------------- errors

#[tokio::test(flavor = "multi_thread")]
async fn unknown_source_is_not_found_and_nothing_is_written() {
    let reg = registry().await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let from = image(&proxy.host(), "nope/missing:1");
    let e = c
        .copy(&from, &image(&proxy.host(), "nope/target:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("nope/missing:1") && text.contains(&proxy.host()),
        "{text}"
    );
    assert!(
        proxy
            .request_log()
            .iter()
            .all(|r| r.method == "GET" || r.method == "HEAD"),
        "nothing written for a missing source"
    );
}
