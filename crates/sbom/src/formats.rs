//! SBOM documents: CycloneDX 1.5 JSON and SPDX 2.3 JSON.

use serde_json::{Value, json};

use crate::model::{Inventory, Package};

const TOOL: &str = "freshen";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

fn properties(p: &Package) -> Vec<Value> {
    let mut props = vec![
        json!({"name": "freshen:ecosystem", "value": p.ecosystem.as_str()}),
        json!({"name": "freshen:location", "value": p.location}),
    ];
    if let Some(l) = &p.layer {
        props.push(json!({"name": "freshen:layer", "value": l}));
    }
    if let Some(a) = &p.arch {
        props.push(json!({"name": "freshen:arch", "value": a}));
    }
    if let Some(s) = &p.source_name {
        props.push(json!({"name": "freshen:source-name", "value": s}));
    }
    if let Some(s) = &p.source_version {
        props.push(json!({"name": "freshen:source-version", "value": s}));
    }
    props
}

/// A CycloneDX 1.5 JSON BOM of `inv` for the image `subject`
/// (`registry/repo@sha256:...`): the image as `metadata.component`
/// (type `container`), the distribution as an `operating-system`
/// component, and one `library` component per package with its purl and
/// `freshen:*` properties (layer, location, ecosystem, arch, source).
/// Deterministic: no serial number or timestamp, so the same inventory
/// gives the same bytes.
pub fn cyclonedx(subject: &str, inv: &Inventory) -> Value {
    let mut components = Vec::new();
    if let Some(os) = &inv.os {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": "os",
            "name": os.id,
        });
        if let Some(v) = &os.version_id {
            c["version"] = json!(v);
        }
        if let Some(d) = &os.pretty_name {
            c["description"] = json!(d);
        }
        components.push(c);
    }
    for (i, p) in inv.packages.iter().enumerate() {
        components.push(json!({
            "type": "library",
            "bom-ref": format!("pkg-{i}"),
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": properties(p),
        }));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [{"type": "application", "name": TOOL, "version": TOOL_VERSION}]
            },
            "component": {"type": "container", "bom-ref": "image", "name": subject}
        },
        "components": components,
    })
}

/// Characters allowed in an SPDX identifier besides letters and digits.
fn spdx_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An SPDX 2.3 JSON document of `inv` for the image `subject`, created at
/// `created` (`YYYY-MM-DDThh:mm:ssZ`, given by the caller so this stays
/// pure). The image is a package the document DESCRIBES; it CONTAINS one
/// package per found package, each with a `purl` external reference.
pub fn spdx(subject: &str, inv: &Inventory, created: &str) -> Value {
    let mut packages = vec![json!({
        "name": subject,
        "SPDXID": "SPDXRef-Image",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    if let Some(os) = &inv.os {
        let mut p = json!({
            "name": os.id,
            "SPDXID": "SPDXRef-OperatingSystem",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        });
        if let Some(v) = &os.version_id {
            p["versionInfo"] = json!(v);
        }
        packages.push(p);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-OperatingSystem",
        }));
    }
    for (i, p) in inv.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{i}", spdx_id(p.ecosystem.as_str()));
        let mut source = format!("found in {}", p.location);
        if let Some(l) = &p.layer {
            source.push_str(&format!(" (layer {l})"));
        }
        let mut pkg = json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "sourceInfo": source,
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl,
            }],
        });
        if let Some(s) = &p.source_name {
            let comment = match &p.source_version {
                Some(v) => format!("source package {s} {v}"),
                None => format!("source package {s}"),
            };
            pkg["comment"] = json!(comment);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let namespace: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject,
        "documentNamespace": format!("https://example.invalid/freshen/spdx/{namespace}/{}", spdx_id(created)),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: {TOOL}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    })
}
