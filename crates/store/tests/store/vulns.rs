//! Vulnerability data: incremental imports, snapshots, fleet packages, decisions.

use freshen_store::{AdvisoryInput, Decision, ImageRecord, ImageRef, PackageRecord};
use serde_json::json;

use crate::common::{Ctx, both, t};

both!(
    imports_are_incremental_by_modified,
    fleet_packages_and_decisions
);

fn adv(id: &str, modified: &str) -> AdvisoryInput {
    AdvisoryInput {
        id: id.into(),
        modified: modified.into(),
        record: json!({"id": id, "modified": modified}).to_string(),
    }
}

async fn imports_are_incremental_by_modified(ctx: Ctx) {
    let s = &ctx.store;
    assert_eq!(s.vuln_snapshot().await.unwrap(), None);
    let first = s
        .import_advisories(
            "a.zip",
            "osv",
            &[
                adv("A", "2024-01-01T00:00:00Z"),
                adv("B", "2024-01-01T00:00:00Z"),
            ],
            t(1),
        )
        .await
        .unwrap();
    assert_eq!((first.added, first.updated, first.unchanged), (2, 0, 0));
    let second = s
        .import_advisories(
            "a.zip",
            "osv",
            &[
                adv("A", "2024-02-01T00:00:00Z"),
                adv("B", "2023-12-01T00:00:00Z"),
                adv("C", "2024-01-01T00:00:00Z"),
            ],
            t(2),
        )
        .await
        .unwrap();
    assert_eq!((second.added, second.updated, second.unchanged), (1, 1, 1));
    assert!(second.import_id > first.import_id);
    assert_eq!(s.vuln_snapshot().await.unwrap(), Some(second.import_id));
    let stored: Vec<serde_json::Value> = s
        .advisories()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    assert_eq!(
        stored,
        [
            json!({"id": "A", "modified": "2024-02-01T00:00:00Z"}),
            json!({"id": "B", "modified": "2024-01-01T00:00:00Z"}),
            json!({"id": "C", "modified": "2024-01-01T00:00:00Z"}),
        ],
        "the older B did not replace the newer one"
    );

    // As of each import: what was stored then (A's first version, no C).
    let as_of = |texts: Vec<String>| -> Vec<serde_json::Value> {
        texts
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    };
    assert_eq!(
        as_of(s.advisories_as_of(first.import_id).await.unwrap()),
        [
            json!({"id": "A", "modified": "2024-01-01T00:00:00Z"}),
            json!({"id": "B", "modified": "2024-01-01T00:00:00Z"}),
        ]
    );
    assert_eq!(
        as_of(s.advisories_as_of(second.import_id).await.unwrap()),
        stored
    );
    assert!(s.advisories_as_of(0).await.unwrap().is_empty());

    // Policy versions are remembered once.
    let spec = json!({"mode": "always"});
    s.remember_policy("v1", &spec, t(3)).await.unwrap();
    s.remember_policy("v1", &json!({"mode": "other"}), t(4))
        .await
        .unwrap();
    assert_eq!(s.policy_spec("v1").await.unwrap(), Some(spec));
    assert_eq!(s.policy_spec("v2").await.unwrap(), None);
}

async fn fleet_packages_and_decisions(ctx: Ctx) {
    let s = &ctx.store;
    let image = ImageRecord {
        digest: "sha256:img".into(),
        repository: "r/app".into(),
        platform: "linux/amd64".into(),
        config_digest: None,
        layers: vec!["l1".into()],
        annotations: Default::default(),
        os_id: Some("debian".into()),
        os_version: Some("12".into()),
        os_ecosystem: Some("Debian:12".into()),
        source: "scan".into(),
        scanned_at: t(1),
    };
    let pkg = PackageRecord {
        ecosystem: "deb".into(),
        name: "libssl3".into(),
        version: "3.0.11-1~deb12u1".into(),
        arch: Some("amd64".into()),
        source_name: Some("openssl".into()),
        source_version: Some("3.0.11-1~deb12u1".into()),
        purl: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64".into(),
        location: "var/lib/dpkg/status".into(),
        layer: None,
    };
    s.save_image(
        &image,
        std::slice::from_ref(&pkg),
        &[],
        &[ImageRef {
            reference: "r/app:1".into(),
            platform: "linux/amd64".into(),
            digest: "sha256:img".into(),
            index_digest: None,
            updated_at: t(1),
        }],
    )
    .await
    .unwrap();
    let fleet = s.fleet_packages().await.unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].os_ecosystem.as_deref(), Some("Debian:12"));
    assert_eq!(fleet[0].package, pkg);

    let d = Decision {
        id: "0190-a".into(),
        subject: "r/app:1".into(),
        image_digest: Some("sha256:img".into()),
        event_id: None,
        policy: "default".into(),
        policy_version: "abc".into(),
        snapshot: json!({"vuln_import": 1}),
        act: true,
        reason: "thresholds `high > 0` met (high 1)".into(),
        counts: json!({"high": 1}),
        decided_at: t(5),
    };
    s.record_decision(&d).await.unwrap();
    assert_eq!(s.decision("0190-a").await.unwrap().as_ref(), Some(&d));
    assert_eq!(s.decision("nope").await.unwrap(), None);
    assert_eq!(
        s.decisions(Some("r/app:1"), None, 10).await.unwrap(),
        std::slice::from_ref(&d)
    );
    assert!(
        s.decisions(Some("r/other:1"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.decisions(None, None, 10).await.unwrap().len(), 1);
}
