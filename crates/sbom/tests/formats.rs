//! CycloneDX 1.5 and SPDX 2.3 documents: the fields each spec requires,
//! purls on every package, identifiers unique and cross-referenced.

mod common;

use std::collections::HashSet;

use common::{DEBIAN_OS_RELEASE, Layer, fixture, gzip, scan};
use freshen_sbom::{Inventory, cyclonedx, merge, spdx};
use serde_json::Value;

fn inventory() -> Inventory {
    let status = std::fs::read(fixture("dpkg/status")).unwrap();
    let l1 = Layer::new()
        .file("etc/os-release", DEBIAN_OS_RELEASE)
        .file("var/lib/dpkg/status", &status)
        .tar();
    let l2 = Layer::new()
        .file(
            "app/node_modules/@scope/pkg/package.json",
            br#"{"name":"@scope/pkg","version":"1.0.0"}"#,
        )
        .tar();
    merge(&[
        ("sha256:aaa".into(), scan("sha256:aaa", &gzip(&l1))),
        ("sha256:bbb".into(), scan("sha256:bbb", &gzip(&l2))),
    ])
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn cyclonedx_1_5_shape() {
    let inv = inventory();
    let subject = "registry.example/app@sha256:0123";
    let bom = cyclonedx(subject, &inv);
    // Round-trips as JSON text.
    let bom: Value = serde_json::from_str(&serde_json::to_string_pretty(&bom).unwrap()).unwrap();
    assert_eq!(s(&bom, "bomFormat"), "CycloneDX");
    assert_eq!(s(&bom, "specVersion"), "1.5");
    assert_eq!(bom["version"], 1);
    assert_eq!(s(&bom["metadata"]["component"], "type"), "container");
    assert_eq!(s(&bom["metadata"]["component"], "name"), subject);
    let comps = bom["components"].as_array().unwrap();
    assert_eq!(comps.len(), inv.packages.len() + 1);
    let os = &comps[0];
    assert_eq!(s(os, "type"), "operating-system");
    assert_eq!(s(os, "name"), "debian");
    let mut refs = HashSet::new();
    for c in comps {
        assert!(
            refs.insert(s(c, "bom-ref").to_string()),
            "duplicate bom-ref"
        );
        assert!(!s(c, "name").is_empty());
        if s(c, "type") == "library" {
            assert!(s(c, "purl").starts_with("pkg:"), "{c}");
            assert!(!s(c, "version").is_empty());
            let props = c["properties"].as_array().unwrap();
            let layer = props
                .iter()
                .find(|p| p["name"] == "freshen:layer")
                .expect("layer property");
            assert!(s(layer, "value").starts_with("sha256:"));
        }
    }
    let scoped = comps.iter().find(|c| c["name"] == "@scope/pkg").unwrap();
    assert_eq!(s(scoped, "purl"), "pkg:npm/%40scope/pkg@1.0.0");
    // Deterministic.
    assert_eq!(cyclonedx(subject, &inv), cyclonedx(subject, &inv));
}

#[test]
fn spdx_2_3_shape() {
    let inv = inventory();
    let subject = "registry.example/app@sha256:0123";
    let doc = spdx(subject, &inv, "2024-05-01T12:00:00Z");
    assert_eq!(s(&doc, "spdxVersion"), "SPDX-2.3");
    assert_eq!(s(&doc, "dataLicense"), "CC0-1.0");
    assert_eq!(s(&doc, "SPDXID"), "SPDXRef-DOCUMENT");
    assert_eq!(s(&doc, "name"), subject);
    assert!(s(&doc, "documentNamespace").starts_with("https://"));
    assert!(!s(&doc, "documentNamespace").contains('#'));
    assert_eq!(s(&doc["creationInfo"], "created"), "2024-05-01T12:00:00Z");
    assert!(
        doc["creationInfo"]["creators"][0]
            .as_str()
            .unwrap()
            .starts_with("Tool: ")
    );

    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), inv.packages.len() + 2, "image + os + packages");
    let mut ids = HashSet::new();
    for p in pkgs {
        let id = s(p, "SPDXID");
        assert!(id.starts_with("SPDXRef-"), "{id}");
        assert!(
            id["SPDXRef-".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
        assert!(ids.insert(id.to_string()), "duplicate {id}");
        assert!(!s(p, "name").is_empty());
        assert_eq!(s(p, "downloadLocation"), "NOASSERTION");
        if id.starts_with("SPDXRef-Package-") {
            let refs = p["externalRefs"].as_array().unwrap();
            assert_eq!(s(&refs[0], "referenceCategory"), "PACKAGE-MANAGER");
            assert_eq!(s(&refs[0], "referenceType"), "purl");
            assert!(s(&refs[0], "referenceLocator").starts_with("pkg:"));
            assert!(!s(p, "versionInfo").is_empty());
        }
    }
    let rels = doc["relationships"].as_array().unwrap();
    assert!(rels.iter().any(|r| r["spdxElementId"] == "SPDXRef-DOCUMENT"
        && r["relationshipType"] == "DESCRIBES"
        && r["relatedSpdxElement"] == "SPDXRef-Image"));
    for r in rels {
        let target = s(r, "relatedSpdxElement");
        assert!(ids.contains(target), "relationship to unknown {target}");
    }
    assert_eq!(
        rels.len(),
        pkgs.len(),
        "DESCRIBES + one CONTAINS per package"
    );
}
