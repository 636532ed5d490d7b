//! The inventory: images, tags, packages, lineage, layer findings.

use std::collections::BTreeMap;

use freshen_store::{ImageRecord, ImageRef, LineageEdge, PackageRecord};

use crate::common::{Ctx, both, t};

both!(
    save_and_read_back,
    children_by_reference_and_digest,
    delete_removes_orphans,
    layer_cache,
    point_refs_moves_a_tag
);

fn image(digest: &str, repo: &str, layers: &[&str]) -> ImageRecord {
    ImageRecord {
        digest: digest.into(),
        repository: repo.into(),
        platform: "linux/amd64".into(),
        config_digest: Some(format!("{digest}-config")),
        layers: layers.iter().map(|s| s.to_string()).collect(),
        annotations: BTreeMap::from([("a".to_string(), "b".to_string())]),
        os_id: Some("debian".into()),
        os_version: Some("12".into()),
        os_ecosystem: Some("Debian:12".into()),
        source: "scan".into(),
        scanned_at: t(1),
    }
}

fn pkg(name: &str, version: &str, source: Option<&str>) -> PackageRecord {
    PackageRecord {
        ecosystem: "deb".into(),
        name: name.into(),
        version: version.into(),
        arch: Some("amd64".into()),
        source_name: source.map(str::to_string),
        source_version: source.map(|_| version.to_string()),
        purl: format!("pkg:deb/debian/{name}@{version}?arch=amd64"),
        location: "var/lib/dpkg/status".into(),
        layer: Some("sha256:l1".into()),
    }
}

fn tag(reference: &str, digest: &str) -> ImageRef {
    ImageRef {
        reference: reference.into(),
        platform: "linux/amd64".into(),
        digest: digest.into(),
        index_digest: None,
        updated_at: t(1),
    }
}

fn edge(
    evidence: &str,
    base_ref: Option<&str>,
    base_digest: Option<&str>,
    confidence: i32,
) -> LineageEdge {
    LineageEdge {
        evidence: evidence.into(),
        base_reference: base_ref.map(str::to_string),
        base_digest: base_digest.map(str::to_string),
        confidence,
        detail: None,
        recorded_at: t(1),
    }
}

async fn save_and_read_back(ctx: Ctx) {
    let s = &ctx.store;
    let img = image("sha256:app", "r/app", &["l1", "l2"]);
    let pkgs = vec![
        pkg("libssl3", "3.0.11-1", Some("openssl")),
        pkg("bash", "5.2-2", None),
    ];
    s.save_image(
        &img,
        &pkgs,
        &[edge(
            "annotation",
            Some("r/base:1"),
            Some("sha256:base"),
            95,
        )],
        &[tag("r/app:1", "sha256:app")],
    )
    .await
    .unwrap();
    assert_eq!(s.image("sha256:app").await.unwrap(), Some(img.clone()));
    let got = s.packages_of("sha256:app").await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, "bash", "sorted by name");
    assert_eq!(
        s.resolve_ref("r/app:1").await.unwrap()[0].digest,
        "sha256:app"
    );
    assert_eq!(
        s.lineage_of("sha256:app").await.unwrap()[0].evidence,
        "annotation"
    );

    // A rescan replaces packages, keeps edges of other evidence.
    s.save_image(
        &img,
        &pkgs[..1],
        &[edge(
            "layer-prefix",
            Some("r/base:1"),
            Some("sha256:base"),
            70,
        )],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(s.packages_of("sha256:app").await.unwrap().len(), 1);
    let edges = s.lineage_of("sha256:app").await.unwrap();
    assert_eq!(
        edges
            .iter()
            .map(|e| e.evidence.as_str())
            .collect::<Vec<_>>(),
        ["annotation", "layer-prefix"]
    );

    // Found by binary name and by source name, with the tag.
    let by_source = s.find_packages("openssl", None, None).await.unwrap();
    assert_eq!(by_source.len(), 1);
    assert_eq!(by_source[0].references, vec!["r/app:1".to_string()]);
    assert_eq!(
        s.find_packages("libssl3", Some("deb"), Some("3.0.11-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.find_packages("libssl3", Some("rpm"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.find_packages("libssl3", None, Some("9"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn children_by_reference_and_digest(ctx: Ctx) {
    let s = &ctx.store;
    s.save_image(
        &image("sha256:base", "r/base", &["l1"]),
        &[],
        &[],
        &[tag("r/base:1", "sha256:base")],
    )
    .await
    .unwrap();
    // Built on the current base, known by annotation and by prefix: the stronger wins.
    s.save_image(
        &image("sha256:a", "r/a", &["l1", "a"]),
        &[],
        &[
            edge("annotation", Some("r/base:1"), Some("sha256:base"), 95),
            edge("layer-prefix", Some("r/base:1"), Some("sha256:base"), 70),
        ],
        &[tag("r/a:1", "sha256:a")],
    )
    .await
    .unwrap();
    // Built on an older digest of the same tag: found by reference.
    s.save_image(
        &image("sha256:b", "r/b", &["l0", "b"]),
        &[],
        &[edge("dockerfile", Some("r/base:1"), None, 80)],
        &[tag("r/b:1", "sha256:b")],
    )
    .await
    .unwrap();
    // Known only by digest.
    s.save_image(
        &image("sha256:c", "r/c", &["l1", "c"]),
        &[],
        &[edge("layer-prefix", None, Some("sha256:base"), 70)],
        &[tag("r/c:1", "sha256:c")],
    )
    .await
    .unwrap();
    let kids = s
        .children(Some("r/base:1"), &["sha256:base".to_string()])
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = kids
        .iter()
        .map(|k| (k.image_digest.as_str(), k.edge.evidence.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("sha256:a", "annotation"),
            ("sha256:b", "dockerfile"),
            ("sha256:c", "layer-prefix")
        ]
    );
    assert_eq!(kids[0].references, vec!["r/a:1".to_string()]);
    assert!(s.children(Some("r/other:1"), &[]).await.unwrap().is_empty());
}

async fn delete_removes_orphans(ctx: Ctx) {
    let s = &ctx.store;
    let img = image("sha256:x", "r/x", &["l"]);
    s.save_image(
        &img,
        &[pkg("bash", "1", None)],
        &[edge("manual", Some("r/base:1"), None, 100)],
        &[tag("r/x:1", "sha256:x"), tag("r/x:latest", "sha256:x")],
    )
    .await
    .unwrap();
    assert!(s.delete_ref("r/x:1").await.unwrap());
    assert!(
        s.image("sha256:x").await.unwrap().is_some(),
        "still tagged latest"
    );
    assert!(s.delete_ref("r/x:latest").await.unwrap());
    assert!(s.image("sha256:x").await.unwrap().is_none());
    assert!(s.packages_of("sha256:x").await.unwrap().is_empty());
    assert!(s.lineage_of("sha256:x").await.unwrap().is_empty());
    assert!(s.children(Some("r/base:1"), &[]).await.unwrap().is_empty());
    assert!(!s.delete_ref("r/x:latest").await.unwrap(), "unknown tag");
}

async fn layer_cache(ctx: Ctx) {
    let s = &ctx.store;
    s.put_layer_findings("sha256:l1", "{\"files\":{}}", t(1))
        .await
        .unwrap();
    s.put_layer_findings("sha256:l1", "{\"files\":{\"x\":1}}", t(2))
        .await
        .unwrap();
    let got = s
        .layer_findings(&["sha256:l1".into(), "sha256:l2".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["sha256:l1"], "{\"files\":{\"x\":1}}");
}

/// A tag moved to an image already held: pointed without touching the
/// images; an image not held is refused, and the tag stays.
async fn point_refs_moves_a_tag(ctx: Ctx) {
    let s = &ctx.store;
    for d in ["sha256:v1", "sha256:v2"] {
        s.save_image(
            &image(d, "r/os", &[d]),
            &[pkg("bash", "5.2-2", None)],
            &[],
            &[tag(&format!("r/os@{d}"), d)],
        )
        .await
        .unwrap();
    }
    s.point_refs(&[tag("r/os:stable", "sha256:v1")])
        .await
        .unwrap();
    let moved = ImageRef {
        index_digest: Some("sha256:index".into()),
        updated_at: t(2),
        ..tag("r/os:stable", "sha256:v2")
    };
    s.point_refs(std::slice::from_ref(&moved)).await.unwrap();
    assert_eq!(
        s.resolve_ref("r/os:stable").await.unwrap(),
        std::slice::from_ref(&moved)
    );
    assert_eq!(s.packages_of("sha256:v2").await.unwrap().len(), 1);
    assert!(
        s.point_refs(&[tag("r/os:stable", "sha256:unknown")])
            .await
            .is_err(),
        "an image not in the inventory"
    );
    assert_eq!(s.resolve_ref("r/os:stable").await.unwrap(), [moved]);
    s.point_refs(&[]).await.unwrap();
}
