//! Our rpm order against rpm's own `rpm.vercmp` (rpmverCmp over EVRs).

mod common;

use std::process::Command;

use freshen_version::{Scheme, Version};

/// Asks rpm about all pairs in one `rpm --eval`: a Lua loop reads the pairs
/// from a file and writes one -1/0/1 per line.
fn rpm_vercmp(pairs: &[(String, String)]) -> Vec<i32> {
    common::require("rpm", "apt-get install rpm");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.tsv");
    let mut text = String::new();
    for (a, b) in pairs {
        assert!(!a.contains(['\t', '\n']) && !b.contains(['\t', '\n']));
        text.push_str(&format!("{a}\t{b}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let lua = format!(
        "%{{lua: for line in io.lines('{}') do local a, b = line:match('^(.-)\\t(.*)$'); io.write(rpm.vercmp(a, b), '\\n') end}}",
        path.display()
    );
    let out = common::run(Command::new("rpm").arg("--eval").arg(lua), b"");
    let got: Vec<i32> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("rpm printed {l:?}"))
        })
        .collect();
    assert_eq!(
        got.len(),
        pairs.len(),
        "rpm answered {} of {}",
        got.len(),
        pairs.len()
    );
    got
}

fn check(strings: &[String], random: usize, seed: u64, what: &str) {
    let mut parsed: Vec<Version> = strings
        .iter()
        .map(|s| Version::parse(Scheme::Rpm, s).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    parsed.sort();
    let sorted: Vec<String> = parsed.iter().map(|v| v.as_str().to_owned()).collect();
    let pairs = common::pairs(&sorted, random, seed);
    let theirs = rpm_vercmp(&pairs);
    let wrong: Vec<String> = pairs
        .iter()
        .zip(&theirs)
        .filter_map(|((a, b), t)| {
            let ours = Version::parse(Scheme::Rpm, a)
                .unwrap()
                .cmp(&Version::parse(Scheme::Rpm, b).unwrap()) as i32;
            (ours != *t).then(|| format!("{a:?} vs {b:?}: ours {ours}, rpm {t}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "rpm agreed on all {} {what} pairs ({} distinct versions)",
        pairs.len(),
        sorted.len()
    );
}

#[test]
fn agrees_with_rpm_on_rpm_style_versions() {
    let strings = common::rpm_versions();
    // Every pair of the hand-made set, both ways round.
    let mut all = Vec::new();
    for a in &strings {
        for b in &strings {
            all.push((a.clone(), b.clone()));
        }
    }
    let theirs = rpm_vercmp(&all);
    let wrong: Vec<String> = all
        .iter()
        .zip(&theirs)
        .filter_map(|((a, b), t)| {
            let ours = Version::parse(Scheme::Rpm, a)
                .unwrap()
                .cmp(&Version::parse(Scheme::Rpm, b).unwrap()) as i32;
            (ours != *t).then(|| format!("{a:?} vs {b:?}: ours {ours}, rpm {t}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "rpm agreed on all {} pairs of {} rpm-style versions",
        all.len(),
        strings.len()
    );
    check(
        &strings,
        1000,
        0x4e7,
        "sorted-neighbour and random rpm-style",
    );
}

#[test]
fn agrees_with_rpm_on_debian_versions() {
    // Debian's strings are all EVRs rpm accepts, and rpm splits and orders
    // them differently from dpkg, which makes a good second corpus.
    let strings = common::debian_versions(3000);
    check(&strings, 3000, 0x4e8, "Debian-derived");
}
