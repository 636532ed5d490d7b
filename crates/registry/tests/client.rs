//! The registry client against a real CNCF Distribution registry, behind the
//! testkit's token-auth and fault-injecting proxies.

use std::future::Future;
use std::time::{Duration, Instant};

use freshen_reference::{Platform, Reference};
use freshen_registry::{
    Client, ClientOptions, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, PlatformManifest,
    RegistryError, RegistrySettings, RetryPolicy, sha256_digest,
};
use freshen_testkit::{Fault, FaultProxy, Registry, TokenAuthOptions, TokenAuthProxy};
use tokio::sync::OnceCell;

/// One registry for the whole binary (its process needs no runtime); every
/// test uses its own repositories, proxies, pushers and clients.
static REGISTRY: OnceCell<Registry> = OnceCell::const_new();

async fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::start).await
}

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(60),
    }
}

fn client_with(registries: Vec<RegistrySettings>, retry: RetryPolicy) -> Client {
    Client::new(ClientOptions {
        registries,
        retry,
        timeout: Duration::from_secs(10),
        docker_config: false,
        ..ClientOptions::default()
    })
}

/// A client for `host` with default settings and fast retries.
fn client(host: &str) -> Client {
    client_with(vec![RegistrySettings::for_host(host)], retry(3))
}

fn image(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).expect("a valid reference")
}

/// Fails the test instead of letting it sleep when `f` takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- bearer auth

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_is_fetched_once_per_scope_and_reused() {
    let reg = registry().await;
    let p = reg.pusher();
    let da = p.push_image("bearer/a", "1", "linux/amd64", "ba").await;
    let db = p.push_image("bearer/b", "1", "linux/amd64", "bb").await;
    let proxy = TokenAuthProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let a = image(&proxy.host(), "bearer/a:1");

    const N: usize = 5;
    for _ in 0..N {
        let head = c.head_manifest(&a).await.unwrap();
        assert_eq!(head.digest.as_deref(), Some(da.as_str()));
        assert_eq!(head.media_type.as_deref(), Some(OCI_MANIFEST));
    }
    // Only the first HEAD drew a 401; one token served all of them.
    assert_eq!(proxy.challenges(), 1);
    assert_eq!(proxy.tokens_issued(), 1);
    assert_eq!(proxy.token_requests(), 1);
    assert_eq!(proxy.registry_requests(), N + 1);
    assert_eq!(proxy.count("HEAD"), N + 1);
    assert_eq!(
        c.requests_sent(),
        (N + 2) as u64,
        "N+1 HEADs and 1 token request"
    );
    let log = proxy.request_log();
    assert!(!log[0].bearer && log[0].status == Some(401));
    assert_eq!(log[1].path, "/token");
    assert_eq!(log[1].scope.as_deref(), Some("repository:bearer/a:pull"));
    assert!(log[2..].iter().all(|r| r.bearer && r.status == Some(200)));

    // Another repository: its own scope, fetched up front (the client knows
    // the realm by now), so no second 401.
    let b = image(&proxy.host(), "bearer/b:1");
    let head = c.head_manifest(&b).await.unwrap();
    assert_eq!(head.digest.as_deref(), Some(db.as_str()));
    assert_eq!(proxy.challenges(), 1);
    assert_eq!(proxy.tokens_issued(), 2);
    assert_eq!(proxy.registry_requests(), N + 2);
    assert_eq!(c.requests_sent(), (N + 4) as u64);
    let last_token = proxy
        .request_log()
        .into_iter()
        .rfind(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        last_token.scope.as_deref(),
        Some("repository:bearer/b:pull")
    );

    // Both tokens stay cached: GET and HEAD on either repository cost one request each.
    let m = c.get_manifest(&a).await.unwrap();
    assert_eq!(m.digest, da);
    c.head_manifest(&b).await.unwrap();
    assert_eq!(proxy.tokens_issued(), 2);
    assert_eq!(proxy.challenges(), 1);
    assert_eq!(c.requests_sent(), (N + 6) as u64);

    // A clone shares the cache.
    c.clone().head_manifest(&a).await.unwrap();
    assert_eq!(proxy.tokens_issued(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_fetched_again_before_use() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("bearer/exp", "1", "linux/amd64", "exp")
        .await;
    let proxy = TokenAuthProxy::start_with(
        &reg.host(),
        TokenAuthOptions {
            expires_in: 1,
            ..TokenAuthOptions::default()
        },
    )
    .await;
    let c = client(&proxy.host());
    let r = image(&proxy.host(), "bearer/exp:1");
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d.clone()));
    assert_eq!(proxy.tokens_issued(), 1);
    assert_eq!(proxy.registry_requests(), 2);

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d));
    assert_eq!(proxy.tokens_issued(), 2, "a new token after expiry");
    // The client knew the token had expired: it did not send it to draw a 401.
    assert_eq!(proxy.challenges(), 1);
    assert_eq!(proxy.registry_requests(), 3);
    let log = proxy.request_log();
    let last = log.last().unwrap();
    assert!(last.bearer && last.status == Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_token_is_replaced_after_one_challenge() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("bearer/rev", "1", "linux/amd64", "rev")
        .await;
    let proxy = TokenAuthProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let r = image(&proxy.host(), "bearer/rev:1");
    c.head_manifest(&r).await.unwrap();
    proxy.revoke_tokens();
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d));
    assert_eq!(proxy.challenges(), 2);
    assert_eq!(proxy.tokens_issued(), 2);
    let statuses: Vec<_> = proxy
        .request_log()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    let manifest = "/v2/bearer/rev/manifests/1".to_string();
    assert_eq!(
        statuses,
        vec![
            (manifest.clone(), Some(401)),
            ("/token".into(), Some(200)),
            (manifest.clone(), Some(200)),
            (manifest.clone(), Some(401)),
            ("/token".into(), Some(200)),
            (manifest, Some(200)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_gets_the_configured_credentials() {
    const PASSWORD: &str = "s3cret-Token-pw";
    const WRONG: &str = "Wr0ng-pa55word";
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("bearer/private", "1", "linux/amd64", "priv")
        .await;
    let proxy = TokenAuthProxy::start_with(
        &reg.host(),
        TokenAuthOptions {
            credentials: Some(("ci".into(), PASSWORD.into())),
            require_login: true,
            ..TokenAuthOptions::default()
        },
    )
    .await;
    let r = image(&proxy.host(), "bearer/private:1");
    let with = |user: Option<&str>, password: Option<&str>| {
        client_with(
            vec![RegistrySettings {
                username: user.map(str::to_string),
                password: password.map(str::to_string),
                ..RegistrySettings::for_host(&proxy.host())
            }],
            retry(3),
        )
    };

    let ok = with(Some("ci"), Some(PASSWORD));
    assert_eq!(ok.head_manifest(&r).await.unwrap().digest, Some(d.clone()));
    assert_eq!(ok.resolve(&r).await.unwrap().digest, d);
    assert_eq!(proxy.tokens_issued(), 1);
    let token_reqs: Vec<_> = proxy
        .request_log()
        .into_iter()
        .filter(|x| x.path == "/token")
        .collect();
    assert_eq!(token_reqs.len(), 1);
    assert_eq!(token_reqs[0].user.as_deref(), Some("ci"));
    assert!(
        !token_reqs[0]
            .query
            .as_deref()
            .unwrap_or("")
            .contains(PASSWORD),
        "the password goes in the Authorization header, not the URL"
    );

    let wrong = with(Some("ci"), Some(WRONG));
    let e = wrong.head_manifest(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::AuthFailed { .. }), "{e:?}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(text.contains(&proxy.host()), "{text}");
        assert!(!text.contains(WRONG) && !text.contains(PASSWORD), "{text}");
    }
    assert!(!e.is_transient());

    let anonymous = with(None, None);
    let e = anonymous.head_manifest(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::AuthRequired { .. }), "{e:?}");
    assert!(e.to_string().contains("docker login"), "{e}");

    // A user without a password is still sent (with an empty one) and refused.
    let e = with(Some("ci"), None).head_manifest(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::AuthFailed { .. }), "{e:?}");
    assert_eq!(proxy.tokens_issued(), 1);
}

// ---------------------------------------------------------------- tag lists

#[tokio::test(flavor = "multi_thread")]
async fn list_tags_follows_link_pagination() {
    let reg = registry().await;
    let p = reg.pusher();
    let seed = p
        .push_image("tags/app", "seed", "linux/amd64", "tags")
        .await;
    let mut expected = p.create_tags("tags/app", 35, &seed).await;
    expected.push("seed".into());
    expected.sort();
    let proxy = FaultProxy::start(&reg.host()).await;
    proxy.set_tag_page_size(Some(10));
    let c = client(&proxy.host());
    let r = image(&proxy.host(), "tags/app:seed");
    let pages = |proxy: &FaultProxy| -> Vec<Option<String>> {
        proxy
            .request_log()
            .into_iter()
            .filter(|x| x.path == "/v2/tags/app/tags/list")
            .map(|x| x.query)
            .collect()
    };

    assert_eq!(c.list_tags(&r, 10).await.unwrap(), expected);
    let q = pages(&proxy);
    assert_eq!(q.len(), 4, "36 tags, 10 a page: {q:?}");
    assert_eq!(q[0].as_deref(), Some("n=10"));
    // Sorted, `seed` comes first.
    assert_eq!(q[1].as_deref(), Some("last=t00008&n=10"));
    assert_eq!(q[3].as_deref(), Some("last=t00028&n=10"));

    proxy.clear_requests();
    assert_eq!(c.list_tags(&r, 7).await.unwrap(), expected);
    let q = pages(&proxy);
    assert_eq!(q.len(), 6, "page_size is sent as n: {q:?}");
    assert!(q.iter().all(|x| x.as_deref().unwrap().ends_with("n=7")));

    proxy.clear_requests();
    assert_eq!(c.list_tags(&r, 100).await.unwrap(), expected);
    assert_eq!(pages(&proxy).len(), 1);
    // 0 is sent as 1 rather than as an invalid n.
    proxy.clear_requests();
    let r2 = image(&proxy.host(), "tags/app:seed");
    assert_eq!(c.list_tags(&r2, 0).await.unwrap().len(), 36);
    assert_eq!(pages(&proxy).len(), 36);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_tags_pages_share_one_token() {
    let reg = registry().await;
    let p = reg.pusher();
    let seed = p.push_image("tags/auth", "seed", "linux/amd64", "ta").await;
    p.create_tags("tags/auth", 25, &seed).await;
    let pager = FaultProxy::start(&reg.host()).await;
    pager.set_tag_page_size(Some(10));
    let auth = TokenAuthProxy::start(&pager.host()).await;
    let c = client(&auth.host());
    let tags = c
        .list_tags(&image(&auth.host(), "tags/auth:seed"), 10)
        .await
        .unwrap();
    assert_eq!(tags.len(), 26);
    assert_eq!(auth.tokens_issued(), 1);
    assert_eq!(auth.challenges(), 1);
    assert_eq!(auth.registry_requests(), 1 + 3, "one 401, then three pages");
    assert_eq!(c.requests_sent(), 5);
}

// ---------------------------------------------------------------- mirrors

#[tokio::test(flavor = "multi_thread")]
async fn dead_mirror_falls_back_to_the_registry() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("mirror/dead", "1", "linux/amd64", "md")
        .await;
    let c = client_with(
        vec![RegistrySettings {
            mirrors: vec![format!("http://127.0.0.1:{}", closed_port())],
            ..RegistrySettings::for_host(&reg.host())
        }],
        retry(3),
    );
    let r = image(&reg.host(), "mirror/dead:1");
    let started = Instant::now();
    let head = within(Duration::from_secs(5), "HEAD", c.head_manifest(&r))
        .await
        .unwrap();
    assert_eq!(head.digest, Some(d.clone()));
    let resolved = c.resolve(&r).await.unwrap();
    assert_eq!(resolved.digest, d);
    assert_eq!(resolved.manifests[0].platform.to_string(), "linux/amd64");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn working_mirror_is_asked_first() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("mirror/ok", "1", "linux/arm64", "mo")
        .await;
    let mirror = FaultProxy::start(&reg.host()).await;
    let c = client_with(
        vec![RegistrySettings {
            mirrors: vec![mirror.url()],
            ..RegistrySettings::for_host(&reg.host())
        }],
        retry(3),
    );
    let r = image(&reg.host(), "mirror/ok:1");
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d.clone()));
    assert_eq!(mirror.count("HEAD"), 1);
    assert_eq!(mirror.requests()[0].1, "/v2/mirror/ok/manifests/1");

    let m = c.get_manifest(&r).await.unwrap();
    assert_eq!(m.digest, d);
    assert_eq!(sha256_digest(&m.bytes), d);
    assert_eq!(mirror.count("GET"), 1);

    // resolve reads the manifest and the config blob, both from the mirror.
    let resolved = c.resolve(&r).await.unwrap();
    assert_eq!(resolved.digest, d);
    assert_eq!(resolved.manifests[0].platform.to_string(), "linux/arm64");
    assert_eq!(mirror.count("GET"), 3);
    assert!(
        mirror.requests()[3]
            .1
            .starts_with("/v2/mirror/ok/blobs/sha256:")
    );

    // Tag listings come from the registry itself, never a mirror.
    assert_eq!(c.list_tags(&r, 50).await.unwrap(), vec!["1".to_string()]);
    assert_eq!(mirror.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_rate_limited_mirror_falls_back_at_once() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("mirror/flaky", "1", "linux/amd64", "mf")
        .await;
    let mirror = FaultProxy::start(&reg.host()).await;
    let c = client_with(
        vec![RegistrySettings {
            mirrors: vec![mirror.url()],
            ..RegistrySettings::for_host(&reg.host())
        }],
        retry(3),
    );
    let r = image(&reg.host(), "mirror/flaky:1");

    // A mirror without the image: 404 is not retried; the registry answers.
    mirror.push_fault(Fault::Status(404));
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d.clone()));
    assert_eq!(mirror.count("HEAD"), 1);

    // A mirror asking for two minutes' rest: the registry answers now.
    mirror.push_fault(Fault::TooMany {
        retry_after_secs: 120,
    });
    let head = within(
        Duration::from_secs(10),
        "HEAD with a rate-limited mirror",
        c.head_manifest(&r),
    )
    .await
    .unwrap();
    assert_eq!(head.digest, Some(d.clone()));
    assert_eq!(mirror.count("HEAD"), 2);

    // While the mirror's pause lasts it is skipped, not waited for.
    let head = within(
        Duration::from_secs(10),
        "HEAD during the mirror's pause",
        c.head_manifest(&r),
    )
    .await
    .unwrap();
    assert_eq!(head.digest, Some(d));
    assert_eq!(mirror.count("HEAD"), 2, "the paused mirror is not asked");
}

// ---------------------------------------------------------------- content

#[tokio::test(flavor = "multi_thread")]
async fn digest_pinned_manifest_hashes_to_its_digest() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p.push_image("pin/app", "1", "linux/amd64", "pin").await;
    let other = p.push_image("pin/app", "2", "linux/amd64", "pin2").await;
    let c = client(&reg.host());

    for text in [format!("pin/app@{d}"), format!("pin/app:2@{d}")] {
        let r = image(&reg.host(), &text);
        let m = c.get_manifest(&r).await.unwrap();
        assert_eq!(sha256_digest(&m.bytes), d, "{text}");
        assert_eq!(m.digest, d);
        assert_eq!(m.media_type, OCI_MANIFEST);
        let head = c.head_manifest(&r).await.unwrap();
        assert_eq!(head.digest.as_deref(), Some(d.as_str()));
    }
    let m = c
        .get_manifest(&image(&reg.host(), "pin/app:2"))
        .await
        .unwrap();
    assert_eq!(m.digest, other);

    let missing = format!("sha256:{}", "0".repeat(64));
    let e = c
        .get_manifest(&image(&reg.host(), &format!("pin/app@{missing}")))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    let e = c
        .head_manifest(&image(&reg.host(), "pin/nothing:1"))
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_docker_manifest_list() {
    let reg = registry().await;
    let p = reg.pusher();
    let platforms = ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"];
    let mut children = Vec::new();
    for platform in platforms {
        children.push(
            p.push_docker_image_untagged("res/list", platform, "dl")
                .await,
        );
    }
    let entries: Vec<(&str, &str)> = platforms
        .iter()
        .zip(&children)
        .map(|(pl, d)| (*pl, d.as_str()))
        .collect();
    let list = p.push_docker_list("res/list", "1", &entries).await;
    let c = client(&reg.host());
    let r = image(&reg.host(), "res/list:1");

    let head = c.head_manifest(&r).await.unwrap();
    assert_eq!(head.digest.as_deref(), Some(list.as_str()));
    assert_eq!(head.media_type.as_deref(), Some(DOCKER_LIST));
    let before = c.requests_sent();
    let resolved = c.resolve(&r).await.unwrap();
    assert_eq!(c.requests_sent() - before, 1, "an index costs one request");
    assert!(resolved.is_index);
    assert_eq!(resolved.digest, list);
    assert_eq!(resolved.media_type, DOCKER_LIST);
    let expected: Vec<PlatformManifest> = ["linux/amd64", "linux/arm/v7", "linux/arm64"]
        .iter()
        .zip(&children)
        .map(|(pl, d)| PlatformManifest {
            platform: Platform::parse(pl).unwrap(),
            digest: d.clone(),
            media_type: DOCKER_MANIFEST.into(),
        })
        .collect();
    assert_eq!(resolved.manifests, expected);

    let wanted = [
        Platform::parse("linux/arm64").unwrap(),
        Platform::parse("linux/arm").unwrap(),
    ];
    let picked = c.select_platforms(&r, &resolved, &wanted).unwrap();
    assert_eq!(picked[0].digest, children[2]);
    assert_eq!(picked[1].digest, children[1]);
    let e = c
        .select_platforms(&r, &resolved, &[Platform::parse("linux/s390x").unwrap()])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("linux/amd64, linux/arm/v7, linux/arm64"),
        "{e}"
    );

    // Each child, fetched by digest, hashes to what the list says.
    for d in &children {
        let m = c
            .get_manifest(&image(&reg.host(), &format!("res/list@{d}")))
            .await
            .unwrap();
        assert_eq!(&sha256_digest(&m.bytes), d);
        assert_eq!(m.media_type, DOCKER_MANIFEST);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_single_manifests_read_the_platform_from_the_config() {
    let reg = registry().await;
    let p = reg.pusher();
    let oci = p
        .push_image("res/single", "oci", "linux/arm/v7", "s1")
        .await;
    let docker = p
        .push_docker_image("res/single", "docker", "linux/386", "s2")
        .await;
    let c = client(&reg.host());

    let before = c.requests_sent();
    let resolved = c
        .resolve(&image(&reg.host(), "res/single:oci"))
        .await
        .unwrap();
    assert_eq!(c.requests_sent() - before, 2, "the manifest and its config");
    assert!(!resolved.is_index);
    assert_eq!(resolved.digest, oci);
    assert_eq!(resolved.media_type, OCI_MANIFEST);
    assert_eq!(
        resolved.manifests,
        vec![PlatformManifest {
            platform: Platform::parse("linux/arm/v7").unwrap(),
            digest: oci,
            media_type: OCI_MANIFEST.into(),
        }]
    );

    let resolved = c
        .resolve(&image(&reg.host(), "res/single:docker"))
        .await
        .unwrap();
    assert_eq!(resolved.digest, docker);
    assert_eq!(resolved.media_type, DOCKER_MANIFEST);
    assert_eq!(resolved.manifests[0].platform.to_string(), "linux/386");

    // An OCI index: attestation entries are not platforms.
    let (index, kids) = p
        .push_multiarch(
            "res/single",
            "multi",
            &["linux/amd64", "linux/arm64"],
            "s3",
            true,
        )
        .await;
    let resolved = c
        .resolve(&image(&reg.host(), "res/single:multi"))
        .await
        .unwrap();
    assert_eq!(resolved.digest, index);
    assert_eq!(resolved.media_type, OCI_INDEX);
    let got: Vec<_> = resolved
        .manifests
        .iter()
        .map(|m| (m.platform.to_string(), m.digest.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("linux/amd64".to_string(), kids[0].clone()),
            ("linux/arm64".to_string(), kids[1].clone()),
        ]
    );
}

// ---------------------------------------------------------------- retries

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_up_to_max_attempts() {
    const MAX: u32 = 3;
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("retry/app", "1", "linux/amd64", "ra")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client_with(vec![RegistrySettings::for_host(&proxy.host())], retry(MAX));
    let r = image(&proxy.host(), "retry/app:1");

    for _ in 1..MAX {
        proxy.push_fault(Fault::Status(500));
    }
    proxy.push_fault(Fault::RateLimitHeader("76;w=21600".into()));
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d.clone()));
    let statuses: Vec<_> = proxy.request_log().iter().map(|x| x.status).collect();
    assert_eq!(statuses, vec![Some(500), Some(500), Some(200)]);
    assert_eq!(c.requests_sent(), u64::from(MAX));
    assert_eq!(
        c.rate_limit_remaining(&proxy.host()).as_deref(),
        Some("76;w=21600")
    );

    proxy.clear_requests();
    for _ in 0..MAX {
        proxy.push_fault(Fault::Status(500));
    }
    let e = c.head_manifest(&r).await.unwrap_err();
    match &e {
        RegistryError::Http {
            status, attempts, ..
        } => {
            assert_eq!(*status, 500);
            assert_eq!(*attempts, MAX);
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(e.is_transient());
    assert_eq!(proxy.count("HEAD"), MAX as usize);

    // GET bodies too, and 503s; then a 404 is final at once.
    proxy.clear_requests();
    proxy.push_fault(Fault::Unavailable);
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);
    assert_eq!(proxy.count("GET"), 2);
    proxy.clear_requests();
    proxy.push_fault(Fault::Status(404));
    let e = c.head_manifest(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    assert_eq!(proxy.count("HEAD"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_retry_after_fails_at_once_and_stays_fast() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("retry/limited", "1", "linux/amd64", "rl")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client_with(vec![RegistrySettings::for_host(&proxy.host())], retry(4));
    let r = image(&proxy.host(), "retry/limited:1");

    proxy.push_fault(Fault::TooMany {
        retry_after_secs: 120,
    });
    let started = Instant::now();
    let e = within(Duration::from_secs(5), "a 429", c.head_manifest(&r))
        .await
        .unwrap_err();
    match &e {
        RegistryError::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Duration::from_secs(120));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(proxy.count("HEAD"), 1);

    // The registry asked for two minutes: the next call neither sends a
    // request nor sleeps them away; it fails the same way at once.
    let e = within(
        Duration::from_secs(5),
        "a call during the pause",
        c.head_manifest(&r),
    )
    .await
    .unwrap_err();
    match &e {
        RegistryError::RateLimited { retry_after, .. } => {
            assert!(*retry_after > Duration::from_secs(100), "{retry_after:?}");
            assert!(*retry_after <= Duration::from_secs(120), "{retry_after:?}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(proxy.count("HEAD"), 1, "nothing sent during the pause");

    // Another client has its own state.
    let fresh = client(&proxy.host());
    assert_eq!(fresh.head_manifest(&r).await.unwrap().digest, Some(d));
}

#[tokio::test(flavor = "multi_thread")]
async fn short_retry_after_is_waited_out() {
    let reg = registry().await;
    let d = reg
        .pusher()
        .push_image("retry/short", "1", "linux/amd64", "rs")
        .await;
    let proxy = FaultProxy::start(&reg.host()).await;
    let c = client(&proxy.host());
    let r = image(&proxy.host(), "retry/short:1");
    proxy.push_fault(Fault::TooMany {
        retry_after_secs: 1,
    });
    let started = Instant::now();
    assert_eq!(c.head_manifest(&r).await.unwrap().digest, Some(d));
    assert!(started.elapsed() >= Duration::from_millis(950));
    let log = proxy.request_log();
    assert_eq!(log.len(), 2);
    assert!(log[1].at.duration_since(log[0].at) >= Duration::from_millis(950));
}

/// A single manifest is read whole while resolving it (manifest, then the
/// config for its platform), so a scan needs no second round.
#[tokio::test(flavor = "multi_thread")]
async fn resolve_image_hands_back_a_single_manifest_image() {
    let reg = registry().await;
    let p = reg.pusher();
    let d = p
        .push_image("res/single", "1", "linux/arm64", "single")
        .await;
    let c = client(&reg.host());
    let r = image(&reg.host(), "res/single:1");
    let before = c.requests_sent();
    let (resolved, single) = c.resolve_image(&r).await.unwrap();
    assert_eq!(c.requests_sent() - before, 2, "the manifest and its config");
    assert!(!resolved.is_index);
    let single = single.expect("a single manifest comes back parsed");
    assert_eq!(single.digest, d);
    let fetched = c
        .image(&image(&reg.host(), &format!("res/single@{d}")))
        .await
        .unwrap();
    assert_eq!(single.config.platform(), fetched.config.platform());
    assert_eq!(
        single.config.rootfs.diff_ids,
        fetched.config.rootfs.diff_ids
    );
    assert_eq!(single.manifest.layers, fetched.manifest.layers);
    assert_eq!(
        resolved.manifests[0].platform,
        Platform::parse("linux/arm64").unwrap()
    );
}
