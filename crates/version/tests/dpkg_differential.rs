//! Our dpkg order against `dpkg --compare-versions` on real Debian versions.

mod common;

use std::cmp::Ordering;
use std::process::Command;

use freshen_version::{Scheme, Version};

#[test]
fn agrees_with_dpkg_on_real_versions() {
    common::require("dpkg", "apt-get install dpkg");
    let strings = common::debian_versions(3000);
    let mut parsed: Vec<Version> = strings
        .iter()
        .map(|s| Version::parse(Scheme::Dpkg, s).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    parsed.sort();
    let sorted: Vec<String> = parsed.iter().map(|v| v.as_str().to_owned()).collect();
    let pairs = common::pairs(&sorted, 2000, 0xdeb);

    // One shell for all pairs: each line asks dpkg whether our answer holds
    // and prints 0 (yes) or 1 (no). Debian versions never contain a quote.
    let mut script = String::new();
    let mut ours = Vec::new();
    for (a, b) in &pairs {
        assert!(!a.contains('\'') && !b.contains('\''));
        let o = Version::parse(Scheme::Dpkg, a)
            .unwrap()
            .cmp(&Version::parse(Scheme::Dpkg, b).unwrap());
        let op = match o {
            Ordering::Less => "lt",
            Ordering::Equal => "eq",
            Ordering::Greater => "gt",
        };
        script.push_str(&format!(
            "dpkg --compare-versions '{a}' {op} '{b}'; echo $?\n"
        ));
        ours.push((a, op, b));
    }
    let out = common::run(Command::new("sh").arg("-s"), script.as_bytes());
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(
        answers.len(),
        pairs.len(),
        "dpkg answered {} of {}",
        answers.len(),
        pairs.len()
    );
    let wrong: Vec<_> = ours
        .iter()
        .zip(&answers)
        .filter(|(_, r)| **r != "0")
        .map(|((a, op, b), _)| format!("we say {a} {op} {b}, dpkg disagrees"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The sorted neighbours must include real ties and strict steps.
    println!(
        "dpkg agreed on all {} pairs ({} distinct versions)",
        pairs.len(),
        sorted.len()
    );
}

#[test]
fn agrees_with_dpkg_on_edge_cases() {
    common::require("dpkg", "apt-get install dpkg");
    let cases = [
        "1.0",
        "0:1.0",
        "1.0-0",
        "1.0-1",
        "1.0~rc1",
        "1.0~~",
        "1.0~",
        "1.0+",
        "1.0a",
        "1.0.",
        "1.00",
        "1.0-1~bpo1",
        "1:0.1",
        "10:0",
        "2:1.0~rc1-1+b1",
        "1.0-1-1",
        "0.0",
        "1.0+dfsg-1",
        "1.0+dfsg1-1",
        "1.0-a",
        "1.0-+",
        "1.0-~",
        "9",
        "10",
        "1a",
        "1A",
        "1.Z",
        "1.z",
        "1:1:1",
        "0:1:1",
        "1.0~rc1+dfsg",
        "000001",
        "1",
        "99999999999999999999",
        "100000000000000000000",
    ];
    let mut script = String::new();
    let mut expected = Vec::new();
    for a in cases {
        for b in cases {
            let o = Version::parse(Scheme::Dpkg, a)
                .unwrap()
                .cmp(&Version::parse(Scheme::Dpkg, b).unwrap());
            let op = match o {
                Ordering::Less => "lt",
                Ordering::Equal => "eq",
                Ordering::Greater => "gt",
            };
            script.push_str(&format!(
                "dpkg --compare-versions '{a}' {op} '{b}' 2>/dev/null; echo $?\n"
            ));
            expected.push(format!("{a} {op} {b}"));
        }
    }
    let out = common::run(Command::new("sh").arg("-s"), script.as_bytes());
    let wrong: Vec<_> = expected
        .iter()
        .zip(out.lines())
        .filter(|(_, r)| *r != "0")
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(out.lines().count(), expected.len());
    assert!(
        wrong.is_empty(),
        "dpkg disagrees with:\n{}",
        wrong.join("\n")
    );
    println!("dpkg agreed on all {} edge-case pairs", expected.len());
}

#[test]
fn rejects_what_dpkg_rejects() {
    common::require("dpkg", "apt-get install dpkg");
    // dpkg exits 2 on a syntax error and 0 (with a warning) on what it only
    // frowns at, like a leading letter or an odd character. The empty
    // string, which dpkg takes as "no version", is rejected here and left
    // out; so is a leading '-', which dpkg would read as an option.
    let cases = [
        "a:1",
        ":1",
        "1:",
        "1.0-",
        "1 0",
        "1:-1",
        "abc",
        "1.0_x",
        "99999999999:1",
        "2147483647:1",
        "2147483648:1",
        " 1.0",
        "1.0 ",
        "1.0\u{e9}",
        "1:1.0-",
        "1.0--1",
        "0:0",
        "1::1",
        "1.0-1:2",
        "~",
        "+1",
        "1.0-~",
    ];
    let mut wrong = Vec::new();
    for s in cases {
        let status = Command::new("dpkg")
            .args(["--compare-versions", s, "eq", s])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let dpkg_ok = match status.code() {
            Some(0) => true,
            Some(2) => false,
            other => panic!("dpkg --compare-versions {s:?} exited {other:?}"),
        };
        let ours = Version::parse(Scheme::Dpkg, s);
        if ours.is_ok() != dpkg_ok {
            wrong.push(format!("{s:?}: dpkg ok={dpkg_ok}, ours {ours:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!(
        "dpkg and we accept and reject the same {} strings",
        cases.len()
    );
}
