//! The API over real HTTP on 127.0.0.1, on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use freshen_inventory::Queries;
use freshen_reference::Defaults;
use freshen_server::ServerSettings;
use freshen_store::{ImageRecord, ImageRef, LineageEdge, PackageRecord, Store};
use freshen_testkit::{Db, both_stores};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------- harness

/// Everything logged by the test binary (all tests share one subscriber).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn error(&self) -> String {
        let v = self.json();
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("error is not an object: {}", self.text));
        assert_eq!(obj.len(), 1, "error body has only `error`: {}", self.text);
        let e = obj["error"]
            .as_str()
            .expect("error is a string")
            .to_string();
        assert!(!e.contains('\n'), "error is one line: {e}");
        e
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

struct Server {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Every response's headers and body, to look for tokens in.
    seen: Arc<Mutex<String>>,
}

impl Server {
    async fn start(store: Store, settings: &ServerSettings) -> Server {
        logs();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut loaded = freshen_config::Loaded::defaults();
        loaded.config.server = settings.clone();
        let app = Arc::new(freshen_app::App::with_store(loaded, store));
        let router = freshen_server::router(app).await.unwrap();
        let task = tokio::spawn(freshen_server::serve(listener, router, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            base,
            http,
            stop: Some(tx),
            task,
            seen: Arc::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let mut seen = self.seen.lock().unwrap();
        for (k, v) in &headers {
            seen.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        seen.push_str(&text);
        seen.push('\n');
        Resp {
            status,
            headers,
            text,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    /// Stops gracefully and checks that `secret` never appeared in an answer.
    async fn stop(mut self, secret: &str) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("graceful shutdown within 5 s")
            .unwrap()
            .expect("serve returns Ok");
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(!seen.contains(secret), "a token appeared in a response");
    }
}

fn assert_token_never_logged(secret: &str) {
    let logs = logs();
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logs.contains("freshen_server") || logs.contains("tower_http"),
        "the server logged nothing?"
    );
    assert!(!logs.contains(secret), "a token appeared in the logs");
}

async fn open(db: Db, dir: &tempfile::TempDir) -> (Store, Queries) {
    let url = db.url(dir.path()).await;
    let store = Store::open(&url).await.unwrap();
    (store.clone(), Queries::new(store, Defaults::default()))
}

fn settings(tokens: &[&str]) -> ServerSettings {
    ServerSettings {
        write_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        ..ServerSettings::default()
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// An image seeded as a scan would have saved it: tag `reference` at `digest`,
/// built on `base` (annotation evidence) at `base_digest`.
async fn seed_scanned(
    store: &Store,
    reference: &str,
    digest: &str,
    packages: &[(&str, &str, &str)],
    base: (&str, &str),
) {
    let now = Utc::now();
    let image = ImageRecord {
        digest: digest.into(),
        repository: reference.rsplit_once(':').unwrap().0.into(),
        platform: "linux/amd64".into(),
        config_digest: None,
        layers: vec![format!("sha256:{}", "1".repeat(64))],
        annotations: BTreeMap::new(),
        os_id: Some("debian".into()),
        os_version: Some("12".into()),
        os_ecosystem: Some("Debian:12".into()),
        source: "scan".into(),
        scanned_at: now,
    };
    let packages: Vec<PackageRecord> = packages
        .iter()
        .map(|(name, version, source)| PackageRecord {
            ecosystem: "deb".into(),
            name: (*name).into(),
            version: (*version).into(),
            arch: Some("amd64".into()),
            source_name: Some((*source).into()),
            source_version: Some((*version).into()),
            purl: format!("pkg:deb/debian/{name}@{version}?arch=amd64"),
            location: "/var/lib/dpkg/status".into(),
            layer: Some(format!("sha256:{}", "1".repeat(64))),
        })
        .collect();
    let edge = LineageEdge {
        evidence: "annotation".into(),
        base_reference: Some(base.0.into()),
        base_digest: Some(base.1.into()),
        confidence: 90,
        detail: Some("org.opencontainers.image.base.name".into()),
        recorded_at: now,
    };
    let tag = ImageRef {
        reference: reference.into(),
        platform: "linux/amd64".into(),
        digest: digest.into(),
        index_digest: None,
        updated_at: now,
    };
    store
        .save_image(&image, &packages, &[edge], &[tag])
        .await
        .unwrap();
}

/// `localhost:5000/app:1` -> `/images/localhost%3A5000%2Fapp%3A1`.
fn enc(reference: &str) -> String {
    let mut s = String::from("/images/");
    for b in reference.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

// ------------------------------------------------------- schema checking

fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(freshen_server::openapi_document)
}

/// Checks `v` against a schema of the served document: types, required
/// fields, and (stricter than the document) no undocumented fields.
fn conforms(schema: &Value, v: &Value, at: &str) {
    let doc = openapi();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling {r}"));
        return conforms(target, v, at);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
            _ => panic!("bad type in schema at {at}"),
        };
        let actual = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            types.contains(&actual) || (actual == "integer" && types.contains(&"number")),
            "{at}: {actual} is not {types:?}: {v}"
        );
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        assert!(e.contains(v), "{at}: {v} not in {e:?}");
    }
    if let Some(n) = schema.get("minimum").and_then(Value::as_i64) {
        assert!(v.as_i64().unwrap() >= n, "{at}: {v} < {n}");
    }
    match v {
        Value::Object(o) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(o.contains_key(req.as_str().unwrap()), "{at}: missing {req}");
            }
            for (k, x) in o {
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    conforms(p, x, &format!("{at}.{k}"));
                } else if let Some(extra) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    conforms(extra, x, &format!("{at}.{k}"));
                } else if props.is_some() {
                    panic!("{at}: field {k} is not in the document");
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, x) in a.iter().enumerate() {
                    conforms(items, x, &format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

/// Checks a response against the document's entry for `method path` and its status.
fn documented(method: &str, path: &str, r: &Resp) {
    let op = &openapi()["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut resp = &op["responses"][r.status.as_str()];
    assert!(
        resp.is_object(),
        "{method} {path} answered {} which is not documented",
        r.status
    );
    if let Some(rf) = resp.get("$ref").and_then(Value::as_str) {
        resp = openapi().pointer(rf.strip_prefix('#').unwrap()).unwrap();
    }
    if let Some(schema) = resp.pointer("/content/application~1json/schema") {
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{method} {path}"
        );
        conforms(schema, &r.json(), &format!("{method} {path} {}", r.status));
    } else if resp.pointer("/content/text~1html").is_some() {
        assert!(
            r.header("content-type").starts_with("text/html"),
            "{method} {path}"
        );
    } else if resp.pointer("/content/text~1plain").is_some() {
        assert!(
            r.header("content-type").starts_with("text/plain"),
            "{method} {path}"
        );
    } else {
        assert!(
            r.text.is_empty(),
            "{method} {path}: undocumented body {}",
            r.text
        );
    }
}

// ------------------------------------------------------------------ tests

const BASE: &str = "localhost:5000/base:1";
const CHILD: &str = "localhost:5000/child:1";
const GRANDCHILD: &str = "localhost:5000/team/grandchild:2";
const SCANNED: &str = "localhost:5000/scanned:3";

fn holders(v: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for ver in v.as_array().unwrap() {
        let key = (
            ver["name"].as_str().unwrap().to_string(),
            ver["version"].as_str().unwrap().to_string(),
        );
        let refs: &mut BTreeSet<String> = out.entry(key).or_default();
        for h in ver["images"].as_array().unwrap() {
            for r in h["references"].as_array().unwrap() {
                refs.insert(r.as_str().unwrap().to_string());
            }
        }
    }
    out
}

fn children(v: &Value) -> BTreeMap<String, (u64, bool)> {
    v["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let r = c["references"][0].as_str().unwrap().to_string();
            (
                r,
                (
                    c["depth"].as_u64().unwrap(),
                    c["outdated"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

fn set<const N: usize>(items: [(&str, &str); N]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn lineage_packages_and_writes(db: Db) {
    let token = format!("w-{}-Secr3tToken", db.name());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(db, &dir).await;
    let s = Server::start(store.clone(), &settings(&[&token])).await;
    let post = reqwest::Method::POST;

    // Register base -> child -> grandchild by POST, as pipelines would.
    let r = s
        .write(
            post.clone(),
            &enc(BASE),
            Some(&token),
            Some(json!({
                "digest": digest('a'),
                "packages": [
                    { "name": "openssl", "version": "3.0.11", "ecosystem": "deb", "source_name": "openssl" },
                    { "name": "libc6", "version": "2.36-9", "ecosystem": "deb", "source_name": "glibc" }
                ]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    documented("post", "/images/{ref}", &r);
    assert_eq!(r.header("location"), "/images/localhost%3A5000%2Fbase%3A1");
    assert_eq!(r.json()["reference"], BASE);
    assert_eq!(r.json()["platforms"][0]["digest"], digest('a'));

    // Raw slashes in the path work as well as encoded ones.
    let r = s
        .write(
            post.clone(),
            &format!("/images/{CHILD}"),
            Some(&token),
            Some(json!({
                "digest": digest('b'),
                "base": BASE,
                "base_digest": digest('a'),
                "packages": [
                    { "name": "openssl", "version": "3.0.11", "ecosystem": "deb" },
                    { "name": "app", "version": "1.0" }
                ]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .write(
            post.clone(),
            &enc(GRANDCHILD),
            Some(&token),
            Some(json!({
                "base": CHILD,
                "platform": "linux/arm64/v8",
                "packages": [
                    { "name": "openssl", "version": "3.0.13", "ecosystem": "deb" },
                    { "name": "github.com/acme/tool", "version": "v1.2.3", "ecosystem": "golang" }
                ]
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let grandchild_digest = r.json()["platforms"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        grandchild_digest.starts_with("manual:"),
        "{grandchild_digest}"
    );
    // And one seeded as a scan, built on an older digest of the base.
    seed_scanned(
        &store,
        SCANNED,
        &digest('c'),
        &[("libssl3", "3.0.11", "openssl")],
        (BASE, &digest('9')),
    )
    .await;

    // The whole tree, with depths, encoded and raw.
    let want = BTreeMap::from([
        (CHILD.to_string(), (1, false)),
        (SCANNED.to_string(), (1, true)),
        (GRANDCHILD.to_string(), (2, false)),
    ]);
    for path in [
        format!("{}/children?recursive=true", enc(BASE)),
        format!("/images/{BASE}/children?recursive=true"),
    ] {
        let r = s.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        documented("get", "/images/{ref}/children", &r);
        assert_eq!(children(&r.json()), want, "{path}");
        assert_eq!(r.json()["recursive"], true);
    }
    for path in [
        format!("{}/children", enc(BASE)),
        format!("{}/children?recursive=false", enc(BASE)),
    ] {
        let r = s.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let direct: BTreeSet<String> = children(&r.json()).into_keys().collect();
        assert_eq!(
            direct,
            BTreeSet::from([CHILD.to_string(), SCANNED.to_string()]),
            "{path}"
        );
    }
    let r = s.get(&format!("{}/children", enc(GRANDCHILD))).await;
    assert_eq!(r.json()["children"], json!([]));

    // Every holder of a package (binary or source name), with filters.
    let r = s.get("/packages/openssl").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    documented("get", "/packages/{name}", &r);
    let by_version = holders(&r.json());
    let one = |x: &str| BTreeSet::from([x.to_string()]);
    assert_eq!(
        by_version,
        BTreeMap::from([
            (("libssl3".into(), "3.0.11".into()), one(SCANNED)),
            (
                ("openssl".into(), "3.0.11".into()),
                BTreeSet::from([BASE.to_string(), CHILD.to_string()])
            ),
            (("openssl".into(), "3.0.13".into()), one(GRANDCHILD)),
        ])
    );
    let r = s.get("/packages/openssl?ecosystem=&version=").await;
    assert_eq!(holders(&r.json()), by_version);
    let r = s.get("/packages/openssl?version=3.0.13").await;
    assert_eq!(
        holders(&r.json()).into_keys().collect::<Vec<_>>(),
        [("openssl".into(), "3.0.13".into())]
    );
    let r = s.get("/packages/openssl?ecosystem=generic").await;
    assert_eq!(r.json(), json!([]));
    let r = s.get("/packages/app?ecosystem=generic").await;
    assert_eq!(
        holders(&r.json()).into_values().collect::<Vec<_>>(),
        [one(CHILD)]
    );
    let r = s.get("/packages/no-such-package").await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));
    for path in [
        "/packages/github.com%2Facme%2Ftool",
        "/packages/github.com/acme/tool",
    ] {
        let r = s.get(path).await;
        assert_eq!(
            holders(&r.json()).into_values().collect::<Vec<_>>(),
            [one(GRANDCHILD)],
            "{path}"
        );
    }

    // Show and packages, by tag and by digest.
    let r = s.get(&enc(CHILD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    documented("get", "/images/{ref}", &r);
    let p = &r.json()["platforms"][0];
    assert_eq!(
        (
            p["digest"].as_str(),
            p["packages"].as_u64(),
            p["source"].as_str()
        ),
        (Some(&*digest('b')), Some(2), Some("manual"))
    );
    assert_eq!(p["base"][0]["base_reference"], BASE);
    assert_eq!(p["base"][0]["evidence"], "manual");
    let r = s
        .get(&enc(&format!("localhost:5000/scanned@{}", digest('c'))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    documented("get", "/images/{ref}", &r);
    assert_eq!(r.json()["platforms"][0]["os"], "Debian:12");
    let r = s.get(&format!("/images/{GRANDCHILD}")).await;
    // Normalised as containerd does: arm64/v8 is arm64.
    assert_eq!(r.json()["platforms"][0]["platform"], "linux/arm64");
    let r = s.get(&format!("{}/packages", enc(BASE))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    documented("get", "/images/{ref}/packages", &r);
    let names: BTreeSet<(String, String)> = r.json()["platforms"]["linux/amd64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(names, set([("libc6", "2.36-9"), ("openssl", "3.0.11")]));
    let r = s.get(&format!("/images/{SCANNED}/packages")).await;
    assert_eq!(
        r.json()["platforms"]["linux/amd64"][0]["purl"],
        "pkg:deb/debian/libssl3@3.0.11?arch=amd64"
    );

    // POST on a known reference conflicts; PUT replaces.
    let r = s
        .write(post.clone(), &enc(BASE), Some(&token), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    documented("post", "/images/{ref}", &r);
    assert!(r.error().contains("PUT"), "{}", r.text);
    let r = s
        .write(
            reqwest::Method::PUT,
            &enc(BASE),
            Some(&token),
            Some(json!({ "digest": digest('d'), "packages": [{ "name": "openssl", "version": "3.0.14", "ecosystem": "deb" }] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    documented("put", "/images/{ref}", &r);
    assert_eq!(r.json()["platforms"][0]["digest"], digest('d'));
    let r = s.get(&format!("{}/packages", enc(BASE))).await;
    assert_eq!(
        r.json()["platforms"]["linux/amd64"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s
        .get("/packages/openssl?version=3.0.11&ecosystem=deb")
        .await;
    assert_eq!(
        holders(&r.json()),
        BTreeMap::from([
            (("libssl3".into(), "3.0.11".into()), one(SCANNED)),
            (("openssl".into(), "3.0.11".into()), one(CHILD)),
        ])
    );
    // The child is now built on a digest the base tag no longer points at.
    let r = s.get(&format!("{}/children", enc(BASE))).await;
    assert_eq!(children(&r.json())[CHILD], (1, true));
    // PUT creates as well.
    let r = s
        .write(
            reqwest::Method::PUT,
            &enc("localhost:5000/new:1"),
            Some(&token),
            Some(json!({ "base": BASE })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // DELETE removes; a second DELETE is a 404.
    let r = s
        .write(
            reqwest::Method::DELETE,
            &format!("/images/{GRANDCHILD}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    documented("delete", "/images/{ref}", &r);
    let r = s.get(&enc(GRANDCHILD)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    documented("get", "/images/{ref}", &r);
    let r = s
        .write(
            reqwest::Method::DELETE,
            &enc(GRANDCHILD),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    documented("delete", "/images/{ref}", &r);
    let r = s
        .get(&format!("{}/children?recursive=true", enc(BASE)))
        .await;
    let now: BTreeSet<String> = children(&r.json()).into_keys().collect();
    assert_eq!(
        now,
        BTreeSet::from([CHILD.into(), SCANNED.into(), "localhost:5000/new:1".into()])
    );
    let r = s.get("/packages/github.com%2Facme%2Ftool").await;
    assert_eq!(r.json(), json!([]));

    s.stop(&token).await;
    assert_token_never_logged(&token);
    store.close().await;
}

async fn auth_and_errors(db: Db) {
    let token = format!("e-{}-Secr3tToken", db.name());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(db, &dir).await;
    let limited = ServerSettings {
        max_body_bytes: 64 * 1024,
        ..settings(&[&token, "another-token"])
    };
    let s = Server::start(store.clone(), &limited).await;
    let (post, put, delete) = (
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    );
    let path = enc("localhost:5000/app:1");
    let body = json!({ "packages": [{ "name": "zlib1g", "version": "1.2.13" }] });

    // 401 without a token, with a wrong one, or with another scheme.
    for method in [post.clone(), put.clone(), delete.clone()] {
        let r = s
            .write(method.clone(), &path, None, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method}: {}", r.text);
        documented(&method.as_str().to_lowercase(), "/images/{ref}", &r);
        assert!(
            r.header("www-authenticate").starts_with("Bearer"),
            "{:?}",
            r.headers
        );
        assert!(r.error().contains("Authorization: Bearer"), "{}", r.text);
    }
    for wrong in [
        format!("{token}x"),
        token[..token.len() - 1].to_string(),
        "nope".into(),
    ] {
        let r = s
            .write(post.clone(), &path, Some(&wrong), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(r.header("www-authenticate").contains("invalid_token"));
    }
    let r = s
        .send(
            s.http
                .post(s.url(&path))
                .basic_auth("u", Some(&token))
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // Any configured token works.
    let r = s
        .write(
            post.clone(),
            &path,
            Some("another-token"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // 400: bad references, bodies and query strings, each naming the problem.
    let r = s.get("/images/Bad%20Ref!").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    documented("get", "/images/{ref}", &r);
    assert!(r.error().contains("Bad Ref!"), "{}", r.text);
    let r = s
        .write(
            post.clone(),
            "/images/Bad%20Ref!",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("Bad Ref!"), "{}", r.text);
    let r = s.get("/images/%FF%FE").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = s
        .write(
            post.clone(),
            &enc("localhost:5000/x:1"),
            Some(&token),
            Some(json!({ "colour": "red" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    documented("post", "/images/{ref}", &r);
    assert!(r.error().contains("unknown field `colour`"), "{}", r.text);
    let r = s
        .write(
            put.clone(),
            &enc("localhost:5000/x:1"),
            Some(&token),
            Some(json!({ "packages": [{ "name": "a", "version": "1", "bogus": 1 }] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.error().contains("packages[0]") && r.error().contains("bogus"),
        "{}",
        r.text
    );
    let r = s
        .send(
            s.http
                .post(s.url(&enc("localhost:5000/x:1")))
                .bearer_auth(&token)
                .body("{\"packages\": ["),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("EOF while parsing"), "{}", r.text);
    let r = s
        .send(
            s.http
                .post(s.url(&enc("localhost:5000/x:1")))
                .bearer_auth(&token)
                .body("{} trailing"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = s
        .write(
            post.clone(),
            &enc("localhost:5000/x:1"),
            Some(&token),
            Some(json!({ "digest": "md5:abc" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("digest"), "{}", r.text);
    let r = s
        .write(
            post.clone(),
            &enc(&format!("localhost:5000/x@{}", digest('e'))),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("tag"), "{}", r.text);
    let r = s.get(&format!("{path}/children?recursive=maybe")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    documented("get", "/images/{ref}/children", &r);
    let r = s.get(&format!("{path}/children?recursve=true")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("recursve"), "{}", r.text);
    let r = s.get("/packages/zlib1g?ecosytem=deb").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    documented("get", "/packages/{name}", &r);

    // 413: declared too large, and streamed (chunked) too large.
    let big = json!({ "packages": [{ "name": "x".repeat(100 * 1024), "version": "1" }] });
    let r = s
        .write(
            post.clone(),
            &enc("localhost:5000/big:1"),
            Some(&token),
            Some(big.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    documented("post", "/images/{ref}", &r);
    assert!(r.error().contains("65536 bytes"), "{}", r.text);
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = s
        .send(
            s.http
                .put(s.url(&enc("localhost:5000/big:1")))
                .bearer_auth(&token)
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    documented("put", "/images/{ref}", &r);
    // Just under the limit is fine.
    let ok = json!({ "packages": [{ "name": "x".repeat(60 * 1024), "version": "1" }] });
    let r = s
        .write(
            put.clone(),
            &enc("localhost:5000/big:1"),
            Some(&token),
            Some(ok),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // 404s: unknown images, unknown routes; 405 with Allow.
    for p in ["", "/packages", "/children", "/children?recursive=true"] {
        let r = s
            .get(&format!("{}{p}", enc("localhost:5000/unknown:1")))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.text);
        assert!(
            r.error()
                .contains("localhost:5000/unknown:1 is not in the inventory"),
            "{}",
            r.text
        );
    }
    let r = s.get("/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.error().contains("/openapi.json"), "{}", r.text);
    let r = s.send(s.http.patch(s.url(&path)).bearer_auth(&token)).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    r.error();
    let r = s
        .write(
            post.clone(),
            &format!("{path}/children"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    assert_eq!(r.header("allow"), "GET, HEAD");
    r.error();
    let r = s.send(s.http.post(s.url("/healthz"))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    r.error();
    s.stop(&token).await;

    // 403 when no token is configured, whatever is sent; reads still work.
    let closed = Server::start(store.clone(), &settings(&[])).await;
    for method in [post, put, delete] {
        let r = closed
            .write(method.clone(), &path, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}: {}", r.text);
        documented(&method.as_str().to_lowercase(), "/images/{ref}", &r);
        assert!(r.error().contains("server.write_tokens"), "{}", r.text);
    }
    let r = closed.get(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    closed.stop(&token).await;
    assert_token_never_logged(&token);
    store.close().await;
}

async fn openapi_html_and_service(db: Db) {
    let token = format!("o-{}-Secr3tToken", db.name());
    let dir = tempfile::tempdir().unwrap();
    let (store, queries) = open(db, &dir).await;
    let s = Server::start(store.clone(), &settings(&[&token])).await;

    let r = s.get("/healthz").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    documented("get", "/healthz", &r);

    // The served document is the crate's, valid per openapi-spec-validator.
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    documented("get", "/openapi.json", &r);
    let doc = r.json();
    assert_eq!(&doc, openapi());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    validate_with_openapi_spec_validator(&r.text);

    // Seed: a base, a child, and a hostile package name.
    let hostile = "<script>alert(1)</script>";
    let reg = |body: Value, reference: &'static str| {
        let q = queries.clone();
        async move {
            let r = q.parse(reference).unwrap();
            q.register(&r, &serde_json::from_value(body).unwrap(), false)
                .await
                .unwrap();
        }
    };
    reg(
        json!({ "packages": [{ "name": hostile, "version": "1\"><b>" }] }),
        BASE,
    )
    .await;
    reg(json!({ "base": BASE }), CHILD).await;

    // Every documented operation is served (answers with its documented
    // statuses, never the router's fallback).
    let mut operations = 0;
    for (path, item) in openapi()["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let concrete = path
                .replace("{ref}", &enc(BASE)[8..])
                .replace("{name}", "openssl")
                .replace("{kind}", "registry")
                .replace("{key}", "not-a-configured-key");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut rb = s.http.request(m, s.url(&concrete));
            if concrete.starts_with("/ui/") {
                rb = rb.query(&[("name", "openssl"), ("ref", BASE)]);
            }
            let r = s.send(rb).await;
            // Writes without a token: 401, documented, and nothing changed.
            documented(method, path, &r);
            assert!(
                !r.text.contains("no route for"),
                "{method} {path}: {}",
                r.text
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 27);

    // The HTML page: a count, forms, everything escaped, strict CSP.
    let r = s.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("2 images in the inventory"), "{}", r.text);
    assert!(
        r.text.contains("action=\"/ui/packages\"") && r.text.contains("action=\"/ui/children\"")
    );
    assert!(!r.text.contains("<script"), "no script on the page");
    assert!(
        r.header("content-security-policy")
            .contains("default-src 'none'")
    );
    let r = s
        .send(
            s.http
                .get(s.url("/ui/packages"))
                .query(&[("name", hostile)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        !r.text.contains("<script") && !r.text.contains("<b>"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.text
    );
    assert!(r.text.contains("1&quot;&gt;&lt;b&gt;"), "{}", r.text);
    assert!(
        r.text
            .contains("href=\"/images/localhost%3A5000%2Fbase%3A1\""),
        "{}",
        r.text
    );
    let r = s
        .send(
            s.http
                .get(s.url("/ui/children"))
                .query(&[("ref", BASE), ("recursive", "true")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains(CHILD), "{}", r.text);
    let r = s
        .send(
            s.http
                .get(s.url("/ui/children"))
                .query(&[("ref", "\"><img src=x onerror=alert(1)>")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(!r.text.contains("<img"), "{}", r.text);
    assert!(
        r.text.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        r.text
    );
    let r = s
        .send(
            s.http
                .get(s.url("/ui/children"))
                .query(&[("ref", "localhost:5000/unknown:1")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = s.get("/ui/packages").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // Every JSON answer says nosniff.
    let r = s.get("/healthz").await;
    assert_eq!(r.header("x-content-type-options"), "nosniff");

    // Ready while the store answers; 503 with the reason once it can't.
    let r = s.get("/readyz").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({ "status": "ready" }))
    );
    documented("get", "/readyz", &r);
    store.close().await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    documented("get", "/readyz", &r);
    assert_eq!(r.json()["status"], "not ready");
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("check that the database is ready"),
        "{}",
        r.text
    );
    // Liveness does no I/O: still up.
    assert_eq!(s.get("/healthz").await.status, StatusCode::OK);

    s.stop(&token).await;
    assert_token_never_logged(&token);
}

/// Runs PyPI's `openapi-spec-validator` on the document; a missing tool fails.
fn validate_with_openapi_spec_validator(text: &str) {
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let out = std::process::Command::new("openapi-spec-validator")
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("openapi-spec-validator is not installed ({e}): install it with `pip install openapi-spec-validator`")
        });
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

both_stores!(
    lineage_packages_and_writes,
    auth_and_errors,
    openapi_html_and_service
);
