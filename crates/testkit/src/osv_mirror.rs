//! A loopback OSV export: `GET /<Ecosystem>/all.zip` served as Google's
//! bucket serves OSV's (an `ETag` and a `Last-Modified` per object, `304`
//! for a matching `If-None-Match` or a not-older `If-Modified-Since`,
//! `404` for an ecosystem it doesn't hold), with every request logged.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

/// One request the mirror answered.
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// The path asked for.
    pub path: String,
    /// `If-None-Match`, if sent.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`, if sent.
    pub if_modified_since: Option<String>,
    /// The status answered.
    pub status: u16,
}

struct Object {
    bytes: Vec<u8>,
    etag: String,
    last_modified: String,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Object>,
    requests: Vec<MirrorRequest>,
    /// Every `Last-Modified` differs: the mirror's clock ticks per upload.
    uploads: u64,
}

/// The mirror; it stops when dropped.
pub struct OsvMirror {
    root: String,
    inner: Arc<Mutex<Inner>>,
    task: JoinHandle<()>,
}

impl OsvMirror {
    /// Starts an empty mirror on `127.0.0.1:<free port>`.
    pub async fn start() -> OsvMirror {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the OSV mirror failed");
        let root = format!("http://{}", listener.local_addr().expect("local_addr"));
        let app = Router::new().fallback(serve).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OsvMirror { root, inner, task }
    }

    /// The export's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.root.clone()
    }

    /// Publishes `bytes` as `<ecosystem>/all.zip`, with a new `ETag` and
    /// a later `Last-Modified`.
    pub fn publish(&self, ecosystem: &str, bytes: Vec<u8>) {
        let mut inner = self.inner.lock().expect("lock");
        inner.uploads += 1;
        let when = chrono::DateTime::from_timestamp(1_767_225_600 + inner.uploads as i64 * 3600, 0)
            .expect("a valid time");
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
        inner.objects.insert(
            format!("/{ecosystem}/all.zip"),
            Object {
                bytes,
                etag,
                last_modified: when.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            },
        );
    }

    /// Publishes the `.json` records of `dir` (OSV's one record per
    /// member layout) as `<ecosystem>/all.zip`; returns the archive.
    pub fn publish_dir(&self, ecosystem: &str, dir: &Path) -> Vec<u8> {
        let bytes = zip_records(dir);
        self.publish(ecosystem, bytes.clone());
        bytes
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<MirrorRequest> {
        self.inner.lock().expect("lock").requests.clone()
    }
}

impl Drop for OsvMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `.json` files of `dir` (sorted) as a deflated zip, one record a
/// member named by its file name, as OSV's exports are.
pub fn zip_records(dir: &Path) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for p in names {
        let name = p.file_name().expect("a file name").to_string_lossy();
        zip.start_file(name.as_ref(), options).expect("zip member");
        zip.write_all(&std::fs::read(&p).expect("read record"))
            .expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

async fn serve(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let if_none_match = header(header::IF_NONE_MATCH);
    let if_modified_since = header(header::IF_MODIFIED_SINCE);
    let mut inner = inner.lock().expect("lock");
    let (status, response) = match inner.objects.get(&path) {
        None => (
            StatusCode::NOT_FOUND,
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("NoSuchKey"))
                .expect("response"),
        ),
        Some(o) => {
            // As RFC 9110: If-None-Match wins over If-Modified-Since.
            let fresh = match (&if_none_match, &if_modified_since) {
                (Some(tags), _) => tags.split(',').any(|t| t.trim() == o.etag),
                (None, Some(since)) => parse_http_date(since)
                    .zip(parse_http_date(&o.last_modified))
                    .is_some_and(|(since, modified)| modified <= since),
                (None, None) => false,
            };
            let b = Response::builder()
                .header(header::ETAG, &o.etag)
                .header(header::LAST_MODIFIED, &o.last_modified);
            if fresh {
                (
                    StatusCode::NOT_MODIFIED,
                    b.status(StatusCode::NOT_MODIFIED)
                        .body(Body::empty())
                        .expect("response"),
                )
            } else {
                (
                    StatusCode::OK,
                    b.header(header::CONTENT_TYPE, "application/zip")
                        .body(Body::from(o.bytes.clone()))
                        .expect("response"),
                )
            }
        }
    };
    inner.requests.push(MirrorRequest {
        path,
        if_none_match,
        if_modified_since,
        status: status.as_u16(),
    });
    response
}

fn parse_http_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(s, "%a, %d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|t| t.and_utc())
}
