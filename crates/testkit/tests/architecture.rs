//! ARCHITECTURE.md stays true: the crate dependency edges that `cargo
//! metadata` reports are exactly those its `layers` block allows, and the
//! block lists each crate after everything it depends on (data flows one
//! way; no layer reaches up).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (two levels above this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_path_buf()
}

/// The `layers` block of ARCHITECTURE.md, in order: crate directory name ->
/// the workspace crates it may depend on.
fn documented() -> Vec<(String, BTreeSet<String>)> {
    let path = root().join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let block = text
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```layers block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, deps) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("layers line {l:?}: expected `crate: dep dep`"));
            (
                name.trim().to_string(),
                deps.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Each workspace crate (by directory name) and the workspace crates it
/// depends on for its library or binary (dev and build dependencies aside).
fn actual() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let dir_of = |manifest: &str| {
        Path::new(manifest)
            .parent()
            .and_then(Path::file_name)
            .expect("a crate directory")
            .to_string_lossy()
            .into_owned()
    };
    let packages = meta["packages"].as_array().expect("packages");
    let by_name: BTreeMap<&str, String> = packages
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                dir_of(p["manifest_path"].as_str().expect("manifest_path")),
            )
        })
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| by_name.get(d["name"].as_str().expect("dep name")))
                .cloned()
                .collect();
            (by_name[p["name"].as_str().expect("name")].clone(), deps)
        })
        .collect()
}

#[test]
fn dependency_edges_are_exactly_the_documented_layers() {
    let doc = documented();
    let actual = actual();
    let mut problems = Vec::new();

    // The block is in layer order: a crate names only crates above it.
    let mut seen = BTreeSet::new();
    for (name, deps) in &doc {
        for d in deps.difference(&seen) {
            problems.push(format!(
                "ARCHITECTURE.md: {name} depends on {d}, which is not listed above it"
            ));
        }
        if !seen.insert(name.clone()) {
            problems.push(format!("ARCHITECTURE.md: {name} is listed twice"));
        }
    }

    let doc: BTreeMap<_, _> = doc.into_iter().collect();
    for (name, deps) in &actual {
        let Some(allowed) = doc.get(name) else {
            problems.push(format!(
                "crates/{name} is missing from the layers block of ARCHITECTURE.md"
            ));
            continue;
        };
        for d in deps.difference(allowed) {
            problems.push(format!(
                "crates/{name} depends on {d}: not allowed by ARCHITECTURE.md"
            ));
        }
        for d in allowed.difference(deps) {
            problems.push(format!(
                "ARCHITECTURE.md says {name} depends on {d}, but it does not: update the document"
            ));
        }
    }
    for name in doc.keys().filter(|n| !actual.contains_key(*n)) {
        problems.push(format!("ARCHITECTURE.md lists {name}, which is no crate"));
    }
    assert!(
        problems.is_empty(),
        "\n{}\n\nWhat cargo metadata says, in layer order:\n{}",
        problems.join("\n"),
        layered(&actual)
    );
}

/// `actual` as a layers block: each crate after its dependencies.
fn layered(actual: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut placed: Vec<&String> = Vec::new();
    while placed.len() < actual.len() {
        let before = placed.len();
        for (name, deps) in actual {
            if !placed.contains(&name) && deps.iter().all(|d| placed.contains(&d)) {
                placed.push(name);
            }
        }
        if placed.len() == before {
            return "(a cycle: cargo would have refused it)".into();
        }
    }
    placed
        .iter()
        .map(|n| {
            let deps: Vec<&str> = actual[*n].iter().map(String::as_str).collect();
            format!("{n}: {}", deps.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
