//! Our PEP 440 order (pep440_rs) against Python's `packaging.version`.

mod common;

use std::process::Command;

use freshen_version::{Scheme, Version};

/// packaging's answer for each line "a\tb": "x" when either is invalid,
/// else -1/0/1. One Python process for all pairs.
const SCRIPT: &str = r#"
import sys
from packaging.version import Version, InvalidVersion
def parse(s):
    try:
        return Version(s)
    except InvalidVersion:
        return None
for line in sys.stdin.read().split("\n")[:-1]:
    a, b = line.split("\t")
    va, vb = parse(a), parse(b)
    if va is None or vb is None:
        print("x")
    else:
        print((va > vb) - (va < vb))
"#;

#[test]
fn agrees_with_python_packaging() {
    common::require("python3", "apt-get install python3");
    let has = Command::new("python3")
        .args(["-c", "import packaging.version"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "python3 cannot import packaging: python3 -m pip install packaging"
    );

    let strings = common::pep440_versions();
    let valid: Vec<&String> = strings
        .iter()
        .filter(|s| Version::parse(Scheme::Pep440, s).is_ok())
        .collect();
    let mut sorted: Vec<Version> = valid
        .iter()
        .map(|s| Version::parse(Scheme::Pep440, s).unwrap())
        .collect();
    sorted.sort();
    let sorted: Vec<String> = sorted.iter().map(|v| v.as_str().to_owned()).collect();
    let mut pairs = common::pairs(&sorted, 3000, 0x440);
    // Each string against a fixed valid one checks that both sides accept
    // and reject the same strings.
    pairs.extend(strings.iter().map(|s| (s.clone(), "1.0".to_owned())));

    let mut input = String::new();
    for (a, b) in &pairs {
        input.push_str(&format!("{a}\t{b}\n"));
    }
    let out = common::run(
        Command::new("python3").args(["-c", SCRIPT]),
        input.as_bytes(),
    );
    let theirs: Vec<&str> = out.lines().collect();
    assert_eq!(
        theirs.len(),
        pairs.len(),
        "python answered {} of {}",
        theirs.len(),
        pairs.len()
    );
    let wrong: Vec<String> = pairs
        .iter()
        .zip(&theirs)
        .filter_map(|((a, b), t)| {
            let ours = match (
                Version::parse(Scheme::Pep440, a),
                Version::parse(Scheme::Pep440, b),
            ) {
                (Ok(a), Ok(b)) => (a.cmp(&b) as i32).to_string(),
                _ => "x".to_owned(),
            };
            (ours != *t).then(|| format!("{a:?} vs {b:?}: ours {ours}, packaging {t}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "packaging agreed on all {} pairs ({} strings, {} valid)",
        pairs.len(),
        strings.len(),
        valid.len()
    );
}
