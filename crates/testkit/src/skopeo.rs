//! `skopeo` against a test registry: copies between tags, and images
//! unpacked into their files (by skopeo and tar, not by freshen).

use std::collections::BTreeMap;

/// `skopeo copy` between two tags of a local (plain-HTTP) registry, the
/// manifest bytes kept (`--preserve-digests`): a push as another client
/// would make it.
pub async fn skopeo_copy(from: &str, to: &str) {
    let out = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{from}"))
        .arg(format!("docker://{to}"))
        .output()
        .await
        .expect("skopeo is needed for this test: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image's files, unpacked by skopeo and tar (not by freshen): path ->
/// contents (directories as empty, their paths ending in `/`), for
/// comparing two images' trees. `platform` is `os/arch[/variant]`.
pub async fn unpack(reference: &str, platform: &str) -> BTreeMap<String, Vec<u8>> {
    let (os, rest) = platform.split_once('/').unwrap();
    let arch = rest.split('/').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("image");
    let out = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--override-os",
            os,
            "--override-arch",
            arch,
            &format!("docker://{reference}"),
        ])
        .arg(format!("dir:{}", blobs.display()))
        .output()
        .await
        .expect("skopeo is needed for this test: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join("manifest.json")).unwrap()).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let out = std::process::Command::new("tar")
            .arg("-xf")
            .arg(blobs.join(hex))
            .arg("-C")
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "untar a layer of {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            if p.is_dir() {
                files.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                files.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}
