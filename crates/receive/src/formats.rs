//! Reading each sender's payload into the pushes and scans it reports.
//!
//! A payload that is not JSON, or lacks the sender's envelope, is an error
//! (the server answers 400 with the reason). Items inside a well-formed
//! envelope that freshen does not act on (pulls, blob uploads, pushes by
//! digest only, deletions) are skipped with a reason, not refused: a
//! Distribution registry retries a refused notification forever.

use freshen_reference::{Reference, parse_digest};
use serde_json::Value;

use crate::spec::{Kind, ReceiverSpec};

/// A tag that was pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// `registry/repository:tag`, as the payload (or the receiver's
    /// `registry`) names it; not yet normalised.
    pub reference: String,
    /// The manifest digest the payload reports, if it does. freshen reads
    /// the tag itself anyway; this is for the log and the answer.
    pub digest: Option<String>,
}

/// A scan that completed (Harbor's `SCANNING_COMPLETED`).
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// `registry/repository@digest`.
    pub reference: String,
    /// Harbor's repository name, `project/name`.
    pub repository: String,
    /// The scanned artifact's digest.
    pub digest: String,
    /// The scan overview as Harbor sent it (status, severity, summary).
    pub overview: Value,
}

/// What one request reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notice {
    /// Tags pushed, in payload order, repeats removed.
    pub pushes: Vec<Push>,
    /// Scans completed.
    pub scans: Vec<Scan>,
    /// Items not acted on, each with why.
    pub skipped: Vec<String>,
    /// Docker Hub's `callback_url`.
    pub callback_url: Option<String>,
}

impl Notice {
    fn push(&mut self, reference: String, digest: Option<String>) {
        let p = Push { reference, digest };
        if !self.pushes.contains(&p) {
            self.pushes.push(p);
        }
    }
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not the sender's format.
    #[error("not a {kind} payload: {reason}")]
    Shape {
        /// The receiver's kind.
        kind: Kind,
        /// What is missing or wrong.
        reason: String,
    },
}

/// A request's parts a parser needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    /// `ce-specversion`, present when a CloudEvent comes in binary mode.
    pub ce_specversion: Option<&'a str>,
    /// `ce-type`.
    pub ce_type: Option<&'a str>,
    /// `ce-subject`.
    pub ce_subject: Option<&'a str>,
}

/// Reads `body` as `spec.kind`'s format.
pub fn parse(spec: &ReceiverSpec, headers: Headers<'_>, body: &[u8]) -> Result<Notice, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let shape = |reason: &str| ParseError::Shape {
        kind: spec.kind,
        reason: reason.to_string(),
    };
    let mut n = Notice::default();
    match spec.kind {
        Kind::Registry => distribution(spec, &v, &mut n).map_err(|r| shape(&r))?,
        Kind::Dockerhub => dockerhub(spec, &v, &mut n).map_err(|r| shape(&r))?,
        Kind::Harbor => harbor(spec, &v, &mut n).map_err(|r| shape(&r))?,
        Kind::Generic => generic(spec, headers, &v, &mut n).map_err(|r| shape(&r))?,
    }
    Ok(n)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `registry/repository:tag`, checked; `Err` says what is wrong.
fn tag_ref(registry: &str, repository: &str, tag: &str) -> Result<String, String> {
    let s = format!("{registry}/{repository}:{tag}");
    Reference::parse(&s)
        .map(|_| s.clone())
        .map_err(|e| format!("{s:?}: {e}"))
}

fn digest_of(v: Option<&str>) -> Option<String> {
    v.and_then(|d| parse_digest(d).ok())
}

/// Manifest media types: a push of anything else is a blob.
fn is_manifest(media_type: &str) -> bool {
    media_type.contains("manifest") || media_type == "application/vnd.oci.image.index.v1+json"
}

/// CNCF Distribution: `{"events": [{action, target: {mediaType, repository,
/// digest, tag}, request: {host}}]}`.
fn distribution(spec: &ReceiverSpec, v: &Value, n: &mut Notice) -> Result<(), String> {
    let events = v
        .get("events")
        .and_then(Value::as_array)
        .ok_or("no \"events\" array (is this a Distribution notification envelope?)")?;
    for (i, e) in events.iter().enumerate() {
        let action = str_at(e, "/action").unwrap_or("");
        if action != "push" {
            n.skipped
                .push(format!("events[{i}]: action {action:?} is not a push"));
            continue;
        }
        let media = str_at(e, "/target/mediaType").unwrap_or("");
        if !is_manifest(media) {
            n.skipped
                .push(format!("events[{i}]: a blob ({media:?}), not a manifest"));
            continue;
        }
        let Some(repository) = str_at(e, "/target/repository") else {
            n.skipped.push(format!("events[{i}]: no target.repository"));
            continue;
        };
        let Some(tag) = str_at(e, "/target/tag") else {
            n.skipped.push(format!(
                "events[{i}]: {repository} pushed by digest, no tag"
            ));
            continue;
        };
        let Some(host) = spec
            .registry
            .as_deref()
            .or_else(|| str_at(e, "/request/host"))
        else {
            n.skipped.push(format!(
                "events[{i}]: no request.host, and the receiver names no registry"
            ));
            continue;
        };
        match tag_ref(host, repository, tag) {
            Ok(r) => n.push(r, digest_of(str_at(e, "/target/digest"))),
            Err(why) => n.skipped.push(format!("events[{i}]: {why}")),
        }
    }
    Ok(())
}

/// Docker Hub: `{callback_url, push_data: {tag}, repository: {repo_name}}`.
fn dockerhub(spec: &ReceiverSpec, v: &Value, n: &mut Notice) -> Result<(), String> {
    let repo = str_at(v, "/repository/repo_name").ok_or("no repository.repo_name")?;
    let tag = str_at(v, "/push_data/tag").ok_or("no push_data.tag")?;
    n.callback_url = str_at(v, "/callback_url").map(str::to_string);
    let registry = spec.registry.as_deref().unwrap_or("docker.io");
    // Docker Hub names official images without their `library/`.
    let repo = if repo.contains('/') {
        repo.to_string()
    } else {
        format!("library/{repo}")
    };
    let r = tag_ref(registry, &repo, tag)?;
    n.push(r, None);
    Ok(())
}

/// Harbor, default format `{type, event_data: {resources, repository}}`
/// or CloudEvents `{specversion, type: harbor.*, data: {resources, repository}}`.
fn harbor(spec: &ReceiverSpec, v: &Value, n: &mut Notice) -> Result<(), String> {
    let (kind, data) = if v.get("specversion").is_some() {
        let t = str_at(v, "/type").ok_or("a CloudEvent without a type")?;
        let kind = match t {
            "harbor.artifact.pushed" => "PUSH_ARTIFACT",
            "harbor.scan.completed" => "SCANNING_COMPLETED",
            other => {
                n.skipped
                    .push(format!("event type {other:?} is not acted on"));
                return Ok(());
            }
        };
        (kind, v.get("data").ok_or("a CloudEvent without data")?)
    } else {
        let t = str_at(v, "/type").ok_or("no type (is this a Harbor webhook?)")?;
        if !matches!(t, "PUSH_ARTIFACT" | "SCANNING_COMPLETED") {
            n.skipped.push(format!("event type {t:?} is not acted on"));
            return Ok(());
        }
        (t, v.get("event_data").ok_or("no event_data")?)
    };
    let resources = data
        .get("resources")
        .and_then(Value::as_array)
        .ok_or("no resources array")?;
    let full_name = str_at(data, "/repository/repo_full_name");
    for (i, r) in resources.iter().enumerate() {
        let digest = digest_of(str_at(r, "/digest"));
        let Some(url) = str_at(r, "/resource_url") else {
            n.skipped.push(format!("resources[{i}]: no resource_url"));
            continue;
        };
        // `host/project/repo:tag` or `host/project/repo@sha256:...`.
        let parsed = match Reference::parse(url) {
            Ok(p) => p,
            Err(e) => {
                n.skipped.push(format!("resources[{i}]: {url:?}: {e}"));
                continue;
            }
        };
        let host = spec.registry.as_deref().unwrap_or(parsed.registry());
        let repository = full_name.unwrap_or(parsed.repository());
        if kind == "SCANNING_COMPLETED" {
            let Some(d) = digest
                .clone()
                .or_else(|| parsed.digest().map(str::to_string))
            else {
                n.skipped
                    .push(format!("resources[{i}]: a scan without a digest"));
                continue;
            };
            n.scans.push(Scan {
                reference: format!("{host}/{repository}@{d}"),
                repository: repository.to_string(),
                digest: d,
                overview: r.get("scan_overview").cloned().unwrap_or(Value::Null),
            });
            continue;
        }
        let tag = str_at(r, "/tag").or(parsed.tag());
        let Some(tag) = tag else {
            n.skipped
                .push(format!("resources[{i}]: {url} pushed by digest, no tag"));
            continue;
        };
        match tag_ref(host, repository, tag) {
            Ok(reference) => n.push(reference, digest),
            Err(why) => n.skipped.push(format!("resources[{i}]: {why}")),
        }
    }
    Ok(())
}

/// A CloudEvent (structured: `specversion` in the body; binary: `ce-*`
/// headers, the body is the data) whose data holds `ref` (or whose
/// `subject` is the reference), or a plain `{"ref", "digest"}`.
fn generic(
    spec: &ReceiverSpec,
    headers: Headers<'_>,
    v: &Value,
    n: &mut Notice,
) -> Result<(), String> {
    let (data, subject) = if v.get("specversion").is_some() {
        (v.get("data").unwrap_or(&Value::Null), str_at(v, "/subject"))
    } else if headers.ce_specversion.is_some() {
        (v, headers.ce_subject)
    } else {
        (v, None)
    };
    let reference = str_at(data, "/ref")
        .or(subject)
        .ok_or("no \"ref\" (in the body, a CloudEvent's data, or its subject)")?;
    let parsed = Reference::parse(reference).map_err(|e| format!("ref {reference:?}: {e}"))?;
    if parsed.tag().is_none() || parsed.digest().is_some() {
        return Err(format!(
            "ref {reference:?} must name a tag (registry/repository:tag), without a digest"
        ));
    }
    let reference = match &spec.registry {
        Some(host) => tag_ref(host, parsed.repository(), parsed.tag().expect("checked"))?,
        None => reference.to_string(),
    };
    let digest = match str_at(data, "/digest") {
        Some(d) => Some(parse_digest(d).map_err(|e| format!("digest {d:?}: {e}"))?),
        None => None,
    };
    n.push(reference, digest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> ReceiverSpec {
        serde_json::from_value(serde_json::json!({"kind": kind, "key": "0123456789abcdef"}))
            .unwrap()
    }

    const D1: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
    const D2: &str = "sha256:9e2ee0b6a27d5dbd9d6fc6dd36c1a6a1b8d6ad1ca0c2d3e7e0f3b2ab8b29c4f0";

    #[test]
    fn distribution_envelopes_give_tagged_manifest_pushes() {
        // The shape of the Distribution documentation's example, with the
        // events a `docker push` of one image sends (layers, config, tag)
        // and the pull and by-digest pushes that must be ignored.
        let body = serde_json::json!({"events": [
            {"id": "1", "timestamp": "2026-12-02T10:00:00Z", "action": "push",
             "target": {"mediaType": "application/octet-stream", "size": 10, "digest": D2,
                        "length": 10, "repository": "team/app", "url": "http://127.0.0.1:5000/v2/team/app/blobs/x"},
             "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "skopeo"},
             "actor": {}, "source": {"addr": "x:5000", "instanceID": "i"}},
            {"id": "2", "timestamp": "2026-12-02T10:00:01Z", "action": "push",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 500, "digest": D1,
                        "length": 500, "repository": "team/app", "url": "http://127.0.0.1:5000/v2/team/app/manifests/sha256:x", "tag": "1.0"},
             "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "skopeo"},
             "actor": {}, "source": {"addr": "x:5000", "instanceID": "i"}},
            {"id": "3", "action": "push",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D2, "repository": "team/app"},
             "request": {"host": "127.0.0.1:5000"}},
            {"id": "4", "action": "pull",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D1, "repository": "team/app", "tag": "1.0"},
             "request": {"host": "127.0.0.1:5000"}},
            {"id": "5", "action": "push",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 500, "digest": D1, "repository": "team/app", "tag": "1.0"},
             "request": {"host": "127.0.0.1:5000"}}
        ]});
        let n = parse(
            &spec("registry"),
            Headers::default(),
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            n.pushes,
            [Push {
                reference: "127.0.0.1:5000/team/app:1.0".into(),
                digest: Some(D1.into())
            }]
        );
        assert_eq!(n.skipped.len(), 3, "{:?}", n.skipped);
        let mut with_host = spec("registry");
        with_host.registry = Some("registry.example.com".into());
        let n = parse(&with_host, Headers::default(), body.to_string().as_bytes()).unwrap();
        assert_eq!(n.pushes[0].reference, "registry.example.com/team/app:1.0");
    }

    #[test]
    fn docker_hub_payloads_as_documented() {
        // Docker Hub's documented example payload.
        let body = r#"{
          "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
          "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
          "repository": {"comment_count": 0, "date_created": 1417494799, "description": "",
            "dockerfile": "FROM ubuntu\n", "full_description": "Docker Hub based automated build from a GitHub repo",
            "is_official": false, "is_private": true, "is_trusted": true, "name": "testhook",
            "namespace": "svendowideit", "owner": "svendowideit", "repo_name": "svendowideit/testhook",
            "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/", "star_count": 0, "status": "Active"}
        }"#;
        let n = parse(&spec("dockerhub"), Headers::default(), body.as_bytes()).unwrap();
        assert_eq!(
            n.pushes[0].reference,
            "docker.io/svendowideit/testhook:latest"
        );
        assert_eq!(
            n.callback_url.as_deref(),
            Some(
                "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/"
            )
        );
        let e = parse(
            &spec("dockerhub"),
            Headers::default(),
            br#"{"push_data":{}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("repository.repo_name"), "{e}");
    }

    #[test]
    fn harbor_default_and_cloudevents() {
        let data = serde_json::json!({
            "resources": [{"digest": D1, "tag": "v1.0", "resource_url": "harbor.example.com/library/busybox:v1.0"}],
            "repository": {"date_created": 1680501893, "name": "busybox", "namespace": "library",
                           "repo_full_name": "library/busybox", "repo_type": "private"}
        });
        let default = serde_json::json!({"type": "PUSH_ARTIFACT", "occur_at": 1680501893,
                                         "operator": "admin", "event_data": data});
        let cloud = serde_json::json!({"specversion": "1.0", "requestid": "r", "id": "i",
            "source": "/projects/1/webhook/policies/2", "type": "harbor.artifact.pushed",
            "datacontenttype": "application/json", "time": "2023-04-03T06:18:13Z",
            "data": data, "operator": "admin"});
        for body in [default, cloud] {
            let n = parse(
                &spec("harbor"),
                Headers::default(),
                body.to_string().as_bytes(),
            )
            .unwrap();
            assert_eq!(
                n.pushes,
                [Push {
                    reference: "harbor.example.com/library/busybox:v1.0".into(),
                    digest: Some(D1.into())
                }]
            );
        }
        let scanned = serde_json::json!({"type": "SCANNING_COMPLETED", "occur_at": 1, "operator": "auto",
            "event_data": {"resources": [{"digest": D1, "tag": "v1.0",
                "resource_url": "harbor.example.com/library/busybox:v1.0",
                "scan_overview": {"application/vnd.security.vulnerability.report; version=1.1":
                    {"report_id": "x", "scan_status": "Success", "severity": "High",
                     "summary": {"total": 3, "fixable": 2, "summary": {"High": 1, "Low": 2}}}}}],
                "repository": {"name": "busybox", "namespace": "library", "repo_full_name": "library/busybox"}}});
        let n = parse(
            &spec("harbor"),
            Headers::default(),
            scanned.to_string().as_bytes(),
        )
        .unwrap();
        assert!(n.pushes.is_empty());
        assert_eq!(
            n.scans[0].reference,
            format!("harbor.example.com/library/busybox@{D1}")
        );
        let pulled = serde_json::json!({"type": "PULL_ARTIFACT", "event_data": {}});
        let n = parse(
            &spec("harbor"),
            Headers::default(),
            pulled.to_string().as_bytes(),
        )
        .unwrap();
        assert!(n.pushes.is_empty() && n.skipped.len() == 1);
    }

    #[test]
    fn generic_refs_and_cloudevents() {
        let s = spec("generic");
        let n = parse(
            &s,
            Headers::default(),
            format!(r#"{{"ref":"localhost:5000/app:2","digest":"{D1}"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(n.pushes[0].reference, "localhost:5000/app:2");
        let ce = serde_json::json!({"specversion": "1.0", "id": "1", "source": "ci", "type": "com.example.pushed",
                                    "subject": "localhost:5000/app:3"});
        let n = parse(&s, Headers::default(), ce.to_string().as_bytes()).unwrap();
        assert_eq!(n.pushes[0].reference, "localhost:5000/app:3");
        let binary = Headers {
            ce_specversion: Some("1.0"),
            ce_type: Some("x"),
            ce_subject: Some("localhost:5000/app:4"),
        };
        let n = parse(&s, binary, b"{}").unwrap();
        assert_eq!(n.pushes[0].reference, "localhost:5000/app:4");
        for (body, says) in [
            (&b"not json"[..], "not JSON"),
            (br#"{"digest":"sha256:00"}"#, "no \"ref\""),
            (
                br#"{"ref":"localhost:5000/app:1","digest":"md5:x"}"#,
                "digest",
            ),
        ] {
            let e = parse(&s, Headers::default(), body).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
